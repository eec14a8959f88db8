//! Golden outputs: `check -o json` and its table, `repair -o json` (a dry run), `/metrics` and
//! `/status`, on a fixed tree (`tests/golden/tree`, certificates made once for this test; key
//! files are placeholders) at a fixed instant. A restructuring of the code must leave them
//! byte-identical; a deliberate change of output regenerates them with `UPDATE_GOLDEN=1` and
//! shows up in the diff of `tests/golden/`.

mod common;
#[path = "common/fake_engine.rs"]
#[allow(dead_code)]
mod fake_engine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rancher_cert_guard::inventory::{inventory, RenewBefore, Status};
use rancher_cert_guard::repair::{repair_container, RepairOptions};
use rancher_cert_guard::report::CheckReport;
use rancher_cert_guard::source::dir::read_dir_tree;
use rancher_cert_guard::watch::metrics::{Format, Metrics};
use rancher_cert_guard::watch::state::{Shared, StatusDoc, TargetStatus};
use tokio_util::sync::CancellationToken;

/// 2026-11-26T00:00:00Z: the leaves (2027-01-01) and the serving certificate (2026-12-15) are
/// within the 90-day window.
const NOW: i64 = 1_795_651_200;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compare with the golden file, or write it with `UPDATE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let p = golden_dir().join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&p, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", p.display()));
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        panic!(
            "{name} differs from the golden file at line {}:\n  golden: {:?}\n  now:    {:?}\n(UPDATE_GOLDEN=1 rewrites it when the change is meant)",
            first + 1,
            want.lines().nth(first),
            got.lines().nth(first)
        );
    }
}

fn report() -> CheckReport {
    let tree = read_dir_tree(&golden_dir().join("tree")).unwrap();
    let rb = RenewBefore::days(90);
    CheckReport::new(
        "dir:tests/golden/tree".into(),
        NOW,
        rb,
        &inventory(&tree, NOW, rb),
    )
}

#[test]
fn check_json_and_table() {
    let r = report();
    assert_eq!(r.status, Status::Warning);
    golden("check.json", &r.to_json());
    golden("check.txt", &r.to_table());
}

fn target() -> TargetStatus {
    let r = report();
    TargetStatus {
        container: "rancher".into(),
        id: Some("1111111111111111111111111111111111111111111111111111111111111111".into()),
        image: Some("rancher/rancher:v2.5.7".into()),
        state: Some("running".into()),
        up: true,
        last_check: Some(NOW),
        last_success: Some(NOW),
        status: Some(r.status),
        reasons: vec!["client-admin.crt is warning (not after 2027-01-01T00:00:00Z)".into()],
        decision: Some("not repairing yet: waiting for the maintenance window".into()),
        renew_at: Some(NOW - 86_400),
        earliest_expiry: Some(1_797_292_800),
        repairs_last_24h: 1,
        inventory: Some(r),
        ..TargetStatus::default()
    }
}

fn shared() -> Arc<Shared> {
    let doc = StatusDoc {
        version: "golden",
        selection: "containers rancher".into(),
        renew_before_days: 90,
        tls_path: "/var/lib/rancher/k3s/server/tls".into(),
        docker_host: "unix:///var/run/docker.sock".into(),
        docker_version: Some("20.10.24".into()),
        ..StatusDoc::default()
    };
    let s = Arc::new(Shared::new(Duration::from_secs(15), doc));
    s.publish(BTreeMap::from([("rancher".to_string(), target())]));
    s
}

#[test]
fn metrics_text_and_openmetrics() {
    let m = Metrics::new(shared());
    // The build info carries the crate's version: pin it for the file.
    let pin = |t: String| t.replace(env!("CARGO_PKG_VERSION"), "VERSION");
    golden("metrics.txt", &pin(m.encode_as(Format::Text)));
    golden(
        "metrics.openmetrics.txt",
        &pin(m.encode_as(Format::OpenMetrics)),
    );
}

#[tokio::test]
async fn status_json() {
    let snap = shared().snapshot();
    golden("status.json", &serde_json::to_string_pretty(&snap).unwrap());
}

#[tokio::test(start_paused = true)]
async fn repair_dry_run_json() {
    let files = fake_engine::read_tree_dir(&golden_dir().join("tree"));
    let fake = fake_engine::FakeEngine::new(NOW, files.clone(), files);
    let opts = RepairOptions {
        renew_before: RenewBefore::days(90),
        backup_dir: None,
        keep_backups: 10,
        dry_run: true,
        force: false,
        max_restarts: 3,
        settle: Duration::from_secs(60),
        timeout: Duration::from_secs(900),
        health_url: None,
        stop_timeout: 30,
        lock_wait: Duration::ZERO,
        fault: None,
        holder: "repair",
    };
    let mut r = repair_container(
        &fake,
        "rancher",
        fake_engine::TLS,
        &opts,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    for s in &mut r.steps {
        s.seconds = 0.0; // wall time of the machine running the test
    }
    golden("repair-dry-run.json", &r.to_json());
}
