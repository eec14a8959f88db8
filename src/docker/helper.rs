//! The short-lived helper container that wipes files on the target's volumes.

use std::collections::HashMap;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters as qp;
use futures_util::StreamExt;

use super::*;
use crate::error::Error;

impl DockerClient {
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
}
