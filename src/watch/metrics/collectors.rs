//! The collectors computed at scrape time from the loop's published state: per certificate
//! (x509-certificate-exporter's series, v3 and/or v4) and per target (the tool's gauges).

use super::*;

/// One gauge family from `(labels, value)` pairs.
pub(super) fn gauges<L: EncodeLabelSet>(
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
pub(super) struct CertCollector {
    pub(super) shared: Arc<Shared>,
    pub(super) compat: ExporterCompat,
}

/// Everything the per-certificate collector serves, read in one go.
#[derive(Default)]
pub(super) struct CertSeries {
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
pub(super) struct TargetCollector(pub(super) Arc<Shared>);

/// Everything the target collector serves, read in one go.
#[derive(Default)]
pub(super) struct TargetSeries {
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
