//! Sources: where a K3s TLS tree comes from — a local directory or a container's archive
//! stream. Both produce the same [`Tree`], so one tree gives one report whatever its origin.

pub mod archive;
pub mod dir;

/// Largest file read into memory; larger entries are reported as `too_large` and skipped.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Directory names skipped wherever they appear (kube-apiserver's `--cert-dir`).
pub const SKIPPED_DIRS: &[&str] = &["temporary-certs"];

/// The files of a TLS directory, relative paths `/`-separated, sorted by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub body: EntryBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// A regular file's bytes (at most [`MAX_FILE_BYTES`]).
    File(Vec<u8>),
    /// A file over the cap, with its size.
    TooLarge(u64),
    /// A symlink, device, fifo…: what it is.
    NotRegular(String),
    /// Could not be read: why.
    ReadFailed(String),
}

impl Tree {
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.path.cmp(&b.path));
    }

    pub fn get(&self, path: &str) -> Option<&EntryBody> {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| &e.body)
    }

    /// Regular files and their bytes.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().filter_map(|e| match &e.body {
            EntryBody::File(b) => Some((e.path.as_str(), b.as_slice())),
            _ => None,
        })
    }
}

/// True when a relative path lies under a skipped directory.
pub fn is_skipped(rel: &str) -> bool {
    rel.split('/')
        .take(rel.split('/').count().saturating_sub(1))
        .any(|c| SKIPPED_DIRS.contains(&c))
}
