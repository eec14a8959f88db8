//! Tests of `repair::machine`.

use super::*;

const S: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        max_restarts: 3,
        settle: 10 * S,
        timeout: 900 * S,
    }
}

fn obs() -> Observation {
    Observation {
        running: true,
        restarted_by_itself: false,
        signatures: vec![],
        pong: false,
        files: None,
        healthy_for: Duration::ZERO,
        time_left: 100 * S,
    }
}

/// (name, observation change, budget, expected action)
#[test]
fn verification_rules() {
    use Signature::*;
    let b0 = Budget::default();
    let spent = Budget {
        extra_restarts: 3,
        ua_attempts: 3,
        serving_resets: 0,
    };
    let cases: Vec<(&str, Observation, Budget, Action)> = vec![
        ("booting: wait", obs(), b0, Action::Wait(POLL)),
        (
            "out of time",
            Observation { time_left: Duration::ZERO, ..obs() },
            b0,
            Action::Fail(Failure::Timeout { secs: 900 }),
        ),
        (
            "exited without a loop",
            Observation { running: false, ..obs() },
            b0,
            Action::Fail(Failure::ExitsAfterRepair { signatures: vec![], last_lines: vec![] }),
        ),
        (
            "k3s exited",
            Observation { signatures: vec![K3sExited], ..obs() },
            b0,
            Action::Fail(Failure::ExitsAfterRepair { signatures: vec![K3sExited], last_lines: vec![] }),
        ),
        (
            "unknown authority: restart with 1 s backoff",
            Observation { signatures: vec![UnknownAuthority], ..obs() },
            b0,
            Action::Restart { backoff: S, why: "unknown-authority loop: restart after 1s backoff (Rancher reads k3s.yaml before K3s rewrites it)".into() },
        ),
        (
            "unknown authority a second time: reset the pair after 2 s",
            Observation { signatures: vec![UnknownAuthority], ..obs() },
            Budget { extra_restarts: 1, ua_attempts: 1, serving_resets: 0 },
            Action::ResetServing { backoff: 2 * S, why: "unknown-authority loop survived a restart: resetting the serving pair".into(), unknown_authority: true },
        ),
        (
            "unknown authority, budget spent",
            Observation { signatures: vec![UnknownAuthority], ..obs() },
            spent,
            Action::Fail(Failure::UnknownAuthorityPersists { restarts: 3 }),
        ),
        (
            "crash loop with unknown authority is the loop, not a crash",
            Observation { running: false, signatures: vec![UnknownAuthority], ..obs() },
            b0,
            Action::Restart { backoff: S, why: "unknown-authority loop: restart after 1s backoff (Rancher reads k3s.yaml before K3s rewrites it)".into() },
        ),
        (
            "old serving certificate came back",
            Observation { signatures: vec![Expired], ..obs() },
            b0,
            Action::ResetServing { backoff: Duration::ZERO, why: "[Expired] after the restart: the old :6443 certificate came back".into(), unknown_authority: false },
        ),
        (
            "serving rejected after two resets",
            Observation { signatures: vec![WaitingX509], ..obs() },
            Budget { extra_restarts: 2, ua_attempts: 0, serving_resets: 2 },
            Action::Fail(Failure::ServingRejected { signatures: vec![WaitingX509] }),
        ),
        ("pong: judge the files", Observation { pong: true, ..obs() }, b0, Action::JudgeFiles),
        (
            "fresh, settling",
            Observation { pong: true, files: Some(Files::Fresh), healthy_for: 4 * S, ..obs() },
            b0,
            Action::Wait(POLL),
        ),
        (
            "fresh, settle ends before the next poll: wake exactly then",
            Observation { pong: true, files: Some(Files::Fresh), healthy_for: 10 * S - Duration::from_millis(100), ..obs() },
            b0,
            Action::Wait(Duration::from_millis(100)),
        ),
        (
            "fresh and settled",
            Observation { pong: true, files: Some(Files::Fresh), healthy_for: 10 * S, ..obs() },
            b0,
            Action::Succeed,
        ),
        (
            "only the serving certificate is stale: reset the pair",
            Observation { pong: true, files: Some(Files::ServingStale), ..obs() },
            b0,
            Action::ResetServing { backoff: Duration::ZERO, why: "Rancher answers but the serving certificate is still due".into(), unknown_authority: false },
        ),
        (
            "serving stale, budget spent",
            Observation { pong: true, files: Some(Files::ServingStale), ..obs() },
            spent,
            Action::Fail(Failure::StillDue { stale: vec![SERVING_FILE.into()] }),
        ),
        (
            "a wiped leaf did not come back",
            Observation { pong: true, files: Some(Files::Missing(vec!["client-admin.crt".into()])), ..obs() },
            b0,
            Action::Fail(Failure::NotRegenerated { missing: vec!["client-admin.crt".into()] }),
        ),
        (
            "CA changed",
            Observation { pong: true, files: Some(Files::ProtectedChanged), ..obs() },
            b0,
            Action::Fail(Failure::ProtectedChanged { when: "after the restart".into() }),
        ),
    ];
    for (name, o, b, want) in cases {
        assert_eq!(next(&o, &b, &limits()), want, "{name}");
    }
}

#[test]
fn the_budget_counts_what_was_spent() {
    let mut b = Budget::default();
    b.spend(&Action::Restart {
        backoff: S,
        why: String::new(),
    });
    b.spend(&Action::ResetServing {
        backoff: S,
        why: String::new(),
        unknown_authority: true,
    });
    b.spend(&Action::ResetServing {
        backoff: S,
        why: String::new(),
        unknown_authority: false,
    });
    b.spend(&Action::Wait(S));
    assert_eq!(
        b,
        Budget {
            extra_restarts: 3,
            ua_attempts: 2,
            serving_resets: 2
        }
    );
}

#[test]
fn resume_rules() {
    use Phase::*;
    // (phase, exists, running, backup_ok) -> resume
    let cases = [
        (Stopping, true, false, true, Resume::Forget { start: true }),
        (Stopping, true, true, true, Resume::Forget { start: false }),
        (Wiping, true, false, true, Resume::Wipe),
        (Wiping, true, false, false, Resume::Verify { start: true }),
        (Wiping, true, true, true, Resume::Forget { start: false }),
        (Starting, true, false, true, Resume::Verify { start: true }),
        (Starting, true, true, true, Resume::Verify { start: false }),
        (
            Verifying,
            true,
            true,
            false,
            Resume::Verify { start: false },
        ),
        (Verifying, true, false, true, Resume::Verify { start: true }),
        (Wiping, false, false, true, Resume::Orphan),
        (Verifying, false, false, true, Resume::Orphan),
    ];
    for (phase, exists, running, backup_ok, want) in cases {
        assert_eq!(
            resume(phase, exists, running, backup_ok),
            want,
            "{phase:?} exists={exists} running={running} backup_ok={backup_ok}"
        );
    }
}
