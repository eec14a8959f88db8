//! `/metrics` read by real parsers — `promtool check metrics` from Debian's `prometheus`
//! package and Python's `prometheus_client` (classic and OpenMetrics parsers) — on a K3s tree
//! with hostile certificate CNs and file names, a bad file and a `tls-*` backup directory,
//! served over loopback by the `watch` HTTP server. The hostile values must come back from the
//! parsers exactly, inside their own label, and forge no series.
//!
//! The first test needs no Docker: the tree is judged from a directory and published as
//! `watch` publishes it. The second puts the same tree in a container and scrapes the `watch`
//! binary watching it, so the names also travel through Docker's archive stream.
//! `promtool` (and a Python with `prometheus_client`) are required under `CI=true`
//! (`scripts/ensure-docker.sh` installs `prometheus` and `python3-prometheus-client`).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::fixtures::*;
use common::*;
use rancher_cert_guard::inventory::{inventory, RenewBefore};
use rancher_cert_guard::report::CheckReport;
use rancher_cert_guard::source::dir::read_dir_tree;
use rancher_cert_guard::watch::http::{self, AppState};
use rancher_cert_guard::watch::metrics::Metrics;
use rancher_cert_guard::watch::state::{Shared, StatusDoc, TargetStatus};

const TLS: &str = "/var/lib/rancher/k3s/server/tls";

/// CNs and file names an attacker (or an unlucky admin) can put in a TLS tree.
const HOSTILE: &[(&str, &str)] = &[
    ("quote\".crt", "cn with \"quotes\""),
    (
        "new\nline.crt",
        "line1\nx509_cert_expired{container=\"victim\"} 1",
    ),
    ("back\\slash.crt", "C:\\k3s\\ca"),
    (
        "forged\"} 0\nx509_cert_not_after{container=\"victim\"} 1\n# EOF\n.crt",
        "\"} 0\n# EOF",
    ),
];

fn hostile_tree(dir: &Path, now: i64) {
    write_k3s_tree(dir, &TreeSpec::days_left(now, 20));
    let ca = ca("k3s-client-ca@1700000000", now - 100 * DAY);
    for (file, cn) in HOSTILE {
        let l = leaf(&ca, cn, None, now - DAY, now + 20 * DAY, false);
        std::fs::write(dir.join(file), format!("{}{}", l.pem, ca.pem)).unwrap();
    }
    std::fs::write(dir.join("garbage.crt"), "not a certificate\n").unwrap();
    std::fs::create_dir(dir.join("tls-1700000000")).unwrap();
    let old = leaf(&ca, "from a backup", None, now - DAY, now + 20 * DAY, false);
    std::fs::write(dir.join("tls-1700000000/client-admin.crt"), old.pem).unwrap();
}

/// A `watch` HTTP server on loopback publishing `dir` as container `rancher`; returns its
/// address (the runtime lives until the test process ends).
fn serve_tree(dir: &Path, now: i64) -> String {
    let tree = read_dir_tree(dir).unwrap();
    let rb = RenewBefore::days(90);
    let inv = inventory(&tree, now, rb);
    let report = CheckReport::new(format!("container:rancher:{TLS}"), now, rb, &inv);
    let shared = Arc::new(Shared::new(
        Duration::from_secs(30),
        StatusDoc {
            tls_path: TLS.into(),
            renew_before_days: 90,
            ..StatusDoc::default()
        },
    ));
    let mut targets = BTreeMap::new();
    targets.insert(
        "rancher".to_string(),
        TargetStatus {
            container: "rancher".into(),
            up: true,
            last_check: Some(now),
            last_success: Some(now),
            inventory: Some(report),
            ..TargetStatus::default()
        },
    );
    shared.publish(targets);
    let metrics = Arc::new(Metrics::new(shared.clone()));
    metrics.init_target("rancher");
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let app = http::router(AppState {
        shared,
        metrics,
        token: None,
        commands: tx,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(http::serve(
        listener,
        app,
        tokio_util::sync::CancellationToken::new(),
    ));
    std::mem::forget(rt);
    addr
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `promtool`, or `None` (a panic under CI=true) when it is not installed.
fn promtool() -> Option<&'static str> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        return Some("promtool");
    }
    if ci() {
        panic!("CI=true and promtool is missing: apt-get install prometheus (scripts/ensure-docker.sh does)");
    }
    eprintln!("SKIPPED: promtool is not installed");
    None
}

/// A Python that imports `prometheus_client`, or `None` (a panic under CI=true).
fn python() -> Option<&'static str> {
    for py in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(py)
            .args(["-c", "import prometheus_client.openmetrics.parser"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    if ci() {
        panic!("CI=true and no Python has prometheus_client: apt-get install python3-prometheus-client (scripts/ensure-docker.sh does)");
    }
    eprintln!("SKIPPED: no Python with prometheus_client");
    None
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Parse `text` with prometheus_client (`openmetrics` or classic); one JSON array of
/// `[name, labels, value]` per sample.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families as classic
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
parse = openmetrics if sys.argv[1] == "openmetrics" else classic
out = []
for family in parse(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

fn parse_with_python(
    py: &str,
    flavour: &str,
    text: &str,
) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let o = run_with_stdin(Command::new(py).args(["-c", PARSE, flavour]), text);
    assert!(
        o.status.success(),
        "prometheus_client's {flavour} parser rejects /metrics: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn metrics_with_hostile_names_pass_real_parsers() {
    let now = now();
    let dir = tempfile::tempdir().unwrap();
    hostile_tree(dir.path(), now);
    let addr = serve_tree(dir.path(), now);

    let (code, om) = http_request(
        &addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap();
    assert_eq!(code, 200);
    let (code, text) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);

    let py = python();
    if let Some(py) = py {
        parse_with_python(py, "openmetrics", &om);
    }
    if let Some(promtool) = promtool() {
        let o = run_with_stdin(Command::new(promtool).args(["check", "metrics"]), &text);
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        text.lines().all(|l| l != "# EOF"),
        "the classic format has no EOF marker"
    );

    let Some(py) = py else { return };
    for (flavour, body) in [("classic", &text), ("openmetrics", &om)] {
        let samples = parse_with_python(py, flavour, body);
        let not_after: Vec<_> = samples
            .iter()
            .filter(|(n, _, _)| n == "x509_cert_not_after")
            .collect();
        // Every hostile certificate comes back with its file name and CN intact.
        for (file, cn) in HOSTILE {
            let hit = not_after
                .iter()
                .find(|(_, l, _)| l["filename"] == *file)
                .unwrap_or_else(|| panic!("{flavour}: no series for {file:?}: {not_after:?}"));
            assert_eq!(hit.1["subject_CN"], *cn, "{flavour}");
            assert_eq!(hit.1["filepath"], format!("{TLS}/{file}"), "{flavour}");
            assert_eq!(hit.1["container"], "rancher", "{flavour}");
        }
        // Nothing forged: every sample belongs to the one container.
        for (name, labels, _) in &samples {
            if let Some(c) = labels.get("container") {
                assert_eq!(c, "rancher", "{flavour}: forged series {name} {labels:?}");
            }
        }
        // The K3s tree's certificates (leaf + chain blocks) and the hostile leaves: one series
        // each, identical chain blocks merged; the backup directory and the bad file left out.
        assert!(
            not_after.len() >= 20 + HOSTILE.len(),
            "{flavour}: {}",
            not_after.len()
        );
        assert!(
            not_after
                .iter()
                .all(|(_, l, _)| !l["filepath"].contains("tls-1700000000")),
            "{flavour}: a backup directory was exported"
        );
        assert!(not_after
            .iter()
            .all(|(_, l, _)| l["filename"] != "garbage.crt"));
        let read_errors: Vec<_> = samples
            .iter()
            .filter(|(n, _, _)| n == "x509_read_errors")
            .collect();
        assert_eq!(read_errors.len(), 1, "{flavour}");
        assert_eq!(
            read_errors[0].2, 1.0,
            "{flavour}: garbage.crt is the one bad file"
        );
        assert!(
            samples
                .iter()
                .any(|(n, l, v)| n == "rancher_cert_guard_build_info"
                    && l.contains_key("version")
                    && *v == 1.0),
            "{flavour}: build info"
        );
    }
}

/// A process killed (by its PID) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn hostile_names_read_from_a_container_pass_real_parsers() {
    if !docker_available() {
        return;
    }
    let now = now();
    let dir = tempfile::tempdir().unwrap();
    hostile_tree(dir.path(), now);
    let image = build_tree_image(dir.path());
    let name = unique("hostile-tree");
    let _c = ContainerGuard(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--label",
        TEST_LABEL,
        "--network",
        "none",
        &image.0,
        "sleep",
        "600",
    ]);

    let wdir = tempfile::tempdir().unwrap();
    let addr_file = wdir.path().join("addr");
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CERT_GUARD_") {
            cmd.env_remove(k);
        }
    }
    let _watch = Killed(
        cmd.args(["watch", "--monitor-only", "--container", &name])
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut addr = String::new();
    wait_for(10, "watch's address file", || {
        addr = std::fs::read_to_string(&addr_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        !addr.is_empty()
    });
    let up = format!("rancher_cert_guard_target_up{{container=\"{name}\"}} 1");
    let mut text = String::new();
    wait_for(60, "watch to read the container's tree", || {
        text = http_get(&addr, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        text.contains(&up)
    });

    if let Some(promtool) = promtool() {
        let o = run_with_stdin(Command::new(promtool).args(["check", "metrics"]), &text);
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "promtool check metrics: {}{}\n{text}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let Some(py) = python() else { return };
    let samples = parse_with_python(py, "classic", &text);
    for (file, cn) in HOSTILE {
        let hit = samples
            .iter()
            .find(|(n, l, _)| n == "x509_cert_not_after" && l["filename"] == *file)
            .unwrap_or_else(|| panic!("no series for {file:?}"));
        assert_eq!(hit.1["subject_CN"], *cn);
        assert_eq!(hit.1["container"], name);
    }
    for (n, labels, _) in &samples {
        if let Some(c) = labels.get("container") {
            assert_eq!(c, &name, "forged series {n} {labels:?}");
        }
    }
}
