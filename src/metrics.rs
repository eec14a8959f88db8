//! Prometheus metrics of `watch` (prometheus-client, OpenMetrics text).
//!
//! Two halves:
//! - per certificate, in the vocabulary of enix's x509-certificate-exporter so its Grafana
//!   dashboard (13922) and alert rules work unchanged: `x509_cert_not_after`,
//!   `x509_cert_not_before`, `x509_cert_expired` with `filepath`, `filename`, `subject_CN`,
//!   `issuer_CN`, `serial_number`, plus `container`;
//! - `rancher_cert_guard_*`: what the tool did and how it is doing.
//!
//! Gauges are computed at scrape time from the loop's published state, so a renewed certificate
//! or a removed container leaves no stale series; counters live here.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::watch::state::Shared;

/// Prefix of the tool's own metrics.
pub const PREFIX: &str = "rancher_cert_guard";

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub container: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepairLabels {
    pub container: String,
    /// `repaired`, `healthy`, `failed`, `refused`, `dry_run`, `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub container: String,
    /// `ok` (read and judged) or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// [`crate::error::Error::metric_label`], or `events_stream`.
    pub kind: String,
}

/// The registry and the counters the loop increments.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub repairs: Family<RepairLabels, Counter>,
    pub restarts: Family<ContainerLabels, Counter>,
    pub checks: Family<CheckLabels, Counter>,
    pub docker_errors: Family<KindLabels, Counter>,
}

impl Metrics {
    pub fn new(shared: Arc<Shared>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(CertCollector(shared.clone())));
        let repairs = Family::<RepairLabels, Counter>::default();
        let restarts = Family::<ContainerLabels, Counter>::default();
        let checks = Family::<CheckLabels, Counter>::default();
        let docker_errors = Family::<KindLabels, Counter>::default();
        {
            let own = registry.sub_registry_with_prefix(PREFIX);
            own.register(
                "repairs",
                "Repairs run by watch, by container and result",
                repairs.clone(),
            );
            own.register(
                "restarts",
                "Container restarts done by repairs (beyond the first start after the wipe)",
                restarts.clone(),
            );
            own.register(
                "checks",
                "Looks at a target (read and judge its certificates), by result",
                checks.clone(),
            );
            own.register(
                "docker_errors",
                "Docker API errors, by kind",
                docker_errors.clone(),
            );
            own.register(
                "build",
                "Build information",
                Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
            );
            own.register_collector(Box::new(TargetCollector(shared)));
        }
        Self {
            registry,
            repairs,
            restarts,
            checks,
            docker_errors,
        }
    }

    /// Counters of a new target start at zero (so `increase()` sees the first repair).
    pub fn init_target(&self, container: &str) {
        for result in ["repaired", "failed", "refused"] {
            let _ = self.repairs.get_or_create(&RepairLabels {
                container: container.into(),
                result: result.into(),
            });
        }
        let _ = self.restarts.get_or_create(&ContainerLabels {
            container: container.into(),
        });
    }

    pub fn repair(&self, container: &str, result: &str, restarts: u32) {
        self.repairs
            .get_or_create(&RepairLabels {
                container: container.into(),
                result: result.into(),
            })
            .inc();
        self.restarts
            .get_or_create(&ContainerLabels {
                container: container.into(),
            })
            .inc_by(u64::from(restarts));
    }

    pub fn check(&self, container: &str, ok: bool) {
        self.checks
            .get_or_create(&CheckLabels {
                container: container.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
    }

    pub fn docker_error(&self, kind: &str) {
        self.docker_errors
            .get_or_create(&KindLabels { kind: kind.into() })
            .inc();
    }

    /// The OpenMetrics text of everything.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// One gauge family from `(labels, value)` pairs.
fn gauges<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(L, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family: MetricEncoder = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// `x509_cert_*` per certificate of every target's last inventory.
#[derive(Debug)]
struct CertCollector(Arc<Shared>);

impl Collector for CertCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type Labels = Vec<(&'static str, String)>;
        let (not_after, not_before, expired) = self.0.read(|doc| {
            let mut not_after: Vec<(Labels, i64)> = Vec::new();
            let mut not_before = Vec::new();
            let mut expired = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for t in doc.targets.values() {
                let Some(inv) = &t.inventory else { continue };
                for c in &inv.certificates {
                    let filepath = format!("{}/{}", doc.tls_path.trim_end_matches('/'), c.path);
                    let filename = c.path.rsplit('/').next().unwrap_or(&c.path).to_string();
                    // Two identical blocks in one file would be one series.
                    if !seen.insert((
                        t.container.clone(),
                        filepath.clone(),
                        c.serial.clone(),
                        c.subject.clone(),
                    )) {
                        continue;
                    }
                    let labels: Labels = vec![
                        ("filepath", filepath),
                        ("filename", filename),
                        ("subject_CN", c.subject_cn.clone()),
                        ("issuer_CN", c.issuer_cn.clone()),
                        ("serial_number", c.serial.clone()),
                        ("container", t.container.clone()),
                    ];
                    let is_expired = i64::from(inv.checked_at >= c.not_after);
                    not_after.push((labels.clone(), c.not_after));
                    not_before.push((labels.clone(), c.not_before));
                    expired.push((labels, is_expired));
                }
            }
            (not_after, not_before, expired)
        });
        gauges(
            &mut enc,
            "x509_cert_not_after",
            "Certificate expiry as a Unix timestamp (x509-certificate-exporter compatible)",
            &not_after,
        )?;
        gauges(
            &mut enc,
            "x509_cert_not_before",
            "Certificate start of validity as a Unix timestamp",
            &not_before,
        )?;
        gauges(
            &mut enc,
            "x509_cert_expired",
            "1 when the certificate had expired at the last check",
            &expired,
        )?;
        Ok(())
    }
}

/// `rancher_cert_guard_*` gauges per target.
#[derive(Debug)]
struct TargetCollector(Arc<Shared>);

impl Collector for TargetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (up, last_check, last_success, next_action, in_progress) = self.0.read(|doc| {
            let mut up = Vec::new();
            let mut last_check = Vec::new();
            let mut last_success = Vec::new();
            let mut next_action = Vec::new();
            let mut in_progress = Vec::new();
            for t in doc.targets.values() {
                let l = ContainerLabels {
                    container: t.container.clone(),
                };
                up.push((l.clone(), i64::from(t.up)));
                in_progress.push((l.clone(), i64::from(t.in_progress == Some("repair"))));
                if let Some(ts) = t.last_check {
                    last_check.push((l.clone(), ts));
                }
                if let Some(ts) = t.last_success {
                    last_success.push((l.clone(), ts));
                }
                if let Some(n) = &t.next_action {
                    next_action.push((l, n.at));
                }
            }
            (up, last_check, last_success, next_action, in_progress)
        });
        gauges(
            &mut enc,
            "target_up",
            "1 when the last look at the target succeeded (container found, TLS tree read)",
            &up,
        )?;
        gauges(
            &mut enc,
            "last_check_timestamp_seconds",
            "When the target was last looked at (Unix time)",
            &last_check,
        )?;
        gauges(
            &mut enc,
            "last_success_timestamp_seconds",
            "When a look at the target last succeeded (Unix time)",
            &last_success,
        )?;
        gauges(
            &mut enc,
            "next_action_timestamp_seconds",
            "When watch will next look at the target (Unix time): the renewal window of the next certificate, a maintenance window, a cooldown, or the safety interval",
            &next_action,
        )?;
        gauges(
            &mut enc,
            "repair_in_progress",
            "1 while a repair of the target runs",
            &in_progress,
        )?;
        Ok(())
    }
}
