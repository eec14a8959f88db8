//! Every exit code of the program, decided here and only here: each command ends with an
//! [`Outcome`], [`Outcome::code`] maps it. The README's "Exit codes" table is checked against
//! [`TABLE`] by a test (`tests/exit_codes.rs`).

use crate::inventory::Status;
use crate::repair::{RepairReport, RepairResult};

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `check`: the overall status of the tree (a wrong clock makes it [`Status::Unknown`]).
    Checked(Status),
    /// `repair`: its result; a dry run exits like `check` would.
    Repaired {
        result: RepairResult,
        /// The status of the tree before (for a dry run).
        before: Option<Status>,
        /// Something calls for a repair (a dry run with nothing but log reasons exits 1).
        due: bool,
    },
    /// The source could not be read, the daemon could not be reached: unknown.
    Unknown,
    /// An invalid argument or configuration (clap's own usage errors exit 2 as well).
    Usage,
    /// `watch` could not start (the listen address is taken).
    CannotStart,
    /// `watch` stopped cleanly.
    Stopped,
    /// `healthcheck`: did `/healthz` answer 200?
    Healthy(bool),
}

/// Nagios plugin convention for a tree's status: 0 ok, 1 warning, 2 critical, 3 unknown.
fn nagios(s: Status) -> u8 {
    match s {
        Status::Ok => 0,
        Status::Warning => 1,
        Status::NotYetValid | Status::Expired => 2,
        Status::Unknown => 3,
    }
}

impl Outcome {
    pub fn code(&self) -> u8 {
        match self {
            Outcome::Checked(s) => nagios(*s),
            Outcome::Repaired {
                result,
                before,
                due,
            } => match result {
                RepairResult::Healthy | RepairResult::Repaired => 0,
                RepairResult::DryRun => match before.map(nagios).unwrap_or(0) {
                    0 if *due => 1,
                    c => c,
                },
                RepairResult::Refused => 4,
                RepairResult::Failed => 5,
                RepairResult::Busy => 6,
                RepairResult::Interrupted => 7,
            },
            Outcome::Unknown => 3,
            Outcome::Usage => 2,
            Outcome::CannotStart => 3,
            Outcome::Stopped => 0,
            Outcome::Healthy(true) => 0,
            Outcome::Healthy(false) => 1,
        }
    }

    /// The outcome of a finished repair report.
    pub fn of_repair(r: &RepairReport) -> Self {
        Outcome::Repaired {
            result: r.result,
            before: r.before.as_ref().map(|b| b.status),
            due: !r.reasons.is_empty(),
        }
    }
}

/// Print an error the way every command does: `error: …` on stderr.
pub fn print_error(e: impl std::fmt::Display) {
    eprintln!("error: {e}");
}

/// (command, code, what it means): every code a command can exit with — the README's table.
pub const TABLE: &[(&str, u8, &str)] = &[
    ("check", 0, "all ok"),
    ("check", 1, "warning"),
    ("check", 2, "expired or not yet valid"),
    ("check", 3, "unknown"),
    ("repair", 0, "healthy, or repaired and verified"),
    ("repair", 1, "--dry-run: renewal due"),
    ("repair", 2, "--dry-run: expired"),
    ("repair", 3, "unknown"),
    ("repair", 4, "refused"),
    ("repair", 5, "failed"),
    ("repair", 6, "busy"),
    ("repair", 7, "interrupted"),
    ("watch", 0, "clean stop"),
    ("watch", 2, "invalid configuration"),
    ("watch", 3, "cannot bind --listen"),
    ("healthcheck", 0, "answered 200"),
    ("healthcheck", 1, "otherwise"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_code_in_the_table() {
        let repair = |result, before, due| Outcome::Repaired {
            result,
            before,
            due,
        };
        let cases: Vec<(&str, Outcome)> = vec![
            ("check", Outcome::Checked(Status::Ok)),
            ("check", Outcome::Checked(Status::Warning)),
            ("check", Outcome::Checked(Status::Expired)),
            ("check", Outcome::Checked(Status::NotYetValid)),
            ("check", Outcome::Checked(Status::Unknown)),
            ("check", Outcome::Unknown),
            (
                "repair",
                repair(RepairResult::Healthy, Some(Status::Ok), false),
            ),
            (
                "repair",
                repair(RepairResult::Repaired, Some(Status::Expired), true),
            ),
            (
                "repair",
                repair(RepairResult::DryRun, Some(Status::Ok), true),
            ),
            (
                "repair",
                repair(RepairResult::DryRun, Some(Status::Warning), true),
            ),
            (
                "repair",
                repair(RepairResult::DryRun, Some(Status::Expired), true),
            ),
            ("repair", repair(RepairResult::Refused, None, true)),
            ("repair", repair(RepairResult::Failed, None, true)),
            ("repair", repair(RepairResult::Busy, None, true)),
            ("repair", repair(RepairResult::Interrupted, None, true)),
            ("repair", Outcome::Unknown),
            ("watch", Outcome::Stopped),
            ("watch", Outcome::Usage),
            ("watch", Outcome::CannotStart),
            ("healthcheck", Outcome::Healthy(true)),
            ("healthcheck", Outcome::Healthy(false)),
        ];
        for (cmd, o) in &cases {
            let code = o.code();
            assert!(
                TABLE.iter().any(|(c, n, _)| c == cmd && *n == code),
                "{cmd} {o:?} exits {code}, which the table does not list"
            );
        }
        for (cmd, code, _) in TABLE {
            assert!(
                cases.iter().any(|(c, o)| c == cmd && o.code() == *code),
                "the table lists {cmd} {code}, which no outcome produces"
            );
        }
    }
}
