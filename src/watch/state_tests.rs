//! Tests of `watch::state`.

use super::*;

#[tokio::test(start_paused = true)]
async fn stalls_after_two_ticks() {
    let s = Shared::new(Duration::from_secs(30), StatusDoc::default());
    s.tick();
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(s.stalled(), None);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(s.stalled(), Some(Duration::from_secs(61)));
    s.tick();
    assert_eq!(s.stalled(), None);
}

#[test]
fn readiness_needs_docker_and_a_first_scan() {
    let s = Shared::new(Duration::from_secs(30), StatusDoc::default());
    assert_eq!(s.not_ready().len(), 2);
    s.set_docker_up(true);
    assert_eq!(s.not_ready(), vec!["the first scan is not done"]);
    s.set_first_scan_done();
    assert!(s.not_ready().is_empty());
    assert!(s.snapshot().ready);
}

fn looked(
    name: &str,
    at: i64,
    up: bool,
    problems: &[(&str, crate::inventory::ProblemReason)],
) -> TargetStatus {
    let inv = CheckReport {
        source: String::new(),
        checked_at: at,
        renew_before_days: 90,
        status: Status::Ok,
        certificates: vec![],
        keys: vec![],
        problems: problems
            .iter()
            .map(|(p, r)| crate::inventory::Problem {
                path: p.to_string(),
                reason: *r,
                detail: String::new(),
            })
            .collect(),
        error: None,
        clock: None,
        era: None,
    };
    TargetStatus {
        container: name.into(),
        up,
        last_check: Some(at),
        inventory: Some(inv),
        ..TargetStatus::default()
    }
}

fn count(s: &Shared, name: &str, reason: &str) -> u64 {
    s.source_errors()
        .into_iter()
        .find(|((c, r), _)| c == name && r == reason)
        .map(|(_, n)| n)
        .unwrap_or_else(|| panic!("no series for {name}/{reason}"))
}

#[test]
fn source_errors_count_every_finished_look_once() {
    use crate::inventory::ProblemReason::{BadPem, TooLarge};
    let s = Shared::new(Duration::from_secs(30), StatusDoc::default());
    let publish = |t: TargetStatus| s.publish(BTreeMap::from([(t.container.clone(), t)]));
    let bad = [
        ("a.crt", BadPem),
        ("b.crt", BadPem),
        ("tls-1/c.crt", TooLarge),
    ];
    publish(looked("r", 100, true, &bad));
    assert_eq!(count(&s, "r", "bad_pem"), 2);
    assert_eq!(count(&s, "r", "too_large"), 0, "backups are not counted");
    // The same look published again (the loop publishes every turn): not counted again.
    publish(looked("r", 100, true, &bad));
    assert_eq!(count(&s, "r", "bad_pem"), 2);
    // The next look sees them again.
    publish(looked("r", 160, true, &bad));
    assert_eq!(count(&s, "r", "bad_pem"), 4);
    // A failed look keeps the old inventory: counted as one read_failed, not its problems.
    publish(looked("r", 220, false, &bad));
    assert_eq!(count(&s, "r", "bad_pem"), 4);
    assert_eq!(count(&s, "r", "read_failed"), 1);
    // A target gone has no series; back again, it keeps counting from where it was.
    s.publish(BTreeMap::new());
    assert!(s.source_errors().is_empty());
    publish(looked("r", 280, true, &bad));
    assert_eq!(count(&s, "r", "bad_pem"), 6);
    assert_eq!(count(&s, "r", "empty"), 0);
}

#[test]
fn the_summary_says_nothing_metrics_do_not() {
    let s = Shared::new(
        Duration::from_secs(30),
        StatusDoc {
            docker_host: "unix:///secret/docker.sock".into(),
            ..StatusDoc::default()
        },
    );
    let mut t = looked(
        "rancher",
        100,
        true,
        &[("garbage.crt", crate::inventory::ProblemReason::BadPem)],
    );
    t.id = Some("0123456789ab".into());
    t.image = Some("rancher/rancher:v2.5.7".into());
    t.last_error = Some("log line: x509: certificate has expired".into());
    t.reasons = vec!["client-admin.crt expires in 20 days".into()];
    t.decision = Some("repair: due".into());
    t.breaker_open = true;
    t.in_progress = Some(JobKind::Check);
    t.next_action = Some(NextAction {
        at: 200,
        action: "check",
        why: "the next certificate enters the renewal window".into(),
    });
    t.last_repair = Some(RepairSummary {
        result: RepairEnd::Ran(RepairResult::Failed),
        requested_by: "schedule",
        started_at: 50,
        finished_at: 90,
        restarts: 2,
        backup: Some("/backups/rancher-20261124T172347Z.tar".into()),
        reasons: vec!["reason".into()],
        diagnosis: Some("Waiting for server to become available".into()),
    });
    s.publish(BTreeMap::from([("rancher".to_string(), t)]));
    let full = serde_json::to_string(&s.snapshot()).unwrap();
    let summary = serde_json::to_string(&s.summary()).unwrap();
    for secret in [
        "0123456789ab",
        "rancher/rancher:v2.5.7",
        "log line",
        "client-admin.crt",
        "repair: due",
        "/backups/",
        "Waiting for server",
        "garbage.crt",
        "docker.sock",
        "renewal window",
    ] {
        assert!(full.contains(secret), "{secret} in the full view");
        assert!(
            !summary.contains(secret),
            "{secret} leaked into the summary: {summary}"
        );
    }
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let t = &v["targets"]["rancher"];
    assert_eq!(v["view"], "summary");
    assert_eq!(t["breaker_open"], true);
    assert_eq!(
        t["in_progress"],
        serde_json::Value::Null,
        "a look is not in /metrics"
    );
    assert_eq!(t["last_repair"]["result"], "failed");
    assert_eq!(t["last_repair"]["restarts"], 2);
    assert!(t["next_action"]["at"].is_string());
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(full["targets"]["rancher"]["breaker_open"], true);
}
