//! Unit tests of the metrics: escaping, format negotiation and conversion, the series served
//! per compatibility mode, backup directories left out.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::inventory::{CertKind, CertRecord, Problem, ProblemReason, Status};
use crate::report::CheckReport;
use crate::watch::state::{StatusDoc, TargetStatus};

const NOW: i64 = 1_800_000_000;

fn cert(path: &str, cn: &str, serial: &str) -> CertRecord {
    CertRecord {
        path: path.into(),
        index: 0,
        kind: CertKind::Leaf,
        subject: format!("CN={cn}"),
        issuer: "CN=k3s-client-ca@1700000000".into(),
        serial: serial.into(),
        not_before: NOW - 300 * 86_400,
        not_after: NOW + 65 * 86_400,
        is_ca: false,
        seconds_left: 65 * 86_400,
        status: Status::Warning,
        sha256: "00".into(),
        subject_cn: cn.into(),
        issuer_cn: "k3s-client-ca@1700000000".into(),
    }
}

fn report(certs: Vec<CertRecord>, problems: Vec<Problem>) -> CheckReport {
    CheckReport {
        source: "container:rancher:/var/lib/rancher/k3s/server/tls".into(),
        checked_at: NOW,
        renew_before_days: 90,
        status: Status::Warning,
        certificates: certs,
        keys: vec![],
        problems,
        error: None,
        clock: None,
        era: None,
    }
}

fn target(name: &str, inv: CheckReport) -> TargetStatus {
    TargetStatus {
        container: name.into(),
        up: true,
        last_check: Some(NOW),
        last_success: Some(NOW),
        inventory: Some(inv),
        ..TargetStatus::default()
    }
}

fn shared_with(targets: Vec<TargetStatus>) -> Arc<Shared> {
    let shared = Arc::new(Shared::new(
        Duration::from_secs(30),
        StatusDoc {
            tls_path: "/var/lib/rancher/k3s/server/tls".into(),
            renew_before_days: 90,
            ..StatusDoc::default()
        },
    ));
    shared.publish(
        targets
            .into_iter()
            .map(|t| (t.container.clone(), t))
            .collect::<BTreeMap<_, _>>(),
    );
    shared
}

fn sample_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .collect()
}

#[test]
fn label_values_are_escaped() {
    let mut out = String::new();
    write_escaped(&mut out, "plain").unwrap();
    assert_eq!(out, "plain");
    out.clear();
    write_escaped(&mut out, "a\"b\nc\\d\"").unwrap();
    assert_eq!(out, r#"a\"b\nc\\d\""#);
    out.clear();
    write_escaped(&mut out, "é\r\t").unwrap();
    assert_eq!(out, "é\r\t", "only \\, \" and newline are escaped");
}

#[test]
fn hostile_names_stay_inside_their_label() {
    let cn = "evil\"} 1\nx509_cert_expired{container=\"victim\"} 1\n#";
    let file = "new\nline\".crt";
    let shared = shared_with(vec![target(
        "rancher",
        report(vec![cert(file, cn, "0a")], vec![]),
    )]);
    for format in [Format::OpenMetrics, Format::Text] {
        let text = Metrics::new(shared.clone()).encode_as(format);
        let lines = sample_lines(&text, "x509_cert_not_after");
        assert_eq!(lines.len(), 1, "{text}");
        assert!(
            lines[0].contains(r#"filename="new\nline\".crt""#),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].contains(
                r#"subject_CN="evil\"} 1\nx509_cert_expired{container=\"victim\"} 1\n#""#
            ),
            "{}",
            lines[0]
        );
        assert!(!text.contains("container=\"victim\"} 1\n"), "{text}");
        assert!(text
            .lines()
            .all(|l| !l.starts_with("x509_cert_expired{container=")));
    }
}

#[test]
fn negotiation_follows_accept() {
    // Prometheus 2.42's scrape Accept header (scrape/scrape.go `acceptHeader`, read from
    // Debian's /usr/bin/prometheus 2.42.0).
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    // With native histograms on, protobuf first: we cannot serve it, OpenMetrics is next.
    let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::negotiate(Some(native)), Format::OpenMetrics);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text, */*")),
        Format::OpenMetrics
    );
    assert_eq!(Format::negotiate(None), Format::Text);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text")),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::negotiate(Some("text/plain;q=1, application/openmetrics-text;q=0.5")),
        Format::Text
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;q=0")),
        Format::Text
    );
    assert_eq!(
        Format::negotiate(Some("Application/OpenMetrics-Text; version=1.0.0")),
        Format::OpenMetrics
    );
    assert_eq!(Format::OpenMetrics.content_type(), OPENMETRICS_CONTENT_TYPE);
    assert_eq!(Format::Text.content_type(), TEXT_CONTENT_TYPE);
}

#[test]
fn the_text_format_names_families_after_their_samples() {
    let shared = shared_with(vec![target(
        "rancher",
        report(vec![cert("client-admin.crt", "system:admin", "0a")], vec![]),
    )]);
    let m = Metrics::new(shared);
    m.init_target("rancher");
    m.repair("rancher", "repaired", 1);
    let om = m.encode_as(Format::OpenMetrics);
    assert!(
        om.contains("# TYPE rancher_cert_guard_build info\n"),
        "{om}"
    );
    assert!(
        om.contains("# TYPE rancher_cert_guard_repairs counter\n"),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));

    let text = m.encode_as(Format::Text);
    assert!(!text.contains("# EOF"), "{text}");
    assert!(!text.contains(" info\n"), "{text}");
    for (family, kind) in [
        ("rancher_cert_guard_build_info", "gauge"),
        ("rancher_cert_guard_repairs_total", "counter"),
        ("rancher_cert_guard_restarts_total", "counter"),
        ("x509_cert_not_after", "gauge"),
        ("rancher_cert_guard_renew_before_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "{family} {kind}:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family}:\n{text}"
        );
    }
    assert!(text.contains(
        "rancher_cert_guard_repairs_total{container=\"rancher\",result=\"repaired\"} 1\n"
    ));
    assert!(text.contains("rancher_cert_guard_renew_before_seconds 7776000\n"));
    // Every sample line of OpenMetrics is in the text format, unchanged.
    for l in om.lines().filter(|l| !l.starts_with('#')) {
        assert!(text.lines().any(|t| t == l), "{l} missing:\n{text}");
    }
}

#[test]
fn compat_modes_serve_v3_v4_or_both() {
    let bad = Problem {
        path: "garbage.crt".into(),
        reason: ProblemReason::BadPem,
        detail: "x".into(),
    };
    let backup_bad = Problem {
        path: "tls-1700000000/garbage.crt".into(),
        reason: ProblemReason::BadPem,
        detail: "x".into(),
    };
    let mut down = target(
        "down",
        report(vec![cert("client-admin.crt", "system:admin", "0b")], vec![]),
    );
    down.up = false;
    let shared = shared_with(vec![
        target(
            "rancher",
            report(
                vec![cert("client-admin.crt", "system:admin", "0a")],
                vec![bad, backup_bad],
            ),
        ),
        down,
    ]);
    let v3 = Metrics::with_compat(shared.clone(), ExporterCompat::V3).encode_as(Format::Text);
    let v4 = Metrics::with_compat(shared.clone(), ExporterCompat::V4).encode_as(Format::Text);
    let both = Metrics::with_compat(shared.clone(), ExporterCompat::Both).encode_as(Format::Text);

    assert!(
        v3.contains("x509_read_errors{container=\"rancher\"} 1\n"),
        "{v3}"
    );
    assert!(
        v3.contains("x509_read_errors{container=\"down\"} 1\n"),
        "{v3}"
    );
    assert!(!v3.contains("x509_source_"), "{v3}");

    assert!(!v4.contains("x509_read_errors"), "{v4}");
    assert!(v4.contains("# TYPE x509_source_up gauge\n"), "{v4}");
    assert!(v4.contains(
        "x509_source_up{source_kind=\"file\",source_name=\"rancher\",container=\"rancher\"} 1\n"
    ));
    assert!(v4.contains(
        "x509_source_up{source_kind=\"file\",source_name=\"down\",container=\"down\"} 0\n"
    ));
    assert!(
        v4.contains("# TYPE x509_source_errors_total counter\n"),
        "{v4}"
    );
    // The first publish is the first look of both: one bad file (the backup's not counted),
    // one failed look.
    assert!(v4.contains("x509_source_errors_total{source_kind=\"file\",source_name=\"rancher\",container=\"rancher\",reason=\"bad_pem\"} 1\n"), "{v4}");
    assert!(v4.contains("x509_source_errors_total{source_kind=\"file\",source_name=\"down\",container=\"down\",reason=\"read_failed\"} 1\n"), "{v4}");
    // Known reasons exist at 0 from the first look.
    assert!(v4.contains("x509_source_errors_total{source_kind=\"file\",source_name=\"rancher\",container=\"rancher\",reason=\"too_large\"} 0\n"), "{v4}");

    for family in [
        "x509_read_errors",
        "x509_source_up",
        "x509_source_errors_total",
    ] {
        assert!(
            both.contains(&format!("# TYPE {family} ")),
            "{family}: {both}"
        );
    }
    for text in [&v3, &v4, &both] {
        assert_eq!(sample_lines(text, "x509_cert_not_after").len(), 2, "{text}");
    }
}

#[test]
fn backup_directories_and_duplicate_blocks_are_not_exported() {
    let mut chain = cert("client-admin.crt", "k3s-client-ca@1700000000", "00");
    chain.index = 1;
    let mut chain_again = chain.clone();
    chain_again.index = 2;
    // Same labels, another full subject: still one series.
    chain_again.subject = "CN=k3s-client-ca@1700000000,O=other".into();
    let shared = shared_with(vec![target(
        "rancher",
        report(
            vec![
                cert("client-admin.crt", "system:admin", "0a"),
                chain,
                chain_again,
                cert("tls-1700000000/client-admin.crt", "system:admin", "09"),
                cert("etcd/tls-x/client.crt", "etcd-client", "08"),
                cert("tls-notes.crt", "kept: a file, not a directory", "07"),
            ],
            vec![],
        ),
    )]);
    let text = Metrics::new(shared).encode_as(Format::Text);
    let lines = sample_lines(&text, "x509_cert_not_after");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(!text.contains("tls-1700000000"), "{text}");
    assert!(!text.contains("etcd/tls-x"), "{text}");
    assert!(text.contains("filename=\"tls-notes.crt\""), "{text}");
}

#[test]
fn breaker_and_repair_gauges_follow_the_published_state() {
    let mut t = target(
        "rancher",
        report(vec![cert("client-admin.crt", "system:admin", "0a")], vec![]),
    );
    t.breaker_open = true;
    t.in_progress = Some(crate::watch::controller::jobs::JobKind::Repair);
    t.clock = Some("the tool's clock reads 1970-01-01T00:00:05Z".into());
    let shared = shared_with(vec![t]);
    let text = Metrics::new(shared.clone()).encode_as(Format::Text);
    assert!(
        text.contains("rancher_cert_guard_breaker_open{container=\"rancher\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("rancher_cert_guard_repair_in_progress{container=\"rancher\"} 1\n"));
    assert!(text.contains("rancher_cert_guard_clock_skew{container=\"rancher\"} 1\n"));
    shared.publish(BTreeMap::new());
    let text = Metrics::new(shared).encode_as(Format::Text);
    assert!(
        !text.contains("breaker_open{"),
        "a removed target leaves no series: {text}"
    );
}

#[test]
fn a_new_target_starts_every_failure_counter_at_zero() {
    let m = Metrics::new(shared_with(vec![]));
    m.init_target("rancher");
    let text = m.encode_as(Format::Text);
    for result in ["repaired", "failed", "refused", "error"] {
        assert!(
            text.contains(&format!(
                "rancher_cert_guard_repairs_total{{container=\"rancher\",result=\"{result}\"}} 0\n"
            )),
            "{result}: {text}"
        );
    }
}
