//! A TLS tree from a local directory (the init-container use, and tests). Symlinks are
//! reported, never followed; memory is bounded by [`Limits`].
//!
//! The walk visits each directory's entries in byte order of their names, depth first — the
//! order of Go's `filepath.Walk`, which Docker's archive API uses — so the same tree gives the
//! same report from `--dir` and from `--container`, caps and hard links included.

use std::collections::{BinaryHeap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{Budget, EntryBody, Limits, Tree, TreeEntry, SKIPPED_DIRS};
use crate::error::Error;

/// Directories deeper than this are reported, not read (K3s's tree is 2 deep: `etcd/`). It
/// bounds the names held while walking to `MAX_DEPTH` × the entry cap.
const MAX_DEPTH: usize = 8;

/// Read every file under `root`, recursively, within the default [`Limits`].
pub fn read_dir_tree(root: &Path) -> Result<Tree, Error> {
    read_dir_tree_limited(root, &Limits::default())
}

/// [`read_dir_tree`] within `limits`.
pub fn read_dir_tree_limited(root: &Path, limits: &Limits) -> Result<Tree, Error> {
    let meta = fs::metadata(root).map_err(|e| Error::SourceUnreadable {
        source_name: root.display().to_string(),
        detail: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(Error::SourceUnreadable {
            source_name: root.display().to_string(),
            detail: "not a directory".into(),
        });
    }
    let mut walk = Walk {
        tree: Tree::default(),
        limits: *limits,
        budget: Budget::default(),
        inodes: HashMap::new(),
        stopped: false,
    };
    walk.dir(root, "", 0)?;
    let mut tree = walk.tree;
    tree.sort();
    Ok(tree)
}

/// State of one walk.
struct Walk {
    tree: Tree,
    limits: Limits,
    budget: Budget,
    /// (device, inode) of files with more than one link → the first path seen: a later path
    /// of the same inode is a hard link, reported and not read again.
    inodes: HashMap<(u64, u64), String>,
    /// The entry cap was passed: nothing more is read.
    stopped: bool,
}

impl Walk {
    fn push(&mut self, path: String, body: EntryBody) {
        self.tree.entries.push(TreeEntry { path, body });
    }

    fn dir(&mut self, dir: &Path, prefix: &str, depth: usize) -> Result<(), Error> {
        let top = depth == 0;
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if top => {
                return Err(Error::SourceUnreadable {
                    source_name: dir.display().to_string(),
                    detail: e.to_string(),
                })
            }
            Err(e) => {
                self.push(
                    prefix.trim_end_matches('/').to_string(),
                    EntryBody::ReadFailed(format!("cannot list directory: {e}")),
                );
                return Ok(());
            }
        };
        // Only the names the entry budget can still reach: the lexically first `room` of them
        // (a bounded max-heap), so a directory of a million entries costs no more than the cap.
        let room = self
            .limits
            .max_entries
            .saturating_sub(self.budget.entries())
            + 1;
        let mut heap: BinaryHeap<OsString> = BinaryHeap::new();
        let mut list_error = None;
        for entry in rd {
            match entry {
                Ok(e) => {
                    // `OsString` orders by its bytes: Go's (and Docker's) order.
                    let name = e.file_name();
                    if heap.len() < room {
                        heap.push(name);
                    } else if heap.peek().is_some_and(|top| name < *top) {
                        heap.pop();
                        heap.push(name);
                    }
                }
                Err(e) => list_error = Some(e),
            }
        }
        if let Some(e) = list_error {
            self.push(
                format!("{prefix}?"),
                EntryBody::ReadFailed(format!("cannot list directory: {e}")),
            );
        }
        for name in heap.into_sorted_vec() {
            if self.stopped {
                return Ok(());
            }
            let name_s = name.to_string_lossy().into_owned();
            let rel = format!("{prefix}{name_s}");
            if !self.budget.take_entry(&self.limits) {
                self.push(rel, EntryBody::TooManyEntries(self.limits.max_entries));
                self.stopped = true;
                return Ok(());
            }
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.push(rel, EntryBody::ReadFailed(e.to_string()));
                    continue;
                }
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if SKIPPED_DIRS.contains(&name_s.as_str()) {
                    continue;
                }
                if depth >= MAX_DEPTH {
                    self.push(
                        rel,
                        EntryBody::ReadFailed(format!(
                            "directory nested more than {MAX_DEPTH} levels deep; not read"
                        )),
                    );
                } else {
                    self.dir(&path, &format!("{rel}/"), depth + 1)?;
                }
            } else if ft.is_symlink() {
                let target = fs::read_link(&path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                self.push(
                    rel,
                    EntryBody::NotRegular(format!("symbolic link to {target}")),
                );
            } else if !ft.is_file() {
                self.push(
                    rel,
                    EntryBody::NotRegular("not a regular file (device, fifo or socket)".into()),
                );
            } else if let Some(first) = self.first_link(&meta, &rel) {
                self.push(rel, EntryBody::HardLink(first));
            } else {
                let body = self.file(&path, &meta);
                self.push(rel, body);
            }
        }
        Ok(())
    }

    /// For a file with several links, the path this inode was first seen at (if any);
    /// remembers this path otherwise.
    fn first_link(&mut self, meta: &fs::Metadata, rel: &str) -> Option<String> {
        if meta.nlink() < 2 {
            return None;
        }
        let key = (meta.dev(), meta.ino());
        if let Some(first) = self.inodes.get(&key) {
            return Some(first.clone());
        }
        self.inodes.insert(key, rel.to_string());
        None
    }

    /// Read one regular file within the caps, through a descriptor that cannot be a link and
    /// does not block (a FIFO swapped in after the `lstat` is refused, not waited on).
    fn file(&mut self, path: &Path, meta: &fs::Metadata) -> EntryBody {
        let limits = self.limits;
        if meta.len() > limits.max_file_bytes {
            return EntryBody::TooLarge(meta.len());
        }
        if !self.budget.take_bytes(meta.len(), &limits) {
            return EntryBody::TreeTooLarge(meta.len());
        }
        let read = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .and_then(|f| {
                let m = f.metadata()?;
                if !m.is_file() || m.ino() != meta.ino() || m.dev() != meta.dev() {
                    return Err(std::io::Error::other(
                        "the file was replaced while it was read",
                    ));
                }
                let mut buf = Vec::with_capacity(meta.len() as usize);
                f.take(limits.max_file_bytes + 1).read_to_end(&mut buf)?;
                Ok(buf)
            });
        let body = match read {
            Ok(buf) if buf.len() as u64 > limits.max_file_bytes => {
                EntryBody::TooLarge(buf.len() as u64)
            }
            Ok(buf) => EntryBody::File(buf),
            Err(e) => EntryBody::ReadFailed(e.to_string()),
        };
        let used = match &body {
            EntryBody::File(b) => b.len() as u64,
            _ => 0,
        };
        // A file that changed size while read is charged what was really read.
        self.budget.settle(meta.len(), used);
        body
    }
}
