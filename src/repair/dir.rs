//! `repair --dir`: the init-container use, before Rancher starts.

use std::path::Path;

use super::plan::REGENERATE_TRIGGER;
use super::wipe::{protected_intact, protected_snapshot};
use super::{backup, decide, Decision, RepairOptions, RepairReport, RepairResult, Run};
use crate::error::Error;
use crate::inventory::inventory;
use crate::report::CheckReport;
use crate::source::{dir::read_dir_tree, Tree};
use crate::timefmt;

/// `repair --dir`: the init-container use, before Rancher starts. Same rules, no restart.
pub async fn repair_dir(dir: &Path, opts: &RepairOptions) -> Result<RepairReport, Error> {
    let target = format!("dir:{}", dir.display());
    let mut run = Run::new(opts, &target);
    let now = timefmt::now();
    // First boot of a new install: K3s has not created its TLS directory yet. Nothing can be
    // due, and an init container must not keep Rancher from starting.
    if !dir.exists() && dir.parent().map(|p| p.is_dir()).unwrap_or(false) {
        run.step(
            "inspect",
            true,
            format!(
                "{} does not exist yet (first start?): nothing to renew",
                dir.display()
            ),
        );
        return Ok(run.finish(RepairResult::Healthy, None));
    }
    let tree = read_blocking(dir).await?;
    let inv = inventory(&tree, now, opts.renew_before);
    run.report.before = Some(CheckReport::new(
        target.clone(),
        now,
        opts.renew_before,
        &inv,
    ));
    run.step(
        "inspect",
        true,
        format!(
            "{} certificates, {} problems",
            inv.certificates.len(),
            inv.problems.len()
        ),
    );
    let (plan, backup_dir) = match decide(&mut run, &inv, &[], None) {
        Decision::Act { plan, backup_dir } => (plan, backup_dir),
        Decision::Done(result, why) => return Ok(run.finish(result, why)),
    };
    let backup_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("tls")
        .to_string();
    let archive = match backup::write_verified(
        &backup_dir,
        &format!("dir-{backup_name}"),
        &dir.display().to_string(),
        &tree,
        &backup::Extras::default(),
        now,
    ) {
        Ok(p) => p,
        Err(e) => {
            run.step("backup", false, e.to_string());
            return Ok(run.finish(RepairResult::Refused, Some(e.to_string())));
        }
    };
    run.report.backup = Some(archive.display().to_string());
    run.step("backup", true, format!("{} verified", archive.display()));
    backup::prune(
        &backup_dir,
        &format!("dir-{backup_name}"),
        opts.keep_backups,
        &archive,
    );

    let protected_before = protected_snapshot(&tree);
    let mut wiped = Vec::new();
    for rel in &plan.delete {
        let p = dir.join(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_file() => match std::fs::remove_file(&p) {
                Ok(()) => wiped.push(rel.clone()),
                Err(e) => {
                    run.step("wipe", false, format!("{rel}: {e}"));
                    return Ok(run.finish(
                        RepairResult::Failed,
                        Some(format!(
                            "wipe failed at {rel}: {e}; restore from {}",
                            archive.display()
                        )),
                    ));
                }
            },
            _ => {}
        }
    }
    let _ = std::fs::write(dir.join(REGENERATE_TRIGGER), b"");
    run.report.wiped = wiped.clone();
    run.step(
        "wipe",
        true,
        format!(
            "deleted {} files; K3s regenerates them at its next start",
            wiped.len()
        ),
    );

    let after_tree = read_blocking(dir).await?;
    if !protected_intact(&protected_before, &protected_snapshot(&after_tree)) {
        run.step("verify", false, "CA or service-account material changed");
        return Ok(run.finish(
            RepairResult::Failed,
            Some(format!(
                "protected files changed; restore from {}",
                archive.display()
            )),
        ));
    }
    let now = timefmt::now();
    let after = inventory(&after_tree, now, opts.renew_before);
    run.report.after = Some(CheckReport::new(target, now, opts.renew_before, &after));
    run.step(
        "verify",
        true,
        "CA certificates and keys and service.key unchanged",
    );
    Ok(run.finish(RepairResult::Repaired, None))
}

async fn read_blocking(dir: &Path) -> Result<Tree, Error> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read_dir_tree(&d))
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
}
