//! The alert rules and the dashboard in `compose/` against a real Prometheus (Debian's
//! `prometheus` package, 2.42): `promtool check rules`, `promtool test rules`, `promtool check
//! config`; and end to end, a Prometheus started here on loopback scrapes a running `watch`
//! (the host binary, `--monitor-only`) beside a simulated Rancher whose certificates are due in
//! 20 days, and reports the expiry alert firing through its HTTP API; `promtool check metrics`
//! accepts the live `/metrics`; every dashboard query runs on that Prometheus.
//!
//! Under `CI=true` a missing `promtool`/`prometheus` or Docker is a failure, never a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::*;

fn prometheus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/prometheus")
}

fn dashboard_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/grafana/rancher-cert-guard.json")
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `tool` (promtool, prometheus) when installed; a panic under CI=true, a skip otherwise.
fn tool(name: &'static str) -> Option<&'static str> {
    if Command::new(name).arg("--version").output().is_ok() {
        return Some(name);
    }
    if ci() {
        panic!("CI=true and {name} is missing: apt-get install prometheus (scripts/ensure-docker.sh does)");
    }
    eprintln!("SKIPPED: {name} is not installed");
    None
}

fn run_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = prometheus_dir();
    let out = run_ok(Command::new(promtool).current_dir(&dir).args([
        "check",
        "rules",
        "rancher-cert-guard.rules.yml",
    ]));
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    let out = run_ok(Command::new(promtool).current_dir(&dir).args([
        "test",
        "rules",
        "rancher-cert-guard.rules.test.yml",
    ]));
    assert!(out.contains("SUCCESS"), "{out}");
    run_ok(
        Command::new(promtool)
            .current_dir(&dir)
            .args(["check", "config", "prometheus.yml"]),
    );
}

/// Every query of the dashboard, `$container` meaning every container.
fn dashboard_queries() -> Vec<(String, String)> {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap()).unwrap();
    let mut out = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push((
                p["title"].as_str().unwrap().to_string(),
                t["expr"].as_str().unwrap().replace("$container", ".*"),
            ));
        }
    }
    out
}

#[test]
fn the_dashboard_is_grafana_json_on_our_series() {
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_path()).unwrap()).unwrap();
    assert_eq!(d["uid"], "rancher-cert-guard");
    let panels = d["panels"].as_array().unwrap();
    let mut ids: Vec<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels {
        assert!(p["gridPos"]["w"].as_i64().unwrap() > 0);
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
    }
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "container"]);
    for (title, q) in dashboard_queries() {
        assert!(
            q.contains("rancher_cert_guard_") || q.contains("x509_cert_"),
            "{title}: {q}"
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

/// `watch` on the host; its listening address.
fn start_watch(dir: &Path, container: &str) -> (Killed, String) {
    let addr_file = dir.join("addr");
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CERT_GUARD_") {
            cmd.env_remove(k);
        }
    }
    let child = cmd
        .args(["watch", "--monitor-only", "--container", container])
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("watch.log")).unwrap())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let mut addr = String::new();
    wait_for(10, "watch's address file", || {
        addr = std::fs::read_to_string(&addr_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        !addr.is_empty()
    });
    (child, addr)
}

/// `prometheus` on a free loopback port with its own directory, scraping `target` every second
/// with the shipped rules; its address.
fn start_prometheus(dir: &Path, target: &str) -> (Killed, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let rules = prometheus_dir().join("rancher-cert-guard.rules.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: rancher-cert-guard\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display()
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .unwrap();
    let child = Killed(child);
    wait_for(30, "Prometheus to be ready", || {
        http_get(&addr, "/-/ready").is_some_and(|(c, _)| c == 200)
    });
    (child, addr)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn api(addr: &str, path: &str) -> serde_json::Value {
    let (code, body) = http_get(addr, path).unwrap_or((0, String::new()));
    assert_eq!(code, 200, "GET {path}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{path}: {body}");
    v
}

fn alerts(addr: &str) -> Vec<serde_json::Value> {
    api(addr, "/api/v1/alerts")["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn prometheus_fires_the_expiry_alert_on_a_live_watch() {
    let (Some(promtool), Some(_)) = (tool("promtool"), tool("prometheus")) else {
        return;
    };
    if !docker_available() {
        return;
    }
    ensure_image(&sim_image(), "build-sim-image.sh");
    let rancher = unique("alerts-rancher");
    let _r = ContainerGuard(rancher.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &rancher,
        "--label",
        TEST_LABEL,
        "--network",
        "none",
        "-e",
        "SIM_LEAF_DAYS=20",
        "-e",
        "SIM_BOOT_SECONDS=1",
        &sim_image(),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (_watch, watch) = start_watch(dir.path(), &rancher);
    wait_for(60, "watch to look at the simulated Rancher", || {
        http_get(&watch, "/readyz").is_some_and(|(c, _)| c == 200)
            && http_get(&watch, "/metrics").is_some_and(|(_, m)| {
                m.contains(&format!(
                    "rancher_cert_guard_target_up{{container=\"{rancher}\"}} 1"
                ))
            })
    });

    // The live /metrics in the classic format passes promtool's parser and linter.
    let (_, metrics) = http_get(&watch, "/metrics").unwrap();
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let o = check.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    let pdir = tempfile::tempdir().unwrap();
    let (_prom, prom) = start_prometheus(pdir.path(), &watch);
    let t0 = Instant::now();
    let expiry = |a: &serde_json::Value, name: &str, state: &str| {
        a["labels"]["alertname"] == name
            && a["state"] == state
            && a["labels"]["container"] == rancher.as_str()
            && a["labels"]["filename"] == "client-admin.crt"
    };
    let mut seen = Vec::new();
    wait_for(90, "RancherCertGuardCertificateExpiresSoon to fire", || {
        seen = alerts(&prom);
        seen.iter()
            .any(|a| expiry(a, "RancherCertGuardCertificateExpiresSoon", "firing"))
    });
    eprintln!(
        "expiry alert firing {:?} after Prometheus started",
        t0.elapsed()
    );
    let fired = seen
        .iter()
        .find(|a| expiry(a, "RancherCertGuardCertificateExpiresSoon", "firing"))
        .unwrap();
    assert_eq!(fired["labels"]["severity"], "warning");
    let description = fired["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("/var/lib/rancher/k3s/server/tls/client-admin.crt")
            && description.contains("expires in 19d"),
        "{description}"
    );
    // The renewal-window rule joins --renew-before: in the window, pending for its hour.
    assert!(
        seen.iter()
            .any(|a| expiry(a, "RancherCertGuardCertificateInRenewalWindow", "pending")),
        "{seen:#?}"
    );
    for quiet in [
        "RancherCertGuardCertificateExpired",
        "RancherCertGuardRepairFailed",
        "RancherCertGuardRepairRefused",
        "RancherCertGuardBreakerOpen",
        "RancherCertGuardContainerUnreadable",
        "RancherCertGuardDown",
        "RancherCertGuardNotScraped",
        "RancherCertGuardNoTargets",
    ] {
        assert!(
            !seen.iter().any(|a| a["labels"]["alertname"] == quiet),
            "{quiet} is active: {seen:#?}"
        );
    }

    // The scrape itself: up, and the sidecar's series stored.
    let up = api(
        &prom,
        &format!(
            "/api/v1/query?query={}",
            percent_encode("up{job=\"rancher-cert-guard\"}")
        ),
    );
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");

    // Every dashboard query runs; all but the Docker errors (there are none) return data.
    wait_for(30, "two scrapes for rate()", || {
        let r = api(
            &prom,
            &format!(
                "/api/v1/query?query={}",
                percent_encode("count_over_time(rancher_cert_guard_build_info[1m])")
            ),
        );
        r["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    });
    for (title, q) in dashboard_queries() {
        let r = api(
            &prom,
            &format!("/api/v1/query?query={}", percent_encode(&q)),
        );
        let empty = r["data"]["result"].as_array().is_none_or(|a| a.is_empty());
        if !q.contains("docker_errors") {
            assert!(!empty, "dashboard panel {title:?}: {q} returned nothing");
        }
    }
}
