//! The one module that talks to the Docker Engine API (through bollard).
//!
//! Everything the product needs from Docker is a method here: inspect, read a directory as a
//! tar stream, logs, exec, stop/start, a short-lived helper container, events.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters as qp;
use bollard::Docker;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::Error;
use crate::source::{
    archive::{each_entry, tree_from_tar},
    Tree,
};

/// Label put on every helper and lease container this tool creates, so they can be found and
/// removed, and are never taken for targets. Its value is the target's name.
pub const HELPER_LABEL: &str = "rancher-cert-guard.helper";
/// Label of helper and lease containers: the id of the target container they act on.
pub const TARGET_LABEL: &str = "rancher-cert-guard.target";
/// Label of helper containers: the run that created them (a run never removes another's).
pub const RUN_LABEL: &str = "rancher-cert-guard.run";

/// Default deadline of one Docker call, headers and body (archive and log streams included).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// What the product needs to know of a container.
#[derive(Debug, Clone)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    /// The image reference it was created from (`rancher/rancher:v2.5.7`).
    pub image: String,
    /// The image id, used to run a helper from the very same image.
    pub image_id: String,
    pub status: String,
    pub running: bool,
    pub restarting: bool,
    pub started_at: Option<String>,
    pub restart_count: i64,
    pub labels: HashMap<String, String>,
    /// Started with `--rm`: Docker deletes it when it stops, volumes and all.
    pub auto_remove: bool,
    /// `KEY=VALUE` environment of the container (the image's and its own).
    pub env: Vec<String>,
}

/// A container as a list call reports it: enough to select targets.
#[derive(Debug, Clone)]
pub struct ContainerRef {
    pub id: String,
    pub name: String,
    /// The image reference it was created from.
    pub image: String,
    pub labels: HashMap<String, String>,
}

/// A connected Docker client and the host it points at (for error messages).
#[derive(Clone)]
pub struct DockerClient {
    docker: Docker,
    pub host: String,
    pub server_version: String,
    pub api_version: String,
    /// The daemon's own id (`/info` `ID`): a lease records it, so a run can tell whether the
    /// lease's holder talked to the same daemon.
    pub daemon_id: String,
    /// Deadline of one call, headers and body; `stop` and `restart` add their grace period.
    pub call_timeout: Duration,
}

fn host_from_env() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// `2026-11-24T17:07:22.123456789Z` as Unix nanoseconds.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

fn status_code(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

impl DockerClient {
    /// Connect from `DOCKER_HOST` (unix, tcp, tcp + `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`)
    /// or the default socket, and negotiate the API version.
    pub async fn connect() -> Result<Self, Error> {
        let host = host_from_env();
        let unreachable = |detail: String| Error::DockerUnreachable {
            host: host.clone(),
            detail,
        };
        let docker = Docker::connect_with_defaults().map_err(|e| unreachable(e.to_string()))?;
        let client_api = docker.client_version().to_string();
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let version = docker
            .version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let server_version = version.version.unwrap_or_default();
        let api_version = version.api_version.unwrap_or_default();
        let daemon_id = docker
            .info()
            .await
            .ok()
            .and_then(|i| i.id)
            .unwrap_or_default();
        tracing::info!(%host, client_api, server_version, server_api = api_version, "connected to Docker");
        Ok(Self {
            docker: docker.with_timeout(CALL_TIMEOUT),
            host,
            server_version,
            api_version,
            daemon_id,
            call_timeout: CALL_TIMEOUT,
        })
    }

    /// `fut` bounded by `limit`: a stalled daemon or socket proxy becomes an error that says
    /// which call on which container, never a hang.
    async fn bounded<T>(
        &self,
        action: &str,
        container: &str,
        limit: Duration,
        fut: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                action: action.to_string(),
                container: container.to_string(),
                secs: limit.as_secs(),
            }),
        }
    }

    /// The daemon's clock (`/info` `SystemTime`), Unix seconds.
    pub async fn daemon_time(&self) -> Result<i64, Error> {
        let info = self
            .bounded("read the daemon's clock", "-", self.call_timeout, async {
                self.docker
                    .info()
                    .await
                    .map_err(|e| self.map("info", "-", e))
            })
            .await?;
        info.system_time
            .as_deref()
            .and_then(parse_rfc3339_nanos)
            .map(|n| (n / 1_000_000_000) as i64)
            .ok_or_else(|| Error::Failed("the daemon did not report its clock".into()))
    }

    fn map(&self, action: &str, container: &str, e: BollardError) -> Error {
        match &e {
            BollardError::DockerResponseServerError {
                status_code: 403,
                message,
            }
            | BollardError::DockerResponseServerError {
                status_code: 401,
                message,
            } => Error::PermissionDenied {
                host: self.host.clone(),
                detail: message.clone(),
            },
            BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError => Error::DockerUnreachable {
                host: self.host.clone(),
                detail: e.to_string(),
            },
            _ => Error::Docker {
                action: action.to_string(),
                container: container.to_string(),
                source: e,
            },
        }
    }

    /// Names of running containers, for "not found" messages.
    pub async fn running_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .docker
            .list_containers(Some(qp::ListContainersOptions::default()))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
            .map(|n| n.trim_start_matches('/').to_string())
            .collect();
        names.sort();
        names
    }

    pub async fn inspect(&self, name: &str) -> Result<ContainerInfo, Error> {
        let call = self
            .docker
            .inspect_container(name, None::<qp::InspectContainerOptions>);
        let r = match tokio::time::timeout(self.call_timeout, call)
            .await
            .map_err(|_| Error::Timeout {
                action: "inspect".into(),
                container: name.to_string(),
                secs: self.call_timeout.as_secs(),
            })? {
            Ok(r) => r,
            Err(e) if status_code(&e) == Some(404) => {
                return Err(Error::ContainerNotFound {
                    name: name.to_string(),
                    running: self.running_names().await,
                })
            }
            Err(e) => return Err(self.map("inspect", name, e)),
        };
        let state = r.state.unwrap_or_default();
        let config = r.config.unwrap_or_default();
        let auto_remove = r
            .host_config
            .as_ref()
            .and_then(|h| h.auto_remove)
            .unwrap_or(false);
        Ok(ContainerInfo {
            id: r.id.unwrap_or_default(),
            name: r
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            image_id: r.image.unwrap_or_default(),
            status: state.status.map(|s| s.to_string()).unwrap_or_default(),
            running: state.running.unwrap_or(false),
            restarting: state.restarting.unwrap_or(false),
            started_at: state.started_at,
            restart_count: r.restart_count.unwrap_or(0),
            labels: config.labels.unwrap_or_default(),
            auto_remove,
            env: config.env.unwrap_or_default(),
        })
    }

    /// Containers matching Docker `filters` (e.g. `label=k=v`, `ancestor=img`), all states,
    /// from one list call (no inspect per container: callers inspect what they go on with).
    pub async fn list(
        &self,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerRef>, Error> {
        let opts = qp::ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| self.map("list containers", "*", e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                Some(ContainerRef {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    image: c.image.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Read a directory of a container (running, restarting or stopped) as a [`Tree`], through
    /// the archive API, streaming: no shell, no exec, nothing written to disk.
    pub async fn read_tree(&self, container: &str, path: &str) -> Result<Tree, Error> {
        self.bounded(
            "read the TLS directory",
            container,
            self.call_timeout,
            self.read_tree_unbounded(container, path),
        )
        .await
    }

    async fn read_tree_unbounded(&self, container: &str, path: &str) -> Result<Tree, Error> {
        let stream = self.archive_stream(container, path).await?;
        let reader = StreamReader::new(stream.map_err(std::io::Error::other));
        let bridge = SyncIoBridge::new(reader);
        let tree = tokio::task::spawn_blocking(move || tree_from_tar(bridge))
            .await
            .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?;
        tree.map_err(|e| Error::SourceUnreadable {
            source_name: format!("{container}:{path}"),
            detail: format!("archive stream: {e}"),
        })
    }

    /// The archive stream of `path`, with its first chunk already received so that a missing
    /// path or container surfaces as an error here.
    async fn archive_stream(
        &self,
        container: &str,
        path: &str,
    ) -> Result<
        impl Stream<Item = Result<bytes::Bytes, BollardError>> + Send + Unpin + 'static,
        Error,
    > {
        let opts = qp::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = Box::pin(self.docker.download_from_container(container, Some(opts)));
        let first = match stream.next().await {
            Some(Ok(b)) => b,
            Some(Err(e)) if status_code(&e) == Some(404) => {
                // Either the container or the path is missing: tell which.
                self.inspect(container).await?;
                return Err(Error::PathNotFound {
                    container: container.to_string(),
                    path: path.to_string(),
                });
            }
            Some(Err(e)) => return Err(self.map("read archive", container, e)),
            None => bytes::Bytes::new(),
        };
        Ok(futures_util::stream::iter(std::iter::once(Ok(first))).chain(stream))
    }

    /// One file of a container, or `None` when it does not exist. At most 1 MiB.
    pub async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let read = self.read_tree_of_file(container, path);
        match self
            .bounded("read a file", container, self.call_timeout, read)
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(Error::PathNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read_tree_of_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let stream = self.archive_stream(container, path).await?;
        let reader = StreamReader::new(stream.map_err(std::io::Error::other));
        let bridge = SyncIoBridge::new(reader);
        tokio::task::spawn_blocking(move || first_file(bridge))
            .await
            .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?
            .map_err(|e| Error::SourceUnreadable {
                source_name: format!("{container}:{path}"),
                detail: e.to_string(),
            })
    }

    /// The last `max` bytes of one file of a container (running or not), streaming the whole
    /// file through the archive API but keeping only its end; `None` when it does not exist.
    /// Files over `max_stream` bytes are not read at all (`Ok(None)` with a warning): the
    /// archive API cannot seek.
    pub async fn read_tail(
        &self,
        container: &str,
        path: &str,
        max: usize,
        max_stream: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let work = async {
            let stream = match self.archive_stream(container, path).await {
                Ok(s) => s,
                Err(Error::PathNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let reader = StreamReader::new(stream.map_err(std::io::Error::other));
            let bridge = SyncIoBridge::new(reader);
            let path_s = path.to_string();
            tokio::task::spawn_blocking(move || {
                tail_of_first_file(bridge, max, max_stream, &path_s)
            })
            .await
            .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?
            .map_err(|e| Error::SourceUnreadable {
                source_name: format!("{container}:{path}"),
                detail: e.to_string(),
            })
        };
        self.bounded("read the K3s log file", container, self.call_timeout, work)
            .await
    }

    /// stdout and stderr lines of a container logged at or after `since_nanos` (Unix
    /// nanoseconds), at most the last `tail` lines; timestamps are stripped.
    pub async fn logs_since(
        &self,
        container: &str,
        since_nanos: i128,
        tail: usize,
    ) -> Result<String, Error> {
        self.bounded(
            "read the logs",
            container,
            self.call_timeout,
            self.logs_since_unbounded(container, since_nanos, tail),
        )
        .await
    }

    async fn logs_since_unbounded(
        &self,
        container: &str,
        since_nanos: i128,
        tail: usize,
    ) -> Result<String, Error> {
        let opts = qp::LogsOptions {
            stdout: true,
            stderr: true,
            timestamps: true,
            since: (since_nanos / 1_000_000_000).clamp(0, i32::MAX as i128) as i32,
            tail: tail.to_string(),
            ..Default::default()
        };
        let mut stream = self.docker.logs(container, Some(opts));
        let mut raw = String::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => raw.push_str(&String::from_utf8_lossy(&chunk.into_bytes())),
                Err(e) => return Err(self.map("read logs", container, e)),
            }
        }
        let mut out = String::new();
        for line in raw.lines() {
            let (ts, text) = line.split_once(' ').unwrap_or((line, ""));
            match parse_rfc3339_nanos(ts) {
                Some(t) if t < since_nanos => continue,
                _ => {}
            }
            out.push_str(text);
            out.push('\n');
        }
        Ok(out)
    }

    /// Run a command inside a running container; returns (exit code, combined output).
    pub async fn exec(
        &self,
        container: &str,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<(i64, String), Error> {
        use bollard::exec::{CreateExecOptions, StartExecResults};
        let create = CreateExecOptions {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(container, create)
            .await
            .map_err(|e| self.map("exec", container, e))?;
        let run = async {
            let mut out = String::new();
            if let StartExecResults::Attached { mut output, .. } = self
                .docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| self.map("exec", container, e))?
            {
                while let Some(Ok(chunk)) = output.next().await {
                    if out.len() < 64 * 1024 {
                        out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                    }
                }
            }
            let code = self
                .docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| self.map("exec", container, e))?
                .exit_code
                .unwrap_or(-1);
            Ok::<_, Error>((code, out))
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Error::Failed(format!(
                "exec {:?} in \"{container}\" did not finish within {}s",
                cmd.first().unwrap_or(&""),
                timeout.as_secs()
            ))),
        }
    }

    /// A client whose request deadline covers a stop that waits `grace_secs` before killing:
    /// the daemon answers a stop only when the container is down.
    fn with_grace(&self, grace_secs: u32) -> Docker {
        self.docker
            .clone()
            .with_timeout(self.call_timeout + Duration::from_secs(u64::from(grace_secs)))
    }

    /// Stop, waiting `grace_secs` for the container to exit before it is killed. Returns only
    /// when the daemon says it is stopped (or was already).
    pub async fn stop(&self, container: &str, grace_secs: u32) -> Result<(), Error> {
        let opts = qp::StopContainerOptions {
            t: Some(grace_secs.min(i32::MAX as u32) as i32),
            ..Default::default()
        };
        match self
            .with_grace(grace_secs)
            .stop_container(container, Some(opts))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(self.map("stop", container, e)),
        }
    }

    pub async fn start(&self, container: &str) -> Result<(), Error> {
        match self
            .docker
            .start_container(container, None::<qp::StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(304) => Ok(()),
            Err(e) => Err(self.map("start", container, e)),
        }
    }

    pub async fn restart(&self, container: &str, grace_secs: u32) -> Result<(), Error> {
        let opts = qp::RestartContainerOptions {
            t: Some(grace_secs.min(i32::MAX as u32) as i32),
            ..Default::default()
        };
        self.with_grace(grace_secs)
            .restart_container(container, Some(opts))
            .await
            .map_err(|e| self.map("restart", container, e))
    }

    /// Run a short-lived helper container from the target's own image that shares its volumes,
    /// with no network, as root; wait for it (at most `timeout`), collect its output, remove it.
    /// Its name carries `run_id`, so concurrent runs never collide and a run never removes
    /// another's helper. Returns (exit code, output).
    pub async fn run_helper(
        &self,
        target: &ContainerInfo,
        run_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i64, String), Error> {
        let name = format!(
            "rancher-cert-guard-helper-{}-{run_id}",
            &target.id[..12.min(target.id.len())],
        );
        let mut labels = HashMap::new();
        labels.insert(HELPER_LABEL.to_string(), target.name.clone());
        labels.insert(TARGET_LABEL.to_string(), target.id.clone());
        labels.insert(RUN_LABEL.to_string(), run_id.to_string());
        let body = ContainerCreateBody {
            image: Some(target.image_id.clone()),
            entrypoint: Some(vec![cmd[0].clone()]),
            cmd: Some(cmd[1..].to_vec()),
            user: Some("0:0".into()),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                volumes_from: Some(vec![target.id.clone()]),
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(qp::CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| self.map("create helper container", &target.name, e))?;
        let result = async {
            self.start(&created.id).await?;
            let mut wait = self
                .docker
                .wait_container(&created.id, None::<qp::WaitContainerOptions>);
            let code = match tokio::time::timeout(timeout, wait.next()).await {
                Ok(Some(Ok(r))) => r.status_code,
                Ok(Some(Err(BollardError::DockerContainerWaitError { code, .. }))) => code,
                Ok(Some(Err(e))) => return Err(self.map("wait for helper", &target.name, e)),
                Ok(None) => -1,
                Err(_) => {
                    return Err(Error::Timeout {
                        action: "run the wipe helper".into(),
                        container: target.name.clone(),
                        secs: timeout.as_secs(),
                    })
                }
            };
            let output = self
                .logs_since(&created.id, 0, 200)
                .await
                .unwrap_or_default();
            Ok((code, output))
        }
        .await;
        let _ = self
            .docker
            .remove_container(
                &created.id,
                Some(qp::RemoveContainerOptions {
                    force: true,
                    v: false,
                    ..Default::default()
                }),
            )
            .await;
        result
    }

    /// Remove the exited helper containers of `target_id` left by runs other than `run_id`
    /// (killed before they could remove their own). Running ones are left alone.
    pub async fn remove_exited_helpers(&self, target_id: &str, run_id: &str) -> Vec<String> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            vec![format!("{TARGET_LABEL}={target_id}"), RUN_LABEL.to_string()],
        );
        filters.insert(
            "status".to_string(),
            vec![
                "exited".to_string(),
                "created".to_string(),
                "dead".to_string(),
            ],
        );
        let Ok(list) = self.list(filters).await else {
            return vec![];
        };
        let mut removed = vec![];
        for c in list {
            if c.labels.get(RUN_LABEL).map(String::as_str) == Some(run_id)
                || c.labels.contains_key(LEASE_LABEL)
            {
                continue;
            }
            let gone = self
                .docker
                .remove_container(
                    &c.id,
                    Some(qp::RemoveContainerOptions {
                        force: false,
                        ..Default::default()
                    }),
                )
                .await
                .is_ok();
            if gone {
                removed.push(c.name);
            }
        }
        removed
    }

    // ------------------------------------------------------------ leases

    /// Take the lease of `target`: create (never start) a container named after the target's
    /// id. The daemon refuses a second container of the same name, so two runs anywhere on this
    /// daemon can never both hold it. `Ok(None)`: taken; `Ok(Some(lease))`: someone holds it.
    pub async fn create_lease(
        &self,
        target: &ContainerInfo,
        lease: &Lease,
    ) -> Result<Option<Lease>, Error> {
        let mut labels = lease.to_labels();
        labels.insert(HELPER_LABEL.to_string(), target.name.clone());
        let body = ContainerCreateBody {
            image: Some(target.image_id.clone()),
            entrypoint: Some(vec!["/bin/true".into()]),
            cmd: Some(vec![]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = qp::CreateContainerOptions {
            name: Some(lease_name(&target.id)),
            ..Default::default()
        };
        match self.docker.create_container(Some(opts), body).await {
            Ok(_) => Ok(None),
            Err(e) if status_code(&e) == Some(409) => match self.find_lease(&target.id).await? {
                Some(held) => Ok(Some(held)),
                // Removed between our create and our look: report it as held; the caller retries.
                None => Ok(Some(Lease::vanished(&target.id))),
            },
            Err(e) => Err(self.map("create the lease container", &target.name, e)),
        }
    }

    /// The lease of `target_id`, if one exists.
    pub async fn find_lease(&self, target_id: &str) -> Result<Option<Lease>, Error> {
        let name = lease_name(target_id);
        let call = self
            .docker
            .inspect_container(&name, None::<qp::InspectContainerOptions>);
        match tokio::time::timeout(self.call_timeout, call).await {
            Err(_) => Err(Error::Timeout {
                action: "read the lease".into(),
                container: target_id.to_string(),
                secs: self.call_timeout.as_secs(),
            }),
            Ok(Err(e)) if status_code(&e) == Some(404) => Ok(None),
            Ok(Err(e)) => Err(self.map("read the lease", target_id, e)),
            Ok(Ok(r)) => {
                let labels = r.config.and_then(|c| c.labels).unwrap_or_default();
                Ok(Some(Lease::from_labels(r.id.unwrap_or_default(), &labels)))
            }
        }
    }

    /// Remove the lease container `lease_id` (by container id, so a lease another run has
    /// taken meanwhile, under the same name, is never removed).
    pub async fn remove_lease(&self, lease_id: &str) -> Result<(), Error> {
        match self
            .docker
            .remove_container(
                lease_id,
                Some(qp::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(self.map("remove the lease", lease_id, e)),
        }
    }

    /// The raw events stream, filtered to container events.
    pub fn container_events(
        &self,
    ) -> impl Stream<Item = Result<bollard::models::EventMessage, BollardError>> + Send + 'static
    {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        self.docker.events(Some(qp::EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }))
    }

    /// Liveness of the daemon.
    pub async fn ping(&self) -> Result<(), Error> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| Error::DockerUnreachable {
                host: self.host.clone(),
                detail: e.to_string(),
            })
    }
}

// ---------------------------------------------------------------- leases

/// Label of lease containers: the id of the target container.
pub const LEASE_LABEL: &str = "rancher-cert-guard.lease";

/// Name of the lease container of a target.
pub fn lease_name(target_id: &str) -> String {
    format!(
        "rancher-cert-guard-lease-{}",
        &target_id[..12.min(target_id.len())]
    )
}

/// A lease on a target container: who acts on it, until when. Stored as the labels of a
/// container that is created and never started (see [`DockerClient::create_lease`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lease {
    /// The lease container's own id (empty until created).
    pub lease_id: String,
    pub target_id: String,
    pub run_id: String,
    /// In words, for "busy" messages: `repair (pid 7 on host vm)`, `watch in container 3f2a…`.
    pub holder: String,
    /// Unix seconds after which the lease is void whatever else is known.
    pub expires: i64,
    /// The daemon the holder talks to (`/info` ID).
    pub daemon_id: String,
    /// The holder's container, and when it started (a restart voids the lease).
    pub holder_container: Option<String>,
    pub holder_started: Option<String>,
    pub host: String,
    pub pid: u32,
    pub pid_start: Option<u64>,
}

impl Lease {
    fn vanished(target_id: &str) -> Self {
        Lease {
            target_id: target_id.to_string(),
            holder: "a run whose lease vanished while we looked".into(),
            expires: i64::MAX,
            ..Default::default()
        }
    }

    pub fn to_labels(&self) -> HashMap<String, String> {
        let mut l = HashMap::new();
        let mut put = |k: &str, v: String| {
            l.insert(format!("{LEASE_LABEL}{k}"), v);
        };
        put("", self.target_id.clone());
        put(".run", self.run_id.clone());
        put(".holder", self.holder.clone());
        put(".expires", self.expires.to_string());
        put(".daemon", self.daemon_id.clone());
        put(".host", self.host.clone());
        put(".pid", self.pid.to_string());
        if let Some(c) = &self.holder_container {
            put(".holder-container", c.clone());
        }
        if let Some(s) = &self.holder_started {
            put(".holder-started", s.clone());
        }
        if let Some(p) = self.pid_start {
            put(".pid-start", p.to_string());
        }
        l.insert(TARGET_LABEL.to_string(), self.target_id.clone());
        l
    }

    pub fn from_labels(lease_id: String, l: &HashMap<String, String>) -> Self {
        let get = |k: &str| l.get(&format!("{LEASE_LABEL}{k}")).cloned();
        Lease {
            lease_id,
            target_id: get("").unwrap_or_default(),
            run_id: get(".run").unwrap_or_default(),
            holder: get(".holder").unwrap_or_else(|| "an unknown run".into()),
            // A lease we cannot read is honoured for a day at most.
            expires: get(".expires").and_then(|v| v.parse().ok()).unwrap_or(0),
            daemon_id: get(".daemon").unwrap_or_default(),
            holder_container: get(".holder-container"),
            holder_started: get(".holder-started"),
            host: get(".host").unwrap_or_default(),
            pid: get(".pid").and_then(|v| v.parse().ok()).unwrap_or(0),
            pid_start: get(".pid-start").and_then(|v| v.parse().ok()),
        }
    }
}

/// The first regular file of a tar stream (at most [`crate::source::MAX_FILE_BYTES`]), or
/// `None`. Entries are read through [`each_entry`]: the daemon decides no allocation.
fn first_file<R: std::io::Read>(reader: R) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut found = None;
    each_entry(reader, |entry| {
        if !entry.header().entry_type().is_file() {
            return Ok(true);
        }
        let mut buf = Vec::new();
        entry
            .take(crate::source::MAX_FILE_BYTES)
            .read_to_end(&mut buf)?;
        found = Some(buf);
        Ok(false)
    })?;
    Ok(found)
}

/// The last `max` bytes of the first regular file of a tar stream, or `None` (also when the
/// file is over `max_stream` bytes: not read at all). Entries are read through [`each_entry`].
fn tail_of_first_file<R: std::io::Read>(
    reader: R,
    max: usize,
    max_stream: u64,
    path: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut found = None;
    each_entry(reader, |entry| {
        if !entry.header().entry_type().is_file() {
            return Ok(true);
        }
        let size = entry.header().size().unwrap_or(0);
        if size > max_stream {
            tracing::warn!(path = %path, size, "the K3s log file is too large to read through the archive API; skipped");
            return Ok(false);
        }
        let mut tail: std::collections::VecDeque<u8> =
            std::collections::VecDeque::with_capacity(max);
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf)?;
            if n == 0 {
                break;
            }
            tail.extend(&buf[..n]);
            let excess = tail.len().saturating_sub(max);
            tail.drain(..excess);
        }
        found = Some(tail.into_iter().collect());
        Ok(false)
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::source::archive::hostile_start;

    /// Before: a GNU long name or PAX header of any size was read into memory, so a hostile
    /// daemon or socket proxy decided the heap of `read_file` and of the K3s log tail (the
    /// defect the fuzz target `archive` found in the tree reader, fuzz/RESULTS.md).
    #[test]
    fn single_file_readers_cap_tar_metadata() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let stream =
                || std::io::Cursor::new(hostile_start(kind, 64 << 20)).chain(std::io::repeat(0));
            let err = first_file(stream()).unwrap_err();
            assert!(err.to_string().contains("metadata"), "{kind:?}: {err}");
            let err = tail_of_first_file(stream(), 1024, 1 << 20, "k3s.log").unwrap_err();
            assert!(err.to_string().contains("metadata"), "{kind:?}: {err}");
        }
    }
}
