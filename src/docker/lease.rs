//! Leases: a container named after the target's id, created and never started, whose labels
//! say which run acts on the target and until when (see `repair::lock`).

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters as qp;

use super::*;
use crate::error::Error;

impl DockerClient {
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
