//! A TLS tree from a local directory (the init-container use, and tests). Symlinks are
//! reported, never followed.

use std::fs;
use std::io::Read;
use std::path::Path;

use super::{EntryBody, Tree, TreeEntry, MAX_FILE_BYTES, SKIPPED_DIRS};
use crate::error::Error;

/// Read every file under `root`, recursively.
pub fn read_dir_tree(root: &Path) -> Result<Tree, Error> {
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
    let mut tree = Tree::default();
    walk(root, "", &mut tree, true)?;
    tree.sort();
    Ok(tree)
}

fn walk(dir: &Path, prefix: &str, tree: &mut Tree, top: bool) -> Result<(), Error> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if top => {
            return Err(Error::SourceUnreadable {
                source_name: dir.display().to_string(),
                detail: e.to_string(),
            })
        }
        Err(e) => {
            tree.entries.push(TreeEntry {
                path: prefix.trim_end_matches('/').to_string(),
                body: EntryBody::ReadFailed(format!("cannot list directory: {e}")),
            });
            return Ok(());
        }
    };
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                tree.entries.push(TreeEntry {
                    path: format!("{prefix}?"),
                    body: EntryBody::ReadFailed(format!("cannot list directory: {e}")),
                });
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                tree.entries.push(TreeEntry {
                    path: rel,
                    body: EntryBody::ReadFailed(e.to_string()),
                });
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_str()) {
                walk(&path, &format!("{rel}/"), tree, false)?;
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            tree.entries.push(TreeEntry {
                path: rel,
                body: EntryBody::NotRegular(format!("symbolic link to {target}")),
            });
        } else if !ft.is_file() {
            tree.entries.push(TreeEntry {
                path: rel,
                body: EntryBody::NotRegular("not a regular file (device, fifo or socket)".into()),
            });
        } else if meta.len() > MAX_FILE_BYTES {
            tree.entries.push(TreeEntry {
                path: rel,
                body: EntryBody::TooLarge(meta.len()),
            });
        } else {
            let body = match fs::File::open(&path).and_then(|f| {
                let mut buf = Vec::with_capacity(meta.len() as usize);
                f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)?;
                Ok(buf)
            }) {
                Ok(buf) if buf.len() as u64 > MAX_FILE_BYTES => {
                    EntryBody::TooLarge(buf.len() as u64)
                }
                Ok(buf) => EntryBody::File(buf),
                Err(e) => EntryBody::ReadFailed(e.to_string()),
            };
            tree.entries.push(TreeEntry { path: rel, body });
        }
    }
    Ok(())
}
