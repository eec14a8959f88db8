//! The journal: a small state file beside the backups recording the step in progress, so a
//! repair killed mid-way (SIGKILL, power loss) is completed safely by the next run and a
//! container this tool stopped is never left stopped.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::backup::safe_name;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Journal {
    pub target: String,
    pub container_id: String,
    pub tls_path: String,
    /// `stopping`, `wiping`, `starting`, `verifying`.
    pub step: String,
    /// True once this tool asked Docker to stop the container.
    pub stopped_by_us: bool,
    pub backup: String,
    /// Paths (relative to the TLS dir) the wipe deletes; deleting them again is harmless.
    pub delete: Vec<String>,
    pub started_at: String,
}

pub fn path(dir: &Path, target: &str) -> PathBuf {
    dir.join(format!("{}.journal.json", safe_name(target)))
}

/// Record the step durably (write, fsync, rename).
pub fn save(dir: &Path, j: &Journal) -> std::io::Result<()> {
    let p = path(dir, &j.target);
    let tmp = p.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(j).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&tmp, &p)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn load(dir: &Path, target: &str) -> Option<Journal> {
    let bytes = fs::read(path(dir, target)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub fn clear(dir: &Path, target: &str) {
    let _ = fs::remove_file(path(dir, target));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let j = Journal {
            target: "rancher/x".into(),
            container_id: "abc".into(),
            tls_path: "/tls".into(),
            step: "wiping".into(),
            stopped_by_us: true,
            backup: "/b/r.tar".into(),
            delete: vec!["client-admin.crt".into()],
            started_at: "now".into(),
        };
        save(d.path(), &j).unwrap();
        assert_eq!(load(d.path(), "rancher/x"), Some(j));
        clear(d.path(), "rancher/x");
        assert_eq!(load(d.path(), "rancher/x"), None);
    }
}
