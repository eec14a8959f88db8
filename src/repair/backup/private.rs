//! Files only this tool may read: created 0600 with O_EXCL|O_NOFOLLOW in a 0700 directory,
//! written atomically, never opened through a link.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::*;
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
pub(super) fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
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
pub(super) fn create_private(path: &Path) -> std::io::Result<fs::File> {
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
pub(super) fn open_private(path: &Path) -> std::io::Result<(fs::File, u64)> {
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

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
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
