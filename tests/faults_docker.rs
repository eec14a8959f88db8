//! The fault suite on the real engine: the tool is killed, interrupted, raced, or the daemon
//! goes away mid-repair — and Rancher (the simulated one) still ends up running, with its
//! leaves renewed, its CA files and service.key byte-identical, and no journal left. Each test
//! backs one row of the README's "Faults survived" table.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sim::*;
use common::*;
use serde_json::Value;

fn id_of(name: &str) -> String {
    docker(&["inspect", "-f", "{{.Id}}", name])
}

/// `check` says every certificate is fine.
fn fresh(name: &str) -> bool {
    run_bin(&["check", "--container", name]).status.code() == Some(0)
}

fn journal_of(backups: &Path, id: &str) -> PathBuf {
    backups.join(format!("journal.{id}.json"))
}

fn phase(backups: &Path, id: &str) -> Option<String> {
    let j: Value = serde_json::from_slice(&std::fs::read(journal_of(backups, id)).ok()?).ok()?;
    j["phase"].as_str().map(str::to_string)
}

/// The binary as a child process (its own process group is not needed: it is killed by pid).
fn spawn(args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CERT_GUARD_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rancher-cert-guard")
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn finish(mut child: Child) -> (i32, String, String) {
    use std::io::Read;
    let status = child.wait().unwrap();
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// `watch` on one container, loopback only, short settle.
fn watch(name: &str, backups: &Path, extra: &[&str]) -> (Child, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let addr = tmp.path().join("addr");
    let mut args = vec![
        "watch",
        "--container",
        name,
        "--backup-dir",
        backups.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--addr-file",
        addr.to_str().unwrap(),
        "--settle",
        "2",
        "--timeout",
        "120",
    ];
    args.extend_from_slice(extra);
    (spawn(&args, &[]), tmp)
}

/// Running, answering, renewed, CA material as it was, nothing left behind.
fn assert_whole(name: &str, backups: &Path, before: &std::collections::BTreeMap<String, Vec<u8>>) {
    assert_eq!(state(name).0, "running", "{name} is running");
    assert!(ping(name), "{name} answers pong");
    assert_fresh(name);
    assert_eq!(
        protected(&tls_snapshot(name)),
        protected(before),
        "CA files and service.key byte-identical"
    );
    let journals: Vec<_> = std::fs::read_dir(backups)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal."))
        .collect();
    assert!(journals.is_empty(), "journal left: {journals:?}");
    let leases = docker(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=rancher-cert-guard.lease={}", id_of(name)),
    ]);
    assert!(leases.is_empty(), "lease left: {leases}");
}

/// Wait until the container is exited and the journal says `phase` (the tool paused there).
fn wait_paused_at(name: &str, backups: &Path, id: &str, phase_name: &str) {
    wait_for(
        90,
        &format!("{name} stopped with the journal at {phase_name}"),
        || {
            phase(backups, id).as_deref() == Some(phase_name)
                && (phase_name == "verifying" || state(name).0 == "exited")
        },
    );
}

/// `watch` killed (SIGKILL) right after it stopped the target, after the wipe, and during
/// the verification; a new `watch` finishes the job at its first look.
#[test]
fn watch_killed_at_any_step_is_finished_by_the_next_watch() {
    if !docker_available() {
        return;
    }
    for (fault, phase_name) in [
        ("stop", "stopping"),
        ("wipe", "wiping"),
        ("start", "verifying"),
    ] {
        let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
        wait_log(&sim.name, "Rancher startup complete");
        let before = tls_snapshot(&sim.name);
        let id = id_of(&sim.name);
        let backups = tempfile::tempdir().unwrap();
        let (w, _t) = watch(&sim.name, backups.path(), &["--fault-pause-after", fault]);
        wait_paused_at(&sim.name, backups.path(), &id, phase_name);
        signal(&w, "-KILL");
        let _ = finish(w);
        if fault != "start" {
            assert_eq!(
                state(&sim.name).0,
                "exited",
                "{fault}: left stopped by the killed sidecar"
            );
        }
        let (w2, _t2) = watch(&sim.name, backups.path(), &[]);
        wait_for(
            120,
            &format!("{fault}: the next watch finishes the repair"),
            // Finished: no journal, running, answering, renewed (after a rolled-back stop the
            // watch starts it, looks afresh and repairs: wait for all of it).
            || {
                !journal_of(backups.path(), &id).exists()
                    && state(&sim.name).0 == "running"
                    && ping(&sim.name)
                    && fresh(&sim.name)
            },
        );
        signal(&w2, "-TERM");
        let (code, _, err) = finish(w2);
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("resuming a repair that was interrupted") || err.contains("finishing"),
            "{fault}: {err}"
        );
        assert_whole(&sim.name, backups.path(), &before);
    }
}

/// One-shot `repair` killed (SIGKILL) after the stop and after the wipe, rerun by id when it
/// was started by name and the other way round.
#[test]
fn repair_killed_is_completed_by_the_next_run_by_name_or_by_id() {
    if !docker_available() {
        return;
    }
    for (fault, phase_name, first_by_id) in [
        ("stop", "stopping", false),
        ("wipe", "wiping", true),
        ("wipe", "wiping", false),
        ("stop", "stopping", true),
    ] {
        let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
        wait_log(&sim.name, "Rancher startup complete");
        let before = tls_snapshot(&sim.name);
        let id = id_of(&sim.name);
        let (first, second) = if first_by_id {
            (id.clone(), sim.name.clone())
        } else {
            (sim.name.clone(), id.clone())
        };
        let backups = tempfile::tempdir().unwrap();
        let b = backups.path().to_str().unwrap();
        let child = spawn(
            &[
                "repair",
                "--container",
                &first,
                "--backup-dir",
                b,
                "--settle",
                "2",
                "--fault-pause-after",
                fault,
            ],
            &[],
        );
        wait_paused_at(&sim.name, backups.path(), &id, phase_name);
        signal(&child, "-KILL");
        let _ = finish(child);
        assert_eq!(
            state(&sim.name).0,
            "exited",
            "left stopped by the killed run"
        );
        let (code, v, err) = repair(&second, backups.path(), &[]);
        assert_eq!(code, 0, "{fault} by {first} then {second}: {v}\n{err}");
        assert_eq!(v["result"], "repaired", "{v}");
        assert_whole(&sim.name, backups.path(), &before);
    }
}

/// SIGINT right after the stop: the run rolls back (nothing was deleted), starts the
/// container and exits 7.
#[test]
fn repair_interrupted_after_the_stop_leaves_the_container_running() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let before = tls_snapshot(&sim.name);
    let id = id_of(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let b = backups.path().to_str().unwrap();
    let child = spawn(
        &[
            "repair",
            "--container",
            &sim.name,
            "--backup-dir",
            b,
            "--settle",
            "2",
            "--fault-pause-after",
            "stop",
            "-o",
            "json",
        ],
        &[],
    );
    wait_paused_at(&sim.name, backups.path(), &id, "stopping");
    signal(&child, "-INT");
    let (code, out, err) = finish(child);
    assert_eq!(code, 7, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"], "interrupted");
    assert_eq!(state(&sim.name).0, "running", "running when it exits");
    assert_eq!(
        v["wiped"],
        serde_json::json!([]),
        "nothing was deleted: {v}"
    );
    assert!(!step_names(&v).contains(&"wipe".to_string()), "{v}");
    assert_eq!(protected(&tls_snapshot(&sim.name)), protected(&before));
    assert!(!journal_of(backups.path(), &id).exists());
    // The next run does the repair.
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_whole(&sim.name, backups.path(), &before);
}

fn restarts_since(name: &str, since: i64) -> usize {
    docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(now() + 1).to_string(),
        "--filter",
        &format!("container={name}"),
        "--filter",
        "event=start",
        "--format",
        "{{.Action}}",
    ])
    .lines()
    .count()
}

/// Two one-shot repairs started together on a due container: exactly one restart, one
/// `repaired`, the other `busy` (exit 6) or, if it came second, `healthy`.
#[test]
fn two_repairs_at_once_act_once() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = now();
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let b = backups.path().to_str().unwrap();
    let args = [
        "repair",
        "--container",
        &sim.name,
        "--backup-dir",
        b,
        "--settle",
        "2",
        "-o",
        "json",
    ];
    let (c1, c2) = (spawn(&args, &[]), spawn(&args, &[]));
    let (r1, r2) = (finish(c1), finish(c2));
    let mut results: Vec<(i32, String)> = [&r1, &r2]
        .iter()
        .map(|(code, out, err)| {
            let v: Value =
                serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
            (*code, v["result"].as_str().unwrap().to_string())
        })
        .collect();
    results.sort();
    assert!(
        results == vec![(0, "healthy".to_string()), (0, "repaired".to_string())]
            || results == vec![(0, "repaired".to_string()), (6, "busy".to_string())],
        "{results:?}\n{}\n{}",
        r1.2,
        r2.2
    );
    assert_eq!(restarts_since(&sim.name, t0), 1, "exactly one start");
    assert_whole(&sim.name, backups.path(), &before);
}

/// A one-shot repair beside a `watch` that is repairing the same container (and holds its
/// lease — even with another backup directory): busy, nothing done; one restart in all.
#[test]
fn a_repair_beside_a_repairing_watch_is_busy() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    std::thread::sleep(Duration::from_millis(1100));
    let t0 = now();
    let before = tls_snapshot(&sim.name);
    let id = id_of(&sim.name);
    let wb = tempfile::tempdir().unwrap();
    let (w, _t) = watch(&sim.name, wb.path(), &["--fault-pause-after", "stop:6"]);
    wait_paused_at(&sim.name, wb.path(), &id, "stopping");
    let other = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, other.path(), &[]);
    assert_eq!(
        (code, v["result"].as_str()),
        (6, Some("busy")),
        "{v}\n{err}"
    );
    assert!(v["diagnosis"].as_str().unwrap().contains("watch"), "{v}");
    wait_for(90, "the watch's repair", || {
        !journal_of(wb.path(), &id).exists()
            && state(&sim.name).0 == "running"
            && ping(&sim.name)
            && fresh(&sim.name)
    });
    signal(&w, "-TERM");
    let _ = finish(w);
    assert_eq!(restarts_since(&sim.name, t0), 1, "exactly one start");
    assert_whole(&sim.name, wb.path(), &before);
}

/// Rancher that ignores SIGTERM, `--stop-timeout 150`: the stop takes the whole grace period
/// (longer than bollard's default 120 s request timeout) and must not be taken for a failure.
#[test]
fn a_rancher_slow_to_stop_is_not_a_false_failure() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20", "SIM_IGNORE_SIGTERM=1"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let before = tls_snapshot(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let o = run_bin(&[
        "repair",
        "--container",
        &sim.name,
        "--backup-dir",
        backups.path().to_str().unwrap(),
        "--settle",
        "2",
        "--stop-timeout",
        "150",
        "--timeout",
        "400",
        "-o",
        "json",
    ]);
    let (code, err) = (o.status.code().unwrap(), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    let stop = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "stop")
        .unwrap()
        .clone();
    assert_eq!(stop["ok"], true, "{stop}");
    assert!(stop["seconds"].as_f64().unwrap() >= 149.0, "{stop}");
    assert_whole(&sim.name, backups.path(), &before);
}

/// The container is removed and another created under its name while the repair is paused
/// after its stop: the old plan never touches the new container.
#[test]
fn a_container_recreated_mid_repair_is_not_wiped_by_the_old_plan() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &[]);
    wait_log(&sim.name, "Rancher startup complete");
    let id = id_of(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let b = backups.path().to_str().unwrap();
    let child = spawn(
        &[
            "repair",
            "--container",
            &sim.name,
            "--backup-dir",
            b,
            "--settle",
            "2",
            "--fault-pause-after",
            "stop:8",
            "-o",
            "json",
        ],
        &[],
    );
    wait_paused_at(&sim.name, backups.path(), &id, "stopping");
    docker(&["rm", "-f", "-v", &sim.name]);
    let again = start_sim_named(&sim.name, &["SIM_LEAF_DAYS=20"]);
    wait_log(&again, "Rancher startup complete");
    let new_before = tls_snapshot(&again);
    let new_state = state(&again);
    let (code, out, err) = finish(child);
    assert_eq!(code, 5, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["failure"], "container_gone", "{v}");
    assert_eq!(
        tls_snapshot(&again),
        new_before,
        "the new container is untouched"
    );
    assert_eq!(state(&again), new_state, "and was never stopped");
    // Its own repair comes with its own plan and backup.
    let (code, v, err) = repair(&again, backups.path(), &[]);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_ne!(v["backup"], Value::Null);
    let _ = docker_raw(&["rm", "-f", "-v", &again]);
}

/// `--rm` (AutoRemove): `docker stop` would delete it — refused, still there, untouched.
#[test]
fn an_auto_remove_target_is_refused_and_untouched() {
    if !docker_available() {
        return;
    }
    let sim = start_sim(&["SIM_LEAF_DAYS=20"], &["--rm"]);
    wait_log(&sim.name, "Rancher startup complete");
    let before = tls_snapshot(&sim.name);
    let before_state = state(&sim.name);
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair(&sim.name, backups.path(), &[]);
    assert_eq!(
        (code, v["result"].as_str()),
        (4, Some("refused")),
        "{v}\n{err}"
    );
    assert!(v["diagnosis"].as_str().unwrap().contains("--rm"), "{v}");
    assert_eq!(state(&sim.name), before_state);
    assert_eq!(tls_snapshot(&sim.name), before);
}

/// The Docker daemon restarts mid-repair (a daemon of the test's own: the machine's engine is
/// never touched): its containers stop with it and the repair's calls fail. The repair ends
/// with the container started again, or its journal; `watch`'s next look finishes the job.
#[test]
fn a_daemon_restart_mid_repair_is_finished_by_the_next_look() {
    if !docker_available() {
        return;
    }
    let Some(mut d) = common::daemon::PrivateDaemon::start() else {
        return;
    };
    d.load(&sim_image());
    let name = unique("sim");
    d.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "--name",
        &name,
        "-e",
        "SIM_BOOT_SECONDS=0.3",
        "-e",
        "SIM_LEAF_DAYS=20",
        &sim_image(),
    ]);
    let d_logs = |d: &common::daemon::PrivateDaemon| {
        let o = d.cli(&["logs", &name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    wait_for(30, "the sim to boot", || {
        d_logs(&d).contains("Rancher startup complete")
    });
    let id = d.ok(&["inspect", "-f", "{{.Id}}", &name]);
    let backups = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let addr = tmp.path().join("addr");
    let w = spawn(
        &[
            "watch",
            "--container",
            &name,
            "--backup-dir",
            backups.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--addr-file",
            addr.to_str().unwrap(),
            "--settle",
            "2",
            "--timeout",
            "120",
            "--fault-pause-after",
            "wipe:6",
        ],
        &[("DOCKER_HOST", &d.host)],
    );
    // The wipe is done (its files are gone) and the repair paused right after it.
    let wiped = |d: &common::daemon::PrivateDaemon| {
        phase(backups.path(), &id).as_deref() == Some("wiping")
            && !d
                .cli(&["cp", &format!("{name}:{TLS}/client-admin.crt"), "-"])
                .status
                .success()
    };
    wait_for(60, "the wipe", || wiped(&d));
    // Down while the repair is paused after its wipe, and for a while after.
    d.stop();
    std::thread::sleep(Duration::from_secs(10));
    assert!(d.launch(), "{}", d.log());
    let state_d =
        |d: &common::daemon::PrivateDaemon| d.ok(&["inspect", "-f", "{{.State.Status}}", &name]);
    wait_for(180, "the next look to finish the repair", || {
        state_d(&d) == "running"
            && !journal_of(backups.path(), &id).exists()
            && d.cli(&["exec", &name, "wget", "-qO-", "http://127.0.0.1:80/ping"])
                .stdout
                .starts_with(b"pong")
    });
    signal(&w, "-TERM");
    let (_, _, err) = finish(w);
    // Renewed, through this daemon.
    let o = Command::new(bin())
        .env("DOCKER_HOST", &d.host)
        .args(["check", "--container", &name, "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{err}",
        String::from_utf8_lossy(&o.stdout)
    );
}
