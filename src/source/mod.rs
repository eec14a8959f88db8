//! Sources: where a K3s TLS tree comes from — a local directory or a container's archive
//! stream. Both produce the same [`Tree`], so one tree gives one report whatever its origin.
//!
//! Memory is bounded whatever the tree holds: at most [`MAX_FILE_BYTES`] per file,
//! [`MAX_TREE_BYTES`] of file bodies and [`MAX_ENTRIES`] entries per tree, and a hard link is
//! never read twice. What is not read is an entry of the tree saying why, so the report shows it.

pub mod archive;
pub mod dir;

/// Largest file read into memory; larger entries are reported as `too_large` and skipped.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Bytes of file bodies read per tree; files past it are reported as `tree_too_large`.
/// A real K3s TLS tree is ~40 files and ~100 KB; 16 MiB keeps `check`'s peak RSS under 32 MiB.
pub const MAX_TREE_BYTES: u64 = 16 * 1024 * 1024;

/// Entries (files, links, directories) read per tree; the first one past it is reported as
/// `too_many_entries` and nothing after it is read.
pub const MAX_ENTRIES: usize = 10_000;

/// The caps of one tree read. [`Limits::default`] holds the constants above; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_tree_bytes: u64,
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: MAX_FILE_BYTES,
            max_tree_bytes: MAX_TREE_BYTES,
            max_entries: MAX_ENTRIES,
        }
    }
}

/// What a reader has spent of its [`Limits`] so far.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    entries: usize,
    bytes: u64,
}

impl Budget {
    /// Count one more entry; false once the entry cap is passed (this entry is not read).
    pub(crate) fn take_entry(&mut self, limits: &Limits) -> bool {
        self.entries += 1;
        self.entries <= limits.max_entries
    }

    /// Reserve `size` bytes of body; false (nothing reserved) when the tree budget would pass.
    pub(crate) fn take_bytes(&mut self, size: u64, limits: &Limits) -> bool {
        if self.bytes.saturating_add(size) > limits.max_tree_bytes {
            return false;
        }
        self.bytes += size;
        true
    }

    /// Charge what a read really used instead of what was reserved for it.
    pub(crate) fn settle(&mut self, reserved: u64, used: u64) {
        self.bytes = self.bytes.saturating_sub(reserved).saturating_add(used);
    }

    /// Entries counted so far.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }
}

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
    /// A hard link to another entry of the tree (its path): its bytes are never read twice.
    HardLink(String),
    /// Not read: the tree's byte budget ([`Limits::max_tree_bytes`]) was spent; its size.
    TreeTooLarge(u64),
    /// Not read, and nothing after it either: the entry cap ([`Limits::max_entries`]) was passed.
    TooManyEntries(usize),
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
