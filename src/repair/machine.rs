//! The rules of the repair ladder, pure: what to do next given what was just observed. The
//! effectful half (`ladder.rs`) observes through the [`super::engine::Engine`] and obeys.
//!
//! - [`next`]: after the restart, until the container is verified healthy — when to wait, when
//!   to read the regenerated files, when to restart again, when to reset the serving pair, when
//!   to give up;
//! - [`judge_files`]: did K3s bring back what was wiped, fresh, from the unchanged CAs?
//! - [`resume`]: what an interrupted repair left, and how to finish it.
//!
//! No I/O, no clock: durations and observations come in, a decision goes out.

use std::time::Duration;

use super::failure::Failure;
use super::journal::Phase;
use super::plan::Signature;
use crate::inventory::{Inventory, Status, SERVING_FILE};

/// How often the verification looks again while nothing is conclusive.
pub const POLL: Duration = Duration::from_millis(250);

/// Restarts spent so far on the known loops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    /// Restarts after the first start (plain restarts and serving-pair resets).
    pub extra_restarts: u32,
    /// Times the unknown-authority loop was met.
    pub ua_attempts: u32,
    pub serving_resets: u32,
}

impl Budget {
    /// Account for an action just taken.
    pub fn spend(&mut self, action: &Action) {
        match action {
            Action::Restart { .. } => {
                self.extra_restarts += 1;
                self.ua_attempts += 1;
            }
            Action::ResetServing {
                unknown_authority, ..
            } => {
                self.extra_restarts += 1;
                self.serving_resets += 1;
                if *unknown_authority {
                    self.ua_attempts += 1;
                }
            }
            _ => {}
        }
    }
}

/// What K3s brought back, judged once Rancher answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Files {
    /// Every wiped file is back, parses, is beyond the window and chains to an old CA.
    Fresh,
    /// Only the serving certificate (`dynamic-cert.json`) is still due: the old one came back.
    ServingStale,
    /// Other certificates are still due.
    Stale(Vec<String>),
    /// Wiped files did not come back.
    Missing(Vec<String>),
    /// Regenerated leaves issued by a CA the tree did not hold before.
    NotChained(Vec<String>),
    /// CA material or `service.key` changed.
    ProtectedChanged,
}

/// One look at the container during verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub running: bool,
    /// Its start time or restart count moved since our start: it crashed and came back.
    pub restarted_by_itself: bool,
    /// Failure signatures of the embedded K3s in the logs since our start.
    pub signatures: Vec<Signature>,
    pub pong: bool,
    /// The judgement of the files in this attempt, once made.
    pub files: Option<Files>,
    /// How long it has answered continuously since the files were judged fresh.
    pub healthy_for: Duration,
    pub time_left: Duration,
}

/// Settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_restarts: u32,
    pub settle: Duration,
    pub timeout: Duration,
}

/// What the ladder does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing conclusive: look again after this long.
    Wait(Duration),
    /// Rancher answers: read the tree and [`judge_files`].
    JudgeFiles,
    /// Restart again after `backoff` (Rancher read the stale `k3s.yaml` before K3s rewrote it).
    Restart {
        backoff: Duration,
        why: String,
    },
    /// Delete `dynamic-cert.json` and the `k3s-serving` secret, restart.
    ResetServing {
        backoff: Duration,
        why: String,
        unknown_authority: bool,
    },
    /// Verified: healthy for the whole settle time.
    Succeed,
    Fail(Failure),
}

fn has(sigs: &[Signature], s: Signature) -> bool {
    sigs.contains(&s)
}

/// The verification rules, in order.
pub fn next(o: &Observation, b: &Budget, l: &Limits) -> Action {
    if o.time_left.is_zero() {
        return Action::Fail(Failure::Timeout {
            secs: l.timeout.as_secs(),
        });
    }
    let ua = has(&o.signatures, Signature::UnknownAuthority);
    let crashed = !o.running || o.restarted_by_itself || has(&o.signatures, Signature::K3sExited);
    if crashed && !ua {
        return Action::Fail(Failure::ExitsAfterRepair {
            signatures: o.signatures.clone(),
            last_lines: vec![],
        });
    }
    if ua {
        if b.extra_restarts >= l.max_restarts {
            return Action::Fail(Failure::UnknownAuthorityPersists {
                restarts: b.extra_restarts,
            });
        }
        let backoff = crate::backoff::doubling(
            Duration::from_secs(1),
            b.ua_attempts + 1,
            Duration::from_secs(32),
        );
        // The first time, a plain restart (Rancher read k3s.yaml before K3s rewrote it); the
        // second, the stale part is the serving certificate: reset the pair.
        return if b.ua_attempts == 1 {
            Action::ResetServing {
                backoff,
                why: "unknown-authority loop survived a restart: resetting the serving pair".into(),
                unknown_authority: true,
            }
        } else {
            Action::Restart {
                backoff,
                why: format!(
                    "unknown-authority loop: restart after {}s backoff (Rancher reads k3s.yaml before K3s rewrites it)",
                    backoff.as_secs()
                ),
            }
        };
    }
    if has(&o.signatures, Signature::Expired) || has(&o.signatures, Signature::WaitingX509) {
        if b.extra_restarts >= l.max_restarts || b.serving_resets >= 2 {
            return Action::Fail(Failure::ServingRejected {
                signatures: o.signatures.clone(),
            });
        }
        return Action::ResetServing {
            backoff: Duration::ZERO,
            why: format!(
                "{:?} after the restart: the old :6443 certificate came back",
                o.signatures
            ),
            unknown_authority: false,
        };
    }
    if !o.pong {
        return Action::Wait(POLL.min(o.time_left));
    }
    match &o.files {
        None => Action::JudgeFiles,
        Some(Files::Fresh) if o.healthy_for >= l.settle => Action::Succeed,
        Some(Files::Fresh) => Action::Wait(
            POLL.min(l.settle - o.healthy_for)
                .min(o.time_left)
                .max(Duration::from_millis(10)),
        ),
        Some(Files::ServingStale) if b.extra_restarts < l.max_restarts && b.serving_resets < 2 => {
            Action::ResetServing {
                backoff: Duration::ZERO,
                why: "Rancher answers but the serving certificate is still due".into(),
                unknown_authority: false,
            }
        }
        Some(Files::ServingStale) => Action::Fail(Failure::StillDue {
            stale: vec![SERVING_FILE.to_string()],
        }),
        Some(Files::Stale(s)) => Action::Fail(Failure::StillDue { stale: s.clone() }),
        Some(Files::Missing(m)) => Action::Fail(Failure::NotRegenerated { missing: m.clone() }),
        Some(Files::NotChained(l)) => Action::Fail(Failure::NotChained { leaves: l.clone() }),
        Some(Files::ProtectedChanged) => Action::Fail(Failure::ProtectedChanged {
            when: "after the restart".into(),
        }),
    }
}

/// What must be true of the tree after the restart. `protected_before`/`_after`: CA and
/// service-account files byte for byte (so every CA that existed is unchanged); `wiped`: what
/// the repair deleted; `exists`: whether a path exists now. Each regenerated leaf must be
/// issued by a CA file of the tree — an unchanged one, or one K3s minted because it was
/// already missing.
pub fn judge_files(
    protected_before: &[(String, Vec<u8>)],
    protected_after: &[(String, Vec<u8>)],
    wiped: &[String],
    exists: impl Fn(&str) -> bool,
    after: &Inventory,
) -> Files {
    // Every protected file that existed before is still there, byte for byte (new ones may
    // appear: K3s mints a CA that was already missing before the repair).
    if !protected_before.iter().all(|b| protected_after.contains(b)) {
        return Files::ProtectedChanged;
    }
    let missing: Vec<String> = wiped.iter().filter(|p| !exists(p)).cloned().collect();
    if !missing.is_empty() {
        return Files::Missing(missing);
    }
    let leaves: Vec<_> = after.renewable().filter(|c| c.index == 0).collect();
    let stale: Vec<String> = leaves
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| format!("{} ({})", c.path, c.status.as_str()))
        .collect();
    if !stale.is_empty() {
        let only_serving = leaves
            .iter()
            .filter(|c| c.status != Status::Ok)
            .all(|c| c.path == SERVING_FILE);
        return if only_serving {
            Files::ServingStale
        } else {
            Files::Stale(stale)
        };
    }
    let cas: Vec<&str> = after
        .certificates
        .iter()
        .filter(|c| c.is_ca && c.index == 0)
        .map(|c| c.subject.as_str())
        .collect();
    let strays: Vec<String> = leaves
        .iter()
        .filter(|c| wiped.contains(&c.path))
        .filter(|c| !cas.contains(&c.issuer.as_str()))
        .map(|c| format!("{} (issuer {})", c.path, c.issuer))
        .collect();
    if !strays.is_empty() {
        return Files::NotChained(strays);
    }
    Files::Fresh
}

/// How to finish what an interrupted repair left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Nothing was deleted, or the container already runs again: forget the journal (after
    /// starting the container when it is stopped) and look afresh.
    Forget { start: bool },
    /// Redo the wipe (the backup exists and verifies), start, verify.
    Wipe,
    /// Start (when stopped) and verify.
    Verify { start: bool },
    /// The container is gone: the journal is set aside, nothing is done.
    Orphan,
}

/// `phase`: the journal's step; `exists`/`running`: the container now; `backup_ok`: the
/// journal's archive reads back and verifies.
pub fn resume(phase: Phase, exists: bool, running: bool, backup_ok: bool) -> Resume {
    if !exists {
        return Resume::Orphan;
    }
    match phase {
        Phase::Stopping => Resume::Forget { start: !running },
        // Started by someone mid-wipe: K3s regenerated what was missing at that start; a
        // fresh look (with a new backup if anything is still due) decides.
        Phase::Wiping if running => Resume::Forget { start: false },
        Phase::Wiping if backup_ok => Resume::Wipe,
        // No verifiable backup: never delete again; starting regenerates what is missing.
        Phase::Wiping => Resume::Verify { start: true },
        Phase::Starting | Phase::Verifying => Resume::Verify { start: !running },
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
