//! Diagnosis end to end on a real engine and the simulated Rancher (`RCG_SIM_IMAGE`; the
//! modes `SIM_NOISE`, `SIM_CLOCK_SKEW_DAYS`, `SIM_NO_REGEN`, `SIM_K3S_LOG` are in sim/README):
//!
//! * a noisy healthy Rancher (real unrelated x509 lines every 0.5 s) gets no restart from
//!   `repair`, nor from `watch` over several minutes;
//! * each real *local K3s* line of the corpus, injected into a healthy simulated Rancher,
//!   makes `repair` act; all the other lines together do not;
//! * clock skew is refused with nothing changed;
//! * a leaf that does not come back makes the repair fail with a diagnosis naming it;
//! * logs that cannot be read are said so, and the decision rests on the certificates;
//! * a failure in K3s's own log file (Rancher ≥ v2.5.10) is still detected.
//!

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sim::{logs, start_sim, state, tls_snapshot};
use common::*;
use serde_json::Value;

const HEALTHY: &str = "Rancher startup complete";

/// Waits until the logs of the *current* run (after its last `is starting` line) hold `needle`.
fn wait_current(name: &str, needle: &str) {
    wait_for(30, needle, || {
        logs(name)
            .rsplit("is starting")
            .next()
            .unwrap_or("")
            .contains(needle)
    });
}

/// `repair --container NAME -o json` with `extra`; (exit code, report, stderr).
fn repair(name: &str, backup: Option<&Path>, timeout: u32, extra: &[&str]) -> (i32, Value, String) {
    let timeout = timeout.to_string();
    let mut a = vec![
        "repair",
        "--container",
        name,
        "--settle",
        "2",
        "--timeout",
        &timeout,
        "--output",
        "json",
    ];
    if let Some(b) = backup {
        a.push("--backup-dir");
        a.push(b.to_str().unwrap());
    }
    a.extend_from_slice(extra);
    let o = run_bin(&a);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v, stderr(&o))
}

/// Prints `line` as if PID 1 (Rancher) had: it lands in `docker logs`.
fn inject(name: &str, line: &str) {
    docker(&[
        "exec",
        name,
        "sh",
        "-c",
        "printf '%s\\n' \"$1\" > /proc/1/fd/1",
        "sh",
        line,
    ]);
}

#[derive(serde::Deserialize)]
struct Record {
    class: String,
    source: String,
    line: String,
}

fn corpus() -> Vec<Record> {
    include_str!("data/log_corpus.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ------------------------------------------------------------------ passes on branch diag

/// rancher/rancher issue 9's first complaint: any x509 line anywhere made a healthy Rancher
/// "urgent". With the simulated noise (downstream cluster, agent, catalog, Helm repo, auth,
/// webhook, :443 handshakes), `repair` leaves it alone: no restart, no write.
#[test]
fn noisy_healthy_rancher_gets_no_restart_from_repair() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_NOISE=1"], &[]);
    wait_current(&sim.name, HEALTHY);
    // A whole round of noise (10 lines, 0.5 s apart).
    for needle in [
        "CatalogController",
        "failed calling webhook \"rancher.cattle.io\"",
        "http: TLS handshake error from 127.0.0.1",
        "LDAP Result Code 200",
    ] {
        wait_current(&sim.name, needle);
    }
    let before_state = state(&sim.name);
    let before = tls_snapshot(&sim.name);
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("b");
    let (code, v, err) = repair(&sim.name, Some(&backups), 60, &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "healthy", "{}", v["reasons"]);
    assert_eq!(v["restarts"], 0);
    assert!(
        v["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("log signatures: []"),
        "{}",
        v["steps"]
    );
    assert_eq!(state(&sim.name), before_state, "no restart");
    assert_eq!(tls_snapshot(&sim.name), before);
    assert!(!backups.exists(), "no write at all");
}

/// `watch` `running` on the host.
struct Watch {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Watch {
    fn start(dir: &Path, args: &[&str]) -> Watch {
        let addr_file = dir.join("addr");
        let log = dir.join("watch.log");
        let mut cmd = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("CERT_GUARD_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["watch", "--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut addr = String::new();
        wait_for(10, "the address file", || {
            addr = std::fs::read_to_string(&addr_file)
                .unwrap_or_default()
                .trim()
                .to_string();
            !addr.is_empty()
        });
        Watch { child, addr, log }
    }

    fn status(&self) -> Value {
        http_get(&self.addr, "/status")
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Before the classifier, the watch loop restarted a noisy healthy Rancher about 12 times a
/// day. Over several minutes (`RCG_DIAG_WATCH_SECS`, default 180) of checks every 5 s with a
/// 5 s cooldown, it must not restart it once.
#[test]
fn noisy_healthy_rancher_gets_no_restart_from_watch() {
    if !docker_available() {
        return;
    }
    let secs: u64 = std::env::var("RCG_DIAG_WATCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let sim = start_sim(&["SIM_NOISE=1"], &[]);
    wait_current(&sim.name, HEALTHY);
    wait_current(&sim.name, "CatalogController");
    let before_state = state(&sim.name);
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let w = Watch::start(
        dir.path(),
        &[
            "--container",
            &sim.name,
            "--backup-dir",
            backups.to_str().unwrap(),
            "--interval",
            "5",
            "--cooldown",
            "5",
            "--settle",
            "2",
            "--timeout",
            "60",
        ],
    );
    let t0 = Instant::now();
    let mut checks = std::collections::BTreeSet::new();
    while t0.elapsed() < Duration::from_secs(secs) {
        let st = w.status();
        let t = &st["targets"][&sim.name];
        if let Some(c) = t["last_check"].as_str() {
            checks.insert(c.to_string());
        }
        assert_eq!(
            state(&sim.name),
            before_state,
            "watch restarted a healthy Rancher after {:?}: {t}\n{}",
            t0.elapsed(),
            std::fs::read_to_string(&w.log).unwrap_or_default()
        );
        if !t.is_null() {
            assert_eq!(t["reasons"], Value::Array(vec![]), "{t}");
            assert!(t["last_repair"].is_null(), "{t}");
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    assert!(
        checks.len() as u64 >= secs / 10,
        "only {} distinct checks in {secs}s: {checks:?}",
        checks.len()
    );
    assert!(
        std::fs::read_dir(&backups)
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "a backup was written"
    );
}

/// Each real local-K3s line of the corpus, printed by a healthy simulated Rancher, makes
/// `repair` decide to act (a dry run shows the plan, exit 1: only the logs call for it). One
/// of them is followed through a real repair. All the other corpus lines together (downstream
/// clusters, agents, catalogs, webhook, handshakes, boot noise, `k3s exited with` alone) leave
/// it healthy.
#[test]
fn each_real_local_k3s_line_leads_to_a_repair_and_the_rest_does_not() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&[], &[]);
    wait_current(&sim.name, HEALTHY);
    let records = corpus();

    let others: Vec<&Record> = records
        .iter()
        .filter(|r| !r.class.starts_with("local_k3s"))
        .collect();
    for r in &others {
        inject(&sim.name, &r.line);
    }
    wait_current(&sim.name, "Failed to communicate with API server");
    let (code, v, err) = repair(&sim.name, None, 60, &["--dry-run"]);
    assert_eq!(
        (code, v["result"].as_str()),
        (0, Some("healthy")),
        "{} other lines: {}\n{err}",
        others.len(),
        v["reasons"]
    );

    let local: Vec<&Record> = records
        .iter()
        .filter(|r| r.class.starts_with("local_k3s"))
        .collect();
    assert!(local.len() >= 20);
    for r in &local {
        docker(&["restart", "-t", "2", &sim.name]);
        wait_current(&sim.name, HEALTHY);
        inject(&sim.name, &r.line);
        let (code, v, err) = repair(&sim.name, None, 60, &["--dry-run"]);
        assert_eq!(
            (code, v["result"].as_str()),
            (1, Some("dry_run")),
            "{} ({}): {}\n{err}",
            r.class,
            r.source,
            r.line
        );
        let reasons = v["reasons"].to_string();
        assert!(reasons.contains("embedded K3s"), "{reasons}");
    }

    // Followed through: the aged :6443 certificate line of k3s-io/k3s#3144.
    docker(&["restart", "-t", "2", &sim.name]);
    wait_current(&sim.name, HEALTHY);
    inject(&sim.name, "2021/04/04 09:04:37 [INFO] Waiting for server to become available: Get \"https://127.0.0.1:6443/version?timeout=15m0s\": x509: certificate has expired or is not yet valid: current time 2021-04-04T09:04:37Z is after 2021-04-03T12:53:59Z");
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, Some(backups.path()), 120, &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(v["restarts"], 1);
}

// ------------------------------------------------------------------ need the integration

/// A tree minted 30 days in the future (the host's clock was ahead at first boot, or is
/// behind now: k3s-io/k3s#6152): `repair` refuses, names the clock, and changes nothing.
#[test]
fn clock_skew_is_refused_and_nothing_changes() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_CLOCK_SKEW_DAYS=30", "SIM_ERA=v1.19"], &[]);
    wait_current(&sim.name, " is before ");
    let before_state = state(&sim.name);
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, Some(backups.path()), 30, &[]);
    assert_eq!(v["result"], "refused", "{v}\n{err}");
    assert_eq!(code, 4);
    let diagnosis = v["diagnosis"].as_str().unwrap_or("");
    assert!(diagnosis.contains("clock"), "{diagnosis}");
    assert!(diagnosis.contains("nothing was changed"), "{diagnosis}");
    assert_eq!(v["restarts"], 0);
    assert_eq!(state(&sim.name), before_state, "no restart");
    assert_eq!(tls_snapshot(&sim.name), before, "no file changed");
}

/// K3s does not bring `client-admin.crt` back after the wipe (`SIM_NO_REGEN`): the repair
/// must not report `repaired`; it fails (exit 5) with a diagnosis naming the file.
#[test]
fn a_leaf_that_does_not_come_back_fails_the_repair_naming_it() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20", "SIM_NO_REGEN=client-admin.crt"], &[]);
    wait_current(&sim.name, HEALTHY);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, Some(backups.path()), 60, &[]);
    assert!(
        !tls_snapshot(&sim.name).contains_key("client-admin.crt"),
        "the sim should have left it missing"
    );
    assert_eq!(v["result"], "failed", "{v}\n{err}");
    assert_eq!(code, 5);
    let diagnosis = v["diagnosis"].as_str().unwrap_or("");
    assert!(diagnosis.contains("client-admin.crt"), "{diagnosis}");
    assert_eq!(state(&sim.name).0, "running");
}

/// With `--log-driver none` Docker cannot return the logs. The report says so (in the reasons
/// or the steps: "logs … unreadable / could not be read"), and the decision rests on the
/// certificates alone: due leaves still make a (dry-run) repair; a healthy tree stays healthy.
#[test]
fn unreadable_logs_are_said_and_the_certificates_decide() {
    if !docker_available() {
        return;
    }
    let says_unreadable = |v: &Value| {
        let t = v.to_string().to_lowercase();
        t.contains("logs")
            && [
                "unreadable",
                "could not be read",
                "cannot be read",
                "not readable",
            ]
            .iter()
            .any(|w| t.contains(w))
    };
    let due = start_sim(&["SIM_LEAF_DAYS=20"], &["--log-driver", "none"]);
    let healthy = start_sim(&[], &["--log-driver", "none"]);
    for s in [&due, &healthy] {
        wait_for(30, "pong", || {
            docker_raw(&["exec", &s.name, "wget", "-qO-", "http://127.0.0.1:80/ping"])
                .stdout
                .starts_with(b"pong")
        });
    }
    let (code, v, err) = repair(&due.name, None, 60, &["--dry-run"]);
    assert_eq!(
        (code, v["result"].as_str()),
        (1, Some("dry_run")),
        "{v}\n{err}"
    );
    assert!(
        v["reasons"].to_string().contains("client-admin.crt"),
        "{}",
        v["reasons"]
    );
    assert!(
        says_unreadable(&v),
        "the report does not say the logs were unreadable: {v}"
    );

    let (code, v, err) = repair(&healthy.name, None, 60, &["--dry-run"]);
    assert_eq!(
        (code, v["result"].as_str()),
        (0, Some("healthy")),
        "{v}\n{err}"
    );
    assert!(
        says_unreadable(&v),
        "the report does not say the logs were unreadable: {v}"
    );
}

/// Rancher ≥ v2.5.10 writes K3s's log to `/var/lib/rancher/k3s.log` (`SIM_K3S_LOG=file`):
/// `docker logs` shows only Rancher's lines. A K3s failure written there — the kubeconfig
/// line of k3s-io/k3s#2024 — must still make `repair` act.
#[test]
fn a_failure_in_the_k3s_log_file_is_still_detected() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_K3S_LOG=file"], &[]);
    wait_current(&sim.name, HEALTHY);
    assert!(!logs(&sim.name).contains("generated certificate"));
    let file = docker(&["exec", &sim.name, "cat", "/var/lib/rancher/k3s.log"]);
    assert!(
        file.contains("generated self-signed CA certificate"),
        "{file}"
    );

    let (code, v, _) = repair(&sim.name, None, 60, &["--dry-run"]);
    assert_eq!((code, v["result"].as_str()), (0, Some("healthy")), "{v}");

    docker(&[
        "exec",
        &sim.name,
        "sh",
        "-c",
        "printf '%s [ERROR] %s\\n' \"$(date -u '+%Y/%m/%d %H:%M:%S')\" \"$1\" >> /var/lib/rancher/k3s.log",
        "sh",
        "level=error msg=\"Failed to generate kubeconfig: server https://127.0.0.1:6443/cacerts is not trusted: Get https://127.0.0.1:6443/cacerts: x509: certificate signed by unknown authority\"",
    ]);
    let (code, v, err) = repair(&sim.name, None, 60, &["--dry-run"]);
    assert_eq!(
        (code, v["result"].as_str()),
        (1, Some("dry_run")),
        "the K3s log file was not read: {v}\n{err}"
    );
}
