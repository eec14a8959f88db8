//! Bounded memory of `check --container` on hostile trees (issue 10, item 3), on the real
//! engine: the Docker archive API sends a hard link as a tar link entry, which the reader
//! used to clone (1 file + 400 links took 417 MB RSS), and a tree of any size whole.
//!
//! Each tree is also read with `check --dir` from the same files on the host: both sources
//! must give the same problems (Docker walks names in byte order like the directory source).

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::fixtures::*;
use common::*;
use serde_json::Value;

const TLS: &str = "/var/lib/rancher/k3s/server/tls";

/// Peak RSS allowed in these debug-build tests (the release figures, goal ≤ 32 MiB, are in
/// bench/RESULTS.md); before the fix the hard-link bomb took 417 MB.
const TEST_RSS_LIMIT_KIB: u64 = 64 * 1024;

/// Run the binary; its output and its own peak RSS in KiB (`ru_maxrss` from `wait4`).
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its rusage
fn run_bin_peak_rss(args: &[&str]) -> (Output, u64) {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CERT_GUARD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        out.read_to_end(&mut b).unwrap();
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        err.read_to_end(&mut b).unwrap();
        b
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child and has not been reaped (`child.wait` is never called).
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    use std::os::unix::process::ExitStatusExt;
    let output = Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    (output, usage.ru_maxrss as u64)
}

fn check(args: &[&str]) -> (i32, Value, u64) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let (o, rss) = run_bin_peak_rss(&all);
    let v: Value = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(&o), stderr(&o)));
    (o.status.code().unwrap_or(-1), v, rss)
}

fn problems(v: &Value) -> Vec<(String, String, String)> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_string(),
                p["reason"].as_str().unwrap().to_string(),
                p["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A stopped container (the archive API reads stopped containers) from a FROM-scratch busybox
/// image holding `tls`, after `script` ran in the TLS directory.
fn container_with(tls: &Path, script: &str) -> (ImageGuard, ContainerGuard) {
    let image = build_tree_image(tls);
    let name = unique("hostile");
    let guard = ContainerGuard(name.clone());
    docker(&[
        "run",
        "--name",
        &name,
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "-w",
        TLS,
        &image.0,
        "sh",
        "-c",
        &format!("set -e; {script}"),
    ]);
    (image, guard)
}

/// "Hard links clone the body: 1 file plus 400 links (1.1 MB on disk) took 417 MB RSS."
#[test]
fn hard_link_bomb_in_a_container_is_reported_not_cloned() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_k3s_tree(dir.path(), &TreeSpec::days_left(now(), 365));
    let script = "dd if=/dev/zero of=bomb.crt bs=1048575 count=1 2>/dev/null; \
                  for i in $(seq -w 0 399); do ln bomb.crt link-$i.crt; done";
    let (_image, c) = container_with(dir.path(), script);
    let (code, v, rss) = check(&["--container", &c.0]);
    let got = problems(&v);
    let links: Vec<_> = got.iter().filter(|p| p.1 == "hard_link").collect();
    assert_eq!(links.len(), 400, "{:?}", &got[..got.len().min(3)]);
    assert!(
        links.iter().all(|p| p.2 == "hard link to bomb.crt"),
        "{:?}",
        &links[..3]
    );
    assert_eq!(code, 1);
    assert!(rss < TEST_RSS_LIMIT_KIB, "peak RSS {rss} KiB");

    // The same tree on the host, read as a directory: the same problems.
    let body = vec![0u8; 1_048_575];
    std::fs::write(dir.path().join("bomb.crt"), body).unwrap();
    for i in 0..400 {
        std::fs::hard_link(
            dir.path().join("bomb.crt"),
            dir.path().join(format!("link-{i:03}.crt")),
        )
        .unwrap();
    }
    std::fs::remove_dir_all(dir.path().join("temporary-certs")).unwrap();
    let (_, v_dir, _) = check(&["--dir", dir.path().to_str().unwrap()]);
    assert_eq!(problems(&v_dir), got);
}

/// "There is no cap on total bytes or entries": 10 050 certificate files.
#[test]
fn entries_past_the_cap_in_a_container_are_not_read() {
    if !docker_available() {
        return;
    }
    let empty = tempfile::tempdir().unwrap();
    let (_image, c) = container_with(empty.path(), "true");
    let many = tempfile::tempdir().unwrap();
    let cert = pem_of(&v1_cert_der("many", now() - 86_400, now() + 365 * 86_400));
    for i in 0..10_050 {
        std::fs::write(many.path().join(format!("c{i:05}.crt")), &cert).unwrap();
    }
    docker(&[
        "cp",
        &format!("{}/.", many.path().display()),
        &format!("{}:{TLS}/", c.0),
    ]);
    let (code, v, rss) = check(&["--container", &c.0]);
    let got = problems(&v);
    assert_eq!(
        got,
        vec![(
            "c10000.crt".to_string(),
            "too_many_entries".to_string(),
            "the tree has more than 10000 entries: this one and every entry after it were not read"
                .to_string()
        )]
    );
    assert_eq!(v["certificates"].as_array().unwrap().len(), 10_000);
    assert_eq!(code, 1);
    assert!(rss < TEST_RSS_LIMIT_KIB, "peak RSS {rss} KiB");
    let (_, v_dir, _) = check(&["--dir", many.path().to_str().unwrap()]);
    assert_eq!(problems(&v_dir), got);
}
