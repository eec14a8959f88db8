//! Hostile and unlucky input without Docker (issue 10, items 1, 2, 3, 6): private backups,
//! exact retention, no write through a link in `repair --dir`, bounded memory of the
//! directory source, no silent pass, and a first boot that works.
//!
//! Every test here reproduces a defect seen on the binary before the fix (see the issue text
//! quoted above each one), then asserts the outcome: file bytes, modes, exit codes, reasons.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fixtures::*;
use common::*;
use rancher_cert_guard::repair::backup;
use rancher_cert_guard::source::{EntryBody, Tree, TreeEntry};
use serde_json::Value;

/// A data root laid out like `/var/lib/rancher`: `<root>/k3s/server/tls` holds a K3s tree
/// whose leaves expired 3 days ago, and `<root>/k3s/server/db/state.db` a victim datastore.
struct Volume {
    root: tempfile::TempDir,
}

impl Volume {
    fn expired() -> Self {
        let root = tempfile::tempdir().unwrap();
        let v = Volume { root };
        std::fs::create_dir_all(v.tls()).unwrap();
        write_k3s_tree(&v.tls(), &TreeSpec::days_left(now(), -3));
        std::fs::create_dir_all(v.server().join("db")).unwrap();
        std::fs::write(v.state_db(), b"SQLite format 3\0 the K3s datastore").unwrap();
        v
    }
    fn server(&self) -> PathBuf {
        self.root.path().join("k3s/server")
    }
    fn tls(&self) -> PathBuf {
        self.server().join("tls")
    }
    fn state_db(&self) -> PathBuf {
        self.server().join("db/state.db")
    }
}

/// Run the binary with a deadline (a write through a FIFO blocks forever): `None` if killed.
fn run_bin_deadline(args: &[&str], secs: u64) -> Option<Output> {
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
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn repair_dir(tls: &Path, backups: &Path) -> (i32, Value, String) {
    let o = run_bin_deadline(
        &[
            "repair",
            "--dir",
            tls.to_str().unwrap(),
            "--backup-dir",
            backups.to_str().unwrap(),
            "-o",
            "json",
        ],
        60,
    )
    .expect("repair --dir finished within 60 s");
    let v = serde_json::from_str(&stdout(&o)).unwrap_or(Value::Null);
    (o.status.code().unwrap_or(-1), v, stderr(&o))
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ------------------------------------------------------------------ 1. private, exact backups

/// "Archives are created 0644 in a 0755 directory (umask), and they hold every CA private key."
#[test]
fn backup_directory_is_0700_and_archives_0600() {
    let vol = Volume::expired();
    let parent = tempfile::tempdir().unwrap();
    let backups = parent.path().join("new/backups");
    let (code, v, err) = repair_dir(&vol.tls(), &backups);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "repaired");
    assert_eq!(mode(&backups), 0o700, "the backup directory we created");
    assert_eq!(
        mode(&parent.path().join("new")),
        0o700,
        "parents we created"
    );
    let archive = PathBuf::from(v["backup"].as_str().unwrap());
    assert_eq!(mode(&archive), 0o600);
    // A directory that existed before, open to others, is not ours to chmod (it may be /tmp or
    // a share): it is left as it was, with a warning; the archive in it is still 0600.
    let vol = Volume::expired();
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, v, err) = repair_dir(&vol.tls(), shared.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(mode(shared.path()), 0o755);
    assert!(err.contains("group- or world-accessible"), "{err}");
    assert_eq!(mode(Path::new(v["backup"].as_str().unwrap())), 0o600);
}

/// "A link named like the probe, pointing at an archive, truncates that archive."
#[test]
fn a_planted_probe_link_cannot_truncate_an_archive() {
    let backups = tempfile::tempdir().unwrap();
    let vol = Volume::expired();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    let first = PathBuf::from(v["backup"].as_str().unwrap());
    let before = std::fs::read(&first).unwrap();
    std::os::unix::fs::symlink(
        &first,
        backups.path().join(".rancher-cert-guard-write-probe"),
    )
    .unwrap();
    let vol = Volume::expired();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(
        std::fs::read(&first).unwrap(),
        before,
        "the archive the link pointed at is byte-identical"
    );
    assert!(!backups
        .path()
        .join(".rancher-cert-guard-write-probe")
        .exists());
}

/// "A stale `.…tar.tmp` of a killed run is never removed." Only this target's are ours.
#[test]
fn stale_temporaries_of_this_target_are_removed_and_no_others() {
    let backups = tempfile::tempdir().unwrap();
    let ours = backups.path().join(".dir-tls-20250101T000000Z.tar.tmp");
    let other = backups.path().join(".rancher-2-20250101T000000Z.tar.tmp");
    let users = backups.path().join(".dir-tls-notes.tmp");
    for p in [&ours, &other, &users] {
        std::fs::write(p, b"half an archive").unwrap();
    }
    let vol = Volume::expired();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert!(
        !ours.exists(),
        "the stale temporary of this target is removed"
    );
    assert!(other.exists(), "another container's temporary is not ours");
    assert!(
        users.exists(),
        "a file that does not parse as ours is not ours"
    );
}

fn small_tree(tag: &[u8]) -> Tree {
    Tree {
        entries: vec![TreeEntry {
            path: "client-admin.crt".into(),
            body: EntryBody::File(tag.to_vec()),
        }],
    }
}

fn write_at(dir: &Path, target: &str, t: i64) -> PathBuf {
    backup::write_verified(
        dir,
        target,
        "/var/lib/rancher/k3s/server/tls",
        &small_tree(target.as_bytes()),
        &backup::Extras::default(),
        t,
    )
    .unwrap()
}

const NOV_2026: i64 = 1_795_000_000;
const DAY: i64 = 86_400;

/// "With a clock that is behind, or was once ahead, the new archive sorts oldest and is
/// deleted while the report still names it. The filter also matches the archives of a
/// container named `rancher-2` and user files such as `rancher-2019-pre-upgrade.tar`."
#[test]
fn retention_keeps_only_this_containers_archives_by_manifest_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = write_at(d, "rancher", NOV_2026 - 3 * DAY);
    let mid = write_at(d, "rancher", NOV_2026 - 2 * DAY);
    let newest = write_at(d, "rancher", NOV_2026 - DAY);
    let other = write_at(d, "rancher-2", NOV_2026 - 5 * DAY);
    let users = d.join("rancher-2019-pre-upgrade.tar");
    std::fs::write(&users, b"a user's own archive").unwrap();
    // A file named exactly like one of ours but holding another container's manifest.
    let impostor = d.join("rancher-20200101T000000Z.tar");
    std::fs::copy(&other, &impostor).unwrap();
    // The clock went back two months: the archive just written has the oldest stamp.
    let just = write_at(d, "rancher", NOV_2026 - 60 * DAY);

    let removed = backup::prune(d, "rancher", 2, &just);
    let mut removed_sorted = removed.clone();
    removed_sorted.sort();
    let mut expect = vec![old.clone(), mid.clone()];
    expect.sort();
    assert_eq!(removed_sorted, expect);
    for p in [&just, &newest, &other, &users, &impostor] {
        assert!(p.exists(), "{} must be kept", p.display());
    }
    // keep = 1 still keeps both the archive just written and the newest verified one.
    assert!(backup::prune(d, "rancher", 1, &just).is_empty());
    // The other container's retention never touches `rancher`'s archives.
    assert!(backup::prune(d, "rancher-2", 1, &other).is_empty());
    assert!(just.exists() && newest.exists());
}

/// The newest archive by manifest time that no longer verifies is not "the newest verified":
/// the next one is kept in its place.
#[test]
fn retention_keeps_the_newest_archive_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write_at(d, "rancher", NOV_2026 - 3 * DAY);
    let older = write_at(d, "rancher", NOV_2026 - 4 * DAY);
    let corrupt = write_at(d, "rancher", NOV_2026 - DAY);
    // Flip the last byte of the file body: the manifest still parses, the sha256 does not match.
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let pos = bytes
        .windows(7)
        .rposition(|w| w == b"rancher")
        .expect("the body");
    bytes[pos] = b'R';
    std::fs::write(&corrupt, bytes).unwrap();
    let just = write_at(d, "rancher", NOV_2026 - 90 * DAY);
    let removed = backup::prune(d, "rancher", 1, &just);
    assert!(good.exists(), "the newest archive that verifies is kept");
    assert!(just.exists());
    assert!(removed.contains(&older), "{removed:?}");
}

// ------------------------------------------------------------------ 2. no write through a link

/// "`dir.rs` uses `fs::write`: a link there pointing at `../db/state.db` truncates the K3s
/// datastore (reproduced with a victim file: truncated to 0 bytes)."
#[test]
fn the_regenerate_trigger_is_never_written_through_a_link() {
    let vol = Volume::expired();
    let victim = std::fs::read(vol.state_db()).unwrap();
    let trigger = vol.tls().join("dynamic-cert-regenerate");
    std::os::unix::fs::symlink("../db/state.db", &trigger).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(std::fs::read(vol.state_db()).unwrap(), victim);
    let m = std::fs::symlink_metadata(&trigger).unwrap();
    assert!(
        m.file_type().is_file(),
        "the link is replaced by the trigger"
    );
    assert_eq!(m.len(), 0);
}

/// A FIFO where the trigger goes: writing it would block for ever (no reader).
#[test]
fn a_fifo_where_the_trigger_goes_is_replaced_not_opened() {
    let vol = Volume::expired();
    let trigger = vol.tls().join("dynamic-cert-regenerate");
    let st = Command::new("mkfifo").arg(&trigger).status().unwrap();
    assert!(st.success());
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert!(std::fs::symlink_metadata(&trigger)
        .unwrap()
        .file_type()
        .is_file());
}

/// A hard link where the trigger goes is a regular file: it is left as it is (never opened
/// for writing), so the datastore it shares its inode with keeps its bytes.
#[test]
fn a_hard_link_where_the_trigger_goes_is_not_truncated() {
    let vol = Volume::expired();
    let victim = std::fs::read(vol.state_db()).unwrap();
    std::fs::hard_link(vol.state_db(), vol.tls().join("dynamic-cert-regenerate")).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(std::fs::read(vol.state_db()).unwrap(), victim);
}

/// The wipe deletes only regular files, never through a link: a leaf name that is a link to a
/// victim, and an `etcd` directory that is a link elsewhere, leave their victims alone.
#[test]
fn the_wipe_never_deletes_through_a_link() {
    let vol = Volume::expired();
    let outside = tempfile::tempdir().unwrap();
    // An expired leaf outside the tree, linked in under a name the wipe deletes.
    std::fs::rename(
        vol.tls().join("client-admin.crt"),
        outside.path().join("client-admin.crt"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("client-admin.crt"),
        vol.tls().join("client-admin.crt"),
    )
    .unwrap();
    std::fs::rename(vol.tls().join("etcd"), outside.path().join("etcd")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("etcd"), vol.tls().join("etcd")).unwrap();
    let before: Vec<_> = ["client-admin.crt", "etcd/client.crt", "etcd/server-ca.crt"]
        .iter()
        .map(|p| std::fs::read(outside.path().join(p)).unwrap())
        .collect();
    let backups = tempfile::tempdir().unwrap();
    let (code, v, err) = repair_dir(&vol.tls(), backups.path());
    assert_eq!(code, 0, "{v}\n{err}");
    let after: Vec<_> = ["client-admin.crt", "etcd/client.crt", "etcd/server-ca.crt"]
        .iter()
        .map(|p| std::fs::read(outside.path().join(p)).unwrap())
        .collect();
    assert_eq!(before, after);
}

// ------------------------------------------------------------------ 6. no silent pass, first boot

/// "On a brand-new volume, where `/var/lib/rancher/k3s` does not exist yet, it exits 3, so with
/// `compose/init-container.yml` Rancher never starts on a fresh install."
#[test]
fn first_boot_with_no_k3s_directory_is_healthy() {
    let root = tempfile::tempdir().unwrap();
    let tls = root.path().join("k3s/server/tls");
    let backups = root.path().join("backups");
    let (code, v, err) = repair_dir(&tls, &backups);
    assert_eq!(code, 0, "{v}\n{err}");
    assert_eq!(v["result"], "healthy");
    assert!(!root.path().join("k3s").exists(), "nothing is created");
}

/// "`repair --dir` on a missing path whose parent exists says healthy, exit 0 (a typo
/// disables the init container)."
#[test]
fn a_missing_tls_path_that_is_not_a_first_boot_exits_3_like_check() {
    let root = tempfile::tempdir().unwrap();
    let backups = root.path().join("backups");
    // K3s has run here: k3s/server exists, its tls directory must too.
    std::fs::create_dir_all(root.path().join("k3s/server/db")).unwrap();
    let tls = root.path().join("k3s/server/tls");
    // A typo whose parent exists, and a data root that is not mounted at all.
    let typo = root.path().join("k3s/server/tsl");
    let unmounted = root.path().join("not-mounted/k3s/server/tls");
    for p in [&tls, &typo, &unmounted] {
        let (code, v, err) = repair_dir(p, &backups);
        assert_eq!(code, 3, "{}: {v}\n{err}", p.display());
        let c = run_bin(&["check", "--dir", p.to_str().unwrap()]);
        assert_eq!(c.status.code(), Some(3), "check agrees on {}", p.display());
    }
}

/// "`check` of an empty TLS directory says OK, exit 0, zero certificates."
#[test]
fn a_tls_directory_without_certificates_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    for setup in 0..2 {
        if setup == 1 {
            // Keys only: still no certificate to judge.
            std::fs::write(dir.path().join("service.key"), rsa_key_pem()).unwrap();
        }
        let o = run_bin(&["check", "--dir", dir.path().to_str().unwrap(), "-o", "json"]);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(o.status.code(), Some(1), "{v}");
        assert_eq!(v["status"], "warning");
        let reasons: Vec<&str> = v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["no_certificates"], "{v}");
    }
}

// ------------------------------------------------------------------ 3. bounded memory (directory)

/// Run the binary and return its output with its own peak RSS (`ru_maxrss` from `wait4`), KiB.
#[allow(clippy::zombie_processes)] // reaped by `wait4`, which also gives its rusage
pub fn run_bin_peak_rss(args: &[&str]) -> (Output, u64) {
    use std::io::Read;
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
    // SAFETY: an all-zero rusage is a valid value; wait4 writes it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: `pid` is our child, not yet reaped (we never call `child.wait`).
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

/// Peak RSS allowed in these debug-build tests. The release figures (goal ≤ 32 MiB) are
/// measured by `bench/run.sh`; before the fix the hard-link bomb took 417 MB.
const TEST_RSS_LIMIT_KIB: u64 = 64 * 1024;

fn problem_reasons(v: &Value) -> Vec<(String, String, String)> {
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

/// "Hard links clone the body: 1 file plus 400 links (1.1 MB on disk) took 417 MB RSS."
#[test]
fn a_hard_link_bomb_is_reported_not_read_400_times() {
    let dir = tempfile::tempdir().unwrap();
    write_k3s_tree(dir.path(), &TreeSpec::days_left(now(), 365));
    std::fs::write(dir.path().join("bomb.crt"), vec![b'A'; 1024 * 1024 - 1]).unwrap();
    for i in 0..400 {
        std::fs::hard_link(
            dir.path().join("bomb.crt"),
            dir.path().join(format!("link-{i:03}.crt")),
        )
        .unwrap();
    }
    let (o, rss) =
        run_bin_peak_rss(&["check", "--dir", dir.path().to_str().unwrap(), "-o", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let problems = problem_reasons(&v);
    let links: Vec<_> = problems.iter().filter(|p| p.1 == "hard_link").collect();
    assert_eq!(links.len(), 400, "{:?}", &problems[..problems.len().min(3)]);
    assert!(
        links.iter().all(|p| p.2 == "hard link to bomb.crt"),
        "{links:?}"
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(rss < TEST_RSS_LIMIT_KIB, "peak RSS {rss} KiB");
}

/// "There is no cap on total bytes or entries."
#[test]
fn entries_past_the_cap_are_not_read_and_the_report_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cert = pem_of(&v1_cert_der("many", now() - DAY, now() + 365 * DAY));
    for i in 0..10_050 {
        std::fs::write(dir.path().join(format!("c{i:05}.crt")), &cert).unwrap();
    }
    let (o, rss) =
        run_bin_peak_rss(&["check", "--dir", dir.path().to_str().unwrap(), "-o", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let problems = problem_reasons(&v);
    assert_eq!(
        problems.len(),
        1,
        "{:?}",
        &problems[..problems.len().min(3)]
    );
    assert_eq!(
        problems[0].0, "c10000.crt",
        "the first entry past the cap (lexical order)"
    );
    assert_eq!(problems[0].1, "too_many_entries");
    assert_eq!(v["certificates"].as_array().unwrap().len(), 10_000);
    assert_eq!(o.status.code(), Some(1));
    assert!(rss < TEST_RSS_LIMIT_KIB, "peak RSS {rss} KiB");
}

#[test]
fn bytes_past_the_tree_budget_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        // Distinct 1 MiB - 1 files (not hard links): 20 MiB in all, over the 16 MiB budget.
        let mut body = vec![b'A'; 1024 * 1024 - 1];
        body[0] = b'a' + i as u8;
        std::fs::write(dir.path().join(format!("big-{i:02}.crt")), body).unwrap();
    }
    let (o, rss) =
        run_bin_peak_rss(&["check", "--dir", dir.path().to_str().unwrap(), "-o", "json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let problems = problem_reasons(&v);
    let over: Vec<&String> = problems
        .iter()
        .filter(|p| p.1 == "tree_too_large")
        .map(|p| &p.0)
        .collect();
    assert_eq!(
        over.len(),
        4,
        "16 read, 4 over the budget: {:?}",
        &problems[..problems.len().min(5)]
    );
    assert_eq!(over[0], "big-16.crt");
    assert!(rss < TEST_RSS_LIMIT_KIB, "peak RSS {rss} KiB");
}
