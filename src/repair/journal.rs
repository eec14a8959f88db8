//! The journal: a small state file beside the backups recording the step in progress of one
//! repair, so that a repair killed mid-way (SIGKILL, OOM, a host reboot, a daemon restart) is
//! completed by the next run — `repair` by name or by id, or `watch`'s next look.
//!
//! One file per container, keyed by its full id (`journal.<id>.json`), written privately and
//! atomically. Nothing in it is trusted on resume: [`Journal::validate`] checks it against the
//! container it is about to act on and against the never-delete rules.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::backup::safe_name;
use super::plan;
use crate::docker::ContainerInfo;
use crate::inventory::SERVING_FILE;

/// The journal format this version writes and reads.
pub const VERSION: u32 = 2;

/// Journals larger than this are not ours.
const MAX_BYTES: u64 = 64 * 1024;

/// The step in progress. Every mutating step is recorded *before* it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A stop was requested (it may still be in flight). Nothing was deleted.
    Stopping,
    /// Stopped by us; the files in `delete` are being deleted.
    Wiping,
    /// The wipe is done and verified; the container is being started.
    Starting,
    /// Started by us; the repair is being verified (through the known loops).
    Verifying,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Stopping => "stopping",
            Phase::Wiping => "wiping",
            Phase::Starting => "starting",
            Phase::Verifying => "verifying",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub version: u32,
    pub container_id: String,
    pub container_name: String,
    pub image_id: String,
    pub tls_path: String,
    pub phase: Phase,
    /// The verified archive taken before anything was deleted.
    pub backup: String,
    /// Paths (relative to the TLS dir) the wipe in progress deletes; deleting them again is
    /// harmless, and each is re-checked against the never-delete rules before it is.
    pub delete: Vec<String>,
    pub run_id: String,
    pub tool_version: String,
    pub started_at: String,
    pub updated_at: String,
}

/// Why a journal is not acted upon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unreadable(String),
    OtherContainer { journal: String, container: String },
    OtherTlsPath { journal: String, configured: String },
    Forbidden(String),
    Version(u32),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unreadable(e) => write!(f, "the journal cannot be read: {e}"),
            Refusal::OtherContainer { journal, container } => {
                write!(f, "the journal is for container {journal}, not {container}")
            }
            Refusal::OtherTlsPath {
                journal,
                configured,
            } => write!(
                f,
                "the journal names TLS path {journal}, but this run's TLS path is {configured}"
            ),
            Refusal::Forbidden(p) => write!(
                f,
                "the journal asks to delete {p:?}, which this tool never deletes"
            ),
            Refusal::Version(v) => write!(
                f,
                "the journal has format version {v}; this tool reads version {VERSION}"
            ),
        }
    }
}

/// May a journal ask to delete `path` (relative to the TLS directory)? Only what a plan could
/// have put there: a leaf K3s regenerates, its key, or the serving-certificate cache.
pub fn may_delete(path: &str) -> bool {
    let clean = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && !path.contains('\0');
    let regenerated = plan::k3s_regenerates(path)
        || path
            .strip_suffix(".key")
            .is_some_and(|stem| plan::k3s_regenerates(&format!("{stem}.crt")))
        || path == SERVING_FILE;
    clean && regenerated && !plan::is_protected(path)
}

impl Journal {
    /// Check a journal against the container it would act on: same container, same TLS path,
    /// every path one a plan could have produced.
    pub fn validate(&self, info: &ContainerInfo, tls_path: &str) -> Result<(), Refusal> {
        if self.version != VERSION {
            return Err(Refusal::Version(self.version));
        }
        if self.container_id != info.id {
            return Err(Refusal::OtherContainer {
                journal: self.container_id.clone(),
                container: info.id.clone(),
            });
        }
        if self.tls_path != tls_path {
            return Err(Refusal::OtherTlsPath {
                journal: self.tls_path.clone(),
                configured: tls_path.to_string(),
            });
        }
        if let Some(p) = self.delete.iter().find(|p| !may_delete(p)) {
            return Err(Refusal::Forbidden(p.clone()));
        }
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the journal of container `id` lives.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("journal.{}.json", safe_name(id)))
}

/// The journal file name format of version 1 (keyed by the container's name).
fn legacy_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.journal.json", safe_name(name)))
}

/// Record the step durably and privately (write, fsync, rename).
pub fn save(dir: &Path, j: &Journal) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?;
    let name = path(dir, &j.container_id);
    let name = name
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other("bad journal name"))?
        .to_string();
    super::backup::write_private_atomic(dir, &name, &bytes).map(|_| ())
}

/// The journal of container `info`, if one exists: `Ok(None)` none; `Err` one that exists
/// but cannot be read or parsed (never acted upon).
pub fn load(dir: &Path, info: &ContainerInfo) -> Result<Option<Journal>, Refusal> {
    let p = path(dir, &info.id);
    match read(&p)? {
        Some(j) => Ok(Some(j)),
        None => load_legacy(dir, info),
    }
}

fn read(p: &Path) -> Result<Option<Journal>, Refusal> {
    match super::backup::read_private(p, MAX_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Refusal::Unreadable(format!("{}: {e}", p.display()))),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(Refusal::Unreadable(format!("{}: {e}", p.display()))),
    }
}

/// No journal there: no such file, or no such directory (a backup directory that cannot exist
/// holds no journal; the backup step refuses it).
fn absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// A version-1 journal (`<name>.journal.json`, steps as strings) of the same container,
/// converted; it is rewritten in the new format at the next step.
fn load_legacy(dir: &Path, info: &ContainerInfo) -> Result<Option<Journal>, Refusal> {
    #[derive(Deserialize)]
    struct V1 {
        container_id: String,
        tls_path: String,
        step: String,
        backup: String,
        delete: Vec<String>,
        started_at: String,
    }
    let p = legacy_path(dir, &info.name);
    let bytes = match super::backup::read_private(&p, MAX_BYTES) {
        Ok(b) => b,
        Err(e) if absent(&e) => return Ok(None),
        Err(e) => return Err(Refusal::Unreadable(format!("{}: {e}", p.display()))),
    };
    let v1: V1 = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::Unreadable(format!("{}: {e}", p.display())))?;
    if v1.container_id != info.id {
        return Ok(None);
    }
    let phase = match v1.step.as_str() {
        "stopping" => Phase::Stopping,
        "wiping" => Phase::Wiping,
        "starting" => Phase::Starting,
        _ => Phase::Verifying,
    };
    let j = Journal {
        version: VERSION,
        container_id: v1.container_id,
        container_name: info.name.clone(),
        image_id: info.image_id.clone(),
        tls_path: v1.tls_path,
        phase,
        backup: v1.backup,
        delete: v1.delete,
        run_id: "v1".into(),
        tool_version: "0.1.0".into(),
        started_at: v1.started_at.clone(),
        updated_at: v1.started_at,
    };
    let _ = fs::remove_file(&p);
    Ok(Some(j))
}

/// Remove the journal of container `id` (and a version-1 journal of its name).
pub fn clear(dir: &Path, id: &str, name: &str) {
    let _ = fs::remove_file(path(dir, id));
    let _ = fs::remove_file(legacy_path(dir, name));
}

/// Journals of *other* containers that carried `name`: the container was removed and
/// recreated under the same name while a repair was in progress. They are never acted upon
/// (the new container gets a new plan and a new backup); [`set_aside`] keeps them for a person.
pub fn orphans(dir: &Path, name: &str, id: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return vec![];
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let other = file.strip_prefix("journal.")?.strip_suffix(".json")?;
            if !valid_id(other) || other == id {
                return None;
            }
            let j = read(&e.path()).ok().flatten()?;
            (j.container_name == name).then(|| e.path())
        })
        .collect()
}

/// Rename a journal that will not be acted upon to `<file>.set-aside-<unix>`.
pub fn set_aside(p: &Path, now: i64) -> Option<PathBuf> {
    let to = p.with_extension(format!("json.set-aside-{now}"));
    fs::rename(p, &to).ok().map(|_| to)
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
