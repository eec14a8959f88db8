//! The compose files: valid for Debian's docker-compose (v1), and the main stack comes up on
//! the simulated Rancher with the sidecar repairing it.
//!
//! The stack runs unchanged except for a test override: Rancher with `network_mode: none`
//! and the sidecar with `network_mode: none` (published ports are then ignored: nothing binds
//! on the host; the test reads the sidecar's HTTP side through `docker exec … healthcheck
//! --path … --print`), no `privileged` (the simulation needs none; nested engines refuse it),
//! a label scope unique to the project, and labels for cleanup.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn compose_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("compose")
}

fn compose(
    cli: &str,
    project: &str,
    files: &[&Path],
    env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = Command::new(cli);
    cmd.arg("-p").arg(project);
    for f in files {
        cmd.arg("-f").arg(f);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("DOCKER_BUILDKIT", "0");
    cmd.args(args).output().expect("run docker-compose")
}

#[test]
fn compose_files_are_valid() {
    let Some(cli) = compose_cli() else { return };
    for f in [
        "docker-compose.yml",
        "repair-once.yml",
        "init-container.yml",
        "socket-proxy.yml",
    ] {
        let path = compose_dir().join(f);
        let o = compose(cli, "rcgvalidate", &[&path], &[], &["config", "-q"]);
        assert!(
            o.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // RANCHER_IMAGE is honoured.
    let path = compose_dir().join("docker-compose.yml");
    let o = compose(
        cli,
        "rcgvalidate",
        &[&path],
        &[("RANCHER_IMAGE", "example/rancher:x")],
        &["config"],
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("image: example/rancher:x"));
}

struct Down<'a> {
    cli: &'a str,
    project: String,
    files: Vec<PathBuf>,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let files: Vec<&Path> = self.files.iter().map(PathBuf::as_path).collect();
        let o = compose(
            self.cli,
            &self.project,
            &files,
            &[],
            &["down", "-v", "--timeout", "10"],
        );
        if !o.status.success() {
            eprintln!("compose down: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
}

#[test]
fn compose_stack_repairs_the_simulated_rancher() {
    if !docker_available() {
        return;
    }
    let Some(cli) = compose_cli() else { return };
    ensure_image(&sim_image(), "build-sim-image.sh");
    ensure_image(&tool_image(), "build-image.sh");

    let project = unique("stack").replace('-', "");
    let dir = tempfile::tempdir().unwrap();
    let override_file = dir.path().join("test.override.yml");
    std::fs::write(
        &override_file,
        format!(
            r#"services:
  rancher:
    network_mode: none
    # The simulation needs no privileges (and nested engines may refuse them).
    privileged: false
    environment:
      SIM_LEAF_DAYS: "20"
      SIM_BOOT_SECONDS: "1"
    labels:
      rancher-cert-guard.test: "true"
  cert-guard:
    # Its own empty network namespace (published ports are then ignored); the test reads
    # /status and /metrics with `docker exec … healthcheck --path … --print`.
    network_mode: none
    environment:
      CERT_GUARD_LISTEN: "127.0.0.1:9795"
      CERT_GUARD_LABELS: "rancher-cert-guard.enable=true,com.docker.compose.project={project}"
      CERT_GUARD_SETTLE: "5"
    labels:
      rancher-cert-guard.test: "true"
    healthcheck:
      interval: 2s
      start_period: 2s
volumes:
  rancher-data:
    labels:
      rancher-cert-guard.test: "true"
  cert-guard-backups:
    labels:
      rancher-cert-guard.test: "true"
"#
        ),
    )
    .unwrap();
    let main = compose_dir().join("docker-compose.yml");
    let files = [main.as_path(), override_file.as_path()];
    let _down = Down {
        cli,
        project: project.clone(),
        files: files.iter().map(|p| p.to_path_buf()).collect(),
    };
    let (sim, tool) = (sim_image(), tool_image());
    let env = [
        ("RANCHER_IMAGE", sim.as_str()),
        ("CERT_GUARD_IMAGE", tool.as_str()),
    ];
    let up = compose(cli, &project, &files, &env, &["up", "-d"]);
    assert!(
        up.status.success(),
        "up: {}",
        String::from_utf8_lossy(&up.stderr)
    );

    let guard = || {
        docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--filter",
            "label=com.docker.compose.service=cert-guard",
        ])
    };
    let get = |path: &str| -> Option<String> {
        let o = docker_raw(&[
            "exec",
            &guard(),
            "/rancher-cert-guard",
            "healthcheck",
            "--path",
            path,
            "--print",
        ]);
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let repaired = |s: &serde_json::Value| {
        s["targets"].as_object().is_some_and(|t| {
            t.values()
                .any(|t| t["last_repair"]["result"] == "repaired" && t["status"] == "ok")
        })
    };
    wait_for(180, "the sidecar to repair the simulated Rancher", || {
        get("/status")
            .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
            .is_some_and(|s| repaired(&s))
    });
    let metrics = get("/metrics").unwrap();
    assert!(metrics.contains("x509_cert_not_after{"), "{metrics}");
    assert!(
        metrics.contains(&format!("container=\"{project}_rancher_1\""))
            || metrics.contains(&format!("container=\"{project}-rancher-1\"")),
        "{metrics}"
    );
    let guard = guard();
    wait_for(30, "the sidecar to be healthy", || {
        docker_raw(&["inspect", "-f", "{{.State.Health.Status}}", &guard])
            .stdout
            .starts_with(b"healthy")
    });
}

/// "On a brand-new volume, where `/var/lib/rancher/k3s` does not exist yet, [`repair --dir`]
/// exits 3, so with `compose/init-container.yml` (`service_completed_successfully`) Rancher
/// never starts on a fresh install." The init-container stack, unchanged but for the test
/// override, must start the (simulated) Rancher from an empty volume.
#[test]
fn init_container_stack_starts_rancher_from_an_empty_volume() {
    if !docker_available() {
        return;
    }
    let Some(cli) = compose_cli() else { return };
    ensure_image(&sim_image(), "build-sim-image.sh");
    ensure_image(&tool_image(), "build-image.sh");

    let project = unique("init").replace('-', "");
    let dir = tempfile::tempdir().unwrap();
    let override_file = dir.path().join("test.override.yml");
    std::fs::write(
        &override_file,
        r#"services:
  cert-guard-init:
    labels:
      rancher-cert-guard.test: "true"
  rancher:
    network_mode: none
    privileged: false
    environment:
      SIM_BOOT_SECONDS: "1"
    labels:
      rancher-cert-guard.test: "true"
volumes:
  rancher-data:
    labels:
      rancher-cert-guard.test: "true"
  cert-guard-backups:
    labels:
      rancher-cert-guard.test: "true"
"#,
    )
    .unwrap();
    let main = compose_dir().join("init-container.yml");
    let files = [main.as_path(), override_file.as_path()];
    let _down = Down {
        cli,
        project: project.clone(),
        files: files.iter().map(|p| p.to_path_buf()).collect(),
    };
    let (sim, tool) = (sim_image(), tool_image());
    let env = [
        ("RANCHER_IMAGE", sim.as_str()),
        ("CERT_GUARD_IMAGE", tool.as_str()),
    ];
    let up = compose(cli, &project, &files, &env, &["up", "-d"]);
    let service = |name: &str| {
        docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--filter",
            &format!("label=com.docker.compose.service={name}"),
        ])
    };
    let init = service("cert-guard-init");
    let init_logs = String::from_utf8_lossy(&docker_raw(&["logs", &init]).stdout).into_owned()
        + &String::from_utf8_lossy(&docker_raw(&["logs", &init]).stderr);
    assert!(
        up.status.success(),
        "up: {}\ninit container: {init_logs}",
        String::from_utf8_lossy(&up.stderr)
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.ExitCode}}", &init]),
        "0",
        "{init_logs}"
    );
    assert!(init_logs.contains("healthy"), "{init_logs}");
    assert!(init_logs.contains("first start"), "{init_logs}");
    // The backups volume is private from birth: it takes the mode of the image's /backups.
    let backups = docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        &format!("name={project}_cert-guard-backups"),
    ]);
    let o = docker_raw(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "-v",
        &format!("{backups}:/b"),
        "--entrypoint",
        "/bin/busybox",
        &sim,
        "stat",
        "-c",
        "%a",
        "/b",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "700",
        "{backups}"
    );
    let rancher = service("rancher");
    assert!(!rancher.is_empty(), "Rancher was never created");
    wait_for(60, "the simulated Rancher to answer pong", || {
        let o = docker_raw(&["exec", &rancher, "wget", "-qO-", "http://127.0.0.1:80/ping"]);
        o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "pong"
    });
}
