//! The repair report: what was done, for people (table), scripts (JSON) and metrics.

use serde::Serialize;

use super::plan::{WipePlan, REGENERATE_TRIGGER};
use crate::report::CheckReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RepairResult {
    /// Nothing was due; nothing was touched.
    Healthy,
    /// Repaired and verified.
    Repaired,
    /// Tried and could not verify a healthy container; the backup is named in the diagnosis.
    Failed,
    /// Would not start (no backup possible, nothing to do safely); nothing was changed.
    Refused,
    /// `--dry-run`: the plan only.
    DryRun,
    /// Another run acts on the container; nothing was changed.
    Busy,
    /// SIGINT/SIGTERM: the step in progress was finished or rolled forward, the container
    /// left running; the journal lets the next run verify.
    Interrupted,
}

impl RepairResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RepairResult::Healthy => "healthy",
            RepairResult::Repaired => "repaired",
            RepairResult::Failed => "failed",
            RepairResult::Refused => "refused",
            RepairResult::DryRun => "dry_run",
            RepairResult::Busy => "busy",
            RepairResult::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub detail: String,
    pub seconds: f64,
}

/// Everything a repair did, for people (table), scripts (JSON) and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub result: RepairResult,
    pub target: String,
    pub restarts: u32,
    pub backup: Option<String>,
    pub wiped: Vec<String>,
    pub reasons: Vec<String>,
    pub plan: Option<WipePlan>,
    pub before: Option<CheckReport>,
    pub after: Option<CheckReport>,
    pub steps: Vec<Step>,
    pub diagnosis: Option<String>,
    /// Why it stopped short, as a stable label (`timeout`, `not_regenerated`, …).
    pub failure: Option<&'static str>,
    /// The Rancher and K3s versions of the container, when its image says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub era: Option<super::evidence::Era>,
    /// What could not be seen (unreadable logs, …), in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RepairReport {
    pub(super) fn new(target: &str) -> Self {
        Self {
            result: RepairResult::Failed,
            target: target.to_string(),
            restarts: 0,
            backup: None,
            wiped: vec![],
            reasons: vec![],
            plan: None,
            before: None,
            after: None,
            steps: vec![],
            diagnosis: None,
            failure: None,
            era: None,
            notes: vec![],
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if let Some(b) = &self.before {
            out.push_str("BEFORE\n");
            out.push_str(&b.to_table());
        }
        if !self.reasons.is_empty() {
            out.push_str("\nWHY\n");
            for r in &self.reasons {
                out.push_str(&format!("  - {r}\n"));
            }
        }
        if let Some(p) = &self.plan {
            out.push_str("\nPLAN\n");
            out.push_str("  back up: the whole TLS tree, k3s.yaml, the k3s-serving secret\n");
            for d in &p.delete {
                out.push_str(&format!("  delete: {d}\n"));
            }
            if p.reset_serving {
                out.push_str("  delete: secret kube-system/k3s-serving (with dynamic-cert.json)\n");
                out.push_str(&format!("  create: {REGENERATE_TRIGGER} (newer K3s regenerates the :6443 certificate)\n"));
            }
            for (k, why) in &p.kept {
                out.push_str(&format!("  keep: {k} ({why})\n"));
            }
            out.push_str("  never: CA certificates and keys, service.key, anything outside the TLS directory\n");
            if self.result == RepairResult::DryRun {
                out.push_str(
                    "  then: stop the container, wipe through a helper container, start, verify\n",
                );
            }
        }
        if !self.steps.is_empty() {
            out.push_str("\nSTEPS\n");
            for s in &self.steps {
                out.push_str(&format!(
                    "  {:<4} {:<16} {:>7.2}s  {}\n",
                    if s.ok { "ok" } else { "FAIL" },
                    s.step,
                    s.seconds,
                    s.detail
                ));
            }
        }
        if let Some(a) = &self.after {
            out.push_str("\nAFTER\n");
            out.push_str(&a.to_table());
        }
        out.push_str(&format!(
            "\nresult: {}  restarts: {}  backup: {}\n",
            self.result.as_str(),
            self.restarts,
            self.backup.as_deref().unwrap_or("-")
        ));
        if let Some(d) = &self.diagnosis {
            out.push_str(&format!("diagnosis: {d}\n"));
        }
        out
    }
}
