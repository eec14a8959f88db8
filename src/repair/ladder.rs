//! The container ladder once the backup exists: reset the serving secret, stop, wipe through
//! a helper container, start, and verify through the known loops.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::plan::{plan_wipe, signatures, Signature, WipePlan};
use super::{
    backup, ca_fingerprints, file_bytes, journal, kubectl_variants, protected_intact,
    protected_snapshot, wipe_command, Run, KUBECONFIG_PATH,
};
use crate::docker::{parse_rfc3339_nanos, ContainerInfo, DockerClient};
use crate::inventory::{inventory, Status};
use crate::report::CheckReport;
use crate::source::Tree;
use crate::{probe, timefmt};

/// The state of one container repair once the backup exists.
pub(super) struct Ladder<'d> {
    pub(super) docker: &'d DockerClient,
    pub(super) info: ContainerInfo,
    pub(super) tls_path: String,
    pub(super) backup_dir: PathBuf,
    pub(super) archive: String,
    /// CA and service-account files, byte for byte, before anything changed.
    pub(super) protected: Vec<(String, Vec<u8>)>,
    pub(super) cas: Vec<(String, String)>,
}

impl Ladder<'_> {
    pub(super) fn journal(&self, step: &str, stopped_by_us: bool, delete: &[String]) {
        let j = journal::Journal {
            target: self.info.name.clone(),
            container_id: self.info.id.clone(),
            tls_path: self.tls_path.clone(),
            step: step.to_string(),
            stopped_by_us,
            backup: self.archive.clone(),
            delete: delete.to_vec(),
            started_at: timefmt::rfc3339(timefmt::now()),
        };
        if let Err(e) = journal::save(&self.backup_dir, &j) {
            tracing::warn!(container = %self.info.name, "cannot write the journal: {e}");
        }
    }

    /// Delete the `k3s-serving` secret through the container's own kubectl, while its API
    /// answers. Returns whether it is gone.
    pub(super) async fn delete_serving_secret(&self, run: &mut Run<'_>) -> bool {
        let info = match self.docker.inspect(&self.info.id).await {
            Ok(i) => i,
            Err(_) => return false,
        };
        if !info.running || info.restarting {
            run.step("reset-secret", false, "container not running: the k3s-serving secret cannot be deleted now (K3s may restore the old :6443 certificate from it; a later step retries while the API answers)");
            return false;
        }
        let mut last = String::new();
        for cmd in kubectl_variants(&["delete", "secret", "-n", "kube-system", "k3s-serving"]) {
            match self
                .docker
                .exec(&self.info.id, &cmd, Duration::from_secs(30))
                .await
            {
                Ok((0, out)) => {
                    run.step(
                        "reset-secret",
                        true,
                        format!("{} ({})", out.trim(), cmd[..2].join(" ")),
                    );
                    return true;
                }
                Ok((_, out))
                    if out.contains("NotFound")
                        || out.contains("not found") && out.contains("k3s-serving") =>
                {
                    run.step(
                        "reset-secret",
                        true,
                        "secret kube-system/k3s-serving already absent",
                    );
                    return true;
                }
                Ok((code, out)) => last = format!("exit {code}: {}", out.trim()),
                Err(e) => last = e.to_string(),
            }
        }
        run.step(
            "reset-secret",
            false,
            format!("could not delete secret kube-system/k3s-serving: {last}"),
        );
        false
    }

    /// Secret, stop, (re-backup if the tree moved), wipe, verify the wipe, start.
    pub(super) async fn wipe_restart(
        &mut self,
        run: &mut Run<'_>,
        live_tree: &Tree,
        plan: &WipePlan,
    ) -> Result<(), String> {
        if plan.reset_serving {
            self.delete_serving_secret(run).await;
        }
        self.journal("stopping", true, &plan.delete);
        self.docker
            .stop(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("stop failed: {e}"))?;
        run.step("stop", true, format!("stopped {}", self.info.name));
        run.pause_point("stop").await;

        // Files may have moved between the live backup and the stop: read again, re-plan,
        // and back up once more if anything differs.
        let tree = self
            .docker
            .read_tree(&self.info.id, &self.tls_path)
            .await
            .map_err(|e| format!("re-reading the stopped container failed: {e}"))?;
        let inv = inventory(&tree, timefmt::now(), run.opts.renew_before);
        let plan = plan_wipe(&inv);
        if &tree != live_tree {
            let kube = self
                .docker
                .read_file(&self.info.id, KUBECONFIG_PATH)
                .await
                .unwrap_or(None);
            let extras = backup::Extras {
                kubeconfig: kube,
                serving_secret: None,
            };
            match backup::write_verified(
                &self.backup_dir,
                &self.info.name,
                &self.tls_path,
                &tree,
                &extras,
                timefmt::now(),
            ) {
                Ok(p) => {
                    run.step(
                        "backup",
                        true,
                        format!(
                            "the tree changed while stopping: second archive {} verified",
                            p.display()
                        ),
                    );
                    self.archive = p.display().to_string();
                    run.report.backup = Some(self.archive.clone());
                }
                Err(e) => return Err(format!("second backup failed, nothing was deleted: {e}")),
            }
            self.protected = protected_snapshot(&tree);
            self.cas = ca_fingerprints(&inv);
        }

        self.journal("wiping", true, &plan.delete);
        let (code, out) = self
            .docker
            .run_helper(
                &self.info,
                wipe_command(&self.tls_path, &plan.delete),
                Duration::from_secs(120),
            )
            .await
            .map_err(|e| format!("wipe helper failed: {e}"))?;
        if code != 0 {
            return Err(format!("wipe helper exited {code}: {}", out.trim()));
        }
        run.pause_point("wipe").await;
        let after = self
            .docker
            .read_tree(&self.info.id, &self.tls_path)
            .await
            .map_err(|e| format!("re-reading after the wipe failed: {e}"))?;
        let still: Vec<&String> = plan
            .delete
            .iter()
            .filter(|p| file_bytes(&after, p).is_some())
            .collect();
        if !still.is_empty() {
            return Err(format!(
                "the wipe did not reach the TLS directory (still present: {still:?}); is {} on a volume of the container?",
                self.tls_path
            ));
        }
        if !protected_intact(&self.protected, &protected_snapshot(&after)) {
            return Err("CA or service-account material changed during the wipe — stop and restore the backup".into());
        }
        run.report.wiped = plan.delete.clone();
        run.step("wipe", true, format!("deleted {} files through a helper container; CA files and service.key byte-identical", plan.delete.len()));

        self.journal("starting", true, &plan.delete);
        self.docker
            .start(&self.info.id)
            .await
            .map_err(|e| format!("start failed: {e}"))?;
        run.report.restarts += 1;
        self.journal("verifying", false, &plan.delete);
        run.step("start", true, format!("started {}", self.info.name));
        Ok(())
    }

    pub(super) fn opts_stop(&self, run: &Run<'_>) -> i32 {
        run.opts.stop_timeout.min(i32::MAX as u32) as i32
    }

    /// Delete the serving pair (secret while the API answers, file through the helper) and
    /// restart.
    pub(super) async fn reset_serving_and_restart(
        &mut self,
        run: &mut Run<'_>,
    ) -> Result<(), String> {
        self.delete_serving_secret(run).await;
        let delete = vec![crate::inventory::SERVING_FILE.to_string()];
        self.journal("stopping", true, &delete);
        self.docker
            .stop(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("stop failed: {e}"))?;
        self.journal("wiping", true, &delete);
        let (code, out) = self
            .docker
            .run_helper(
                &self.info,
                wipe_command(&self.tls_path, &delete),
                Duration::from_secs(120),
            )
            .await
            .map_err(|e| format!("wipe helper failed: {e}"))?;
        if code != 0 {
            return Err(format!("wipe helper exited {code}: {}", out.trim()));
        }
        if !run.report.wiped.contains(&delete[0]) {
            run.report.wiped.push(delete[0].clone());
        }
        self.docker
            .start(&self.info.id)
            .await
            .map_err(|e| format!("start failed: {e}"))?;
        self.journal("verifying", false, &delete);
        run.report.restarts += 1;
        run.step(
            "reset-serving",
            true,
            "deleted dynamic-cert.json and the k3s-serving secret, restarted",
        );
        Ok(())
    }

    pub(super) async fn plain_restart(
        &mut self,
        run: &mut Run<'_>,
        why: &str,
    ) -> Result<(), String> {
        self.docker
            .restart(&self.info.id, self.opts_stop(run))
            .await
            .map_err(|e| format!("restart failed: {e}"))?;
        run.report.restarts += 1;
        run.step("restart", true, why.to_string());
        Ok(())
    }

    pub(super) async fn ensure_started(&self, run: &mut Run<'_>) {
        if let Ok(i) = self.docker.inspect(&self.info.id).await {
            if !i.running && !i.restarting {
                match self.docker.start(&self.info.id).await {
                    Ok(()) => run.step(
                        "ensure-started",
                        true,
                        "started the container again so it is not left stopped",
                    ),
                    Err(e) => run.step(
                        "ensure-started",
                        false,
                        format!("could not start the container: {e}"),
                    ),
                }
            }
        }
    }

    /// Wait for a verified healthy container, walking the known loops.
    pub(super) async fn verify_loop(&mut self, run: &mut Run<'_>) -> Result<CheckReport, String> {
        let poll = Duration::from_millis(250);
        let mut extra_restarts = 0u32;
        let mut ua_attempts = 0u32;
        let mut serving_resets = 0u32;
        'attempt: loop {
            let info = self
                .docker
                .inspect(&self.info.id)
                .await
                .map_err(|e| e.to_string())?;
            let start_nanos = info
                .started_at
                .as_deref()
                .and_then(parse_rfc3339_nanos)
                .unwrap_or(0);
            let start_count = info.restart_count;
            let attempt_started = Instant::now();
            let mut healthy_since: Option<Instant> = None;
            let mut fresh: Option<CheckReport> = None;
            loop {
                if run.time_left().is_zero() {
                    return Err(format!(
                        "not healthy within --timeout {}s",
                        run.opts.timeout.as_secs()
                    ));
                }
                let i = self
                    .docker
                    .inspect(&self.info.id)
                    .await
                    .map_err(|e| e.to_string())?;
                let restarted_by_itself = i.restart_count != start_count
                    || i.started_at
                        .as_deref()
                        .and_then(parse_rfc3339_nanos)
                        .unwrap_or(0)
                        != start_nanos;
                let logs = self
                    .docker
                    .logs_since(&self.info.id, start_nanos, 2000)
                    .await
                    .unwrap_or_default();
                let sigs = signatures(&logs);
                let crashed =
                    !i.running || restarted_by_itself || sigs.contains(&Signature::K3sExited);
                if crashed && !sigs.contains(&Signature::UnknownAuthority) {
                    let last: Vec<&str> = logs.lines().rev().take(3).collect();
                    return Err(format!(
                        "the container exits after the repair ({}); last log lines: {:?}",
                        if sigs.is_empty() {
                            "no known signature".to_string()
                        } else {
                            format!("{sigs:?}")
                        },
                        last
                    ));
                }
                if sigs.contains(&Signature::UnknownAuthority) {
                    run.step("verify", false, "x509: certificate signed by unknown authority (stale k3s.yaml or serving certificate)");
                    if extra_restarts >= run.opts.max_restarts {
                        return Err(format!("still `signed by unknown authority` after {extra_restarts} extra restarts (--max-restarts)"));
                    }
                    let backoff = Duration::from_secs(1 << ua_attempts.min(5));
                    tokio::time::sleep(backoff.min(run.time_left())).await;
                    if ua_attempts == 1 {
                        self.reset_serving_and_restart(run).await?;
                    } else {
                        self.plain_restart(run, &format!("unknown-authority loop: restart after {}s backoff (Rancher reads k3s.yaml before K3s rewrites it)", backoff.as_secs())).await?;
                    }
                    ua_attempts += 1;
                    extra_restarts += 1;
                    continue 'attempt;
                }
                if sigs.contains(&Signature::Expired) || sigs.contains(&Signature::WaitingX509) {
                    run.step(
                        "verify",
                        false,
                        format!("{sigs:?} after the restart: the old :6443 certificate came back"),
                    );
                    if extra_restarts >= run.opts.max_restarts || serving_resets >= 2 {
                        return Err(format!(
                            "the serving certificate is still rejected ({sigs:?})"
                        ));
                    }
                    self.reset_serving_and_restart(run).await?;
                    serving_resets += 1;
                    extra_restarts += 1;
                    continue 'attempt;
                }
                if probe::rancher_ping(self.docker, &self.info.id, run.opts.health_url.as_deref())
                    .await
                {
                    if fresh.is_none() {
                        let tree = self
                            .docker
                            .read_tree(&self.info.id, &self.tls_path)
                            .await
                            .map_err(|e| e.to_string())?;
                        let now = timefmt::now();
                        let inv = inventory(&tree, now, run.opts.renew_before);
                        let cas_now = ca_fingerprints(&inv);
                        if !protected_intact(&self.protected, &protected_snapshot(&tree))
                            || !self.cas.iter().all(|c| cas_now.contains(c))
                        {
                            return Err("CA certificates or keys changed after the restart".into());
                        }
                        let stale: Vec<String> = inv
                            .renewable()
                            .filter(|c| c.index == 0 && c.status != Status::Ok)
                            .map(|c| format!("{} ({})", c.path, c.status.as_str()))
                            .collect();
                        if !stale.is_empty() {
                            run.step(
                                "verify",
                                false,
                                format!(
                                    "Rancher answers but certificates are still due: {stale:?}"
                                ),
                            );
                            let only_serving = inv
                                .renewable()
                                .filter(|c| c.index == 0 && c.status != Status::Ok)
                                .all(|c| c.path == crate::inventory::SERVING_FILE);
                            if only_serving
                                && extra_restarts < run.opts.max_restarts
                                && serving_resets < 2
                            {
                                self.reset_serving_and_restart(run).await?;
                                serving_resets += 1;
                                extra_restarts += 1;
                                continue 'attempt;
                            }
                            return Err(format!("K3s did not regenerate {stale:?}"));
                        }
                        let source = format!("container:{}:{}", self.info.name, self.tls_path);
                        fresh = Some(CheckReport::new(source, now, run.opts.renew_before, &inv));
                        run.step("verify", true, format!("pong after {:.1}s; leaves and serving certificate fresh; CA fingerprints unchanged", attempt_started.elapsed().as_secs_f64()));
                    }
                    let since = *healthy_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= run.opts.settle {
                        run.step(
                            "settle",
                            true,
                            format!(
                                "running without restart or failure signature for {}s",
                                run.opts.settle.as_secs()
                            ),
                        );
                        return fresh
                            .take()
                            .ok_or_else(|| "internal: verified without a report".to_string());
                    }
                } else {
                    healthy_since = None;
                }
                // While settling, wake exactly when the settle window ends, not a poll later.
                let settle_left = healthy_since
                    .map(|t| run.opts.settle.saturating_sub(t.elapsed()))
                    .unwrap_or(poll);
                let nap = poll.min(settle_left).max(Duration::from_millis(10));
                tokio::time::sleep(nap.min(run.time_left())).await;
            }
        }
    }
}
