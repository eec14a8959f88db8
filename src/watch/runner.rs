//! The loop's [`Runner`] on a real Docker engine: discovery by name, label or image; a look
//! is inspect + the TLS tree through the archive API + the logs since the last start (the
//! same inputs as step 1 of `repair`); a repair is the whole `repair` ladder.

use crate::docker::{parse_rfc3339_nanos, ContainerInfo, DockerClient};
use crate::error::Error;
use crate::inventory::{inventory, Inventory, RenewBefore, Status};
use crate::repair::plan::{reasons_to_act, signatures, Signature};
use crate::repair::{repair_container, RepairOptions, RepairReport};
use crate::report::CheckReport;
use crate::timefmt;

use super::controller::{Found, Observation, Runner};
use super::schedule::Findings;
use super::targets::Selector;

pub struct DockerRunner {
    pub docker: DockerClient,
    pub tls_path: String,
    pub renew_before: RenewBefore,
    /// The ladder's settings (`dry_run` off: `--monitor-only` never reaches `repair`).
    pub opts: RepairOptions,
}

/// What a look found, from the same inputs `repair` decides on.
pub fn observe(
    info: &ContainerInfo,
    inv: &Inventory,
    sigs: &[Signature],
    now: i64,
    renew_before: RenewBefore,
    tls_path: &str,
) -> Observation {
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
    };
    Observation {
        id: info.id.clone(),
        image: info.image.clone(),
        state: info.status.clone(),
        findings,
        report: CheckReport::new(
            format!("container:{}:{tls_path}", info.name),
            now,
            renew_before,
            inv,
        ),
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
        let tree = self.docker.read_tree(&info.id, &self.tls_path).await?;
        let now = timefmt::now();
        let inv = inventory(&tree, now, self.renew_before);
        let since = info
            .started_at
            .as_deref()
            .and_then(parse_rfc3339_nanos)
            .unwrap_or(0);
        let logs = match self.docker.logs_since(&info.id, since, 2000).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(container = %name, error = %e, "cannot read the logs; judging the certificates only");
                String::new()
            }
        };
        Ok(observe(
            &info,
            &inv,
            &signatures(&logs),
            now,
            self.renew_before,
            &self.tls_path,
        ))
    }

    async fn repair(&self, name: &str, force: bool) -> Result<RepairReport, Error> {
        let mut opts = self.opts.clone();
        opts.force = force;
        opts.dry_run = false;
        repair_container(&self.docker, name, &self.tls_path, &opts).await
    }

    async fn ensure_started(&self, name: &str) -> Result<(), Error> {
        let info = self.docker.inspect(name).await?;
        if !info.running && !info.restarting {
            tracing::warn!(container = %name, "starting the container an interrupted repair left stopped");
            self.docker.start(&info.id).await?;
        }
        Ok(())
    }
}
