//! The clock sanity gate: before anything is changed, the tool's clock, the Docker daemon's
//! clock and the certificates themselves must agree.
//!
//! Every verdict of the inventory — expired, not yet valid, due — is a comparison with a
//! clock, and every certificate K3s mints after a wipe takes its dates from the host's clock.
//! A host whose clock reset to 1970 (no RTC battery, NTP not yet synced) sees every
//! certificate "not yet valid"; a clock a year ahead sees every leaf "expired". Wiping then
//! mints certificates from the wrong time, and when the clock is corrected K3s is broken for
//! good (k3s-io/k3s#6152, #5163, #411; rancher/k3os#397). The right answer is to refuse and say
//! "clock".
//!
//! What is checked ([`check_clock`]):
//! * the tool's clock against the Docker daemon's (`SystemTime` of `GET /info`): they differ
//!   when the tool runs on another host (`DOCKER_HOST=tcp://…`) or under a faked clock;
//! * both against a floor: no clock can read earlier than [`CLOCK_FLOOR`], the day this code
//!   was written (a build cannot run before it exists);
//! * the certificates: a CA whose `not_before` lies in the future, or a tree where *every*
//!   certificate is not yet valid, means the clock is behind the clock that minted them.
//!
//! What cannot be detected: a clock that jumped **ahead**. The daemon and the tool usually
//! share the host kernel's clock, so they agree with each other; certificates minted before
//! the jump simply look older, exactly like certificates that really aged. Only an outside
//! time source could tell, and this tool talks to nothing but the Docker socket. What limits
//! the damage: routine renewals happen `--renew-before` (90 days) before expiry, so a jump of
//! less than that only brings a renewal forward; and a tree minted under a clock that later
//! jumps *back* is caught by the CA check above on the next look.

use serde::Serialize;

use crate::inventory::Inventory;
use crate::timefmt::{residual, rfc3339};

/// 2026-11-26T00:00:00Z, the day this gate was written: no correct clock reads earlier.
///
/// Deliberately a constant and not the build time: a build host whose own clock is wrong
/// would otherwise bake a floor in the future into every binary, and every repair would be
/// refused.
pub const CLOCK_FLOOR: i64 = 1_795_651_200;

/// A suggested tolerance between clocks, in seconds. K3s itself back-dates new CAs by an hour
/// from dynamiclistener v0.7.3 on (rancher/dynamiclistener `cert/cert.go`), so a few minutes are safe.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Which check found the skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkewKind {
    /// The tool's and the Docker daemon's clocks differ by more than the tolerance.
    DaemonDisagrees,
    /// The tool's clock reads earlier than [`CLOCK_FLOOR`].
    ToolBeforeFloor,
    /// The Docker daemon's clock reads earlier than [`CLOCK_FLOOR`].
    DaemonBeforeFloor,
    /// A CA certificate's `not_before` is further in the future than the tolerance.
    CaFromTheFuture,
    /// Every certificate of the tree is not yet valid (beyond the tolerance).
    NothingValidYet,
}

/// Why the clocks cannot be trusted, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockSkew {
    /// One sentence naming the clocks, what they read and by how much they differ, and what
    /// to do. The caller adds what it did (see [`ClockSkew::refusal`]).
    pub reason: String,
    /// Every check that fired, in the order of the reason.
    pub kinds: Vec<SkewKind>,
    /// The tool's clock (Unix seconds), as passed in.
    #[serde(with = "crate::timefmt::rfc3339")]
    pub tool_now: i64,
    /// The daemon's clock (Unix seconds), when it could be read.
    pub daemon_now: Option<i64>,
    /// `tool_now - daemon_now` in seconds (positive: the tool is ahead).
    pub tool_minus_daemon_secs: Option<i64>,
    /// How far the latest CA `not_before` lies after the tool's clock, in seconds, when that
    /// is beyond the tolerance.
    pub ca_ahead_secs: Option<i64>,
    /// The CA file that shows it.
    pub ca_path: Option<String>,
}

impl ClockSkew {
    /// The reason as a refusal, for a caller that stopped before any change.
    pub fn refusal(&self) -> String {
        format!("{}; nothing was changed", self.reason)
    }
}

/// Check the clocks before acting. `tool_now` is this process's clock, `daemon_now` the
/// Docker daemon's (`None` when it could not be read: only the other checks apply), `inv` the
/// inventory of the TLS tree, `tolerance_secs` how far clocks may disagree.
// The skew is returned by value, as the gate's callers asked: it is built once per look,
// never on a hot path, so boxing it would only make the callers noisier.
#[allow(clippy::result_large_err)]
pub fn check_clock(
    tool_now: i64,
    daemon_now: Option<i64>,
    inv: &Inventory,
    tolerance_secs: i64,
) -> Result<(), ClockSkew> {
    let tol = tolerance_secs.max(0);
    let tool = rfc3339(tool_now);
    let mut parts: Vec<String> = Vec::new();
    let mut kinds = Vec::new();
    let tool_minus_daemon = daemon_now.map(|d| tool_now.saturating_sub(d));

    if let (Some(d), Some(off)) = (daemon_now, tool_minus_daemon) {
        if off.saturating_abs() > tol {
            parts.push(format!(
                "the tool's clock reads {tool}, Docker's reads {} (the tool is {} {})",
                rfc3339(d),
                residual(off.saturating_abs()),
                if off > 0 { "ahead" } else { "behind" }
            ));
            kinds.push(SkewKind::DaemonDisagrees);
        }
    }
    if tool_now < CLOCK_FLOOR {
        parts.push(format!(
            "the tool's clock reads {tool}, before {} (the day this build was written)",
            rfc3339(CLOCK_FLOOR)
        ));
        kinds.push(SkewKind::ToolBeforeFloor);
    }
    if let Some(d) = daemon_now.filter(|d| *d < CLOCK_FLOOR) {
        parts.push(format!(
            "Docker's clock reads {}, before {} (the day this build was written)",
            rfc3339(d),
            rfc3339(CLOCK_FLOOR)
        ));
        kinds.push(SkewKind::DaemonBeforeFloor);
    }

    let mut ca_ahead = None;
    let mut ca_path = None;
    if let Some(ca) = inv
        .certificates
        .iter()
        .filter(|c| c.is_ca)
        .max_by_key(|c| c.not_before)
    {
        let ahead = ca.not_before.saturating_sub(tool_now);
        if ahead > tol {
            parts.push(format!(
                "CA {} is valid only from {}, {} after the tool's clock ({tool}): the clock that minted it was ahead, or this one is behind",
                ca.path,
                rfc3339(ca.not_before),
                residual(ahead)
            ));
            kinds.push(SkewKind::CaFromTheFuture);
            ca_ahead = Some(ahead);
            ca_path = Some(ca.path.clone());
        }
    }
    if let Some(first) = inv.certificates.iter().map(|c| c.not_before).min() {
        let ahead = first.saturating_sub(tool_now);
        if ahead > tol {
            parts.push(format!(
                "every certificate ({}) is not yet valid: the earliest is valid from {}, {} after the tool's clock",
                inv.certificates.len(),
                rfc3339(first),
                residual(ahead)
            ));
            kinds.push(SkewKind::NothingValidYet);
        }
    }

    if parts.is_empty() {
        return Ok(());
    }
    Err(ClockSkew {
        reason: format!(
            "clock skew: {}; fix the host's time (NTP, RTC battery) and run again",
            parts.join("; ")
        ),
        kinds,
        tool_now,
        daemon_now,
        tool_minus_daemon_secs: tool_minus_daemon,
        ca_ahead_secs: ca_ahead,
        ca_path,
    })
}

#[cfg(test)]
#[path = "clock_tests.rs"]
mod tests;
