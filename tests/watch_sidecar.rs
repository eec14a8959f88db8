//! The product image's `watch` beside a simulated Rancher whose certificates are due: it
//! renews them on its own, says so on /metrics and /status, becomes healthy under its own
//! HEALTHCHECK, and stops gracefully.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn status_json(addr: &str) -> Option<serde_json::Value> {
    let (code, body) = http_get(addr, "/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

#[test]
fn image_watch_renews_a_due_rancher_without_help() {
    if !docker_available() {
        return;
    }
    ensure_image(&sim_image(), "build-sim-image.sh");
    ensure_image(&tool_image(), "build-image.sh");

    let rancher = unique("sidecar-rancher");
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
    let backups = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let guard = unique("sidecar");
    let _g = ContainerGuard(guard.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &guard,
        "--label",
        TEST_LABEL,
        "--network",
        "host",
        "--health-interval",
        "2s",
        "--health-start-period",
        "2s",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/backups", backups.path().display()),
        &tool_image(),
        "watch",
        "--container",
        &rancher,
        "--listen",
        &addr,
        "--backup-dir",
        "/backups",
        "--settle",
        "5",
    ]);

    // It repairs on its own.
    wait_for(180, "the sidecar to repair the simulated Rancher", || {
        status_json(&addr)
            .and_then(|s| {
                s["targets"][&rancher]["last_repair"]["result"]
                    .as_str()
                    .map(String::from)
            })
            .is_some_and(|r| r == "repaired")
    });
    wait_for(30, "a fresh look after the repair", || {
        status_json(&addr).is_some_and(|s| {
            s["targets"][&rancher]["status"] == "ok"
                && s["targets"][&rancher]["reasons"] == serde_json::json!([])
        })
    });

    // Probes.
    assert_eq!(http_get(&addr, "/healthz").unwrap(), (200, "ok\n".into()));
    assert_eq!(http_get(&addr, "/readyz").unwrap(), (200, "ready\n".into()));
    assert_eq!(http_get(&addr, "/nope").unwrap().0, 404);
    assert_eq!(
        http_request(&addr, "POST", "/v1/repair?container=x", &[])
            .unwrap()
            .0,
        404,
        "no token: no mutating API"
    );

    // Metrics, compatible with x509-certificate-exporter, plus ours.
    let (code, metrics) = http_get(&addr, "/metrics").unwrap();
    assert_eq!(code, 200);
    let leaf = metrics
        .lines()
        .find(|l| {
            l.starts_with("x509_cert_not_after{") && l.contains("filename=\"client-admin.crt\"")
        })
        .unwrap_or_else(|| panic!("no x509_cert_not_after for client-admin.crt:\n{metrics}"));
    for label in [
        "filepath=\"/var/lib/rancher/k3s/server/tls/client-admin.crt\"",
        "subject_CN=\"system:admin\"",
        "issuer_CN=\"k3s-client-ca@",
        "serial_number=\"",
        &format!("container=\"{rancher}\""),
    ] {
        assert!(leaf.contains(label), "{label} missing in {leaf}");
    }
    let not_after: i64 = leaf.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        not_after > now() + 300 * 86_400,
        "renewed for a year: {leaf}"
    );
    for line in [
        format!(
            "rancher_cert_guard_repairs_total{{container=\"{rancher}\",result=\"repaired\"}} 1"
        ),
        format!("rancher_cert_guard_target_up{{container=\"{rancher}\"}} 1"),
        "rancher_cert_guard_build_info{version=\"".to_string(),
        "x509_cert_expired{filepath=\"/var/lib/rancher/k3s/server/tls/client-admin.crt\""
            .to_string(),
        format!("rancher_cert_guard_next_action_timestamp_seconds{{container=\"{rancher}\"}} "),
        format!("rancher_cert_guard_last_success_timestamp_seconds{{container=\"{rancher}\"}} "),
    ] {
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    // Without an Accept asking for OpenMetrics: the classic text format (what curl and
    // `promtool check metrics` read); Prometheus asks for OpenMetrics and gets it.
    assert!(!metrics.lines().any(|l| l == "# EOF"));
    let (_, openmetrics) = http_request(
        &addr,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .unwrap();
    assert!(openmetrics.trim_end().ends_with("# EOF"));

    // Status: inventory without key material, next action, backup named.
    let (_, status) = http_get(&addr, "/status").unwrap();
    assert!(!status.contains("PRIVATE KEY"));
    let s: serde_json::Value = serde_json::from_str(&status).unwrap();
    let t = &s["targets"][&rancher];
    assert_eq!(s["ready"], true);
    assert!(t["next_action"]["at"].is_string());
    assert!(t["inventory"]["certificates"].as_array().unwrap().len() > 10);
    let backup = t["last_repair"]["backup"].as_str().unwrap();
    let file = backups.path().join(backup.trim_start_matches("/backups/"));
    assert!(
        file.exists(),
        "backup {backup} on the host as {}",
        file.display()
    );

    // The sim's certificates are fresh, seen from outside.
    let check = run_bin(&["check", "--container", &rancher, "-o", "json"]);
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));

    // Its own HEALTHCHECK (the `healthcheck` subcommand, through the address file).
    wait_for(30, "the sidecar to be healthy", || {
        docker_raw(&["inspect", "-f", "{{.State.Health.Status}}", &guard])
            .stdout
            .starts_with(b"healthy")
    });

    // Idle footprint (reported, not asserted).
    let mem = docker(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &guard]);
    eprintln!("sidecar idle memory: {mem}");

    // Graceful stop: well within Docker's 10 s, exit 0, Rancher still running.
    let t0 = Instant::now();
    docker(&["stop", "-t", "10", &guard]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(9), "stop took {took:?}");
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &guard]),
        "0"
    );
    assert_eq!(container_status(&rancher), "running");
}

#[test]
fn image_metadata() {
    if !docker_available() {
        return;
    }
    ensure_image(&tool_image(), "build-image.sh");
    let cfg = docker(&["image", "inspect", "-f", "{{json .Config}}", &tool_image()]);
    let c: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(c["Entrypoint"], serde_json::json!(["/rancher-cert-guard"]));
    assert_eq!(c["Cmd"], serde_json::json!(["watch"]));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/rancher-cert-guard", "healthcheck"])
    );
    assert_eq!(
        c["Labels"]["org.opencontainers.image.title"],
        "rancher-cert-guard"
    );
    assert!(c["Labels"]["org.opencontainers.image.version"].is_string());
    let size: u64 = docker(&["image", "inspect", "-f", "{{.Size}}", &tool_image()])
        .parse()
        .unwrap();
    eprintln!("image size: {size} bytes");
    assert!(size <= 8_000_000, "image is {size} bytes, over 8 MB");
}
