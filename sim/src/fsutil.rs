//! File writes that a SIGTERM cannot cut in half.
//!
//! All writes take [`WRITE_LOCK`]; the signal thread takes the same lock
//! before it exits the process, so a file is either fully written or not
//! touched at all.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// Takes the write lock (used by the signal thread before exiting).
pub fn lock() -> MutexGuard<'static, ()> {
    WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `data` to `path` with the given mode, creating parent directories.
pub fn write(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let _guard = lock();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Removes a file, ignoring "not found".
pub fn remove(path: &Path) -> io::Result<()> {
    let _guard = lock();
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads a file as text; `None` when missing or unreadable.
pub fn read_string(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}
