//! The repair ladder against a fake engine, on paused time: every step × every fault. Whatever
//! fails, and wherever the run is cut, the container ends up running — by this run, or by the
//! next one from the journal — with its CA material and service.key byte-identical and every
//! leaf fresh. The same promises are proven on the real engine in `tests/faults_docker.rs`.

mod common;
#[path = "common/fake_engine.rs"]
mod fake_engine;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::fixtures::{k3s_cas, write_k3s_tree_with, TreeSpec};
use fake_engine::{FakeEngine, FaultKind, ID, NEW_ID, TLS};
use rancher_cert_guard::inventory::{inventory, RenewBefore, Status};
use rancher_cert_guard::repair::{repair_container, RepairOptions, RepairReport, RepairResult};
use rancher_cert_guard::source::{EntryBody, Tree, TreeEntry};
use tokio_util::sync::CancellationToken;

const DAY: i64 = 86_400;

/// Now, for the fixtures (the fake's wall clock starts here).
fn t0() -> i64 {
    common::now()
}

/// A due tree (leaves expire in 20 days) and what K3s regenerates (same CAs, a year).
fn trees(now: i64) -> (BTreeMap<String, Vec<u8>>, BTreeMap<String, Vec<u8>>) {
    let old = tempfile::tempdir().unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let spec = TreeSpec::days_left(now, 20);
    let cas = k3s_cas(spec.ca_created);
    write_k3s_tree_with(old.path(), &spec, &cas);
    let mut fspec = spec.clone();
    fspec.leaf_not_after = now + 365 * DAY;
    fspec.serving_not_after = now + 365 * DAY;
    write_k3s_tree_with(fresh.path(), &fspec, &cas);
    (
        fake_engine::read_tree_dir(old.path()),
        fake_engine::read_tree_dir(fresh.path()),
    )
}

fn opts(backups: &Path) -> RepairOptions {
    RepairOptions {
        renew_before: RenewBefore::days(90),
        backup_dir: Some(backups.to_path_buf()),
        keep_backups: 10,
        dry_run: false,
        force: false,
        max_restarts: 3,
        settle: Duration::from_secs(5),
        timeout: Duration::from_secs(300),
        health_url: None,
        stop_timeout: 30,
        lock_wait: Duration::ZERO,
        fault: None,
        holder: "repair",
    }
}

fn protected(t: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    t.iter()
        .filter(|(p, _)| rancher_cert_guard::repair::plan::is_protected(p))
        .map(|(p, b)| (p.clone(), b.clone()))
        .collect()
}

fn as_tree(t: &BTreeMap<String, Vec<u8>>) -> Tree {
    Tree {
        entries: t
            .iter()
            .map(|(p, b)| TreeEntry {
                path: p.clone(),
                body: EntryBody::File(b.clone()),
            })
            .collect(),
    }
}

/// Every leaf and the serving certificate fresh.
fn all_fresh(fake: &FakeEngine) -> bool {
    let tree = fake.state(|s| as_tree(&s.c.tree));
    let inv = inventory(&tree, fake_now(fake), RenewBefore::days(90));
    let leaves: Vec<_> = inv.renewable().filter(|c| c.index == 0).collect();
    leaves.len() >= 13 && leaves.iter().all(|c| c.status == Status::Ok)
}

fn fake_now(fake: &FakeEngine) -> i64 {
    use rancher_cert_guard::repair::engine::Engine;
    fake.now()
}

fn journal_exists(backups: &Path) -> bool {
    std::fs::read_dir(backups)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("journal."))
}

async fn try_repair(
    fake: &FakeEngine,
    backups: &Path,
) -> Result<RepairReport, rancher_cert_guard::error::Error> {
    repair_container(
        fake,
        "rancher",
        TLS,
        &opts(backups),
        &CancellationToken::new(),
    )
    .await
}

async fn repair(fake: &FakeEngine, backups: &Path) -> RepairReport {
    try_repair(fake, backups)
        .await
        .unwrap_or_else(|e| panic!("repair: {e}"))
}

#[tokio::test(start_paused = true)]
async fn happy_path_one_restart_every_leaf_back_journal_and_lease_gone() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{:?}", r.diagnosis);
    assert_eq!(r.restarts, 1);
    assert!(all_fresh(&fake));
    assert_eq!(
        protected(&fake.state(|s| s.c.tree.clone())),
        protected(&old)
    );
    assert!(!journal_exists(b.path()));
    assert!(fake.state(|s| s.leases.is_empty()), "lease released");
    assert_eq!(fake.state(|s| (s.c.stops, s.c.starts)), (1, 1));
}

/// The matrix: a fault at the nth call of each kind the ladder makes. After the faulty run the
/// container runs, or a journal says how to finish; after one more run without faults it
/// runs, fresh, CA material intact, no journal, no lease.
#[tokio::test(start_paused = true)]
async fn every_step_under_every_fault_ends_running_and_renewed() {
    let now = t0();
    let (old, fresh) = trees(now);
    let kinds = [
        FaultKind::Unreachable,
        FaultKind::NotFound,
        FaultKind::Conflict,
        FaultKind::Server500,
        FaultKind::Hang,
        FaultKind::ClockJump(400 * DAY),
    ];
    let calls: &[(&str, &[usize])] = &[
        ("inspect", &[1, 2, 3, 4, 5, 6, 8, 12]),
        ("read_tree", &[1, 2, 3, 4, 5]),
        ("logs", &[1, 2, 3]),
        ("exec", &[1, 2, 3]),
        ("stop", &[1]),
        ("run_helper", &[1]),
        ("start", &[1]),
        ("ping", &[1, 2]),
        ("create_lease", &[1]),
        ("find_lease", &[1, 2]),
    ];
    let mut cases = 0;
    // How the first (faulty) runs ended, to show the faults bit.
    let mut firsts: BTreeMap<String, usize> = BTreeMap::new();

    for (call, nths) in calls {
        for nth in nths.iter() {
            for kind in kinds {
                cases += 1;
                let fake = FakeEngine::new(now, old.clone(), fresh.clone());
                fake.fault(call, *nth, kind);
                let b = tempfile::tempdir().unwrap();
                let what = format!("{kind:?} at {call} #{nth}");
                let first = try_repair(&fake, b.path()).await;
                let ended = match &first {
                    Ok(r) => r.result.as_str().to_string(),
                    Err(_) => "error".to_string(),
                };
                *firsts.entry(ended).or_default() += 1;

                // One fault, then the daemon answers again: this very run ends with the
                // container running (the journal is for faults that outlast the run).
                assert!(
                    fake.state(|s| s.c.running),
                    "{what}: left stopped: {first:?}"
                );
                assert_eq!(
                    protected(&fake.state(|s| s.c.tree.clone())),
                    protected(&old),
                    "{what}: protected files changed"
                );
                // The clock jump makes every certificate look expired: a second run with the
                // clock still off would (rightly) want to act again; put it back first.
                fake.s.lock().unwrap().clock_offset = 0;
                let second = repair(&fake, b.path()).await;
                assert!(
                    matches!(
                        second.result,
                        RepairResult::Repaired | RepairResult::Healthy
                    ),
                    "{what}: the next run did not finish: first {:?} / second {:?}",
                    first.as_ref().map(|r| &r.diagnosis),
                    second
                );
                assert!(
                    fake.state(|s| s.c.running),
                    "{what}: not running at the end"
                );
                assert!(all_fresh(&fake), "{what}: not fresh at the end");
                assert!(!journal_exists(b.path()), "{what}: journal left");
                assert!(fake.state(|s| s.leases.is_empty()), "{what}: lease left");
            }
        }
    }
    assert!(cases >= 150, "{cases} cases");
    eprintln!("first runs under a fault ended: {firsts:?}");

    for outcome in ["repaired", "failed", "error"] {
        assert!(
            firsts.get(outcome).copied().unwrap_or(0) > 0,
            "no first run {outcome}: {firsts:?}"
        );
    }
}

/// The container is removed and another created under its name right after the stop: the new
/// container is never wiped without its own plan and backup.
#[tokio::test(start_paused = true)]
async fn a_container_recreated_mid_repair_is_never_wiped_by_the_old_plan() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    fake.fault("run_helper", 1, FaultKind::Recreate);
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Failed, "{r:?}");
    assert!(r.diagnosis.unwrap().contains("removed (or recreated"));
    assert_eq!(fake.state(|s| s.c.id.clone()), NEW_ID);
    assert_eq!(
        fake.state(|s| s.c.tree.clone()),
        old,
        "the new container is untouched"
    );
    assert_eq!(
        fake.state(|s| s.c.stops),
        0,
        "the new container was never stopped"
    );
    // The next run plans and backs up the new container itself.
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{r:?}");
    let archives = std::fs::read_dir(b.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tar")
        })
        .count();
    assert_eq!(archives, 2, "a new backup for the new container");
}

/// Two runs at once on one container: one repairs, the other is busy; one stop in all.
#[tokio::test(start_paused = true)]
async fn two_runs_at_once_one_repairs_the_other_is_busy() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old, fresh);
    let b = tempfile::tempdir().unwrap();
    let (a, c) = tokio::join!(repair(&fake, b.path()), repair(&fake, b.path()));
    let mut results = vec![a.result, c.result];
    results.sort_by_key(|r| r.as_str());
    assert_eq!(
        results,
        vec![RepairResult::Busy, RepairResult::Repaired],
        "{a:?} {c:?}"
    );
    assert_eq!(fake.state(|s| s.c.stops), 1);
    assert!(fake.state(|s| s.leases.is_empty()));
}

/// A lease left by a process that died (and a stopped container, its journal elsewhere): the
/// next run takes it over, starts the container and finishes.
#[tokio::test(start_paused = true)]
async fn a_dead_runs_lease_is_taken_over_and_its_container_started() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old, fresh);
    let host = rancher_cert_guard::process::me().host;
    fake.s.lock().unwrap().c.running = false;
    fake.s.lock().unwrap().leases.insert(
        ID.into(),
        rancher_cert_guard::docker::Lease {
            lease_id: "lease-dead".into(),
            target_id: ID.into(),
            run_id: "deadbeef".into(),
            holder: "repair (pid 4000000 on a host)".into(),
            expires: now + 3600,
            daemon_id: "fake-daemon".into(),
            host,
            pid: 4_000_000,
            pid_start: Some(1),
            ..Default::default()
        },
    );
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{r:?}");
    assert!(
        r.steps.iter().any(|s| s.step == "resume-start"),
        "{:?}",
        r.steps
    );
    assert!(fake.state(|s| s.c.running));
    assert!(all_fresh(&fake));
}

/// A journal that asks for a protected path (whoever could write the backup directory) is
/// refused, and nothing is deleted or stopped.
#[tokio::test(start_paused = true)]
async fn a_hostile_journal_is_refused_and_nothing_is_deleted() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    fake.s.lock().unwrap().c.running = false;
    let b = tempfile::tempdir().unwrap();
    for bad in ["server-ca.key", "../db/state.db", "service.key"] {
        let j = serde_json::json!({
            "version": 2, "container_id": ID, "container_name": "rancher", "image_id": "x",
            "tls_path": TLS, "phase": "wiping", "backup": "/nonexistent.tar",
            "delete": ["client-admin.crt", bad], "run_id": "r", "tool_version": "0.1.0",
            "started_at": "t", "updated_at": "t"
        });
        std::fs::write(
            b.path().join(format!("journal.{ID}.json")),
            serde_json::to_vec(&j).unwrap(),
        )
        .unwrap();
        let r = repair(&fake, b.path()).await;
        assert_eq!(r.result, RepairResult::Refused, "{bad}: {r:?}");
        assert!(
            r.diagnosis.as_deref().unwrap().contains("never deletes"),
            "{r:?}"
        );
        assert_eq!(
            fake.state(|s| s.c.tree.clone()),
            old,
            "{bad}: nothing deleted"
        );
        assert_eq!(fake.state(|s| s.c.stops + s.c.starts), 0);
    }
    // Garbage: refused the same way.
    std::fs::write(
        b.path().join(format!("journal.{ID}.json")),
        b"\x00\x01garbage",
    )
    .unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Refused, "{r:?}");
}

/// `--rm` (AutoRemove): `docker stop` would delete it — refused, never stopped.
#[tokio::test(start_paused = true)]
async fn an_auto_remove_target_is_refused_untouched() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    fake.s.lock().unwrap().c.auto_remove = true;
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Refused);
    assert!(r.diagnosis.unwrap().contains("--rm"));
    assert_eq!(fake.state(|s| (s.c.stops, s.c.tree.clone())), (0, old));
}

/// A signal after the stop, before the wipe: rolled back — started, nothing deleted, no journal.
/// After the wipe: rolled forward — started, the journal says `verifying`, and the next run
/// verifies.
#[tokio::test(start_paused = true)]
async fn a_signal_rolls_the_step_forward_and_leaves_the_container_running() {
    for (step, deleted) in [("stop", false), ("wipe", true), ("start", true)] {
        let now = t0();
        let (old, fresh) = trees(now);
        let fake = FakeEngine::new(now, old.clone(), fresh);
        let b = tempfile::tempdir().unwrap();
        let mut o = opts(b.path());
        o.fault = Some(format!("{step}:600").parse().unwrap());
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            c2.cancel();
        });
        let r = repair_container(&fake, "rancher", TLS, &o, &cancel)
            .await
            .unwrap();
        assert_eq!(r.result, RepairResult::Interrupted, "{step}: {r:?}");
        assert!(fake.state(|s| s.c.running), "{step}: running when it exits");
        assert_eq!(journal_exists(b.path()), deleted, "{step}: journal");
        if !deleted {
            assert_eq!(
                fake.state(|s| s.c.tree.clone()),
                old,
                "{step}: nothing deleted"
            );
        }
        let r = repair(&fake, b.path()).await;
        assert_eq!(
            r.result,
            RepairResult::Repaired,
            "{step}: the next run: {r:?}"
        );
        assert!(all_fresh(&fake));
        assert!(!journal_exists(b.path()));
    }
}

/// Rancher never answers: the repair gives up at --timeout with the container running, and
/// keeps its journal at `verifying`: the next run (Rancher answering by then) verifies it.
#[tokio::test(start_paused = true)]
async fn a_rancher_that_never_answers_fails_at_the_timeout_running() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old, fresh);
    fake.s.lock().unwrap().pong = false;
    let b = tempfile::tempdir().unwrap();
    let started = tokio::time::Instant::now();
    let r = repair(&fake, b.path()).await;
    let took = started.elapsed();
    assert_eq!(r.result, RepairResult::Failed);
    assert_eq!(r.failure, Some("timeout"));
    assert!(took <= Duration::from_secs(300 + 30 + 15), "{took:?}");
    assert!(fake.state(|s| s.c.running));
    assert!(journal_exists(b.path()), "unverified: the journal stays");
    fake.s.lock().unwrap().pong = true;
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{r:?}");
    assert_eq!(r.restarts, 0, "only the verification was left");
    assert!(!journal_exists(b.path()));
}

/// A wiped leaf K3s does not bring back: failed, with a diagnosis naming it.
#[tokio::test(start_paused = true)]
async fn a_leaf_that_does_not_come_back_fails_naming_it() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old, fresh);
    fake.s
        .lock()
        .unwrap()
        .no_regen
        .insert("client-admin.crt".into());
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Failed);
    assert_eq!(r.failure, Some("not_regenerated"));
    assert!(r.diagnosis.unwrap().contains("client-admin.crt"));
    assert!(fake.state(|s| s.c.running));
}

/// The unknown-authority loop after the restart: one more restart after a backoff clears it.
#[tokio::test(start_paused = true)]
async fn the_unknown_authority_loop_takes_one_more_restart() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old, fresh);
    // Quoted from rancher/rancher#25311 (the loop after a restore).
    fake.s.lock().unwrap().boot_lines.push_back(vec![
        "[INFO] Waiting for server to become available: Get https://localhost:6443/version?timeout=30s: x509: certificate signed by unknown authority".into(),
    ]);
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{r:?}");
    assert_eq!(r.restarts, 2);
    assert!(r.steps.iter().any(|s| s.step == "restart"));
}

/// The daemon goes away right after the wipe and stays away longer than the run can wait: the
/// run cannot start the container, says so, and keeps the journal; the next run, once the
/// daemon is back, starts it and verifies the repair.
#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_the_run_is_finished_by_the_next_run() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    fake.fault("start", 1, FaultKind::Outage(600));
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Failed, "{r:?}");
    assert!(!fake.state(|s| s.c.running));
    assert!(journal_exists(b.path()), "the journal stays");
    assert!(
        r.diagnosis
            .as_deref()
            .unwrap()
            .contains("the journal stays"),
        "{:?}",
        r.diagnosis
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Repaired, "{r:?}");
    assert!(
        r.steps.iter().any(|s| s.step == "resume-start"),
        "{:?}",
        r.steps
    );
    assert!(fake.state(|s| s.c.running));
    assert!(all_fresh(&fake));
    assert_eq!(
        protected(&fake.state(|s| s.c.tree.clone())),
        protected(&old)
    );
    assert!(!journal_exists(b.path()));
}

/// The Docker daemon's clock and the tool's disagree by an hour: refused before anything is
/// changed, with a diagnosis naming the clocks.
#[tokio::test(start_paused = true)]
async fn clocks_that_disagree_are_refused_and_nothing_changes() {
    let now = t0();
    let (old, fresh) = trees(now);
    let fake = FakeEngine::new(now, old.clone(), fresh);
    fake.s.lock().unwrap().daemon_offset = 3600;
    let b = tempfile::tempdir().unwrap();
    let r = repair(&fake, b.path()).await;
    assert_eq!(r.result, RepairResult::Refused, "{r:?}");
    let d = r.diagnosis.unwrap();
    assert!(
        d.contains("clock") && d.contains("nothing was changed"),
        "{d}"
    );
    assert_eq!(fake.state(|s| (s.c.stops, s.c.tree.clone())), (0, old));
    assert!(!journal_exists(b.path()));
}
