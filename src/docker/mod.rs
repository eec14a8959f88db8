//! The one module that talks to the Docker Engine API (through bollard).
//!
//! Everything the product needs from Docker is a method here: inspect, read a directory as a
//! tar stream, logs, exec, stop/start, a short-lived helper container, events.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters as qp;
use bollard::Docker;
use futures_util::Stream;

use crate::error::Error;

mod archive;
mod era;
mod helper;
mod lease;
mod lifecycle;

pub use era::Era;
pub use lease::{lease_name, Lease, LEASE_LABEL};

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
