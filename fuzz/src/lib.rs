//! Helpers shared by the fuzz targets in `src/bin/`: how a target reads its control bytes
//! from the fuzzer's input, a reader for streams longer than the input, and an allocator that
//! measures the peak heap of one call (the property "bounded memory" made checkable).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The fuzzer's input, read front to back: control values first, the rest is the payload.
/// Missing bytes read as zero, so every input is valid.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// A signed value in ±2^39 seconds (±17 000 years): every time an X.509 certificate or
    /// a log line can carry, and any clock, without the arithmetic of `i64::MAX`.
    pub fn time(&mut self) -> i64 {
        let mut b = [0u8; 8];
        for x in b.iter_mut().take(5) {
            *x = self.byte();
        }
        // Sign-extend 40 bits.
        (i64::from_le_bytes(b) << 24) >> 24
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// The input followed by `tail` zero bytes: a stream that goes on after the input, as a
/// hostile daemon's would, so a header that claims megabytes gets them.
pub struct ZeroTail<'a> {
    head: &'a [u8],
    tail: u64,
}

impl<'a> ZeroTail<'a> {
    pub fn new(head: &'a [u8], tail: u64) -> Self {
        Self { head, tail }
    }
}

impl Read for ZeroTail<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.head.is_empty() {
            return self.head.read(buf);
        }
        let n = buf
            .len()
            .min(usize::try_from(self.tail).unwrap_or(usize::MAX));
        buf[..n].fill(0);
        self.tail -= n as u64;
        Ok(n)
    }
}

/// The system allocator, counting live bytes and their peak since [`Counting::reset_peak`].
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    /// Start a measurement: the peak becomes what is live now.
    pub fn reset_peak() {
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    pub fn live() -> usize {
        LIVE.load(Ordering::Relaxed)
    }
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
    fn grew(by: usize) {
        let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                Self::grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}
