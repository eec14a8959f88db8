//! `repair --dir`: the init-container use, before Rancher starts.
//!
//! Nothing here writes or deletes through a link: the wipe removes only regular files reached
//! through real directories, and the `dynamic-cert-regenerate` trigger is created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` after whatever non-regular entry held its name is unlinked.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
    match missing(dir) {
        Missing::No => {}
        // Nothing can be due, and an init container must not keep Rancher from starting.
        Missing::FirstBoot(why) => {
            run.step("inspect", true, why);
            return Ok(run.finish(RepairResult::Healthy, None));
        }
        // A typo, or a volume not mounted: unknown (exit 3), like `check`.
        Missing::Unreadable(detail) => {
            return Err(Error::SourceUnreadable {
                source_name: dir.display().to_string(),
                detail,
            })
        }
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
        match remove_regular(dir, rel) {
            Ok(true) => wiped.push(rel.clone()),
            Ok(false) => {}
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
        }
    }
    if let Err(e) = write_trigger(dir) {
        // Not fatal: `dynamic-cert.json` is gone, so K3s issues a new :6443 certificate anyway;
        // the trigger only also covers the secret, which this mode cannot reach.
        run.step(
            "trigger",
            false,
            format!("{REGENERATE_TRIGGER} not written: {e}"),
        );
    }
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

/// What a `--dir` that does not exist means.
#[derive(Debug, PartialEq, Eq)]
enum Missing {
    /// It exists: go on.
    No,
    /// K3s has never run on this volume: healthy, with why.
    FirstBoot(String),
    /// Anything else (a typo, a volume not mounted): the source cannot be read, with why.
    Unreadable(String),
}

/// Decide what a missing `--dir` means. `<root>/k3s/server/...` whose `<root>` exists (the
/// data volume is mounted) but whose `<root>/k3s/server` does not is a first boot: K3s creates
/// `k3s/server` when it sets up the server, and only extracts its binaries to `k3s/data`
/// before that, so a first start killed early may leave `k3s` without `server`. Any other
/// missing path is unreadable: with `k3s/server` there, the TLS directory should be too.
fn missing(dir: &Path) -> Missing {
    if fs::symlink_metadata(dir).is_ok() {
        return Missing::No;
    }
    let server = dir.ancestors().find(|p| {
        p.file_name().is_some_and(|n| n == "server")
            && p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "k3s")
    });
    let Some(server) = server else {
        return Missing::Unreadable(format!(
            "{} does not exist (a typo? `check --dir` the K3s TLS directory)",
            dir.display()
        ));
    };
    let k3s = server.parent().unwrap_or(server);
    let root = k3s.parent().unwrap_or(k3s);
    if fs::symlink_metadata(server).is_ok() {
        return Missing::Unreadable(format!(
            "{} does not exist, but {} does: K3s has run on this volume, so its TLS directory \
             should be there (a typo?)",
            dir.display(),
            server.display()
        ));
    }
    if !root.as_os_str().is_empty() && !root.is_dir() {
        return Missing::Unreadable(format!(
            "{} does not exist, nor does {}: is the data volume mounted there?",
            dir.display(),
            root.display()
        ));
    }
    Missing::FirstBoot(format!(
        "{} does not exist yet: K3s has never run on this volume (first start), nothing to renew",
        server.display()
    ))
}

/// Delete `dir/rel` if it is a regular file reached through real directories (no component
/// is a link); `Ok(false)` when there is nothing to delete, or something else is there.
fn remove_regular(dir: &Path, rel: &str) -> io::Result<bool> {
    let mut p = PathBuf::from(dir);
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() || *part == "." || *part == ".." {
            return Ok(false);
        }
        p.push(part);
        let m = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let last = i + 1 == parts.len();
        if (last && !m.file_type().is_file()) || (!last && !m.file_type().is_dir()) {
            tracing::warn!(path = %p.display(), "not deleted: not a regular file reached through directories");
            return Ok(false);
        }
    }
    match fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Create the empty `dynamic-cert-regenerate` trigger, never through a link: a regular file
/// already there is left as it is (never opened: it may be a hard link to the datastore); a
/// link, FIFO, socket or device there is unlinked (the entry, not what it points to); a
/// directory there is left and reported.
fn write_trigger(dir: &Path) -> io::Result<()> {
    let p = dir.join(REGENERATE_TRIGGER);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.file_type().is_file() => return Ok(()),
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory holds its name",
            ))
        }
        Ok(m) => {
            tracing::warn!(path = %p.display(), kind = ?m.file_type(), "removing a non-regular entry where the regenerate trigger goes (not followed)");
            fs::remove_file(&p)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map(drop)
}

async fn read_blocking(dir: &Path) -> Result<Tree, Error> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read_dir_tree(&d))
        .await
        .map_err(|e| Error::Failed(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_missing_dir_means() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let tls = r.join("k3s/server/tls");
        // A fresh volume: nothing under the data root.
        assert!(matches!(missing(&tls), Missing::FirstBoot(_)));
        // K3s extracted its binaries and was killed before it set up the server.
        fs::create_dir_all(r.join("k3s/data")).unwrap();
        assert!(matches!(missing(&tls), Missing::FirstBoot(_)));
        // The data root itself is missing: the volume is not mounted there.
        assert!(matches!(
            missing(&r.join("nothing/k3s/server/tls")),
            Missing::Unreadable(_)
        ));
        // K3s has run: its TLS directory must be there.
        fs::create_dir_all(r.join("k3s/server/db")).unwrap();
        assert!(matches!(missing(&tls), Missing::Unreadable(_)));
        // Typos, and paths that are not K3s's layout.
        assert!(matches!(
            missing(&r.join("k3s/sever/tls")),
            Missing::Unreadable(_)
        ));
        assert!(matches!(missing(&r.join("tls")), Missing::Unreadable(_)));
        fs::create_dir_all(&tls).unwrap();
        assert_eq!(missing(&tls), Missing::No);
    }

    #[test]
    fn remove_regular_never_goes_through_a_link() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("client.crt"), b"victim").unwrap();
        std::os::unix::fs::symlink(outside.path(), r.join("etcd")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("client.crt"), r.join("a.crt")).unwrap();
        assert!(!remove_regular(r, "etcd/client.crt").unwrap());
        assert!(!remove_regular(r, "a.crt").unwrap());
        assert!(!remove_regular(r, "../x").unwrap());
        assert!(outside.path().join("client.crt").exists());
        fs::write(r.join("b.crt"), b"x").unwrap();
        assert!(remove_regular(r, "b.crt").unwrap());
        assert!(!remove_regular(r, "b.crt").unwrap());
    }
}
