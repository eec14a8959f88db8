//! A TLS tree from a tar stream (the Docker archive API), in memory: entries are never
//! written to disk, so absolute paths or `..` in the archive can do no harm. Memory stays
//! bounded by the per-file cap: larger entries are skipped while streaming.

use std::collections::HashMap;
use std::io::Read;

use super::{is_skipped, EntryBody, Tree, TreeEntry, MAX_FILE_BYTES};

/// Build a tree from a tar stream whose first path component is the directory itself
/// (`tls/`, as Docker sends it). Runs synchronously: call it from a blocking task.
pub fn tree_from_tar<R: Read>(reader: R) -> std::io::Result<Tree> {
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::default();
    // Hard links point at an earlier entry by its archive path; keep what they resolve to.
    let mut by_archive_path: HashMap<String, usize> = HashMap::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = relative(&raw_path) else {
            continue;
        };
        if is_skipped(&rel) || rel.is_empty() {
            continue;
        }
        let header = entry.header();
        let kind = header.entry_type();
        let body = if kind.is_dir() {
            continue;
        } else if kind.is_file() {
            let size = header.size().unwrap_or(0);
            if size > MAX_FILE_BYTES {
                EntryBody::TooLarge(size)
            } else {
                let mut buf = Vec::with_capacity(size as usize);
                match (&mut entry).take(MAX_FILE_BYTES + 1).read_to_end(&mut buf) {
                    Ok(_) if buf.len() as u64 > MAX_FILE_BYTES => {
                        EntryBody::TooLarge(buf.len() as u64)
                    }
                    Ok(_) => EntryBody::File(buf),
                    Err(e) => EntryBody::ReadFailed(e.to_string()),
                }
            }
        } else if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .and_then(|t| relative(&t));
            match target.and_then(|t| by_archive_path.get(&t).copied()) {
                Some(i) => tree.entries[i].body.clone(),
                None => EntryBody::NotRegular("hard link to a file outside the tree".into()),
            }
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            EntryBody::NotRegular(format!("symbolic link to {target}"))
        } else {
            EntryBody::NotRegular(format!("not a regular file (tar type {:?})", kind))
        };
        by_archive_path.insert(rel.clone(), tree.entries.len());
        tree.entries.push(TreeEntry { path: rel, body });
    }
    tree.sort();
    Ok(tree)
}

/// Strip the archive's first component (the directory name) and any `.`/`/`; `None` for the
/// root itself or a path that tries to climb out.
fn relative(raw: &str) -> Option<String> {
    let mut parts = raw.split('/').filter(|c| !c.is_empty() && *c != ".");
    parts.next()?;
    let rest: Vec<&str> = parts.collect();
    if rest.contains(&"..") {
        return None;
    }
    Some(rest.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative("tls/a.crt").as_deref(), Some("a.crt"));
        assert_eq!(relative("./tls/etcd/b.crt").as_deref(), Some("etcd/b.crt"));
        assert_eq!(relative("tls/").as_deref(), Some(""));
        assert_eq!(relative("tls/../../etc/passwd"), None);
        assert_eq!(relative("/abs/x").as_deref(), Some("x"));
    }
}
