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

mod collectors;
use collectors::{CertCollector, TargetCollector};
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

#[cfg(test)]
mod tests;
