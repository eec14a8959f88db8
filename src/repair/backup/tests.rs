//! Tests of `repair::backup::mod`.

use super::*;
use crate::source::TreeEntry;

/// Before: the first header of an archive planted in the backup directory decided what
/// retention read into memory — a GNU long name or PAX header claiming 64 MiB (a sparse
/// file, 1 KiB on disk) was read whole, for every such archive (the defect the fuzz target
/// `archive` found in the tree reader, fuzz/RESULTS.md).
#[test]
fn a_planted_archive_header_decides_no_allocation() {
    let d = tempfile::tempdir().unwrap();
    for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
        let p = d.path().join("rancher-20261124T172347Z.tar");
        // Without the `tls/` directory entry: the claim is the archive's first header.
        let start = crate::source::archive::hostile_start(kind, 64 << 20);
        fs::write(&p, &start[512..]).unwrap();
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len((64 << 20) + 4096).unwrap();
        let err = read_manifest(&p).unwrap_err();
        assert!(err.contains("metadata"), "{kind:?}: {err}");
    }
}

fn tree() -> Tree {
    Tree {
        entries: vec![
            TreeEntry {
                path: "a.crt".into(),
                body: EntryBody::File(b"A".to_vec()),
            },
            TreeEntry {
                path: "etcd/b.key".into(),
                body: EntryBody::File(b"B".to_vec()),
            },
            TreeEntry {
                path: "big.crt".into(),
                body: EntryBody::TooLarge(2 << 20),
            },
        ],
    }
}

#[test]
fn write_verify_read_prune() {
    let dir = tempfile::tempdir().unwrap();
    let extras = Extras {
        kubeconfig: Some(b"apiVersion: v1".to_vec()),
        serving_secret: None,
    };
    let mut paths = vec![];
    for i in 0..4 {
        paths.push(
            write_verified(
                dir.path(),
                "rancher",
                "/tls",
                &tree(),
                &extras,
                1_700_000_000 + i,
            )
            .unwrap(),
        );
    }
    let (m, files) = read_archive(&paths[3]).unwrap();
    assert_eq!(files["tls/a.crt"], b"A");
    assert_eq!(files["tls/etcd/b.key"], b"B");
    assert_eq!(files["k3s.yaml"], b"apiVersion: v1");
    assert_eq!(m.skipped.len(), 1);
    assert_eq!(prune(dir.path(), "rancher", 2, &paths[3]).len(), 2);
    assert!(!paths[0].exists() && !paths[1].exists() && paths[2].exists() && paths[3].exists());
}

#[test]
fn corrupted_archive_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_verified(dir.path(), "r", "/tls", &tree(), &Extras::default(), 1).unwrap();
    let (m, _) = read_archive(&p).unwrap();
    let mut bytes = fs::read(&p).unwrap();
    let pos = bytes.windows(1).rposition(|w| w == b"A").unwrap();
    bytes[pos] = b'Z';
    fs::write(&p, bytes).unwrap();
    assert!(verify(&p, &m).is_err());
}

#[test]
fn unwritable_directory_is_an_error() {
    assert!(probe_writable(Path::new("/proc/rancher-cert-guard")).is_err());
    let err = write_verified(
        Path::new("/proc/x"),
        "r",
        "/tls",
        &tree(),
        &Extras::default(),
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
}

#[test]
fn archive_names_parse_exactly() {
    let stamp = "20261124T172347Z";
    assert!(is_archive_of(&format!("rancher-{stamp}.tar"), "rancher"));
    assert!(is_archive_of(&format!("rancher-{stamp}-12.tar"), "rancher"));
    assert!(is_archive_of(
        &format!("rancher-2-{stamp}.tar"),
        "rancher-2"
    ));
    assert!(is_archive_of(
        &format!("p_rancher_1-{stamp}.tar"),
        "p_rancher_1"
    ));
    for (name, target) in [
        (format!("rancher-2-{stamp}.tar"), "rancher"),
        ("rancher-2019-pre-upgrade.tar".to_string(), "rancher"),
        (format!("rancher-{stamp}.tar.tmp"), "rancher"),
        (format!("rancher-{stamp}-.tar"), "rancher"),
        (format!("rancher-{stamp}-1a.tar"), "rancher"),
        ("rancher-20261124T17234Z.tar".to_string(), "rancher"),
        (format!("rancher-{stamp}-20261124T180000Z.tar"), "rancher"),
        (format!("rancher-{stamp}.tar"), "rancher-2"),
        (format!("xrancher-{stamp}.tar"), "rancher"),
    ] {
        assert!(!is_archive_of(&name, target), "{name} is not {target}'s");
    }
    // The name a write produces parses as its own target's, weird names included.
    for target in ["rancher", "dir-tls", "a/b", "a_b", ".hidden", "ü%"] {
        let name = archive_name(target, 1_795_000_000, 0);
        assert!(is_archive_of(&name, target), "{name}");
        assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
    }
    assert_ne!(escape_target("a/b"), escape_target("a_b"));
    assert_eq!(escape_target("rancher-server_1.x"), "rancher-server_1.x");
    assert!(is_temporary_of(
        &format!(".rancher-{stamp}.tar.tmp"),
        "rancher"
    ));
    assert!(!is_temporary_of(
        &format!(".rancher-2-{stamp}.tar.tmp"),
        "rancher"
    ));
}

#[test]
fn private_writes_never_follow_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let victim = d.join("victim");
    fs::write(&victim, b"precious").unwrap();
    // A link planted as the temporary, and one as the destination.
    std::os::unix::fs::symlink(&victim, d.join(".state.json.tmp")).unwrap();
    let p = write_private_atomic(d, "state.json", b"{}").unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    std::os::unix::fs::symlink(&victim, d.join("journal.json")).unwrap();
    let j = write_private_atomic(d, "journal.json", b"[]").unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    for f in [&p, &j] {
        let m = fs::symlink_metadata(f).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.mode() & 0o777, 0o600);
    }
    assert_eq!(read_private(&j, 10).unwrap(), b"[]");
    assert!(!d.join(".state.json.tmp").exists());
    for bad in ["", ".", "..", "a/b"] {
        assert!(write_private_atomic(d, bad, b"x").is_err(), "{bad:?}");
    }
}

#[test]
fn private_reads_refuse_links_fifos_and_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write_private_atomic(d, "f", b"0123456789").unwrap();
    assert_eq!(read_private(&f, 10).unwrap(), b"0123456789");
    assert!(read_private(&f, 9).is_err());
    std::os::unix::fs::symlink(&f, d.join("link")).unwrap();
    let e = read_private(&d.join("link"), 100).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let fifo = d.join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert!(read_private(&fifo, 100).is_err(), "refused, not waited on");
    assert!(read_archive(&d.join("link")).is_err());
}

#[test]
fn private_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let nested = d.join("a/b/c");
    ensure_private_dir(&nested).unwrap();
    for p in [d.join("a"), d.join("a/b"), nested.clone()] {
        assert_eq!(
            fs::metadata(&p).unwrap().mode() & 0o777,
            0o700,
            "{}",
            p.display()
        );
    }
    std::os::unix::fs::symlink(&nested, d.join("link")).unwrap();
    assert!(ensure_private_dir(&d.join("link")).is_err());
    fs::write(d.join("file"), b"").unwrap();
    assert!(ensure_private_dir(&d.join("file")).is_err());
    assert!(probe_writable(&d.join("link")).is_err());
}
