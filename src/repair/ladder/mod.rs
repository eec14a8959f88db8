//! The container ladder once the backup exists: reset the serving secret, stop, wipe through a
//! helper container, start, verify through the known loops — and, whatever happened, finish
//! with the container running. Every mutating step is journaled before it is taken; the
//! rules of what comes next are [`super::machine`]'s, this file only observes and obeys.

mod verify;

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::engine::Engine;
use super::failure::Failure;
use super::journal::{self, Journal, Phase};

use super::plan::plan_wipe;
use super::wipe::{self, protected_snapshot};
use super::{backup, kubectl_variants, RepairOptions, Run, KUBECONFIG_PATH};
use crate::docker::ContainerInfo;
use crate::error::Error;
use crate::inventory::{inventory, SERVING_FILE};

use crate::source::Tree;
use crate::timefmt;

/// The state of one container repair once a verified backup exists.
pub(super) struct Ladder<'a, E: Engine> {
    pub engine: &'a E,
    pub opts: &'a RepairOptions,
    pub cancel: &'a CancellationToken,
    pub run_id: String,
    pub info: ContainerInfo,
    pub tls_path: String,
    pub backup_dir: PathBuf,
    /// The archive a person restores from (the latest verified one of this repair).
    pub archive: String,
    /// CA and service-account files, byte for byte, before anything changed.
    pub protected: Vec<(String, Vec<u8>)>,
    /// Everything this repair deleted (the regeneration proof checks each came back).
    pub wiped: Vec<String>,
    /// The repair gives up when this passes.
    pub deadline: Instant,
    /// The last step journaled.
    pub phase: Option<Phase>,
    /// A stop was asked for and its outcome is unknown (the call failed or timed out): the
    /// daemon may still be stopping the container.
    stop_in_doubt: Option<Instant>,
    started_at: String,
}

impl<'a, E: Engine> Ladder<'a, E> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: &'a E,
        opts: &'a RepairOptions,
        cancel: &'a CancellationToken,
        run_id: &str,
        info: ContainerInfo,
        tls_path: &str,
        backup_dir: PathBuf,
        archive: String,
        before: &Tree,
        deadline: Instant,
    ) -> Self {
        Self {
            engine,
            opts,
            cancel,
            run_id: run_id.to_string(),
            info,
            tls_path: tls_path.to_string(),
            backup_dir,
            archive,
            protected: protected_snapshot(before),
            wiped: vec![],
            deadline,
            phase: None,
            stop_in_doubt: None,
            started_at: timefmt::rfc3339(engine.now()),
        }
    }

    fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Record `phase` before taking it. Before the stop a failed write aborts the repair (a
    /// run that cannot journal must not stop anything); after it, it only warns: going on
    /// towards a running container is safer than stopping there.
    pub fn journal(&mut self, phase: Phase, delete: &[String]) -> Result<(), Failure> {
        let j = Journal {
            version: journal::VERSION,
            container_id: self.info.id.clone(),
            container_name: self.info.name.clone(),
            image_id: self.info.image_id.clone(),
            tls_path: self.tls_path.clone(),
            phase,
            backup: self.archive.clone(),
            delete: delete.to_vec(),
            run_id: self.run_id.clone(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at.clone(),
            updated_at: timefmt::rfc3339(self.engine.now()),
        };
        self.phase = Some(phase);
        match journal::save(&self.backup_dir, &j) {
            Ok(()) => Ok(()),
            Err(e) if phase == Phase::Stopping => Err(Failure::Docker {
                action: "writing the journal".into(),
                error: format!("{e}; nothing was stopped"),
            }),
            Err(e) => {
                tracing::warn!(container = %self.info.name, "cannot write the journal: {e}");
                Ok(())
            }
        }
    }

    pub fn check_cancel(&self, phase: Phase) -> Result<(), Failure> {
        if self.cancel.is_cancelled() {
            Err(Failure::Interrupted { phase })
        } else {
            Ok(())
        }
    }

    /// Sleep, cut short by a signal.
    async fn nap(&self, d: Duration, phase: Phase) -> Result<(), Failure> {
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Failure::Interrupted { phase }),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    /// Fault injection for the tests (`--fault-pause-after STEP[:SECS]`): pause right after
    /// `step`, so a test can kill the process there. A signal ends the pause.
    pub async fn fault(&self, step: &str) {
        if let Some(f) = &self.opts.fault {
            if f.step == step {
                tracing::warn!(step, secs = f.pause.as_secs(), "fault injection: pausing");
                tokio::select! {
                    _ = self.cancel.cancelled() => {}
                    _ = tokio::time::sleep(f.pause) => {}
                }
            }
        }
    }

    fn docker(action: &str, e: Error) -> Failure {
        match e {
            Error::ContainerNotFound { .. } => Failure::ContainerGone,
            e => Failure::Docker {
                action: action.to_string(),
                error: e.to_string(),
            },
        }
    }

    async fn inspect(&self) -> Result<ContainerInfo, Failure> {
        self.engine
            .inspect(&self.info.id)
            .await
            .map_err(|e| Self::docker("inspect", e))
    }

    async fn read_tree(&self, action: &str) -> Result<Tree, Failure> {
        self.engine
            .read_tree(&self.info.id, &self.tls_path)
            .await
            .map_err(|e| Self::docker(action, e))
    }

    /// Delete the `k3s-serving` secret through the container's own kubectl while its API
    /// answers. Returns whether it is gone.
    pub async fn delete_serving_secret(&self, run: &mut Run<'_>) -> bool {
        let running = matches!(self.inspect().await, Ok(i) if i.running && !i.restarting);
        if !running {
            run.step("reset-secret", false, "container not running: the k3s-serving secret cannot be deleted now (K3s may restore the old :6443 certificate from it; a later step retries while the API answers)");
            return false;
        }
        let mut last = String::new();
        for cmd in kubectl_variants(&["delete", "secret", "-n", "kube-system", "k3s-serving"]) {
            match self
                .engine
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

    /// Stop the container (journaled first). The stop call's own deadline covers the grace
    /// period; when it fails anyway, the daemon may still be stopping: `finish` waits that out.
    pub async fn stop(&mut self, run: &mut Run<'_>, delete: &[String]) -> Result<(), Failure> {
        self.journal(Phase::Stopping, delete)?;
        // In doubt from the moment it is asked for: if this call is cut (the repair's deadline)
        // the daemon may still be stopping the container.
        self.stop_in_doubt = Some(Instant::now());
        match self
            .engine
            .stop(&self.info.id, self.opts.stop_timeout)
            .await
        {
            Ok(()) => {
                self.stop_in_doubt = None;
                run.step("stop", true, format!("stopped {}", self.info.name));
                Ok(())
            }
            Err(e) => {
                run.step("stop", false, format!("stop failed: {e}"));
                Err(Self::docker("stop", e))
            }
        }
    }

    /// On the stopped container: re-read (a second backup if the tree moved since `live`),
    /// wipe through the helper, re-read to check the wipe. Returns the paths deleted.
    pub async fn wipe(
        &mut self,
        run: &mut Run<'_>,
        planned: &[String],
        live: Option<&Tree>,
    ) -> Result<Vec<String>, Failure> {
        self.journal(Phase::Wiping, planned)?;
        let tree = self.read_tree("re-reading the stopped container").await?;
        let mut delete = planned.to_vec();
        if let Some(live) = live {
            if &tree != live {
                // Files moved between the live backup and the stop: plan again from what is
                // there now, and back it up before deleting anything.
                let inv = inventory(&tree, self.engine.now(), self.opts.renew_before);
                delete = plan_wipe(&inv).delete;
                let kube = self
                    .engine
                    .read_file(&self.info.id, KUBECONFIG_PATH)
                    .await
                    .unwrap_or(None);
                let extras = backup::Extras {
                    kubeconfig: kube,
                    serving_secret: None,
                };
                let p = backup::write_verified(
                    &self.backup_dir,
                    &self.info.name,
                    &self.tls_path,
                    &tree,
                    &extras,
                    self.engine.now(),
                )
                .map_err(|e| Failure::SecondBackup {
                    detail: e.to_string(),
                })?;
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
                self.protected = protected_snapshot(&tree);
                self.journal(Phase::Wiping, &delete)?;
            }
        }
        let left = self
            .engine
            .remove_exited_helpers(&self.info.id, &self.run_id)
            .await;
        if !left.is_empty() {
            tracing::info!(container = %self.info.name, helpers = ?left, "removed helpers left by earlier runs");
        }
        let (code, out) = self
            .engine
            .run_helper(
                &self.info,
                &self.run_id,
                wipe::command(
                    &self.tls_path,
                    &delete,
                    super::evidence::Era::of(&self.info).honours_regenerate_trigger(),
                ),
                Duration::from_secs(120).min(self.time_left().max(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| Self::docker("the wipe helper", e))?;
        if code != 0 {
            return Err(Failure::WipeHelper {
                code,
                output: out.trim().to_string(),
            });
        }
        self.fault("wipe").await;
        let after = self.read_tree("re-reading after the wipe").await?;
        let still: Vec<String> = delete
            .iter()
            .filter(|p| after.get(p).is_some())
            .cloned()
            .collect();
        if !still.is_empty() {
            return Err(Failure::WipeDidNotReach {
                still,
                tls_path: self.tls_path.clone(),
            });
        }
        if !wipe::protected_intact(&self.protected, &protected_snapshot(&after)) {
            return Err(Failure::ProtectedChanged {
                when: "during the wipe".into(),
            });
        }
        for d in &delete {
            if !self.wiped.contains(d) {
                self.wiped.push(d.clone());
            }
        }
        run.report.wiped = self.wiped.clone();
        run.step(
            "wipe",
            true,
            format!(
                "deleted {} files through a helper container; CA files and service.key byte-identical",
                delete.len()
            ),
        );
        Ok(delete)
    }

    /// Start (journaled first, and `Verifying` once it is started).
    pub async fn start(&mut self, run: &mut Run<'_>, step: &str, why: &str) -> Result<(), Failure> {
        let wiped = self.wiped.clone();
        self.journal(Phase::Starting, &wiped)?;
        self.engine
            .start(&self.info.id)
            .await
            .map_err(|e| Self::docker("start", e))?;
        run.report.restarts += 1;
        self.journal(Phase::Verifying, &wiped)?;
        run.step(step, true, why.to_string());
        Ok(())
    }

    /// A plain restart. Journaled as `Starting`: a run killed mid-restart leaves a journal
    /// that starts the container.
    async fn restart(&mut self, run: &mut Run<'_>, why: &str) -> Result<(), Failure> {
        let wiped = self.wiped.clone();
        self.journal(Phase::Starting, &wiped)?;
        self.stop_in_doubt = Some(Instant::now());
        self.engine
            .restart(&self.info.id, self.opts.stop_timeout)
            .await
            .map_err(|e| Self::docker("restart", e))?;
        self.stop_in_doubt = None;
        run.report.restarts += 1;
        self.journal(Phase::Verifying, &wiped)?;
        run.step("restart", true, why.to_string());
        Ok(())
    }

    /// Delete the serving pair (the secret while the API answers, the file through the
    /// helper) and restart.
    async fn reset_serving(&mut self, run: &mut Run<'_>) -> Result<(), Failure> {
        self.delete_serving_secret(run).await;
        let delete = vec![SERVING_FILE.to_string()];
        self.stop(run, &delete).await?;
        self.wipe(run, &delete, None).await?;
        self.start(
            run,
            "reset-serving",
            "deleted dynamic-cert.json and the k3s-serving secret, restarted",
        )
        .await
    }
}
