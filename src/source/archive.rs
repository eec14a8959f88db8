//! A TLS tree from a tar stream (the Docker archive API), in memory: entries are never
//! written to disk, so absolute paths or `..` in the archive can do no harm. Memory stays
//! bounded by [`Limits`]: larger files are skipped while streaming, a hard link is reported
//! and never cloned, and the stream is dropped at the entry cap. What the tar reader itself
//! holds between two entries — GNU long names and long link names, PAX records, GNU sparse
//! maps — is capped at [`MAX_META_BYTES`] of the stream, and a name or link target longer than
//! [`MAX_NAME_BYTES`] ends the read with an error: no filesystem Docker archives holds one.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::Read;
use std::rc::Rc;

use super::{is_skipped, Budget, EntryBody, Limits, Tree, TreeEntry};

/// Most bytes of the stream read for one entry besides its body: its header, the padding of
/// the entry before it, GNU long name and long link name entries, PAX records and GNU sparse
/// extension headers. Docker writes a few hundred (a PAX record for a long name,
/// `SCHILY.xattr.*` records, each value at most 64 KiB on Linux); the tar reader holds all of
/// it in memory, so without a cap a hostile daemon or socket proxy decides how much.
pub const MAX_META_BYTES: u64 = 256 * 1024;

/// Longest entry name or link target (Linux `PATH_MAX`).
pub const MAX_NAME_BYTES: usize = 4096;

/// Tar header and padding unit.
const BLOCK: u64 = 512;

/// Build a tree from a tar stream whose first path component is the directory itself
/// (`tls/`, as Docker sends it), within the default [`Limits`]. Runs synchronously: call it
/// from a blocking task.
pub fn tree_from_tar<R: Read>(reader: R) -> std::io::Result<Tree> {
    tree_from_tar_limited(reader, &Limits::default())
}

/// The stream, read no further than an absolute position set before each step: how the
/// metadata of one entry is capped while the `tar` crate reads it (see [`each_entry`]).
pub struct Metered<R> {
    inner: R,
    /// Bytes read from `inner` so far.
    pos: Rc<Cell<u64>>,
    /// No byte at or past this position is read; reaching it is an error.
    limit: Rc<Cell<u64>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.limit.get().saturating_sub(self.pos.get());
        if left == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a tar entry's metadata (GNU long name, PAX records or sparse map) is over \
                     {} KiB: not an archive of a TLS directory",
                    MAX_META_BYTES >> 10
                ),
            ));
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.pos.set(self.pos.get() + n as u64);
        Ok(n)
    }
}

fn too_long(what: &str, len: usize) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a tar entry's {what} is {len} bytes, over the {MAX_NAME_BYTES} bytes of PATH_MAX"),
    )
}

/// Bytes of the stream an entry's data takes, as the tar reader frames it: its size (a PAX
/// `size` record overrides the header), which for a GNU sparse entry is the stored data, not
/// the size of the file it expands to.
fn stream_len<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::io::Result<u64> {
    if !entry.header().entry_type().is_gnu_sparse() {
        return Ok(entry.size());
    }
    let header = entry.header().entry_size()?;
    let pax = entry.pax_extensions()?.and_then(|exts| {
        exts.filter_map(Result::ok)
            .find(|e| e.key() == Ok("size"))
            .and_then(|e| e.value().ok()?.parse::<u64>().ok())
    });
    Ok(pax.unwrap_or(header))
}

/// Visit every entry of a tar stream in order, with what the `tar` crate holds for each entry
/// capped: at most [`MAX_META_BYTES`] of metadata, names and link targets of at most
/// [`MAX_NAME_BYTES`] (both end the read with an error). `visit` returns `false` to stop;
/// whatever of an entry's data it does not read is skipped. Every reader of a tar stream that
/// comes from outside — a daemon, a socket proxy, the backup directory — goes through here.
pub fn each_entry<R: Read>(
    reader: R,
    mut visit: impl FnMut(&mut tar::Entry<'_, Metered<R>>) -> std::io::Result<bool>,
) -> std::io::Result<()> {
    let pos = Rc::new(Cell::new(0));
    let limit = Rc::new(Cell::new(MAX_META_BYTES));
    let mut archive = tar::Archive::new(Metered {
        inner: reader,
        pos: pos.clone(),
        limit: limit.clone(),
    });
    for entry in archive.entries()? {
        let mut entry = entry?;
        // Where the next header starts: the reader skips there before reading it, and may
        // read at most MAX_META_BYTES more until it hands out the next entry.
        let data_end = pos
            .get()
            .saturating_add(stream_len(&mut entry)?.saturating_add(BLOCK - 1) / BLOCK * BLOCK);
        limit.set(data_end.saturating_add(MAX_META_BYTES));
        let name = entry.path_bytes().len();
        if name > MAX_NAME_BYTES {
            return Err(too_long("name", name));
        }
        let link = entry.link_name_bytes().map_or(0, |b| b.len());
        if link > MAX_NAME_BYTES {
            return Err(too_long("link target", link));
        }
        if !visit(&mut entry)? {
            break;
        }
    }
    Ok(())
}

/// [`tree_from_tar`] within `limits`.
pub fn tree_from_tar_limited<R: Read>(reader: R, limits: &Limits) -> std::io::Result<Tree> {
    let mut tree = Tree::default();
    let mut budget = Budget::default();
    // Paths already in the tree: a hard link names one of them (Docker writes the first path
    // of an inode as a file, every later one as a link to it, like tar).
    let mut seen: HashSet<String> = HashSet::new();
    each_entry(reader, |entry| {
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = relative(&raw_path) else {
            return Ok(true);
        };
        // Entries under a skipped directory are not counted: the directory source never
        // descends into one.
        if rel.is_empty() || is_skipped(&rel) {
            return Ok(true);
        }
        if !budget.take_entry(limits) {
            // Stop here: the rest of the stream is never read.
            tree.entries.push(TreeEntry {
                path: rel,
                body: EntryBody::TooManyEntries(limits.max_entries),
            });
            return Ok(false);
        }
        let link_name = |entry: &tar::Entry<'_, _>| {
            entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let header = entry.header();
        let kind = header.entry_type();
        let body = if kind.is_dir() {
            return Ok(true);
        } else if kind.is_file() {
            let size = header.size().unwrap_or(0);
            if size > limits.max_file_bytes {
                EntryBody::TooLarge(size)
            } else if !budget.take_bytes(size, limits) {
                EntryBody::TreeTooLarge(size)
            } else {
                let mut buf = Vec::with_capacity(size as usize);
                let body = match entry.take(limits.max_file_bytes + 1).read_to_end(&mut buf) {
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
            let raw = link_name(entry);
            match relative(&raw) {
                Some(t) if seen.contains(&t) => EntryBody::HardLink(t),
                _ => EntryBody::NotRegular(format!("hard link to {raw}, outside the tree")),
            }
        } else if kind.is_symlink() {
            let target = link_name(entry);
            EntryBody::NotRegular(format!("symbolic link to {target}"))
        } else {
            EntryBody::NotRegular(format!("not a regular file (tar type {:?})", kind))
        };
        seen.insert(rel.clone());
        tree.entries.push(TreeEntry { path: rel, body });
        Ok(true)
    })?;
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

/// The start of a hostile tar stream (for tests): the `tls/` directory, then one header of
/// `kind` (a GNU long name, a PAX header…) that claims `size` bytes of metadata.
#[cfg(test)]
pub(crate) fn hostile_start(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("tls/").unwrap();
    h.set_size(0);
    h.set_cksum();
    let mut start = h.as_bytes().to_vec();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_size(size);
    h.set_cksum();
    start.extend(h.as_bytes());
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::MAX_FILE_BYTES;

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

    /// A reader that counts what it hands out.
    struct Counted<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    /// [`hostile_start`], then zeros that do not end.
    fn endless_after(kind: tar::EntryType, size: u64) -> Counted<impl Read> {
        Counted {
            inner: std::io::Cursor::new(hostile_start(kind, size)).chain(std::io::repeat(0)),
            read: 0,
        }
    }

    /// Found by the fuzz target `archive` within its first second (fuzz/RESULTS.md). Before:
    /// the `tar` crate read a GNU long name, long link name or PAX header of any size into
    /// memory — a 16 MiB one held 32 MiB of heap under 16 KiB tree caps; the stream decided.
    #[test]
    fn long_names_and_pax_records_are_capped() {
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
            tar::EntryType::XHeader,
        ] {
            let mut stream = endless_after(kind, 64 << 20);
            let err = tree_from_tar(&mut stream).unwrap_err();
            assert!(err.to_string().contains("metadata"), "{kind:?}: {err}");
            assert!(
                stream.read <= MAX_META_BYTES + 2 * BLOCK,
                "{kind:?}: {} bytes read",
                stream.read
            );
        }
    }

    /// Names are held for every entry: one longer than PATH_MAX ends the read.
    #[test]
    fn names_over_path_max_are_refused() {
        let tar_with = |name: &str, target: &str| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, "tls/", std::io::empty()).unwrap();
            b.append_pax_extensions([("path", name.as_bytes()), ("linkpath", target.as_bytes())])
                .unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_data(&mut h, "tls/placeholder", std::io::empty())
                .unwrap();
            b.into_inner().unwrap()
        };
        let long = format!("tls/{}", "n".repeat(MAX_NAME_BYTES - 4));
        let tree = tree_from_tar(&tar_with(&long, "x")[..]).unwrap();
        assert_eq!(tree.entries[0].path.len(), MAX_NAME_BYTES - 4);
        let err = tree_from_tar(&tar_with(&format!("{long}n"), "x")[..]).unwrap_err();
        assert!(err.to_string().contains("name is 4097 bytes"), "{err}");
        let err =
            tree_from_tar(&tar_with("tls/a", &"t".repeat(MAX_NAME_BYTES + 1))[..]).unwrap_err();
        assert!(err.to_string().contains("link target"), "{err}");
    }

    /// The cap is on metadata only: long names of real archives, and bodies far larger than
    /// the cap that are skipped, still read.
    #[test]
    fn the_metadata_cap_leaves_real_archives_alone() {
        let big = vec![b'A'; (MAX_FILE_BYTES + MAX_META_BYTES) as usize + 1];
        let long = format!("d{}/client-admin.crt", "d".repeat(150));
        let tar = tar_of(&[
            ("big.crt", Item::File(&big)),
            (&long, Item::File(b"x")),
            ("z.crt", Item::File(b"y")),
        ]);
        let tree = tree_from_tar(&tar[..]).unwrap();
        assert_eq!(
            tree.get("big.crt"),
            Some(&EntryBody::TooLarge(big.len() as u64))
        );
        assert_eq!(tree.get(&long), Some(&EntryBody::File(b"x".to_vec())));
        assert_eq!(tree.get("z.crt"), Some(&EntryBody::File(b"y".to_vec())));
    }
}
