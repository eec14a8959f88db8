//! The loop against a fake Docker, on paused tokio time: when it looks, when it repairs, and
//! how it stops.

use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::advance;

use super::{ApiCommand, ApiReply, Clock};
use crate::watch::targets::Trigger;

mod harness;
use harness::*;

#[tokio::test(start_paused = true)]
async fn looks_at_start_and_repairs_exactly_when_the_window_is_entered() {
    let clock = Clock::fake(T0);
    // Enters its renewal window 1000 s after start.
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + RENEW_BEFORE + 1000)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(5).await;
    assert_eq!(fake.calls("discover"), vec![0]);
    assert_eq!(fake.calls("check"), vec![0], "looked at start");
    assert!(h.shared.first_scan_done());
    run_for(990).await;
    assert!(
        fake.calls("repair").is_empty(),
        "nothing due before the window"
    );
    run_for(10).await;
    assert_eq!(
        fake.calls("check"),
        vec![0, 1000],
        "looked exactly at the window"
    );
    assert_eq!(fake.calls("repair"), vec![1000]);
    run_for(40).await;
    // After the repair: a fresh look finds a certificate a year away; next look is the safety
    // interval (1 h), not a poll.
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031]);
    run_for(3500).await;
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031]);
    run_for(200).await;
    assert_eq!(fake.calls("check"), vec![0, 1000, 1031, 4631]);
    assert_eq!(fake.calls("repair"), vec![1000]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn first_scan_starts_even_without_an_events_stream() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    run_for(9).await;
    assert!(
        fake.calls("discover").is_empty(),
        "waits for the events stream first"
    );
    run_for(2).await;
    assert_eq!(fake.calls("discover"), vec![10]);
    assert_eq!(fake.calls("check"), vec![10]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_container_event_is_looked_at_within_a_second() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(100).await;
    h.triggers
        .send(Trigger::Changed {
            name: "rancher".into(),
            id: "id-rancher".into(),
            action: "restart".into(),
        })
        .await
        .unwrap();
    run_for(2).await;
    assert_eq!(fake.calls("check"), vec![0, 100]);
    // A new container under a watched name (recreated) is picked up the same way.
    fake.world
        .lock()
        .unwrap()
        .expiry
        .insert("rancher2".into(), T0 + 20 * DAY);
    h.triggers
        .send(Trigger::Changed {
            name: "rancher2".into(),
            id: "id-rancher2".into(),
            action: "create".into(),
        })
        .await
        .unwrap();
    run_for(2).await;
    assert_eq!(fake.calls("check rancher2"), vec![102]);
    assert_eq!(fake.calls("repair rancher2"), vec![102], "due: repaired");
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_window_delays_a_repair_until_it_opens() {
    // Monday 00:00; the window opens Sunday 02:00, 6 days 2 hours later.
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 + 30 * DAY)], RepairBehaviour::Renew);
    let h = start(fake.clone(), clock, |c| {
        c.policy.window = Some("Sun 02:00-04:00".parse().unwrap());
        c.interval = Duration::from_secs(7 * DAY as u64);
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(fake.calls("repair").is_empty());
    let doc = h.shared.snapshot();
    let next = doc.targets["rancher"].next_action.clone().unwrap();
    assert_eq!(next.at, T0 + 6 * DAY + 2 * 3600);
    assert!(next.why.contains("maintenance window"), "{}", next.why);
    // Jump close to the opening, then step through it.
    advance(Duration::from_secs((6 * DAY + 2 * 3600 - 10) as u64)).await;
    run_for(12).await;
    assert_eq!(fake.calls("repair"), vec![(6 * DAY + 2 * 3600) as u64]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn monitor_only_never_repairs() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 - DAY)], RepairBehaviour::Renew);
    let h = start(fake.clone(), clock, |c| c.policy.monitor_only = true);
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    let (tx, rx) = oneshot::channel();
    h.commands
        .send(ApiCommand::Repair {
            container: "rancher".into(),
            force: false,
            reply: tx,
        })
        .await
        .unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::MonitorOnly);
    run_for(7200).await;
    assert!(fake.calls("repair").is_empty());
    assert_eq!(fake.calls("check"), vec![0, 3600, 7200]);
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cooldown_and_breaker_bound_failing_repairs() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(clock, &[("rancher", T0 + 10 * DAY)], RepairBehaviour::Fail);
    let h = start(fake.clone(), clock, |c| {
        c.cooldown = Duration::from_secs(600);
        c.max_repairs_per_day = 3;
    });
    h.triggers.send(Trigger::Resync).await.unwrap();
    // Each failed repair takes 30 s, then 600 s of cooldown.
    run_for(3 * 3600).await;
    assert_eq!(
        fake.calls("repair"),
        vec![0, 630, 1260],
        "three, spaced by the cooldown"
    );
    // The breaker holds for the rest of the day, however many events come.
    for _ in 0..5 {
        h.triggers
            .send(Trigger::Changed {
                name: "rancher".into(),
                id: "id-rancher".into(),
                action: "die".into(),
            })
            .await
            .unwrap();
        run_for(10).await;
    }
    assert_eq!(fake.calls("repair").len(), 3);
    let doc = h.shared.snapshot();
    let t = &doc.targets["rancher"];
    assert_eq!(t.repairs_last_24h, 3);
    assert_eq!(t.last_repair.as_ref().unwrap().result.as_str(), "failed");
    assert!(t.decision.as_deref().unwrap().contains("circuit breaker"));
    // The window rolls: each repair ages out 24 h after it started, and frees one slot.
    advance(Duration::from_secs((DAY - 3 * 3600 - 50 - 60) as u64)).await;
    run_for(3700).await;
    let day = DAY as u64;
    assert_eq!(
        fake.calls("repair"),
        vec![0, 630, 1260, day, day + 630, day + 1260]
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn api_repair_runs_once_at_a_time() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    let ask = |name: &str| {
        let (tx, rx) = oneshot::channel();
        (
            ApiCommand::Repair {
                container: name.into(),
                force: true,
                reply: tx,
            },
            rx,
        )
    };
    let (c, rx) = ask("rancher");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::Accepted);
    let (c, rx) = ask("rancher");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::Busy);
    let (c, rx) = ask("nope");
    h.commands.send(c).await.unwrap();
    run_for(1).await;
    assert_eq!(rx.await.unwrap(), ApiReply::NotFound);
    run_for(40).await;
    assert_eq!(fake.calls("repair").len(), 1);
    let doc = h.shared.snapshot();
    assert_eq!(
        doc.targets["rancher"]
            .last_repair
            .as_ref()
            .unwrap()
            .requested_by,
        "api"
    );
    h.shutdown.cancel();
    h.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removed_container_is_dropped() {
    let clock = Clock::fake(T0);
    let fake = Fake::new(
        clock,
        &[("rancher", T0 + 365 * DAY)],
        RepairBehaviour::Renew,
    );
    let h = start(fake.clone(), clock, |_| {});
    h.triggers.send(Trigger::Resync).await.unwrap();
    run_for(2).await;
    assert!(h.shared.snapshot().targets.contains_key("rancher"));
    fake.world.lock().unwrap().expiry.remove("rancher");
    h.triggers
        .send(Trigger::Gone {
            name: "rancher".into(),
            id: "id-rancher".into(),
        })
        .await
        .unwrap();
    run_for(1).await;
    assert!(!h.shared.snapshot().targets.contains_key("rancher"));
    h.shutdown.cancel();
    h.task.await.unwrap();
}

mod recovery;
