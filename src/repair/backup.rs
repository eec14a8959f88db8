//! Backups: one tar archive per repair, with a sha256 manifest, written atomically and read
//! back and verified before anything is deleted. Restoring is `tar -xf` plus `docker cp`
//! (see the README).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::inventory::parse::hex_upper;
use crate::source::{EntryBody, Tree};

/// Extra files saved beside the TLS tree.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `/etc/rancher/k3s/k3s.yaml`, when present.
    pub kubeconfig: Option<Vec<u8>>,
    /// `kubectl get secret -n kube-system k3s-serving -o json`, when the API answered.
    pub serving_secret: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub target: String,
    pub tls_path: String,
    pub created_at: String,
    pub tool_version: String,
    pub files: Vec<ManifestFile>,
    /// Entries that could not be saved (too large, symlinks…); never deleted either.
    pub skipped: Vec<(String, String)>,
}

fn sha(bytes: &[u8]) -> String {
    hex_upper(&Sha256::digest(bytes))
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Backup {
        path: path.display().to_string(),
        detail: format!("{what}: {e}"),
    }
}

/// A name safe for a file: `[A-Za-z0-9_.-]`, anything else becomes `_`.
pub fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Write the archive for `target` into `dir`, fsync it, read it back and verify every byte
/// against the manifest and the tree. Returns the archive's path.
pub fn write_verified(
    dir: &Path,
    target: &str,
    tls_path: &str,
    tree: &Tree,
    extras: &Extras,
    now: i64,
) -> Result<PathBuf, Error> {
    fs::create_dir_all(dir).map_err(|e| io_err(dir, "cannot create the backup directory", e))?;
    let stamp = crate::timefmt::rfc3339(now).replace([':', '-'], "");
    let base = format!("{}-{}", safe_name(target), stamp);
    let mut final_path = dir.join(format!("{base}.tar"));
    let mut n = 1;
    while final_path.exists() {
        final_path = dir.join(format!("{base}-{n}.tar"));
        n += 1;
    }
    let tmp = dir.join(format!(".{base}.tar.tmp"));

    let mut contents: BTreeMap<String, &[u8]> = BTreeMap::new();
    let mut skipped = Vec::new();
    for e in &tree.entries {
        match &e.body {
            EntryBody::File(b) => {
                contents.insert(format!("tls/{}", e.path), b);
            }
            EntryBody::TooLarge(n) => {
                skipped.push((e.path.clone(), format!("too large ({n} bytes)")))
            }
            EntryBody::NotRegular(w) => skipped.push((e.path.clone(), w.clone())),
            EntryBody::ReadFailed(w) => skipped.push((e.path.clone(), format!("read failed: {w}"))),
        }
    }
    if let Some(k) = &extras.kubeconfig {
        contents.insert("k3s.yaml".into(), k);
    }
    if let Some(s) = &extras.serving_secret {
        contents.insert("k3s-serving.secret.json".into(), s);
    }
    let manifest = Manifest {
        target: target.to_string(),
        tls_path: tls_path.to_string(),
        created_at: crate::timefmt::rfc3339(now),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        files: contents
            .iter()
            .map(|(p, b)| ManifestFile {
                path: p.clone(),
                sha256: sha(b),
                bytes: b.len() as u64,
            })
            .collect(),
        skipped,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Backup {
        path: tmp.display().to_string(),
        detail: e.to_string(),
    })?;

    let written = (|| -> std::io::Result<()> {
        let file = fs::File::create(&tmp)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(now.max(0) as u64);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, path, data)
        };
        add("manifest.json", &manifest_json, 0o644)?;
        for (p, b) in &contents {
            add(p, b, 0o600)?;
        }
        let mut w = builder.into_inner()?;
        w.flush()?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&tmp, "cannot write the archive", e));
    }
    if let Err(e) = verify(&tmp, &manifest) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &final_path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(&final_path, "cannot rename the archive into place", e)
    })?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    // Verify once more under its final name: this is the file a person will restore from.
    verify(&final_path, &manifest)?;
    Ok(final_path)
}

/// Read an archive back and check every file against the manifest, and the manifest stored
/// inside against `expected`.
pub fn verify(path: &Path, expected: &Manifest) -> Result<(), Error> {
    let fail = |detail: String| Error::Backup {
        path: path.display().to_string(),
        detail: format!("verification failed: {detail}"),
    };
    let (stored, files) = read_archive(path).map_err(|e| fail(e.to_string()))?;
    if stored.files != expected.files {
        return Err(fail("the stored manifest differs from the tree".into()));
    }
    for f in &expected.files {
        match files.get(&f.path) {
            Some(b) if sha(b) == f.sha256 && b.len() as u64 == f.bytes => {}
            Some(_) => return Err(fail(format!("{} does not match its sha256", f.path))),
            None => return Err(fail(format!("{} is missing", f.path))),
        }
    }
    if files.len() != expected.files.len() {
        return Err(fail("unexpected extra files".into()));
    }
    Ok(())
}

/// Read a backup archive's manifest and files (for restore checks and tests).
pub fn read_archive(path: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), Error> {
    let fail = |detail: String| Error::Backup {
        path: path.display().to_string(),
        detail,
    };
    let file = fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut archive = tar::Archive::new(file);
    let mut files = BTreeMap::new();
    let mut manifest = None;
    for entry in archive.entries().map_err(|e| fail(e.to_string()))? {
        let mut entry = entry.map_err(|e| fail(e.to_string()))?;
        let p = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut buf = Vec::new();
        entry
            .read_to_end(&mut buf)
            .map_err(|e| fail(e.to_string()))?;
        if p == "manifest.json" {
            manifest = Some(serde_json::from_slice(&buf).map_err(|e| fail(e.to_string()))?);
        } else {
            files.insert(p, buf);
        }
    }
    Ok((
        manifest.ok_or_else(|| fail("no manifest.json".into()))?,
        files,
    ))
}

/// Keep the newest `keep` archives of `target` in `dir`, never `just_written`; returns the
/// removed paths.
pub fn prune(dir: &Path, target: &str, keep: usize, just_written: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}-", safe_name(target));
    let mut archives: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p != just_written)
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .map(|n| {
                            n.starts_with(&prefix)
                                && n.ends_with(".tar")
                                && n[prefix.len()..].starts_with(|c: char| c.is_ascii_digit())
                        })
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default();
    archives.sort();
    let excess = (archives.len() + 1).saturating_sub(keep.max(1));
    let mut removed = Vec::new();
    for p in archives.into_iter().take(excess) {
        if fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}

/// Make sure `dir` accepts a write before anything else happens (cheap early refusal).
pub fn probe_writable(dir: &Path) -> Result<(), Error> {
    ensure_private_dir(dir)?;
    let name = format!(".rancher-cert-guard-write-probe.{}", std::process::id());
    let r = write_private_atomic(dir, &name, b"probe");
    let _ = fs::remove_file(dir.join(&name));
    r.map(|_| ())
        .map_err(|e| io_err(dir, "the backup directory is not writable", e))
}

/// Create `dir` (0700) if missing; refuse a path that is a symlink or not a directory.
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(_) => Err(io_err(
            dir,
            "the backup directory is not a directory",
            std::io::Error::other("a file or a symbolic link stands there"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_err(dir, "cannot create the backup directory", e)),
        Err(e) => Err(io_err(dir, "cannot read the backup directory", e)),
    }
}

/// Write `bytes` to `dir/name` atomically and privately: a temporary file created with
/// O_EXCL|O_NOFOLLOW and mode 0600, fsynced, renamed over `name` (a rename replaces a link
/// there, never follows it), and the directory fsynced.
pub fn write_private_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let to = dir.join(name);
    fs::rename(&tmp, &to).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(to)
}

/// Read a file this tool wrote, refusing links and anything larger than `max` bytes.
pub fn read_private(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = Vec::new();
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::other(format!("larger than {max} bytes")));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::TreeEntry;

    fn tree() -> Tree {
        Tree {
            entries: vec![
                TreeEntry {
                    path: "a.crt".into(),
                    body: EntryBody::File(b"A".to_vec()),
                },
                TreeEntry {
                    path: "etcd/b.key".into(),
                    body: EntryBody::File(b"B".to_vec()),
                },
                TreeEntry {
                    path: "big.crt".into(),
                    body: EntryBody::TooLarge(2 << 20),
                },
            ],
        }
    }

    #[test]
    fn write_verify_read_prune() {
        let dir = tempfile::tempdir().unwrap();
        let extras = Extras {
            kubeconfig: Some(b"apiVersion: v1".to_vec()),
            serving_secret: None,
        };
        let mut paths = vec![];
        for i in 0..4 {
            paths.push(
                write_verified(
                    dir.path(),
                    "rancher",
                    "/tls",
                    &tree(),
                    &extras,
                    1_700_000_000 + i,
                )
                .unwrap(),
            );
        }
        let (m, files) = read_archive(&paths[3]).unwrap();
        assert_eq!(files["tls/a.crt"], b"A");
        assert_eq!(files["tls/etcd/b.key"], b"B");
        assert_eq!(files["k3s.yaml"], b"apiVersion: v1");
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(prune(dir.path(), "rancher", 2, &paths[3]).len(), 2);
        assert!(!paths[0].exists() && !paths[1].exists() && paths[2].exists() && paths[3].exists());
    }

    #[test]
    fn corrupted_archive_fails_verification() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_verified(dir.path(), "r", "/tls", &tree(), &Extras::default(), 1).unwrap();
        let (m, _) = read_archive(&p).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        let pos = bytes.windows(1).rposition(|w| w == b"A").unwrap();
        bytes[pos] = b'Z';
        fs::write(&p, bytes).unwrap();
        assert!(verify(&p, &m).is_err());
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        assert!(probe_writable(Path::new("/proc/rancher-cert-guard")).is_err());
        let err = write_verified(
            Path::new("/proc/x"),
            "r",
            "/tls",
            &tree(),
            &Extras::default(),
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
    }
}
