//! The loop when something was interrupted: a repair cut at shutdown, one that rolls
//! forward, work an earlier run left, another run acting on the same container.

use std::time::Duration;

use tokio::time::Instant;

use super::harness::*;
use crate::watch::controller::Clock;
use crate::watch::schedule::Pending;
use crate::watch::targets::Trigger;

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_a_hung_repair_and_starts_its_container_within_ten_seconds() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Hang);
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("repair"), vec![0]);
    assert!(
        !fake.world.lock().unwrap().running["rancher"],
        "the ladder stopped it"
    );
    let t = Instant::now();
    h.shutdown.cancel();
    h.task.await.unwrap();
    let took = Instant::now() - t;
    assert!(took <= Duration::from_secs(10), "{took:?}");
    assert!(
        took >= Duration::from_secs(6),
        "the repair got its grace: {took:?}"
    );
    assert_eq!(fake.calls("ensure_started rancher").len(), 1);
    assert!(
        fake.world.lock().unwrap().running["rancher"],
        "never left stopped"
    );
}

/// A sidecar killed mid-repair left a journal and a stopped container: the first look of the
/// next sidecar finishes it — whatever the maintenance window, the cooldown or the breaker say.
#[tokio::test(start_paused = true)]
async fn an_interrupted_repair_is_finished_at_the_first_look_whatever_the_window() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 300 * DAY)],
        RepairBehaviour::Renew,
    );
    {
        let mut w = fake.world.lock().unwrap();
        w.running.insert("rancher".into(), false);
        w.pending.insert(
            "rancher".into(),
            Pending::Finish {
                why: "a repair was interrupted at step `wiping`: finishing it".into(),
                stopped: true,
            },
        );
    }
    let h = start(fake.clone(), clock, |c| {
        c.policy.window = Some("Sun 02:00-04:00".parse().unwrap());
        c.max_repairs_per_day = 1;
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(25).await;
    assert_eq!(
        fake.calls("repair"),
        vec![0],
        "finished at once, outside the window"
    );
    assert!(fake.world.lock().unwrap().running["rancher"]);
    let doc = h.shared.snapshot();
    assert_eq!(
        doc.targets["rancher"]
            .last_repair
            .as_ref()
            .unwrap()
            .result
            .as_str(),
        "repaired"
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

/// Another run (a one-shot `repair`) acts on the container: the sidecar does not, and looks
/// again later.
#[tokio::test(start_paused = true)]
async fn a_container_another_run_acts_on_is_left_to_it() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Renew);
    fake.world.lock().unwrap().pending.insert(
        "rancher".into(),
        Pending::Busy("another run acts on rancher: repair (pid 7 on host vm)".into()),
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(fake.calls("repair").is_empty());
    let doc = h.shared.snapshot();
    assert!(
        doc.targets["rancher"]
            .decision
            .as_deref()
            .unwrap()
            .contains("another run acts on rancher"),
        "{:?}",
        doc.targets["rancher"].decision
    );
    fake.world.lock().unwrap().pending.clear();
    run_for(30).await;
    assert_eq!(fake.calls("check"), vec![0, 30], "looked again after 30 s");
    assert_eq!(fake.calls("repair"), vec![30]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

/// SIGTERM during a repair: the ladder is told to stop, rolls forward (starts the container)
/// within the grace, and nothing needs cutting.
#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_repair_roll_forward_and_start_its_container() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 - DAY)],
        RepairBehaviour::RollForward,
    );
    let h = start(fake.clone(), clock, |c| {
        c.shutdown_grace = Duration::from_secs(45)
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("repair"), vec![0]);
    assert!(!fake.world.lock().unwrap().running["rancher"]);
    let t = Instant::now();
    h.shutdown.cancel();
    h.task.await.unwrap();
    let took = Instant::now() - t;
    assert!(
        took < Duration::from_secs(5),
        "rolled forward, not cut: {took:?}"
    );
    assert!(fake.calls("ensure_started").is_empty());
    assert!(
        fake.world.lock().unwrap().running["rancher"],
        "never left stopped"
    );
}
