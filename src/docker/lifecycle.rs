//! A container's logs, exec, and its lifecycle (stop, start, restart) — every call under a
//! deadline that covers the stop grace period where there is one.

use std::time::Duration;

use bollard::query_parameters as qp;
use bollard::Docker;
use futures_util::StreamExt;

use super::*;
use crate::error::Error;

impl DockerClient {
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
}
