//! End-to-end `repair` on a real Docker engine, each scenario from a fresh simulated Rancher
//! (`rancher-cert-guard-sim:local`, built by scripts/build-sim-image.sh). Outcomes asserted:
//! CA files and service.key byte-identical, leaves valid >= 364 more days, `/ping` -> `pong`,
//! the backup archive restores the old tree, nothing changed when refusing or dry-running.

mod common;

use std::path::Path;

use common::sim::*;
use common::*;
use serde_json::Value;

#[test]
fn renewal_due_on_a_healthy_container_needs_one_restart_and_the_backup_restores() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(
        v["restarts"], 1,
        "with CA material intact one restart is enough"
    );
    assert!(ping(&sim.name));
    assert_fresh(&sim.name);
    let after = tls_snapshot(&sim.name);
    assert_eq!(
        protected(&after),
        protected(&before),
        "CA files and service.key must be byte-identical"
    );
    assert!(!protected(&before).is_empty());
    let wiped: Vec<&str> = v["wiped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(wiped.contains(&"client-admin.crt") && wiped.contains(&"client-admin.key"));
    assert!(wiped.contains(&"dynamic-cert.json"));
    assert!(wiped
        .iter()
        .all(|w| !w.contains("-ca.") && !w.contains("service")));

    // The archive holds the old tree byte for byte, and the documented restore puts it back.
    let archive = v["backup"].as_str().unwrap().to_string();
    let (_, files) = rancher_cert_guard::repair::backup::read_archive(Path::new(&archive)).unwrap();
    for (p, b) in &before {
        assert_eq!(files.get(&format!("tls/{p}")), Some(b), "{p} in the backup");
    }
    assert!(files.contains_key("k3s.yaml"));
    let restore = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("tar")
        .args(["-xf", &archive, "-C", restore.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    docker(&["stop", &sim.name]);
    docker(&[
        "cp",
        &format!("{}/tls/.", restore.path().display()),
        &format!("{}:{TLS}/", sim.name),
    ]);
    let restored = tls_snapshot(&sim.name);
    for (p, b) in &before {
        assert_eq!(restored.get(p), Some(b), "{p} restored");
    }
}

#[test]
fn expired_leaves_crash_loop_is_repaired() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(
        &["SIM_ERA=v0.8", "SIM_LEAF_DAYS=-5"],
        &["--restart", "unless-stopped"],
    );
    wait_for(30, "a crash loop", || {
        state(&sim.name).2.parse::<i32>().unwrap_or(0) >= 1
    });
    assert!(logs(&sim.name).contains("k3s exited with"));
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(v["before"]["status"], "expired");
    assert_eq!(state(&sim.name).0, "running");
    assert!(ping(&sim.name));
    assert_fresh(&sim.name);
    assert_eq!(protected(&tls_snapshot(&sim.name)), protected(&before));
}

#[test]
fn expired_serving_certificate_alone_is_repaired_file_and_secret_together() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_SERVING_DAYS=-5"], &[]);
    wait_log(
        &sim.name,
        "x509: certificate has expired or is not yet valid",
    );
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    let steps = step_names(&v);
    assert!(steps.contains(&"reset-secret".to_string()), "{steps:?}");
    assert!(ping(&sim.name));
    assert_fresh(&sim.name);
    assert_eq!(protected(&tls_snapshot(&sim.name)), protected(&before));
    // The secret was saved in the backup before it was deleted.
    let (_, files) =
        rancher_cert_guard::repair::backup::read_archive(Path::new(v["backup"].as_str().unwrap()))
            .unwrap();
    assert!(files.contains_key("k3s-serving.secret.json"));
}

#[test]
fn healthy_container_is_left_alone() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&[], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let before_state = state(&sim.name);
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    let (code, v, _) = repair(&sim.name, &dir, &[]);
    assert_eq!(code, 0);
    assert_eq!(v["result"], "healthy");
    assert_eq!(v["restarts"], 0);
    assert_eq!(state(&sim.name), before_state, "no restart happened");
    assert_eq!(tls_snapshot(&sim.name), before);
    assert!(!dir.exists(), "no write at all for a healthy container");
}

#[test]
fn dry_run_changes_nothing_and_exits_like_check() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let before_state = state(&sim.name);
    let before = tls_snapshot(&sim.name);
    // Events have one-second resolution: start counting strictly after the container's start.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t0 = now();
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    let o = run_bin(&[
        "repair",
        "--container",
        &sim.name,
        "--backup-dir",
        dir.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(o.status.code(), Some(1), "renewal due: exit 1 like check");
    let out = stdout(&o);
    assert!(
        out.contains("PLAN")
            && out.contains("delete: client-admin.crt")
            && out.contains("never: CA"),
        "{out}"
    );
    assert!(!out.contains("delete: client-ca.crt") && !out.contains("delete: service.key"));
    assert_eq!(state(&sim.name), before_state);
    assert_eq!(tls_snapshot(&sim.name), before);
    assert!(!dir.exists());
    // Zero mutating Docker calls: no lifecycle or exec event for the container.
    let events = docker(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &(now() + 1).to_string(),
        "--filter",
        &format!("container={}", sim.name),
        "--format",
        "{{.Action}}",
    ]);
    for action in events.lines() {
        assert!(
            !["stop", "start", "kill", "die", "restart", "destroy", "create"].contains(&action)
                && !action.starts_with("exec_"),
            "mutating event {action} during --dry-run"
        );
    }
    // Expired: exit 2.
    let sim2 = start_sim(&["SIM_SERVING_DAYS=-5"], &[]);
    wait_log(&sim2.name, "x509: certificate has expired");
    let o = run_bin(&[
        "repair",
        "--container",
        &sim2.name,
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["result"], "dry_run");
}

/// The seed's manual procedure (`rm -rf .../tls/*.crt`, CAs included, then restart) leaves
/// new CAs and a stale kubeconfig: `x509: certificate signed by unknown authority`.
#[test]
fn aftermath_of_the_manual_procedure_unknown_authority_loop_is_repaired() {
    if !docker_available() {
        return;
    }
    for era in ["SIM_ERA=v1.19", "SIM_ERA=v1.18"] {
        let sim = start_sim(&[era], &[]);
        wait_log(&sim.name, "Rancher startup complete");
        docker(&[
            "exec",
            &sim.name,
            "sh",
            "-c",
            &format!("rm -rf {TLS}/*.crt"),
        ]);
        docker(&["restart", "-t", "5", &sim.name]);
        if era.ends_with("v1.18") {
            // v1.18 keeps serving the old :6443 cert; the loop starts one restart later.
            std::thread::sleep(std::time::Duration::from_secs(1));
            docker(&["restart", "-t", "5", &sim.name]);
        }
        wait_for(30, "the unknown-authority loop", || {
            let l = logs(&sim.name);
            l.rsplit("is starting")
                .next()
                .unwrap_or("")
                .contains("signed by unknown authority")
        });
        let before = tls_snapshot(&sim.name);
        let backups = tempfile::tempdir().unwrap();
        let (code, v, err) = repair(&sim.name, backups.path(), &[]);
        assert_eq!(code, 0, "{era}: {v}\n{err}");
        assert_eq!(v["result"], "repaired");
        assert!(ping(&sim.name));
        assert_fresh(&sim.name);
        assert_eq!(
            protected(&tls_snapshot(&sim.name)),
            protected(&before),
            "{era}"
        );
    }
}

#[test]
fn stopped_container_is_repaired_and_started() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    docker(&["stop", &sim.name]);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(state(&sim.name).0, "running");
    assert!(ping(&sim.name));
    assert_fresh(&sim.name);
}

#[test]
fn impossible_backup_is_refused_and_changes_nothing() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=-5", "SIM_ERA=v0.8"], &[]);
    wait_for(30, "exit", || state(&sim.name).0 == "exited");
    let before_state = state(&sim.name);
    let before = tls_snapshot(&sim.name);
    let file = tempfile::NamedTempFile::new().unwrap();
    // A directory below a regular file can never be created.
    let bad = file.path().join("backups");
    let (code, v, err) = repair(&sim.name, &bad, &[]);
    assert_eq!(code, 4, "{v}");
    assert_eq!(v["result"], "refused");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(state(&sim.name), before_state);
    assert_eq!(tls_snapshot(&sim.name), before);
    // Without any --backup-dir: refused too.
    let o = run_bin(&["repair", "--container", &sim.name]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("--backup-dir"), "{}", stderr(&o));
    assert_eq!(tls_snapshot(&sim.name), before);
}

#[test]
fn dir_mode_wipes_only_what_k3s_regenerates() {
    let dir = tempfile::tempdir().unwrap();
    let exp = common::fixtures::write_k3s_tree(
        dir.path(),
        &common::fixtures::TreeSpec::days_left(now(), -3),
    );
    std::fs::write(
        dir.path().join("python-api.crt"),
        common::fixtures::pem_of(&common::fixtures::v1_cert_der(
            "python-api",
            now() - 400 * 86_400,
            now() - 86_400,
        )),
    )
    .unwrap();
    let read = |p: &str| std::fs::read(dir.path().join(p)).ok();
    let keep: Vec<(String, Vec<u8>)> = exp
        .ca_files
        .iter()
        .chain(
            exp.key_files
                .iter()
                .filter(|k| k.contains("-ca.") || k.contains("service") || k.contains("kubelet")),
        )
        .map(|p| (p.clone(), read(p).unwrap()))
        .collect();
    let backups = tempfile::tempdir().unwrap();
    let o = run_bin(&[
        "repair",
        "--dir",
        dir.path().to_str().unwrap(),
        "--backup-dir",
        backups.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["result"], "repaired");
    for (p, b) in &keep {
        assert_eq!(read(p).as_ref(), Some(b), "{p} must be untouched");
    }
    for leaf in &exp.leaf_files {
        assert!(read(leaf).is_none(), "{leaf} must be wiped");
    }
    assert!(read("dynamic-cert.json").is_none());
    assert!(
        read("python-api.crt").is_some(),
        "a leaf K3s does not regenerate is kept"
    );
    assert!(read("dynamic-cert-regenerate").is_some());
    assert_eq!(v["restarts"], 0);
    let archive = v["backup"].as_str().unwrap();
    let (m, _) = rancher_cert_guard::repair::backup::read_archive(Path::new(archive)).unwrap();
    assert!(m.files.iter().any(|f| f.path == "tls/service.key"));
}

/// A healthy era-v1.19 Rancher whose CA certificate files were deleted by hand (not restarted).
fn sim_with_ca_files_deleted() -> Sim {
    let sim = start_sim(&["SIM_ERA=v1.19"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    docker(&[
        "exec",
        &sim.name,
        "sh",
        "-c",
        &format!("rm -f {TLS}/*-ca.crt"),
    ]);
    sim
}

/// CA files deleted by hand while Rancher still runs: at the next start K3s mints new CAs
/// while Rancher still trusts the old one from the stale k3s.yaml. `--force` repairs it by
/// walking the unknown-authority loop: one more restart (with backoff) clears it.
#[test]
fn deleted_ca_walks_the_unknown_authority_loop_with_an_extra_restart() {
    if !docker_available() {
        return;
    }
    let sim = sim_with_ca_files_deleted();
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &["--force"]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(v["restarts"], 2, "{}", v["steps"]);
    let steps = step_names(&v);
    assert!(steps.contains(&"restart".to_string()), "{steps:?}");
    assert!(ping(&sim.name));
    assert_fresh(&sim.name);
    let after = tls_snapshot(&sim.name);
    for (p, b) in protected(&before) {
        assert_eq!(after.get(&p), Some(&b), "{p} kept");
    }
}

/// Giving up is bounded and says where the backup is: with `--max-restarts 0` the loop above
/// cannot be walked.
#[test]
fn giving_up_names_the_backup_and_leaves_the_container_running() {
    if !docker_available() {
        return;
    }
    let sim = sim_with_ca_files_deleted();
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(
        &sim.name,
        backups.path(),
        &["--force", "--max-restarts", "0"],
    );
    assert_eq!(code, 5, "{v}");
    assert_eq!(v["result"], "failed");
    let backup = v["backup"].as_str().unwrap();
    assert!(
        v["diagnosis"].as_str().unwrap().contains(backup),
        "{}",
        v["diagnosis"]
    );
    assert!(err.contains("unknown authority"), "{err}");
    assert_eq!(state(&sim.name).0, "running");
}

/// The init container runs before Rancher's first start, when K3s has not created even
/// `k3s/` on the data volume: nothing to do, exit 0 (Rancher must be allowed to start). A data
/// root that is missing too means a wrong mount: unknown, exit 3. (Any other missing path is
/// exit 3 too: tests/hostile_input.rs.)
#[test]
fn dir_mode_on_a_first_boot_is_healthy() {
    let root = tempfile::tempdir().unwrap();
    let tls = root.path().join("k3s/server/tls");
    let o = run_bin(&[
        "repair",
        "--dir",
        tls.to_str().unwrap(),
        "--backup-dir",
        root.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("result: healthy"), "{}", stdout(&o));
    assert!(!root.path().join("b").exists());
    let o = run_bin(&["repair", "--dir", "/nonexistent/k3s/server/tls"]);
    assert_eq!(o.status.code(), Some(3));
}
