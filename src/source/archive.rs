//! A TLS tree from a tar stream (the Docker archive API), in memory: entries are never
//! written to disk, so absolute paths or `..` in the archive can do no harm. Memory stays
//! bounded by [`Limits`]: larger files are skipped while streaming, a hard link is reported
//! and never cloned, and the stream is dropped at the entry cap.

use std::collections::HashSet;
use std::io::Read;

use super::{is_skipped, Budget, EntryBody, Limits, Tree, TreeEntry};

/// Build a tree from a tar stream whose first path component is the directory itself
/// (`tls/`, as Docker sends it), within the default [`Limits`]. Runs synchronously: call it
/// from a blocking task.
pub fn tree_from_tar<R: Read>(reader: R) -> std::io::Result<Tree> {
    tree_from_tar_limited(reader, &Limits::default())
}

/// [`tree_from_tar`] within `limits`.
pub fn tree_from_tar_limited<R: Read>(reader: R, limits: &Limits) -> std::io::Result<Tree> {
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::default();
    let mut budget = Budget::default();
    // Paths already in the tree: a hard link names one of them (Docker writes the first path
    // of an inode as a file, every later one as a link to it, like tar).
    let mut seen: HashSet<String> = HashSet::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = relative(&raw_path) else {
            continue;
        };
        // Entries under a skipped directory are not counted: the directory source never
        // descends into one.
        if rel.is_empty() || is_skipped(&rel) {
            continue;
        }
        if !budget.take_entry(limits) {
            // Stop here: the rest of the stream is never read.
            tree.entries.push(TreeEntry {
                path: rel,
                body: EntryBody::TooManyEntries(limits.max_entries),
            });
            break;
        }
        let header = entry.header();
        let kind = header.entry_type();
        let body = if kind.is_dir() {
            continue;
        } else if kind.is_file() {
            let size = header.size().unwrap_or(0);
            if size > limits.max_file_bytes {
                EntryBody::TooLarge(size)
            } else if !budget.take_bytes(size, limits) {
                EntryBody::TreeTooLarge(size)
            } else {
                let mut buf = Vec::with_capacity(size as usize);
                let body = match (&mut entry)
                    .take(limits.max_file_bytes + 1)
                    .read_to_end(&mut buf)
                {
                    Ok(_) if buf.len() as u64 > limits.max_file_bytes => {
                        EntryBody::TooLarge(buf.len() as u64)
                    }
                    Ok(_) => EntryBody::File(buf),
                    Err(e) => EntryBody::ReadFailed(e.to_string()),
                };
                let used = match &body {
                    EntryBody::File(b) => b.len() as u64,
                    _ => 0,
                };
                budget.settle(size, used);
                body
            }
        } else if kind.is_hard_link() {
            let raw = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            match relative(&raw) {
                Some(t) if seen.contains(&t) => EntryBody::HardLink(t),
                _ => EntryBody::NotRegular(format!("hard link to {raw}, outside the tree")),
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
        seen.insert(rel.clone());
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

    /// One entry of a test archive.
    enum Item<'a> {
        File(&'a [u8]),
        /// A hard link to this archive path.
        Link(&'a str),
        Dir,
    }

    /// A tar like Docker's archive API sends: the directory first, then its entries.
    fn tar_of(entries: &[(&str, Item)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "tls/", std::io::empty()).unwrap();
        for (path, item) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o600);
            h.set_size(0);
            match item {
                Item::File(data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, format!("tls/{path}"), *data).unwrap();
                }
                Item::Link(to) => {
                    h.set_entry_type(tar::EntryType::Link);
                    b.append_link(&mut h, format!("tls/{path}"), to).unwrap();
                }
                Item::Dir => {
                    h.set_entry_type(tar::EntryType::Directory);
                    b.append_data(&mut h, format!("tls/{path}/"), std::io::empty())
                        .unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    /// Before: every link cloned the body (1 file + 400 links took 417 MB).
    #[test]
    fn hard_links_are_reported_never_cloned() {
        let body = vec![b'A'; 1000];
        let names: Vec<String> = (0..400).map(|i| format!("l{i:03}.crt")).collect();
        let mut entries = vec![("bomb.crt", Item::File(&body))];
        entries.extend(
            names
                .iter()
                .map(|n| (n.as_str(), Item::Link("tls/bomb.crt"))),
        );
        entries.push(("out.crt", Item::Link("etc/shadow")));
        let tree = tree_from_tar(&tar_of(&entries)[..]).unwrap();
        assert_eq!(tree.files().count(), 1, "the body is held once");
        assert_eq!(
            tree.get("l000.crt"),
            Some(&EntryBody::HardLink("bomb.crt".into()))
        );
        assert!(
            matches!(tree.get("out.crt"), Some(EntryBody::NotRegular(w)) if w.contains("outside the tree"))
        );
    }

    #[test]
    fn caps_on_entries_and_bytes() {
        let limits = Limits {
            max_file_bytes: 100,
            max_tree_bytes: 250,
            max_entries: 5,
        };
        let b = [b'x'; 100];
        let tar = tar_of(&[
            ("a.crt", Item::File(&b)),
            ("b.crt", Item::File(&b)),
            ("c.crt", Item::File(&b)),
            ("temporary-certs", Item::Dir),
            ("temporary-certs/x.crt", Item::File(&b)),
            ("d.crt", Item::File(&b[..10])),
            ("e.crt", Item::File(&b[..10])),
            ("f.crt", Item::File(&b[..10])),
        ]);
        let tree = tree_from_tar_limited(&tar[..], &limits).unwrap();
        let got: Vec<(&str, &EntryBody)> = tree
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.body))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a.crt", &EntryBody::File(b.to_vec())),
                ("b.crt", &EntryBody::File(b.to_vec())),
                // 200 of 250 bytes spent: 100 more do not fit, 10 do.
                ("c.crt", &EntryBody::TreeTooLarge(100)),
                ("d.crt", &EntryBody::File(b[..10].to_vec())),
                // a, b, c, temporary-certs (its content not counted), d: e is the 6th.
                ("e.crt", &EntryBody::TooManyEntries(5)),
            ]
        );
    }
}
