//! The settings of one repair (built from the command line by `config`).

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::RenewBefore;

/// Settings of one repair.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    pub renew_before: RenewBefore,
    pub backup_dir: Option<PathBuf>,
    pub keep_backups: usize,
    pub dry_run: bool,
    pub force: bool,
    pub max_restarts: u32,
    pub settle: Duration,
    pub timeout: Duration,
    pub health_url: Option<String>,
    /// Seconds `docker stop` waits before killing the container.
    pub stop_timeout: u32,
    /// How long to wait for another run acting on the same container before answering busy.
    pub lock_wait: Duration,
    /// Fault injection for the tests: pause after a step (`--fault-pause-after`).
    pub fault: Option<FaultPoint>,
    /// Who runs the ladder (`repair`, `watch`), recorded in the lease for "busy" messages.
    pub holder: &'static str,
}

/// Pause after `step` for `pause` (default an hour): `stop`, `wipe`, `start`, `backup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPoint {
    pub step: String,
    pub pause: Duration,
}

impl std::str::FromStr for FaultPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (step, secs) = match s.split_once(':') {
            Some((st, n)) => (
                st,
                n.parse::<u64>()
                    .map_err(|_| format!("invalid fault point {s:?}: want STEP[:SECONDS]"))?,
            ),
            None => (s, 3600),
        };
        if !["backup", "stop", "wipe", "start"].contains(&step) {
            return Err(format!(
                "invalid fault point {s:?}: the step is one of backup, stop, wipe, start"
            ));
        }
        Ok(FaultPoint {
            step: step.to_string(),
            pause: Duration::from_secs(secs),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_points() {
        assert_eq!(
            "wipe".parse::<FaultPoint>(),
            Ok(FaultPoint {
                step: "wipe".into(),
                pause: Duration::from_secs(3600)
            })
        );
        assert_eq!(
            "stop:5".parse::<FaultPoint>(),
            Ok(FaultPoint {
                step: "stop".into(),
                pause: Duration::from_secs(5)
            })
        );
        assert!("rm -rf:1".parse::<FaultPoint>().is_err());
        assert!("stop:x".parse::<FaultPoint>().is_err());
    }
}
