//! Environment knobs of the simulation (`SIM_*`).

use std::time::Duration;

/// Which embedded k3s generation the container behaves like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Rancher v2.3 / k3s v0.8.0: no certificate renewal at all; an expired
    /// leaf makes k3s exit fatally (the container crash-loops).
    V0_8,
    /// Rancher v2.4–v2.5.7 / k3s v1.17–v1.18 (dynamiclistener v0.2.0): leaves
    /// renew at start within 90 days of expiry, the :6443 serving cert never.
    V1_18,
    /// Rancher v2.5.8+ / k3s v1.19 (dynamiclistener v0.2.1): both renew.
    V1_19,
}

impl Era {
    /// The `SIM_ERA` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Era::V0_8 => "v0.8",
            Era::V1_18 => "v1.18",
            Era::V1_19 => "v1.19",
        }
    }

    /// The k3s version this era embeds (for `k3s --version`).
    pub fn k3s_version(self) -> &'static str {
        match self {
            Era::V0_8 => "v0.8.0",
            Era::V1_18 => "v1.18.8+k3s1",
            Era::V1_19 => "v1.19.8+k3s1",
        }
    }

    /// Whether control-plane leaves are renewed at start when they expire
    /// within 90 days (k3s ≥ v0.10).
    pub fn renews_leaves(self) -> bool {
        self != Era::V0_8
    }

    /// Whether the :6443 serving cert is renewed at start when it expires
    /// within 90 days or no longer verifies against server-ca.
    pub fn renews_serving(self) -> bool {
        self != Era::V1_18
    }
}

/// All `SIM_*` settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub era: Era,
    /// Lifetime of leaves generated at first boot, in days (may be negative).
    pub leaf_days: i64,
    /// Lifetime of the serving cert generated at first boot, in days.
    pub serving_days: i64,
    /// Simulated Rancher boot time before the health decision.
    pub boot: Duration,
    /// `SIM_NOISE=1`: while healthy, print the unrelated x509 lines a real
    /// Rancher prints (downstream clusters, agents, catalogs, webhook, :443).
    pub noise: bool,
    /// `SIM_CLOCK_SKEW_DAYS`: at first boot, certificates are minted as by a
    /// clock this many days ahead (negative: behind) of the container's.
    pub clock_skew_days: i64,
    /// `SIM_NO_REGEN`: a leaf (relative to the TLS dir, `.crt` or `.key`)
    /// that k3s does not regenerate when it is missing.
    pub no_regen: Option<String>,
    /// `SIM_K3S_LOG=file`: k3s's lines go to `/var/lib/rancher/k3s.log`
    /// (Rancher >= v2.5.10, `--log=./k3s.log`) instead of stdout.
    pub k3s_log_file: bool,
}

impl Config {
    /// Reads the environment; an invalid value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        let era = match var("SIM_ERA").as_deref() {
            None | Some("v1.18") | Some("1.18") => Era::V1_18,
            Some("v0.8") | Some("0.8") => Era::V0_8,
            Some("v1.19") | Some("1.19") => Era::V1_19,
            Some(other) => {
                return Err(format!(
                    "invalid SIM_ERA {other:?} (want v0.8, v1.18 or v1.19)"
                ))
            }
        };
        let leaf_days = int_var("SIM_LEAF_DAYS")?.unwrap_or(365);
        let serving_days = int_var("SIM_SERVING_DAYS")?.unwrap_or(leaf_days);
        let boot = match var("SIM_BOOT_SECONDS") {
            None => Duration::from_secs(2),
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0 && *v < 1e6)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| format!("invalid SIM_BOOT_SECONDS {s:?}"))?,
        };
        let noise = match var("SIM_NOISE").as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => return Err(format!("invalid SIM_NOISE {other:?} (want 0 or 1)")),
        };
        let clock_skew_days = int_var("SIM_CLOCK_SKEW_DAYS")?.unwrap_or(0);
        let no_regen = match var("SIM_NO_REGEN") {
            None => None,
            Some(rel)
                if !rel.starts_with('/')
                    && rel.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
                    && (rel.ends_with(".crt") || rel.ends_with(".key")) =>
            {
                Some(rel)
            }
            Some(other) => {
                return Err(format!(
                    "invalid SIM_NO_REGEN {other:?} (want a leaf .crt or .key relative to the TLS directory, e.g. client-admin.crt)"
                ))
            }
        };
        let k3s_log_file = match var("SIM_K3S_LOG").as_deref() {
            None | Some("stdout") => false,
            Some("file") => true,
            Some(other) => {
                return Err(format!(
                    "invalid SIM_K3S_LOG {other:?} (want stdout or file)"
                ))
            }
        };
        Ok(Config {
            era,
            leaf_days,
            serving_days,
            boot,
            noise,
            clock_skew_days,
            no_regen,
            k3s_log_file,
        })
    }

    /// The era from the environment, falling back to the default on errors
    /// (for the CLI stand-ins, which must not fail on a bad knob).
    pub fn era_or_default() -> Era {
        Config::from_env().map(|c| c.era).unwrap_or(Era::V1_18)
    }
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn int_var(name: &str) -> Result<Option<i64>, String> {
    match var(name) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|d| d.abs() <= 100_000)
            .map(Some)
            .ok_or_else(|| format!("invalid {name} {s:?} (want an integer number of days)")),
    }
}
