//! The library's errors: each says what failed, on which container or file, and what to do.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("cannot read {source_name}: {detail}")]
    SourceUnreadable { source_name: String, detail: String },

    #[error("container \"{name}\" not found; running containers: {}", list_or_none(.running))]
    ContainerNotFound { name: String, running: Vec<String> },

    #[error("path {path} not found in container \"{container}\"; is this a Rancher/K3s container? (set --tls-path)")]
    PathNotFound { container: String, path: String },

    #[error("cannot reach the Docker daemon at {host}: {detail}; is dockerd running and is the socket mounted (-v /var/run/docker.sock:/var/run/docker.sock)? Set DOCKER_HOST to use another daemon")]
    DockerUnreachable { host: String, detail: String },

    #[error("permission denied by the Docker daemon at {host}: {detail}")]
    PermissionDenied { host: String, detail: String },

    #[error("Docker API call failed while trying to {action} on \"{container}\": {source}")]
    Docker {
        action: String,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },

    #[error("the Docker daemon did not finish \"{action}\" on \"{container}\" within {secs}s (a stalled daemon or socket proxy?)")]
    Timeout {
        action: String,
        container: String,
        secs: u64,
    },

    #[error("backup to {path} failed: {detail}; nothing was changed")]
    Backup { path: String, detail: String },

    #[error("{0}")]
    Refused(String),

    #[error("{0}")]
    Failed(String),

    #[error("invalid argument: {0}")]
    Invalid(String),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".to_string()
    } else {
        v.join(", ")
    }
}

impl Error {
    /// A short label to count failures by kind in metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::SourceUnreadable { .. } => "source_unreadable",
            Error::ContainerNotFound { .. } => "not_found",
            Error::PathNotFound { .. } => "path_not_found",
            Error::DockerUnreachable { .. } => "unreachable",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::Docker { .. } => "api_error",
            Error::Timeout { .. } => "timeout",
            Error::Backup { .. } => "backup_failed",
            Error::Refused(_) => "refused",
            Error::Failed(_) => "failed",
            Error::Invalid(_) => "invalid",
        }
    }

    /// Transient errors are worth retrying with backoff (the daemon went away).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::DockerUnreachable { .. } | Error::Docker { .. } | Error::Timeout { .. }
        )
    }
}
