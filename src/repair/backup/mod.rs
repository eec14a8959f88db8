//! Backups: one tar archive per repair, with a sha256 manifest, written atomically and read
//! back and verified before anything is deleted. Restoring is `tar -xf` plus `docker cp`
//! (see the README).
//!
//! They hold every CA private key, so they are private and exact:
//! - the backup directory is created `0700` (with any parent we create); a directory that
//!   existed before and is open to group or others is **left as it is, with a warning**: it is
//!   not ours to chmod (it may be `/tmp`, a share, or a Docker volume root someone else reads),
//!   and every file we put in it is `0600` anyway;
//! - every file is created `0600` with `O_CREAT|O_EXCL|O_NOFOLLOW` under a temporary name
//!   (a stale temporary or a link planted under that name is unlinked first, never followed),
//!   fsynced, renamed into place (a rename replaces a link, it never writes through it), and
//!   the directory fsynced;
//! - retention touches only names that parse exactly as this target's archives, holding a
//!   manifest of this target, ordered by the manifest's `created_at`, and never the archive
//!   just written nor the newest one that verifies. Stale temporaries of this target go too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::inventory::parse::hex_upper;
use crate::source::{EntryBody, Tree};

/// Largest archive read back: the tree's byte budget, the extras, and tar headers for every
/// entry, with room to spare. Anything larger is not one of ours.
pub const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest `manifest.json` read to order archives (10 000 entries ≈ 2 MB).
const MAX_MANIFEST_BYTES: u64 = 8 * 1024 * 1024;

/// The write probe's name (a dot file: never taken for an archive).
const PROBE_NAME: &str = ".rancher-cert-guard-write-probe";

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
    /// Entries that could not be saved (too large, symlinks, hard links…); never deleted either.
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

mod names;
mod private;
mod retention;

use names::*;
pub use names::{escape_target, is_archive_of};
use private::*;
pub use private::{ensure_private_dir, read_private, write_private_atomic};
pub use retention::prune;

// ---------------------------------------------------------------- write, verify, read

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
    ensure_private_dir(dir)?;
    let mut n = 0;
    let mut name = archive_name(target, now, n);
    while fs::symlink_metadata(dir.join(&name)).is_ok() {
        n += 1;
        name = archive_name(target, now, n);
    }
    let final_path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));

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
            // Saved once, under the other name; restore it with `ln`.
            EntryBody::HardLink(to) => skipped.push((e.path.clone(), format!("hard link to {to}"))),
            EntryBody::TreeTooLarge(n) => skipped.push((
                e.path.clone(),
                format!("not read: over the tree's byte budget ({n} bytes)"),
            )),
            EntryBody::TooManyEntries(cap) => skipped.push((
                e.path.clone(),
                format!("not read, nor anything after it: over {cap} entries"),
            )),
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
        let file = create_private(&tmp)?;
        let mut builder = tar::Builder::new(std::io::BufWriter::new(file));
        let mut add = |path: &str, data: &[u8], mode: u32| -> std::io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(mode);
            h.set_mtime(now.max(0) as u64);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, path, data)
        };
        add("manifest.json", &manifest_json, 0o600)?;
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
    let _ = sync_dir(dir);
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
    check_files(&stored, &files).map_err(fail)
}

/// Every file of the manifest is in the archive with its sha256, and nothing else is.
pub(super) fn check_files(m: &Manifest, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
    for f in &m.files {
        match files.get(&f.path) {
            Some(b) if sha(b) == f.sha256 && b.len() as u64 == f.bytes => {}
            Some(_) => return Err(format!("{} does not match its sha256", f.path)),
            None => return Err(format!("{} is missing", f.path)),
        }
    }
    if files.len() != m.files.len() {
        return Err("unexpected extra files".into());
    }
    Ok(())
}

/// Read a backup archive's manifest and files (for restore checks and tests). Refuses a link
/// and anything over [`MAX_ARCHIVE_BYTES`].
pub fn read_archive(path: &Path) -> Result<(Manifest, BTreeMap<String, Vec<u8>>), Error> {
    let fail = |detail: String| Error::Backup {
        path: path.display().to_string(),
        detail,
    };
    let (file, len) = open_private(path).map_err(|e| fail(e.to_string()))?;
    if len > MAX_ARCHIVE_BYTES {
        return Err(fail(format!(
            "{len} bytes, over the {MAX_ARCHIVE_BYTES}-byte limit of an archive"
        )));
    }
    // The file's size bounds what the entries can hold.
    let mut archive = tar::Archive::new(file.take(len));
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

/// The manifest of an archive (its first entry) without reading the rest. The archive may be
/// anyone's who can write the backup directory: it is read through
/// [`crate::source::archive::each_entry`], so its first header decides no allocation.
pub(super) fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let (file, _) = open_private(path).map_err(|e| e.to_string())?;
    let mut buf = None;
    crate::source::archive::each_entry(file, |entry| {
        if entry.path_bytes().as_ref() != b"manifest.json" {
            return Err(std::io::Error::other(
                "its first entry is not manifest.json",
            ));
        }
        let mut b = Vec::new();
        entry.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut b)?;
        buf = Some(b);
        Ok(false)
    })
    .map_err(|e| e.to_string())?;
    let buf = buf.ok_or("an empty archive")?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        return Err("manifest.json is too large".into());
    }
    serde_json::from_slice(&buf).map_err(|e| e.to_string())
}

/// `created_at` of a manifest as Unix seconds.
pub(super) fn created_at(m: &Manifest) -> Option<i64> {
    time::OffsetDateTime::parse(
        &m.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| t.unix_timestamp())
}

/// True when the archive's files match its own manifest.
pub(super) fn verifies(path: &Path) -> bool {
    read_archive(path).is_ok_and(|(m, files)| check_files(&m, &files).is_ok())
}

/// Make sure `dir` accepts a write before anything else happens (cheap early refusal). The
/// probe file cannot be redirected: whatever holds its name is unlinked, never opened.
pub fn probe_writable(dir: &Path) -> Result<(), Error> {
    ensure_private_dir(dir)?;
    let probe = dir.join(PROBE_NAME);
    let r = create_private(&probe).and_then(|mut f| {
        f.write_all(b"probe")?;
        f.sync_all()
    });
    let _ = fs::remove_file(&probe);
    r.map_err(|e| io_err(dir, "the backup directory is not writable", e))
}

/// A name safe for a file: `[A-Za-z0-9_.-]`, anything else becomes `_` (the journal's name;
/// archive names use the injective [`escape_target`]).
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

#[cfg(test)]
mod tests;
