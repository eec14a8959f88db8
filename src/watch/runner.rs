//! The loop's [`Runner`] on a real Docker engine: discovery by name, label or image; a look
//! is inspect + the TLS tree through the archive API + the logs since the last start (the
//! same inputs as step 1 of `repair`); a repair is the whole `repair` ladder.

use crate::docker::{ContainerInfo, DockerClient};
use crate::error::Error;
use crate::inventory::{RenewBefore, Status};
use crate::process::Me;
use crate::repair::evidence::{look, Look};
use crate::repair::plan::reasons_to_act;
use crate::repair::{pending, repair_container, Pending, RepairOptions, RepairReport};
use crate::report::CheckReport;
use tokio_util::sync::CancellationToken;

use super::controller::{Found, Observation, Runner};
use super::schedule::{self, Findings};
use super::targets::Selector;

pub struct DockerRunner {
    pub docker: DockerClient,
    pub tls_path: String,
    pub renew_before: RenewBefore,
    /// The ladder's settings (`dry_run` off: `--monitor-only` never reaches `repair`).
    pub opts: RepairOptions,
    /// This process, to tell a lease of ours from another run's.
    pub me: Me,
}

/// What a look found, from the same inputs `repair` decides on.
pub fn observe(
    info: &ContainerInfo,
    look: &Look,
    renew_before: RenewBefore,
    tls_path: &str,
    pending: Option<&Pending>,
) -> Observation {
    let (inv, sigs) = (&look.inv, &look.sigs);
    let deciding: Vec<_> = inv.renewable().filter(|c| c.index == 0).collect();
    let urgent = !sigs.is_empty()
        || deciding
            .iter()
            .any(|c| matches!(c.status, Status::Expired | Status::NotYetValid));
    let findings = Findings {
        reasons: reasons_to_act(inv, sigs, false),
        urgent,
        earliest_expiry: deciding.iter().map(|c| c.not_after).min(),
        renew_at: deciding
            .iter()
            .filter(|c| c.status == Status::Ok)
            .map(|c| c.not_after - renew_before.as_seconds())
            .min(),
        stopped: (!info.running && !info.restarting && sigs.is_empty())
            .then(|| info.status.clone()),
        pending: pending.map(|p| match p {
            Pending::Journal(_) | Pending::Abandoned(_) => schedule::Pending::Finish {
                why: p.describe(),
                stopped: !info.running && !info.restarting,
            },
            Pending::Busy(_) => schedule::Pending::Busy(p.describe()),
            Pending::Refused(_) => schedule::Pending::Refused(p.describe()),
        }),
        clock: look.clock.as_ref().map(|c| c.reason.clone()),
    };
    let mut report = CheckReport::new(
        format!("container:{}:{tls_path}", info.name),
        look.now,
        renew_before,
        inv,
    );
    report.clock = look.clock.clone();
    Observation {
        id: info.id.clone(),
        image: info.image.clone(),
        state: info.status.clone(),
        findings,
        report,
        era: look.era.is_known().then(|| look.era.clone()),
        logs_unreadable: look.logs_unreadable.clone(),
    }
}

impl Runner for DockerRunner {
    async fn discover(&self, sel: &Selector) -> Result<Vec<Found>, Error> {
        let mut out: Vec<Found> = sel
            .names
            .iter()
            .map(|n| Found {
                name: n.clone(),
                pinned: true,
            })
            .collect();
        if sel.needs_listing() {
            for c in self.docker.list(sel.list_filters()).await? {
                if sel.matches(&c.id, &c.name, &c.image, &c.labels)
                    && !out.iter().any(|f| f.name == c.name)
                {
                    out.push(Found {
                        name: c.name,
                        pinned: false,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn check(&self, name: &str) -> Result<Observation, Error> {
        let info = self.docker.inspect(name).await?;
        let look = look(&self.docker, &info, &self.tls_path, self.renew_before).await?;
        let pending = pending(
            &self.docker,
            self.opts.backup_dir.as_deref(),
            &info,
            &self.tls_path,
            &self.me,
        )
        .await;
        Ok(observe(
            &info,
            &look,
            self.renew_before,
            &self.tls_path,
            pending.as_ref(),
        ))
    }

    async fn repair(
        &self,
        name: &str,
        force: bool,
        cancel: CancellationToken,
    ) -> Result<RepairReport, Error> {
        let mut opts = self.opts.clone();
        opts.force = force;
        opts.dry_run = false;
        repair_container(&self.docker, name, &self.tls_path, &opts, &cancel).await
    }

    /// The last resort after a repair was cut: wait out a stop that may still be in flight
    /// (up to one stop grace), then start the container if it is down.
    async fn ensure_started(&self, name: &str) -> Result<(), Error> {
        let grace = std::time::Duration::from_secs(u64::from(self.opts.stop_timeout) + 5);
        let limit = tokio::time::Instant::now() + grace;
        loop {
            let info = self.docker.inspect(name).await?;
            if !info.running && !info.restarting {
                tracing::warn!(container = %name, "starting the container a cut repair left stopped");
                return self.docker.start(&info.id).await;
            }
            if tokio::time::Instant::now() >= limit {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}
