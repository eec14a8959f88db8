//! Retention: keep the newest archives of one container, by the time in their manifest.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;
// ---------------------------------------------------------------- retention

/// Keep the newest `keep` archives of `target` in `dir` (at least one); returns the removed
/// paths. Also removes stale temporaries of `target`.
///
/// Only names that parse exactly as `target`'s archives ([`is_archive_of`]) and whose manifest
/// names `target` are considered; anything else is left alone, whatever it is called. They are
/// ordered by the manifest's `created_at` (not the name, not the mtime: the clock may have been
/// wrong when either was written). `just_written` and the newest archive that still verifies
/// are never removed, even when that keeps more than `keep`.
pub fn prune(dir: &Path, target: &str, keep: usize, just_written: &Path) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut candidates: Vec<(i64, PathBuf)> = Vec::new();
    for entry in rd.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if is_temporary_of(name, target) {
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the temporary file of an interrupted backup")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot remove a stale temporary file: {e}")
                }
            }
            continue;
        }
        if !is_archive_of(name, target) || path == just_written {
            continue;
        }
        match read_manifest(&path) {
            Ok(m) if m.target == target => match created_at(&m) {
                Some(t) => candidates.push((t, path)),
                None => {
                    tracing::warn!(path = %path.display(), "archive kept: its manifest has no valid created_at")
                }
            },
            Ok(m) => {
                tracing::debug!(path = %path.display(), owner = %m.target, "named like an archive of {target} but holds another target's: not ours")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), "archive kept: cannot read its manifest: {e}")
            }
        }
    }
    // Newest first; the name breaks ties.
    candidates.sort_by(|a, b| b.cmp(a));
    let just_time = read_manifest(just_written)
        .ok()
        .and_then(|m| created_at(&m))
        .unwrap_or(i64::MIN);
    // The archive just written was verified when it was written; when an older-stamped one
    // is newer by its manifest (the clock went back), the newest of those that verifies stays.
    let newest_verified = candidates
        .iter()
        .take_while(|(t, _)| *t > just_time)
        .find(|(_, p)| verifies(p))
        .map(|(_, p)| p.clone());
    let mut kept = 1 + usize::from(newest_verified.is_some());
    let mut removed = Vec::new();
    for (_, p) in candidates {
        if Some(&p) == newest_verified.as_ref() {
            continue;
        }
        if kept < keep.max(1) {
            kept += 1;
            continue;
        }
        match fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) => tracing::warn!(path = %p.display(), "cannot remove an old archive: {e}"),
        }
    }
    removed
}
