//! `parse_certs_per_second`: in-process inventory throughput on a 1,000-file K3s-shaped tree.
//!
//! Generates distinct K3s server TLS trees with the test fixtures (rcgen, the real layout:
//! ECDSA CAs and leaves written leaf + CA, keys, RSA service.key, etcd/, dynamic-cert.json)
//! until there are 1,000 files, loads them into one in-memory [`Tree`] (each copy under its own
//! `treeNNN/` prefix), then times `inventory()` alone — no I/O, no process start.
//!
//! Run: `cargo bench --bench inventory` (plain `std::time::Instant`, no harness). Prints a
//! human line on stderr and `key: value` lines on stdout. `BENCH_FILES` (default 1000) and
//! `BENCH_ITERS` (default 30) change the size and the repetitions.

#[path = "../tests/common/fixtures.rs"]
mod fixtures;

use std::time::Instant;

use rancher_cert_guard::inventory::{inventory, RenewBefore};
use rancher_cert_guard::source::dir::read_dir_tree;
use rancher_cert_guard::source::{Tree, TreeEntry};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful: ignore args.
    let want_files = env_usize("BENCH_FILES", 1000);
    let iters = env_usize("BENCH_ITERS", 30).max(3);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let gen_start = Instant::now();
    let base = std::env::temp_dir().join(format!("rcg-bench-inventory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut tree = Tree::default();
    let mut copies = 0usize;
    while tree.entries.len() < want_files {
        let dir = base.join(format!("tree{copies:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        // Leaves due in 20 days: the judging path that reports warnings runs too.
        fixtures::write_k3s_tree(&dir, &fixtures::TreeSpec::days_left(now, 20));
        let one = read_dir_tree(&dir).expect("read generated tree");
        for e in one.entries {
            tree.entries.push(TreeEntry {
                path: format!("tree{copies:03}/{}", e.path),
                body: e.body,
            });
        }
        copies += 1;
    }
    tree.entries.truncate(want_files);
    tree.sort();
    let _ = std::fs::remove_dir_all(&base);
    let files = tree.entries.len();
    let bytes: usize = tree.files().map(|(_, b)| b.len()).sum();
    eprintln!(
        "inventory bench: {files} files ({bytes} bytes, {copies} generated K3s trees) in {:.1}s",
        gen_start.elapsed().as_secs_f64()
    );

    let rb = RenewBefore::days(90);
    // Warm-up (page faults, allocator).
    let warm = inventory(&tree, now, rb);
    let certs = warm.certificates.len();
    assert!(certs > 0, "no certificate parsed");
    assert!(
        warm.problems.is_empty() || warm.problems.len() < files / 10,
        "unexpected problems: {:?}",
        &warm.problems[..warm.problems.len().min(5)]
    );

    let mut secs = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        let inv = inventory(std::hint::black_box(&tree), now, rb);
        secs.push(t.elapsed().as_secs_f64());
        assert_eq!(inv.certificates.len(), certs);
        std::hint::black_box(inv);
    }
    secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = secs[secs.len() / 2];
    let min = secs[0];
    let max = secs[secs.len() - 1];
    let cps = certs as f64 / median;
    eprintln!(
        "inventory bench: {certs} certificate blocks in {files} files; median {:.2} ms (min {:.2}, max {:.2}) over {iters} runs -> {:.0} certs/s, {:.0} files/s",
        median * 1e3,
        min * 1e3,
        max * 1e3,
        cps,
        files as f64 / median
    );
    println!("parse_certs_per_second: {cps:.0}");
    println!("parse_files_per_second: {:.0}", files as f64 / median);
    println!("parse_tree_files: {files}");
    println!("parse_tree_certificates: {certs}");
    println!("parse_median_ms: {:.3}", median * 1e3);
}
