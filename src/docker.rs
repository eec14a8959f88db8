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
use crate::source::{archive::tree_from_tar, Tree};

/// Label put on every helper container this tool creates, so they can be found and removed.
pub const HELPER_LABEL: &str = "rancher-cert-guard.helper";

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
        tracing::info!(%host, client_api, server_version, server_api = api_version, "connected to Docker");
        Ok(Self {
            docker,
            host,
            server_version,
            api_version,
        })
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
        let r = match self
            .docker
            .inspect_container(name, None::<qp::InspectContainerOptions>)
            .await
        {
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
        match self.read_tree_of_file(container, path).await {
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
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            use std::io::Read;
            let mut archive = tar::Archive::new(bridge);
            for entry in archive.entries()? {
                let entry = entry?;
                if entry.header().entry_type().is_file() {
                    let mut buf = Vec::new();
                    entry
                        .take(crate::source::MAX_FILE_BYTES)
                        .read_to_end(&mut buf)?;
                    return Ok(Some(buf));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?
        .map_err(|e| Error::SourceUnreadable {
            source_name: format!("{container}:{path}"),
            detail: e.to_string(),
        })
    }

    /// stdout and stderr lines of a container logged at or after `since_nanos` (Unix
    /// nanoseconds), at most the last `tail` lines; timestamps are stripped.
    pub async fn logs_since(
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

    pub async fn stop(&self, container: &str, grace_secs: i32) -> Result<(), Error> {
        let opts = qp::StopContainerOptions {
            t: Some(grace_secs),
            ..Default::default()
        };
        match self.docker.stop_container(container, Some(opts)).await {
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

    pub async fn restart(&self, container: &str, grace_secs: i32) -> Result<(), Error> {
        let opts = qp::RestartContainerOptions {
            t: Some(grace_secs),
            ..Default::default()
        };
        self.docker
            .restart_container(container, Some(opts))
            .await
            .map_err(|e| self.map("restart", container, e))
    }

    /// Run a short-lived helper container from `image` that shares the volumes of `target`,
    /// with no network, as root; wait for it, collect its output, remove it.
    /// Returns (exit code, output).
    pub async fn run_helper(
        &self,
        target: &ContainerInfo,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<(i64, String), Error> {
        let name = format!(
            "rancher-cert-guard-helper-{}-{}",
            &target.id[..12.min(target.id.len())],
            std::process::id()
        );
        // A helper left behind by a killed run would block the name.
        let _ = self
            .docker
            .remove_container(
                &name,
                Some(qp::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        let mut labels = HashMap::new();
        labels.insert(HELPER_LABEL.to_string(), target.name.clone());
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
                    return Err(Error::Failed(format!(
                        "helper container for \"{}\" did not finish within {}s",
                        target.name,
                        timeout.as_secs()
                    )))
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
