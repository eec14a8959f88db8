//! The simulated Rancher in Docker, and the binary driven against it: shared by the end-to-end
//! tests of `repair`, of the fault suite and of the diagnosis.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use super::*;

pub const TLS: &str = "/var/lib/rancher/k3s/server/tls";

pub struct Sim {
    pub name: String,
    pub _guard: ContainerGuard,
}

pub fn start_sim(env: &[&str], extra: &[&str]) -> Sim {
    let name = unique("sim");
    let guard = ContainerGuard(name.clone());
    run_sim(&name, env, extra);
    Sim {
        name,
        _guard: guard,
    }
}

/// A simulated Rancher under a given name (the caller removes it).
pub fn start_sim_named(name: &str, env: &[&str]) -> String {
    run_sim(name, env, &[]);
    name.to_string()
}

fn run_sim(name: &str, env: &[&str], extra: &[&str]) {
    assert!(
        docker_raw(&["image", "inspect", &sim_image()])
            .status
            .success(),
        "{} missing: run `bash scripts/build-sim-image.sh` (scripts/test.sh does)",
        sim_image()
    );
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--network".into(),
        "none".into(),
        "--label".into(),
        TEST_LABEL.into(),
        "--name".into(),
        name.to_string(),
        "-e".into(),
        "SIM_BOOT_SECONDS=0.3".into(),
    ];
    for e in env {
        args.push("-e".into());
        args.push(e.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(sim_image());
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&a);
}

pub fn logs(name: &str) -> String {
    let o = docker_raw(&["logs", name]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn wait_log(name: &str, needle: &str) {
    wait_for(30, needle, || logs(name).contains(needle));
}

pub fn ping(name: &str) -> bool {
    let o = docker_raw(&["exec", name, "wget", "-qO-", "http://127.0.0.1:80/ping"]);
    o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "pong"
}

/// Every file of the container's TLS tree (works stopped too).
pub fn tls_snapshot(name: &str) -> BTreeMap<String, Vec<u8>> {
    let o = docker_raw(&["cp", &format!("{name}:{TLS}"), "-"]);
    assert!(
        o.status.success(),
        "docker cp: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(&o.stdout[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if !e.header().entry_type().is_file() {
            continue;
        }
        let p = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let rel = p.split_once('/').map(|(_, r)| r.to_string()).unwrap_or(p);
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        out.insert(rel, buf);
    }
    out
}

pub fn protected(snap: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    snap.iter()
        .filter(|(p, _)| p.contains("-ca.") || p.ends_with("service.key"))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

pub fn state(name: &str) -> (String, String, String) {
    let s = docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.StartedAt}} {{.RestartCount}}",
        name,
    ]);
    let mut it = s.split(' ');
    (
        it.next().unwrap().into(),
        it.next().unwrap().into(),
        it.next().unwrap().into(),
    )
}

pub fn repair(name: &str, backup: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut a = vec![
        "repair",
        "--container",
        name,
        "--backup-dir",
        backup.to_str().unwrap(),
        "--settle",
        "2",
        "--timeout",
        "120",
        "--output",
        "json",
    ];
    a.extend_from_slice(extra);
    let o = run_bin(&a);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v, stderr(&o))
}

/// Leaves and the serving certificate are valid for at least 364 more days.
pub fn assert_fresh(name: &str) {
    let o = run_bin(&["check", "--container", name, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut leaves = 0;
    for c in v["certificates"].as_array().unwrap() {
        if c["kind"] == "leaf" || c["kind"] == "serving" {
            assert!(c["seconds_left"].as_i64().unwrap() >= 364 * 86_400, "{c}");
            leaves += 1;
        }
    }
    assert!(leaves >= 13, "only {leaves} leaves");
}

pub fn step_names(v: &Value) -> Vec<String> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}
