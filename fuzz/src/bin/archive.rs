//! The archive reader: `source::archive::tree_from_tar_limited` on a tar stream a hostile
//! daemon or socket proxy controls (GNU long names, PAX headers, hard links, sparse entries,
//! huge sizes, truncation), then the inventory of the tree it returns.
//!
//! Input: 1 control byte, then the stream. Bit 0 of the control byte: the stream goes on with
//! 16 MiB of zeros after the input, so a header that claims megabytes gets them. Bit 1: the
//! checksum of every 512-byte block that looks like a header (`ustar` magic) is recomputed
//! before reading, so that mutated sizes, types and names reach the reader instead of failing
//! the checksum.
//!
//! Properties: no panic; the tree respects the caps it was read with; and the heap the read
//! needs is bounded by the caps, not by what the stream claims or holds.

use rancher_cert_guard::inventory::{self, RenewBefore};
use rancher_cert_guard::source::archive::tree_from_tar_limited;
use rancher_cert_guard::source::{EntryBody, Limits};
use rancher_cert_guard_fuzz::{Counting, Input, ZeroTail};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Small caps, so that a short input can reach every one of them.
const LIMITS: Limits = Limits {
    max_file_bytes: 4096,
    max_tree_bytes: 16 * 1024,
    max_entries: 64,
};

/// Zeros after the input when bit 0 of the control byte is set.
const TAIL: u64 = 16 << 20;

/// Most heap one read may hold at once with [`LIMITS`]: the bodies (16 KiB), 65 entries with
/// names and link targets of at most a few KiB each, one entry's metadata (long names, PAX
/// records) and the tar reader's buffers — far below [`TAIL`].
const MAX_HEAP: usize = 4 << 20;

fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let control = input.byte();
    let mut stream = input.rest().to_vec();
    if control & 2 == 2 {
        fix_checksums(&mut stream);
    }
    let stream = &stream[..];
    let tail = if control & 1 == 1 { TAIL } else { 0 };

    Counting::reset_peak();
    let base = Counting::live();
    let result = tree_from_tar_limited(ZeroTail::new(stream, tail), &LIMITS);
    let peak = Counting::peak() - base;
    assert!(
        peak <= MAX_HEAP,
        "reading a {}-byte stream (+{tail} zeros) held {peak} bytes of heap",
        stream.len()
    );
    let Ok(tree) = result else { return };

    assert!(tree.entries.len() <= LIMITS.max_entries + 1);
    assert!(
        tree.entries.windows(2).all(|w| w[0].path <= w[1].path),
        "sorted"
    );
    let mut bytes = 0u64;
    let mut too_many = 0;
    for e in &tree.entries {
        let p = &e.path;
        assert!(!p.is_empty() && !p.starts_with('/'), "{p:?}");
        assert!(
            p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
            "{p:?} is not a clean relative path"
        );
        assert!(
            !rancher_cert_guard::source::is_skipped(p),
            "{p:?} is skipped"
        );
        match &e.body {
            EntryBody::File(b) => {
                assert!(b.len() as u64 <= LIMITS.max_file_bytes);
                bytes += b.len() as u64;
            }
            EntryBody::HardLink(to) => assert!(
                tree.entries.iter().any(|o| &o.path == to),
                "{p:?} links to {to:?}, not an entry of the tree"
            ),
            EntryBody::TooManyEntries(_) => too_many += 1,
            _ => {}
        }
    }
    assert!(bytes <= LIMITS.max_tree_bytes);
    assert!(too_many <= 1);

    let inv = inventory::inventory(&tree, 1_764_126_245, RenewBefore::default());
    serde_json::to_vec(&inv).expect("inventory serialises");
}

/// Recompute the checksum of every block with the `ustar` magic (POSIX and GNU headers).
fn fix_checksums(stream: &mut [u8]) {
    for block in stream.chunks_exact_mut(512) {
        if &block[257..262] != b"ustar" {
            continue;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}
