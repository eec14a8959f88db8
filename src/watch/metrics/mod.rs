//! Prometheus metrics of `watch` (prometheus-client), served as OpenMetrics or as the classic
//! text format (0.0.4), whichever the scraper's `Accept` asks for ([`Format::negotiate`]).
//!
//! Two halves:
//! - per certificate, in the vocabulary of enix's x509-certificate-exporter so its Grafana
//!   dashboard (13922) and alert rules work unchanged: `x509_cert_not_after`,
//!   `x509_cert_not_before`, `x509_cert_expired` with `filepath`, `filename`, `subject_CN`,
//!   `issuer_CN`, `serial_number`, plus `container`; and, per target, the exporter's source
//!   health in its v3 shape (`x509_read_errors`), its v4 shape (`x509_source_up`,
//!   `x509_source_errors_total{reason}`), or both ([`ExporterCompat`]);
//! - `rancher_cert_guard_*`: what the tool did and how it is doing.
//!
//! Every label value goes through [`LabelValue`], which escapes `\`, `"` and newlines as both
//! text formats require: prometheus-client 0.24 writes label values raw, so a certificate CN
//! with a quote or a file name with a newline would otherwise break the whole scrape (every
//! expiry alert silenced) or forge series.
//!
//! Gauges are computed at scrape time from the loop's published state, so a renewed certificate
//! or a removed container leaves no stale series; counters live here, except the v4 source
//! error counts, which [`Shared::publish`] keeps because it sees every finished look.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::watch::state::{under_backup_dir, Shared};

/// Prefix of the tool's own metrics.
pub const PREFIX: &str = "rancher_cert_guard";

mod format;
pub use format::{
    openmetrics_to_text, write_escaped, Format, LabelValue, OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
};

/// `source_kind` of the v4 source series: a target's TLS tree is a set of files.
pub const SOURCE_KIND: &str = "file";

/// Which generation of x509-certificate-exporter's source-health series to serve. The
/// per-certificate series (`x509_cert_*`) are the same in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExporterCompat {
    /// `x509_read_errors` (v3, the default: dashboards and rules written for v3 keep working).
    #[default]
    V3,
    /// `x509_source_up` and `x509_source_errors_total{reason}` (v4, May 2026).
    V4,
    /// Both.
    Both,
}

impl ExporterCompat {
    fn v3(self) -> bool {
        matches!(self, Self::V3 | Self::Both)
    }
    fn v4(self) -> bool {
        matches!(self, Self::V4 | Self::Both)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabels {
    pub container: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RepairLabels {
    pub container: LabelValue,
    /// `repaired`, `healthy`, `failed`, `refused`, `dry_run`, `error`.
    pub result: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub container: LabelValue,
    /// `ok` (read and judged) or `error`.
    pub result: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// [`crate::error::Error::metric_label`], or `events_stream`.
    pub kind: LabelValue,
}

/// The labels of one certificate's series (x509-certificate-exporter's, plus `container`).
/// The derive names labels after fields, hence the exporter's spelling here.
#[allow(non_snake_case)]
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    filepath: LabelValue,
    filename: LabelValue,
    subject_CN: LabelValue,
    issuer_CN: LabelValue,
    serial_number: LabelValue,
    container: LabelValue,
}

/// The labels of x509-certificate-exporter v4's per-source series, plus `container`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source_kind: LabelValue,
    source_name: LabelValue,
    container: LabelValue,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceErrorLabels {
    source_kind: LabelValue,
    source_name: LabelValue,
    container: LabelValue,
    reason: LabelValue,
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
    /// The metrics with x509-certificate-exporter v3's source series (the default).
    pub fn new(shared: Arc<Shared>) -> Self {
        Self::with_compat(shared, ExporterCompat::default())
    }

    pub fn with_compat(shared: Arc<Shared>, compat: ExporterCompat) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(CertCollector {
            shared: shared.clone(),
            compat,
        }));
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
        for result in ["repaired", "failed", "refused", "error"] {
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
            // Writing to a String cannot fail and no collector fails on its own: this is a bug.
            // Answer what was written (a scrape with fewer series beats no scrape) and say so.
            tracing::error!(error = %e, "cannot encode metrics");
            if !out.ends_with("# EOF\n") {
                out.push_str("# EOF\n");
            }
        }
        out
    }

    /// Everything in `format`.
    pub fn encode_as(&self, format: Format) -> String {
        let openmetrics = self.encode();
        match format {
            Format::OpenMetrics => openmetrics,
            Format::Text => openmetrics_to_text(&openmetrics),
        }
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

/// `x509_cert_*` per certificate of every target's last inventory, and the exporter's
/// per-source series.
#[derive(Debug)]
struct CertCollector {
    shared: Arc<Shared>,
    compat: ExporterCompat,
}

/// Everything the per-certificate collector serves, read in one go.
#[derive(Default)]
struct CertSeries {
    not_after: Vec<(CertLabels, i64)>,
    not_before: Vec<(CertLabels, i64)>,
    expired: Vec<(CertLabels, i64)>,
    read_errors: Vec<(ContainerLabels, i64)>,
    source_up: Vec<(SourceLabels, i64)>,
}

impl CertCollector {
    fn series(&self) -> CertSeries {
        self.shared.read(|doc| {
            let mut s = CertSeries::default();
            for t in doc.targets.values() {
                let container = LabelValue::from(t.container.as_str());
                let problems = t.inventory.as_ref().map_or(0, |inv| {
                    inv.problems
                        .iter()
                        .filter(|p| !under_backup_dir(&p.path))
                        .count()
                });
                s.read_errors.push((
                    ContainerLabels {
                        container: container.clone(),
                    },
                    problems as i64 + i64::from(!t.up),
                ));
                s.source_up.push((
                    SourceLabels {
                        source_kind: SOURCE_KIND.into(),
                        source_name: container.clone(),
                        container: container.clone(),
                    },
                    i64::from(t.up),
                ));
                let Some(inv) = &t.inventory else { continue };
                // Two blocks with the same labels (a chain repeating its CA) are one series:
                // a duplicate would make Prometheus drop samples of the scrape.
                let mut seen = HashSet::new();
                for c in &inv.certificates {
                    if under_backup_dir(&c.path) {
                        continue;
                    }
                    let labels = CertLabels {
                        filepath: format!("{}/{}", doc.tls_path.trim_end_matches('/'), c.path)
                            .into(),
                        filename: c.path.rsplit('/').next().unwrap_or(&c.path).into(),
                        subject_CN: c.subject_cn.as_str().into(),
                        issuer_CN: c.issuer_cn.as_str().into(),
                        serial_number: c.serial.as_str().into(),
                        container: container.clone(),
                    };
                    if !seen.insert(labels.clone()) {
                        continue;
                    }
                    let is_expired = i64::from(inv.checked_at >= c.not_after);
                    s.not_after.push((labels.clone(), c.not_after));
                    s.not_before.push((labels.clone(), c.not_before));
                    s.expired.push((labels, is_expired));
                }
            }
            s
        })
    }
}

impl Collector for CertCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.series();
        gauges(
            &mut enc,
            "x509_cert_not_after",
            "Certificate expiry as a Unix timestamp (x509-certificate-exporter compatible)",
            &s.not_after,
        )?;
        gauges(
            &mut enc,
            "x509_cert_not_before",
            "Certificate start of validity as a Unix timestamp",
            &s.not_before,
        )?;
        gauges(
            &mut enc,
            "x509_cert_expired",
            "1 when the certificate had expired at the last check",
            &s.expired,
        )?;
        if self.compat.v3() {
            gauges(
                &mut enc,
                "x509_read_errors",
                "Files of the target's TLS tree that could not be judged at the last look, plus 1 when the look itself failed (x509-certificate-exporter v3 compatible)",
                &s.read_errors,
            )?;
        }
        if self.compat.v4() {
            gauges(
                &mut enc,
                "x509_source_up",
                "1 when the last look at the target's TLS tree succeeded (x509-certificate-exporter v4 compatible)",
                &s.source_up,
            )?;
            let counts = self.shared.source_errors();
            let mut family = enc.encode_descriptor(
                "x509_source_errors",
                "Files that could not be judged, counted at every look, and looks that failed (read_failed), by reason (x509-certificate-exporter v4 compatible)",
                None,
                MetricType::Counter,
            )?;
            for ((container, reason), n) in counts {
                let labels = SourceErrorLabels {
                    source_kind: SOURCE_KIND.into(),
                    source_name: container.as_str().into(),
                    container: container.into(),
                    reason: reason.into(),
                };
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// `rancher_cert_guard_*` gauges per target.
#[derive(Debug)]
struct TargetCollector(Arc<Shared>);

/// Everything the target collector serves, read in one go.
#[derive(Default)]
struct TargetSeries {
    up: Vec<(ContainerLabels, i64)>,
    last_check: Vec<(ContainerLabels, i64)>,
    last_success: Vec<(ContainerLabels, i64)>,
    next_action: Vec<(ContainerLabels, i64)>,
    in_progress: Vec<(ContainerLabels, i64)>,
    breaker_open: Vec<(ContainerLabels, i64)>,
    clock_skew: Vec<(ContainerLabels, i64)>,
    renew_before_seconds: i64,
}

impl Collector for TargetCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.read(|doc| {
            let mut s = TargetSeries {
                renew_before_seconds: i64::from(doc.renew_before_days) * 86_400,
                ..TargetSeries::default()
            };
            for t in doc.targets.values() {
                let l = ContainerLabels {
                    container: t.container.as_str().into(),
                };
                s.up.push((l.clone(), i64::from(t.up)));
                s.in_progress.push((
                    l.clone(),
                    i64::from(
                        t.in_progress == Some(crate::watch::controller::jobs::JobKind::Repair),
                    ),
                ));
                s.breaker_open.push((l.clone(), i64::from(t.breaker_open)));
                s.clock_skew.push((l.clone(), i64::from(t.clock.is_some())));
                if let Some(ts) = t.last_check {
                    s.last_check.push((l.clone(), ts));
                }
                if let Some(ts) = t.last_success {
                    s.last_success.push((l.clone(), ts));
                }
                if let Some(n) = &t.next_action {
                    s.next_action.push((l, n.at));
                }
            }
            s
        });
        gauges(
            &mut enc,
            "target_up",
            "1 when the last look at the target succeeded (container found, TLS tree read)",
            &s.up,
        )?;
        gauges(
            &mut enc,
            "last_check_timestamp_seconds",
            "When the target was last looked at (Unix time)",
            &s.last_check,
        )?;
        gauges(
            &mut enc,
            "last_success_timestamp_seconds",
            "When a look at the target last succeeded (Unix time)",
            &s.last_success,
        )?;
        gauges(
            &mut enc,
            "next_action_timestamp_seconds",
            "When watch will next look at the target (Unix time): the renewal window of the next certificate, a maintenance window, a cooldown, or the safety interval",
            &s.next_action,
        )?;
        gauges(
            &mut enc,
            "repair_in_progress",
            "1 while a repair of the target runs",
            &s.in_progress,
        )?;
        gauges(
            &mut enc,
            "breaker_open",
            "1 while the circuit breaker refuses repairs of the target (too many in 24 h)",
            &s.breaker_open,
        )?;
        gauges(
            &mut enc,
            "clock_skew",
            "1 while the clocks (this tool's, Docker's, the certificates') disagree: nothing is repaired",
            &s.clock_skew,
        )?;
        let family = enc.encode_descriptor(
            "renew_before_seconds",
            "The renewal window (--renew-before): a certificate expiring within it is due",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(s.renew_before_seconds).encode(family)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
