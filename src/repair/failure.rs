//! Why a repair did not end healthy, as a type: every way the ladder can stop, each with a
//! diagnosis a person can act on and a short label for metrics and JSON.

use serde::Serialize;

use super::journal::Phase;
use super::plan::Signature;

/// A ladder that stopped short of a verified, healthy container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// `--timeout` ran out before the container was verified.
    Timeout { secs: u64 },
    /// The container exits (or restarts by itself) after the repair, without a known loop.
    ExitsAfterRepair {
        signatures: Vec<Signature>,
        last_lines: Vec<String>,
    },
    /// `signed by unknown authority` survived every allowed restart.
    UnknownAuthorityPersists { restarts: u32 },
    /// The :6443 certificate is still rejected after resetting the serving pair.
    ServingRejected { signatures: Vec<Signature> },
    /// Files the wipe deleted did not come back at the start.
    NotRegenerated { missing: Vec<String> },
    /// Certificates are still expired or within the window after the restart.
    StillDue { stale: Vec<String> },
    /// A regenerated certificate is not issued by a CA the tree had before.
    NotChained { leaves: Vec<String> },
    /// CA material or `service.key` changed: stop and restore the backup.
    ProtectedChanged { when: String },
    /// The helper deleted nothing: the TLS directory is not on a volume of the container.
    WipeDidNotReach {
        still: Vec<String>,
        tls_path: String,
    },
    /// The wipe helper failed.
    WipeHelper { code: i64, output: String },
    /// The tree changed while stopping and the second backup could not be written.
    SecondBackup { detail: String },
    /// The container was removed (or recreated under its name) during the repair.
    ContainerGone,
    /// A Docker call failed.
    Docker { action: String, error: String },
    /// SIGINT/SIGTERM: the current step was finished or rolled forward.
    Interrupted { phase: Phase },
    /// After the restart the logs say "not yet valid": the clock, not the certificates.
    Clock { detail: String },
}

impl Failure {
    /// Short stable label (metrics, JSON).
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Timeout { .. } => "timeout",
            Failure::ExitsAfterRepair { .. } => "exits_after_repair",
            Failure::UnknownAuthorityPersists { .. } => "unknown_authority_persists",
            Failure::ServingRejected { .. } => "serving_rejected",
            Failure::NotRegenerated { .. } => "not_regenerated",
            Failure::StillDue { .. } => "still_due",
            Failure::NotChained { .. } => "not_chained",
            Failure::ProtectedChanged { .. } => "protected_changed",
            Failure::WipeDidNotReach { .. } => "wipe_did_not_reach",
            Failure::WipeHelper { .. } => "wipe_helper",
            Failure::SecondBackup { .. } => "second_backup",
            Failure::ContainerGone => "container_gone",
            Failure::Docker { .. } => "docker",
            Failure::Interrupted { .. } => "interrupted",
            Failure::Clock { .. } => "clock",
        }
    }

    /// What happened and what to do, in one paragraph.
    pub fn diagnosis(&self) -> String {
        match self {
            Failure::Timeout { secs } => format!(
                "not healthy within --timeout {secs}s (a real Rancher can take minutes to boot: raise --timeout, or point --health-url at a published port)"
            ),
            Failure::ExitsAfterRepair {
                signatures,
                last_lines,
            } => format!(
                "the container exits after the repair ({}); last log lines: {last_lines:?}",
                if signatures.is_empty() {
                    "no known signature".to_string()
                } else {
                    format!("{signatures:?}")
                }
            ),
            Failure::UnknownAuthorityPersists { restarts } => format!(
                "still `signed by unknown authority` after {restarts} extra restarts (--max-restarts)"
            ),
            Failure::ServingRejected { signatures } => format!(
                "the :6443 serving certificate is still rejected ({signatures:?}) after resetting dynamic-cert.json and the k3s-serving secret"
            ),
            Failure::NotRegenerated { missing } => format!(
                "K3s did not regenerate {missing:?} at its start (they were deleted by the repair)"
            ),
            Failure::StillDue { stale } => {
                format!("K3s did not renew {stale:?}: still expired or within the window")
            }
            Failure::NotChained { leaves } => format!(
                "{leaves:?} came back issued by a CA the tree did not hold before"
            ),
            Failure::ProtectedChanged { when } => format!(
                "CA certificates or keys or service.key changed {when} — stop the container and restore the backup"
            ),
            Failure::WipeDidNotReach { still, tls_path } => format!(
                "the wipe did not reach the TLS directory (still present: {still:?}); is {tls_path} on a volume of the container?"
            ),
            Failure::WipeHelper { code, output } => {
                format!("the wipe helper exited {code}: {output}")
            }
            Failure::SecondBackup { detail } => format!(
                "the tree changed while stopping and the second backup failed: {detail}; nothing was deleted"
            ),
            Failure::ContainerGone => "the container was removed (or recreated under its name) during the repair; nothing more was done to it, and a new container is never wiped without a new plan and backup".into(),
            Failure::Docker { action, error } => format!("{action} failed: {error}"),
            Failure::Interrupted { phase } => format!(
                "interrupted by a signal at step `{}`; the step was finished or rolled forward and the container left running; run again to verify",
                phase.as_str()
            ),
            Failure::Clock { detail } => format!(
                "the clock looks wrong, not the certificates: {detail}; fix the host's time (NTP/RTC)"
            ),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.diagnosis())
    }
}
