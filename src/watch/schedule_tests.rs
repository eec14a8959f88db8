//! Tests of `watch::schedule`.

use super::*;

// 2024-06-02 was a Sunday.
fn t(day: i64, hh: i64, mm: i64) -> i64 {
    let sunday_2024_06_02 = 1_717_286_400;
    sunday_2024_06_02 + day * DAY + hh * 3600 + mm * 60
}

#[test]
fn weekday_of_known_dates() {
    assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
    assert_eq!(weekday(t(0, 12, 0)), 6, "Sunday");
    assert_eq!(weekday(t(1, 0, 0)), 0, "Monday");
    assert_eq!(weekday(-1), 2, "1969-12-31 was a Wednesday");
}

#[test]
fn parses_windows() {
    let w: Window = "Sun 02:00-04:00".parse().unwrap();
    assert_eq!(w.to_string(), "Sun 02:00-04:00 UTC");
    assert_eq!(
        "sat,SUN 1:00-5:30".parse::<Window>().unwrap().to_string(),
        "Sat,Sun 01:00-05:30 UTC"
    );
    assert_eq!(
        "Mon-Fri 22:00-02:00".parse::<Window>().unwrap().to_string(),
        "Mon,Tue,Wed,Thu,Fri 22:00-02:00 UTC"
    );
    assert_eq!(
        "Fri-Mon 00:00-24:00".parse::<Window>().unwrap().to_string(),
        "Mon,Fri,Sat,Sun 00:00-24:00 UTC"
    );
    assert_eq!(
        "02:00-04:00 UTC".parse::<Window>().unwrap().to_string(),
        "02:00-04:00 UTC"
    );
    assert_eq!(
        "Sunday 02:00-04:00".parse::<Window>().unwrap(),
        "Sun 02:00-04:00".parse::<Window>().unwrap()
    );
    for bad in [
        "",
        "Sun",
        "Sun 02:00",
        "Sun 02:00-02:00",
        "Sun 25:00-26:00",
        "Sun 02:60-03:00",
        "Funday 02:00-04:00",
        "Sunburn 02:00-04:00",
        "Sun 24:00-01:00",
        "Sun 2-4",
    ] {
        let e = bad.parse::<Window>().unwrap_err();
        assert!(e.contains("invalid --window"), "{bad}: {e}");
    }
}

#[test]
fn contains_and_next_open() {
    let w: Window = "Sun 02:00-04:00".parse().unwrap();
    assert!(!w.contains(t(0, 1, 59)));
    assert!(w.contains(t(0, 2, 0)));
    assert!(w.contains(t(0, 3, 59)));
    assert!(!w.contains(t(0, 4, 0)));
    assert!(!w.contains(t(1, 3, 0)), "Monday");
    assert_eq!(w.next_open(t(0, 1, 0)), t(0, 2, 0));
    assert_eq!(w.next_open(t(0, 2, 0)), t(7, 2, 0), "strictly after");
    assert_eq!(w.next_open(t(0, 5, 0)), t(7, 2, 0));
    assert_eq!(w.next_open(t(3, 5, 0)), t(7, 2, 0));

    // Crossing midnight: Friday 22:00 to Saturday 02:00 belongs to Friday.
    let w: Window = "Fri 22:00-02:00".parse().unwrap();
    assert!(w.contains(t(5, 23, 0)));
    assert!(w.contains(t(6, 1, 59)), "Saturday early morning");
    assert!(!w.contains(t(6, 2, 0)));
    assert!(!w.contains(t(6, 23, 0)), "not Saturday night");
    assert!(!w.contains(t(0, 1, 0)), "not Sunday early morning");
    assert_eq!(w.next_open(t(6, 1, 0)), t(12, 22, 0));

    let daily: Window = "02:00-04:00".parse().unwrap();
    assert_eq!(daily.next_open(t(3, 3, 0)), t(4, 2, 0));
    let always: Window = "00:00-24:00".parse().unwrap();
    assert!(always.contains(t(2, 13, 37)));
}

fn due(expiry: i64) -> Findings {
    Findings {
        reasons: vec!["client-admin.crt is warning".into()],
        urgent: false,
        earliest_expiry: Some(expiry),
        renew_at: Some(expiry - 90 * DAY),
        stopped: None,
        pending: None,
        clock: None,
    }
}

fn policy(window: Option<&str>) -> Policy {
    Policy {
        monitor_only: false,
        window: window.map(|w| w.parse().unwrap()),
        repair_budget: Duration::from_secs(900),
    }
}

#[test]
fn healthy_sleeps_until_the_window_of_the_next_certificate() {
    let now = t(0, 12, 0);
    let f = Findings {
        renew_at: Some(now + 3600),
        earliest_expiry: Some(now + 3600 + 90 * DAY),
        ..Findings::default()
    };
    assert_eq!(
        decide(now, &f, &policy(None), Gate::Open),
        Decision::Healthy {
            renew_in: Some(Duration::from_secs(3600))
        }
    );
}

#[test]
fn due_repairs_now_without_a_window() {
    let now = t(0, 12, 0);
    assert!(matches!(
        decide(now, &due(now + 20 * DAY), &policy(None), Gate::Open),
        Decision::Repair { .. }
    ));
}

#[test]
fn window_delays_non_urgent_repairs() {
    let now = t(1, 12, 0); // Monday noon
    let d = decide(
        now,
        &due(now + 20 * DAY),
        &policy(Some("Sun 02:00-04:00")),
        Gate::Open,
    );
    match d {
        Decision::Wait { after, why } => {
            assert_eq!(after, Duration::from_secs((t(7, 2, 0) - now) as u64));
            assert!(why.contains("maintenance window"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // Inside the window: now.
    let now = t(7, 2, 30);
    assert!(matches!(
        decide(
            now,
            &due(now + 20 * DAY),
            &policy(Some("Sun 02:00-04:00")),
            Gate::Open
        ),
        Decision::Repair { .. }
    ));
}

#[test]
fn expiry_before_the_window_overrides_it() {
    let now = t(1, 12, 0);
    let open = t(7, 2, 0);
    // Expires a day before the window opens.
    let d = decide(
        now,
        &due(open - DAY),
        &policy(Some("Sun 02:00-04:00")),
        Gate::Open,
    );
    assert!(
        matches!(&d, Decision::Repair { why } if why.contains("before a repair in the window")),
        "{d:?}"
    );
    // Expires 10 minutes after the window opens: a 15-minute repair could not finish.
    assert!(matches!(
        decide(
            now,
            &due(open + 600),
            &policy(Some("Sun 02:00-04:00")),
            Gate::Open
        ),
        Decision::Repair { .. }
    ));
    // Expired already, or failing in the logs: urgent.
    let mut f = due(now + 20 * DAY);
    f.urgent = true;
    assert!(matches!(
        decide(now, &f, &policy(Some("Sun 02:00-04:00")), Gate::Open),
        Decision::Repair { .. }
    ));
}

#[test]
fn gate_monitor_only_and_stopped_come_first() {
    let now = t(0, 12, 0);
    let f = due(now + DAY);
    let cooldown = Gate::Cooldown(Duration::from_secs(300));
    assert_eq!(
        decide(now, &f, &policy(None), cooldown),
        Decision::Wait {
            after: Duration::from_secs(300),
            why: "due (client-admin.crt is warning); cooling down after the last repair for 5 minutes".into()
        }
    );
    let tripped = Gate::Tripped {
        remaining: Duration::from_secs(7200),
        count: 3,
    };
    assert!(matches!(
        decide(now, &f, &policy(None), tripped),
        Decision::Wait { after, ref why } if after == Duration::from_secs(7200) && why.contains("circuit breaker")
    ));
    let mut urgent = f.clone();
    urgent.urgent = true;
    assert!(
        matches!(
            decide(now, &urgent, &policy(None), tripped),
            Decision::Wait { .. }
        ),
        "the breaker holds even when urgent"
    );
    let mut p = policy(None);
    p.monitor_only = true;
    assert!(matches!(
        decide(now, &urgent, &p, Gate::Open),
        Decision::Report { .. }
    ));
    let mut stopped = f.clone();
    stopped.stopped = Some("exited".into());
    assert!(matches!(
        decide(now, &stopped, &policy(None), Gate::Open),
        Decision::Leave { .. }
    ));
}

/// What an earlier run left decides first: a stopped container is finished whatever the
/// window, cooldown or breaker; a running one (verification left) within the breaker only;
/// another run acting is left to it; a refused journal is reported; monitor-only reports.
#[test]
fn pending_work_comes_first() {
    let now = t(2, 12, 0); // Tuesday noon: outside the Sunday window
    let w = policy(Some("Sun 02:00-04:00"));
    let tripped = Gate::Tripped {
        remaining: Duration::from_secs(3600),
        count: 3,
    };
    let cooling = Gate::Cooldown(Duration::from_secs(300));
    let with = |p: Pending| Findings {
        pending: Some(p),
        ..Findings::default()
    };
    let finish = |stopped| Pending::Finish {
        why: "a repair was interrupted".into(),
        stopped,
    };
    for gate in [Gate::Open, cooling, tripped] {
        assert!(
            matches!(
                decide(now, &with(finish(true)), &w, gate),
                Decision::Repair { .. }
            ),
            "stopped: finished now, {gate:?}"
        );
    }
    assert!(matches!(
        decide(now, &with(finish(false)), &w, cooling),
        Decision::Repair { .. }
    ));
    assert!(matches!(
        decide(now, &with(finish(false)), &w, tripped),
        Decision::Wait { after, .. } if after == Duration::from_secs(3600)
    ));
    assert!(matches!(
        decide(now, &with(Pending::Busy("another run".into())), &w, Gate::Open),
        Decision::Wait { after, .. } if after == BUSY_RECHECK
    ));
    assert!(matches!(
        decide(
            now,
            &with(Pending::Refused("bad journal".into())),
            &w,
            Gate::Open
        ),
        Decision::Report { .. }
    ));
    let mut mo = w.clone();
    mo.monitor_only = true;
    assert!(matches!(
        decide(now, &with(finish(true)), &mo, Gate::Open),
        Decision::Report { .. }
    ));
    // The clock: due, but nothing is changed.
    let skew = Findings {
        reasons: vec!["client-admin.crt is expired".into()],
        urgent: true,
        clock: Some("the tool's clock reads 1970".into()),
        ..Findings::default()
    };
    assert!(
        matches!(decide(now, &skew, &w, Gate::Open), Decision::Report { ref why } if why.contains("clock"))
    );
}
