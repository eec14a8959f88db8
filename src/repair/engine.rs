//! Everything the repair ladder asks of the outside world, as one trait: the Docker calls it
//! makes, Rancher's `/ping`, and the wall clock. [`DockerClient`] is the real one; the tests
//! drive the ladder through a fake engine that injects faults (daemon gone, 404/409/500, a
//! call that never answers, the container recreated, a clock jump) on paused time.

use std::future::Future;
use std::time::Duration;

use crate::docker::{ContainerInfo, DockerClient, Lease};
use crate::error::Error;
use crate::source::Tree;

/// The ladder's view of a Docker engine. Containers are addressed by id once inspected, so a
/// container recreated under the same name is never touched by mistake.
pub trait Engine: Send + Sync {
    fn inspect(
        &self,
        name_or_id: &str,
    ) -> impl Future<Output = Result<ContainerInfo, Error>> + Send;
    fn read_tree(&self, id: &str, path: &str) -> impl Future<Output = Result<Tree, Error>> + Send;
    fn read_file(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;
    /// Log lines at or after `since_nanos` (Unix nanoseconds), the last `tail` at most.
    fn logs_since(
        &self,
        id: &str,
        since_nanos: i128,
        tail: usize,
    ) -> impl Future<Output = Result<String, Error>> + Send;
    /// The end (at most `max` bytes) of a file, `None` when it does not exist.
    fn read_tail(
        &self,
        id: &str,
        path: &str,
        max: usize,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;
    fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> impl Future<Output = Result<(i64, String), Error>> + Send;
    /// Returns once the container is down (the call's own deadline covers `grace_secs`).
    fn stop(&self, id: &str, grace_secs: u32) -> impl Future<Output = Result<(), Error>> + Send;
    fn start(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    fn restart(&self, id: &str, grace_secs: u32) -> impl Future<Output = Result<(), Error>> + Send;
    /// Run `cmd` in a helper container from the target's image, sharing its volumes.
    fn run_helper(
        &self,
        target: &ContainerInfo,
        run_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = Result<(i64, String), Error>> + Send;
    /// Remove exited helpers of `target_id` left by other (dead) runs.
    fn remove_exited_helpers(
        &self,
        target_id: &str,
        run_id: &str,
    ) -> impl Future<Output = Vec<String>> + Send;
    /// Does Rancher answer `pong`?
    fn ping(&self, id: &str, health_url: Option<&str>) -> impl Future<Output = bool> + Send;
    /// `Ok(None)`: the lease is ours; `Ok(Some(held))`: another run holds it.
    fn create_lease(
        &self,
        target: &ContainerInfo,
        lease: &Lease,
    ) -> impl Future<Output = Result<Option<Lease>, Error>> + Send;
    fn find_lease(
        &self,
        target_id: &str,
    ) -> impl Future<Output = Result<Option<Lease>, Error>> + Send;
    fn remove_lease(&self, lease_id: &str) -> impl Future<Output = Result<(), Error>> + Send;
    /// The daemon's identity (leases of holders on another daemon cannot be checked here).
    fn daemon_id(&self) -> String;
    /// The daemon's clock, Unix seconds (the clock gate compares it with ours).
    fn daemon_time(&self) -> impl Future<Output = Result<i64, Error>> + Send;
    /// The wall clock, Unix seconds.
    fn now(&self) -> i64;
}

impl Engine for DockerClient {
    async fn inspect(&self, name_or_id: &str) -> Result<ContainerInfo, Error> {
        DockerClient::inspect(self, name_or_id).await
    }
    async fn read_tree(&self, id: &str, path: &str) -> Result<Tree, Error> {
        DockerClient::read_tree(self, id, path).await
    }
    async fn read_file(&self, id: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        DockerClient::read_file(self, id, path).await
    }
    async fn logs_since(&self, id: &str, since_nanos: i128, tail: usize) -> Result<String, Error> {
        DockerClient::logs_since(self, id, since_nanos, tail).await
    }
    async fn read_tail(&self, id: &str, path: &str, max: usize) -> Result<Option<Vec<u8>>, Error> {
        // A year of K3s logging can be large; beyond 512 MiB it is not streamed at all.
        DockerClient::read_tail(self, id, path, max, 512 << 20).await
    }
    async fn exec(
        &self,
        id: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<(i64, String), Error> {
        DockerClient::exec(self, id, cmd, timeout).await
    }
    async fn stop(&self, id: &str, grace_secs: u32) -> Result<(), Error> {
        DockerClient::stop(self, id, grace_secs).await
    }
    async fn start(&self, id: &str) -> Result<(), Error> {
        DockerClient::start(self, id).await
    }
    async fn restart(&self, id: &str, grace_secs: u32) -> Result<(), Error> {
        DockerClient::restart(self, id, grace_secs).await
    }
    async fn run_helper(
        &self,
        target: &ContainerInfo,
        run_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i64, String), Error> {
        DockerClient::run_helper(self, target, run_id, cmd, timeout).await
    }
    async fn remove_exited_helpers(&self, target_id: &str, run_id: &str) -> Vec<String> {
        DockerClient::remove_exited_helpers(self, target_id, run_id).await
    }
    async fn ping(&self, id: &str, health_url: Option<&str>) -> bool {
        crate::probe::rancher_ping(self, id, health_url).await
    }
    async fn create_lease(
        &self,
        target: &ContainerInfo,
        lease: &Lease,
    ) -> Result<Option<Lease>, Error> {
        DockerClient::create_lease(self, target, lease).await
    }
    async fn find_lease(&self, target_id: &str) -> Result<Option<Lease>, Error> {
        DockerClient::find_lease(self, target_id).await
    }
    async fn remove_lease(&self, lease_id: &str) -> Result<(), Error> {
        DockerClient::remove_lease(self, lease_id).await
    }
    fn daemon_id(&self) -> String {
        self.daemon_id.clone()
    }
    async fn daemon_time(&self) -> Result<i64, Error> {
        DockerClient::daemon_time(self).await
    }
    fn now(&self) -> i64 {
        crate::timefmt::now()
    }
}
