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

// ---------------------------------------------------------------- private files

/// Create `dir` (0700) if missing; refuse a path that is a symlink or not a directory.
///
/// Every missing parent is created 0700 too. A directory that already exists is never
/// chmod-ed: when group or others can open it, a warning says so (the files in it are 0600).
pub fn ensure_private_dir(dir: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Backup {
            path: dir.display().to_string(),
            detail: "the backup directory is a symbolic link; give the directory it points to"
                .into(),
        }),
        Ok(m) if !m.is_dir() => Err(Error::Backup {
            path: dir.display().to_string(),
            detail: "the backup directory is not a directory".into(),
        }),
        Ok(m) => {
            if m.mode() & 0o077 != 0 {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{:04o}", m.mode() & 0o7777),
                    "the backup directory is group- or world-accessible: archives in it are 0600, \
                     but others can list their names; `chmod 700` it (rancher-cert-guard did not \
                     create it, so it leaves its mode alone)"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private_dirs(dir)
            .map_err(|e| io_err(dir, "cannot create the backup directory", e)),
        Err(e) => Err(io_err(dir, "cannot inspect the backup directory", e)),
    }
}

/// Create `dir` and its missing parents, each 0700 whatever the umask.
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p);
        cur = p.parent();
    }
    for p in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(p) {
            Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o700))?,
            // Created by someone else meanwhile: theirs, left as it is.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Create `path` 0600 with `O_CREAT|O_EXCL|O_NOFOLLOW`. Whatever is already there under that
/// name (a stale temporary of a killed run, a planted link) is unlinked first, never followed.
fn create_private(path: &Path) -> std::io::Result<fs::File> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is a directory", path.display()),
            ))
        }
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // Whatever the umask left, the file is exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Open `path` for reading without following a link at its last component, and without
/// blocking on a FIFO; refuse anything but a regular file.
fn open_private(path: &Path) -> std::io::Result<(fs::File, u64)> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} is a symbolic link; not followed", path.display()),
                )
            } else {
                e
            }
        })?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok((f, m.len()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Write `bytes` to `dir/name` atomically and privately: tmp with O_EXCL|O_NOFOLLOW 0600,
/// fsync, rename over `name` (never following a link there), fsync the directory.
///
/// The temporary is `dir/.<name>.tmp`; one left by a killed run is replaced. `name` must be a
/// plain file name (no `/`, not `.` or `..`). `dir` must exist (see [`ensure_private_dir`]).
pub fn write_private_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ));
    }
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = create_private(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(path)
}

/// Read a file we wrote, refusing symlinks and anything larger than `max` bytes.
pub fn read_private(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let (f, len) = open_private(path)?;
    let too_large = |n: u64| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is {n} bytes, over the limit of {max}", path.display()),
        )
    };
    if len > max {
        return Err(too_large(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

// ---------------------------------------------------------------- archive names

/// A target as it appears in file names: `[A-Za-z0-9_.-]` kept (a leading `.` excepted),
/// every other byte `%XX`. Injective, so no two targets share a name; the identity on Docker
/// container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), so their archive names are unchanged.
pub fn escape_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for (i, b) in target.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// `<escaped target>-<YYYYMMDD>T<HHMMSS>Z[-<n>].tar`: the archive of `target` taken at `now`
/// (`n` ≥ 1 when several are taken in one second).
fn archive_name(target: &str, now: i64, n: u32) -> String {
    let stamp = crate::timefmt::rfc3339(now).replace([':', '-'], "");
    if n == 0 {
        format!("{}-{stamp}.tar", escape_target(target))
    } else {
        format!("{}-{stamp}-{n}.tar", escape_target(target))
    }
}

/// True when `name` parses exactly as an archive name of `target` (see [`archive_name`]):
/// `rancher` never matches `rancher-2-20261124T172347Z.tar` nor `rancher-2019-pre-upgrade.tar`.
pub fn is_archive_of(name: &str, target: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(&escape_target(target))
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tar"))
    else {
        return false;
    };
    let (stamp, n) = match rest.split_once('-') {
        Some((s, n)) => (s, Some(n)),
        None => (rest, None),
    };
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    let n_ok = n.is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    stamp_ok && n_ok
}

/// A temporary of an archive of `target` (`.<archive name>.tmp`), left by a killed run.
fn is_temporary_of(name: &str, target: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|n| is_archive_of(n, target))
}

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
fn check_files(m: &Manifest, files: &BTreeMap<String, Vec<u8>>) -> Result<(), String> {
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
fn read_manifest(path: &Path) -> Result<Manifest, String> {
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
fn created_at(m: &Manifest) -> Option<i64> {
    time::OffsetDateTime::parse(
        &m.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| t.unix_timestamp())
}

/// True when the archive's files match its own manifest.
fn verifies(path: &Path) -> bool {
    read_archive(path).is_ok_and(|(m, files)| check_files(&m, &files).is_ok())
}

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
mod tests {
    use super::*;
    use crate::source::TreeEntry;

    /// Before: the first header of an archive planted in the backup directory decided what
    /// retention read into memory — a GNU long name or PAX header claiming 64 MiB (a sparse
    /// file, 1 KiB on disk) was read whole, for every such archive (the defect the fuzz target
    /// `archive` found in the tree reader, fuzz/RESULTS.md).
    #[test]
    fn a_planted_archive_header_decides_no_allocation() {
        let d = tempfile::tempdir().unwrap();
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let p = d.path().join("rancher-20261124T172347Z.tar");
            // Without the `tls/` directory entry: the claim is the archive's first header.
            let start = crate::source::archive::hostile_start(kind, 64 << 20);
            fs::write(&p, &start[512..]).unwrap();
            let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len((64 << 20) + 4096).unwrap();
            let err = read_manifest(&p).unwrap_err();
            assert!(err.contains("metadata"), "{kind:?}: {err}");
        }
    }

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

    #[test]
    fn archive_names_parse_exactly() {
        let stamp = "20261124T172347Z";
        assert!(is_archive_of(&format!("rancher-{stamp}.tar"), "rancher"));
        assert!(is_archive_of(&format!("rancher-{stamp}-12.tar"), "rancher"));
        assert!(is_archive_of(
            &format!("rancher-2-{stamp}.tar"),
            "rancher-2"
        ));
        assert!(is_archive_of(
            &format!("p_rancher_1-{stamp}.tar"),
            "p_rancher_1"
        ));
        for (name, target) in [
            (format!("rancher-2-{stamp}.tar"), "rancher"),
            ("rancher-2019-pre-upgrade.tar".to_string(), "rancher"),
            (format!("rancher-{stamp}.tar.tmp"), "rancher"),
            (format!("rancher-{stamp}-.tar"), "rancher"),
            (format!("rancher-{stamp}-1a.tar"), "rancher"),
            ("rancher-20261124T17234Z.tar".to_string(), "rancher"),
            (format!("rancher-{stamp}-20261124T180000Z.tar"), "rancher"),
            (format!("rancher-{stamp}.tar"), "rancher-2"),
            (format!("xrancher-{stamp}.tar"), "rancher"),
        ] {
            assert!(!is_archive_of(&name, target), "{name} is not {target}'s");
        }
        // The name a write produces parses as its own target's, weird names included.
        for target in ["rancher", "dir-tls", "a/b", "a_b", ".hidden", "ü%"] {
            let name = archive_name(target, 1_795_000_000, 0);
            assert!(is_archive_of(&name, target), "{name}");
            assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
        }
        assert_ne!(escape_target("a/b"), escape_target("a_b"));
        assert_eq!(escape_target("rancher-server_1.x"), "rancher-server_1.x");
        assert!(is_temporary_of(
            &format!(".rancher-{stamp}.tar.tmp"),
            "rancher"
        ));
        assert!(!is_temporary_of(
            &format!(".rancher-2-{stamp}.tar.tmp"),
            "rancher"
        ));
    }

    #[test]
    fn private_writes_never_follow_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let victim = d.join("victim");
        fs::write(&victim, b"precious").unwrap();
        // A link planted as the temporary, and one as the destination.
        std::os::unix::fs::symlink(&victim, d.join(".state.json.tmp")).unwrap();
        let p = write_private_atomic(d, "state.json", b"{}").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        std::os::unix::fs::symlink(&victim, d.join("journal.json")).unwrap();
        let j = write_private_atomic(d, "journal.json", b"[]").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        for f in [&p, &j] {
            let m = fs::symlink_metadata(f).unwrap();
            assert!(m.file_type().is_file());
            assert_eq!(m.mode() & 0o777, 0o600);
        }
        assert_eq!(read_private(&j, 10).unwrap(), b"[]");
        assert!(!d.join(".state.json.tmp").exists());
        for bad in ["", ".", "..", "a/b"] {
            assert!(write_private_atomic(d, bad, b"x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn private_reads_refuse_links_fifos_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = write_private_atomic(d, "f", b"0123456789").unwrap();
        assert_eq!(read_private(&f, 10).unwrap(), b"0123456789");
        assert!(read_private(&f, 9).is_err());
        std::os::unix::fs::symlink(&f, d.join("link")).unwrap();
        let e = read_private(&d.join("link"), 100).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let fifo = d.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(read_private(&fifo, 100).is_err(), "refused, not waited on");
        assert!(read_archive(&d.join("link")).is_err());
    }

    #[test]
    fn private_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let nested = d.join("a/b/c");
        ensure_private_dir(&nested).unwrap();
        for p in [d.join("a"), d.join("a/b"), nested.clone()] {
            assert_eq!(
                fs::metadata(&p).unwrap().mode() & 0o777,
                0o700,
                "{}",
                p.display()
            );
        }
        std::os::unix::fs::symlink(&nested, d.join("link")).unwrap();
        assert!(ensure_private_dir(&d.join("link")).is_err());
        fs::write(d.join("file"), b"").unwrap();
        assert!(ensure_private_dir(&d.join("file")).is_err());
        assert!(probe_writable(&d.join("link")).is_err());
    }
}
