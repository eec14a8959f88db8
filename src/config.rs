//! From the command line to settings: every flag is parsed here, once, into the domain types
//! the commands use (`RepairOptions`, `WatchConfig`, `Healthcheck`). The layers below never see
//! clap's structs.

use std::time::Duration;

use crate::cli::{HealthcheckArgs, LadderArgs, WatchArgs};
use crate::inventory::RenewBefore;
use crate::repair::RepairOptions;
use crate::token::ApiToken;
use crate::watch::controller::Config;
use crate::watch::gate::GateStore;
use crate::watch::schedule::{Policy, Window};
use crate::watch::targets::Selector;
use crate::watch::{Healthcheck, WatchConfig};

/// The ladder flags shared by `repair` and `watch`.
pub fn repair_options(
    l: &LadderArgs,
    renew_before: u32,
    dry_run: bool,
    force: bool,
    holder: &'static str,
) -> Result<RepairOptions, String> {
    let fault = match l.fault_pause_after.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Some(s.parse()?),
    };
    Ok(RepairOptions {
        renew_before: RenewBefore::days(renew_before),
        backup_dir: l.backup_dir.clone(),
        keep_backups: l.keep_backups,
        dry_run,
        force,
        max_restarts: l.max_restarts,
        settle: Duration::from_secs(l.settle),
        timeout: Duration::from_secs(l.timeout),
        health_url: l.health_url.clone(),
        stop_timeout: l.stop_timeout,
        lock_wait: Duration::from_secs(l.lock_wait),
        fault,
        holder,
    })
}

/// `watch`'s flags, checked together.
pub fn watch_config(a: &WatchArgs) -> Result<WatchConfig, String> {
    let selector = Selector::parse(&a.containers, &a.labels)?;
    let window = match a.window.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(w) => Some(w.parse::<Window>()?),
    };
    if !a.monitor_only && a.ladder.backup_dir.is_none() {
        return Err("watch repairs only with a backup: give --backup-dir (CERT_GUARD_BACKUP_DIR), or --monitor-only to only report".into());
    }
    if a.max_repairs_per_day == 0 {
        return Err(
            "--max-repairs-per-day must be at least 1 (use --monitor-only to never repair)".into(),
        );
    }
    if a.interval == 0 {
        return Err("--interval must be at least 1 second".into());
    }
    let token = match (&a.api_token, &a.api_token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(ApiToken::from_file(f)?),
        (None, None) => None,
    };
    let policy = Policy {
        monitor_only: a.monitor_only,
        window,
        repair_budget: Duration::from_secs(a.ladder.timeout),
    };
    let mut loop_cfg = Config::new(selector, policy);
    loop_cfg.interval = Duration::from_secs(a.interval);
    loop_cfg.cooldown = Duration::from_secs(a.cooldown);
    loop_cfg.max_repairs_per_day = a.max_repairs_per_day;
    loop_cfg.repair_timeout = Duration::from_secs(a.ladder.timeout + 120);
    // A repair told to stop may be inside a `docker stop` waiting out its grace period.
    loop_cfg.shutdown_grace = Duration::from_secs(u64::from(a.ladder.stop_timeout) + 15);
    if !a.monitor_only {
        loop_cfg.gate_store = a.ladder.backup_dir.as_deref().map(GateStore::new);
    }
    Ok(WatchConfig {
        loop_cfg,
        listen: a.listen.clone(),
        addr_file: a.addr_file.clone(),
        token,
        tls_path: a.tls_path.clone(),
        renew_before: RenewBefore::days(a.renew_before),
        repair: repair_options(&a.ladder, a.renew_before, false, false, "watch")?,
        exporter_compat: a.exporter_compat,
    })
}

/// `healthcheck`'s flags.
pub fn healthcheck(a: &HealthcheckArgs) -> Healthcheck {
    Healthcheck {
        addr_file: a.addr_file.clone(),
        listen: a.listen.clone(),
        timeout: Duration::from_secs(a.timeout),
        path: a.path.clone(),
        print: a.print,
    }
}
