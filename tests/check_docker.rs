//! `check --container` against a real Docker engine: running, crash-looping and stopped
//! containers, a missing container, a missing path; container and dir give one report.

mod common;

use common::fixtures::*;
use common::*;
use serde_json::Value;

/// The report without what legitimately differs between two reads of one tree.
fn normalized(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("source");
    v.as_object_mut().unwrap().remove("checked_at");
    for c in v["certificates"].as_array_mut().unwrap() {
        c.as_object_mut().unwrap().remove("seconds_left");
    }
    v
}

fn check(args: &[&str]) -> (i32, Value) {
    let mut a = vec!["check", "--output", "json"];
    a.extend_from_slice(args);
    let o = run_bin(&a);
    let v = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {} {}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap(), v)
}

#[test]
fn container_running_crashlooping_and_stopped_match_the_directory() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_k3s_tree(dir.path(), &TreeSpec::days_left(now(), 20));
    // Hostile entries travel through the archive too.
    std::fs::write(dir.path().join("garbage.crt"), b"garbage").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape.crt")).unwrap();
    let image = build_tree_image(dir.path());
    // build_tree_image copies regular files only; recreate the symlink in the image's tree
    // view for the directory read by removing it from the dir (parity of what both hold).
    std::fs::remove_file(dir.path().join("escape.crt")).unwrap();
    let (dir_code, dir_report) = check(&["--dir", dir.path().to_str().unwrap()]);
    assert_eq!(dir_code, 1);
    let expected = normalized(dir_report);

    // Running.
    let running = ContainerGuard(unique("running"));
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "--name",
        &running.0,
        &image.0,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    ]);
    let (code, v) = check(&["--container", &running.0]);
    assert_eq!(code, 1);
    assert_eq!(
        normalized(v),
        expected,
        "container report differs from dir report"
    );

    // Crash-looping under a restart policy.
    let looping = ContainerGuard(unique("loop"));
    docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "--label",
        TEST_LABEL,
        "--name",
        &looping.0,
        &image.0,
        "sh",
        "-c",
        "sleep 0.3; exit 1",
    ]);
    wait_for(30, "a restart", || {
        docker(&["inspect", "-f", "{{.RestartCount}}", &looping.0])
            .parse::<i64>()
            .unwrap_or(0)
            >= 2
    });
    let (code, v) = check(&["--container", &looping.0]);
    assert_eq!(code, 1);
    assert_eq!(normalized(v), expected);

    // Stopped (never started).
    let stopped = ContainerGuard(unique("stopped"));
    docker(&[
        "create",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "--name",
        &stopped.0,
        &image.0,
    ]);
    assert_eq!(container_status(&stopped.0), "created");
    let (code, v) = check(&["--container", &stopped.0]);
    assert_eq!(code, 1);
    assert_eq!(normalized(v), expected);
}

#[test]
fn container_symlinks_are_reported_not_followed() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = ca("k3s-server-ca@1", now() - DAY);
    std::fs::write(dir.path().join("server-ca.crt"), &c.pem).unwrap();
    let image = build_tree_image(dir.path());
    let ct = ContainerGuard(unique("symlink"));
    docker(&[
        "run", "-d", "--network", "none", "--label", TEST_LABEL, "--name", &ct.0, &image.0,
        "sh", "-c", "ln -s /etc/passwd /var/lib/rancher/k3s/server/tls/escape.crt; trap 'exit 0' TERM; while true; do sleep 1; done",
    ]);
    wait_for(10, "the symlink", || {
        docker_raw(&[
            "exec",
            &ct.0,
            "test",
            "-L",
            "/var/lib/rancher/k3s/server/tls/escape.crt",
        ])
        .status
        .success()
    });
    let (code, v) = check(&["--container", &ct.0]);
    assert_eq!(code, 1);
    assert_eq!(v["problems"][0]["path"], "escape.crt");
    assert_eq!(v["problems"][0]["reason"], "not_regular_file");
    assert_eq!(v["certificates"].as_array().unwrap().len(), 1);
}

#[test]
fn missing_container_and_missing_path_exit_3_and_say_what_to_do() {
    if !docker_available() {
        return;
    }
    let name = unique("absent");
    let o = run_bin(&["check", "--container", &name]);
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("container \"{name}\" not found")),
        "{err}"
    );
    assert!(err.contains("running containers:"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.crt"), b"").unwrap();
    let image = build_tree_image(dir.path());
    let ct = ContainerGuard(unique("nopath"));
    docker(&[
        "create",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "--name",
        &ct.0,
        &image.0,
    ]);
    let o = run_bin(&[
        "check",
        "--container",
        &ct.0,
        "--tls-path",
        "/no/such/tls",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("/no/such/tls"), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "unknown");
}

#[test]
fn unreachable_daemon_names_the_host_it_tried() {
    let o = std::process::Command::new(bin())
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(["check", "--container", "rancher"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = stderr(&o);
    assert!(err.contains("unix:///nonexistent/docker.sock"), "{err}");
    let o = std::process::Command::new(bin())
        .env("DOCKER_HOST", "tcp://127.0.0.1:1")
        .args(["check", "--container", "rancher"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("tcp://127.0.0.1:1"), "{}", stderr(&o));
}

/// The era the image carries (`ENV CATTLE_SERVER_VERSION` / `CATTLE_K3S_VERSION` in
/// rancher/rancher's package/Dockerfile) is reported by `check` and by `repair`.
#[test]
fn the_rancher_and_k3s_versions_are_reported() {
    if !docker_available() {
        return;
    }
    let sim = common::sim::start_sim(
        &[
            "CATTLE_SERVER_VERSION=v2.5.7",
            "CATTLE_K3S_VERSION=v1.18.8+k3s1",
        ],
        &[],
    );
    common::sim::wait_log(&sim.name, "Rancher startup complete");
    let (code, v) = check(&["--container", &sim.name]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["era"]["rancher"], "v2.5.7", "{v}");
    assert_eq!(v["era"]["k3s"], "v1.18.8+k3s1", "{v}");
    let o = run_bin(&[
        "repair",
        "--container",
        &sim.name,
        "--dry-run",
        "-o",
        "json",
    ]);
    let r: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["era"]["k3s"], "v1.18.8+k3s1", "{r}");
}
