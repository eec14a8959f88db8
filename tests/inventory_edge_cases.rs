//! The inventory engine on hostile and unusual input: every problem reason, DER, CRLF, text
//! around PEM, bundles, GeneralizedTime dates, RSA/ECDSA/Ed25519 keys, X.509 v1.

mod common;

use common::fixtures::*;
use rancher_cert_guard::inventory::{
    inventory, CertKind, FileRole, ProblemReason, RenewBefore, Status,
};
use rancher_cert_guard::source::{dir::read_dir_tree, EntryBody, Tree, TreeEntry};

const NOW: i64 = 1_800_000_000; // 2027-01-15

fn tree_of(files: &[(&str, Vec<u8>)]) -> Tree {
    let mut t = Tree {
        entries: files
            .iter()
            .map(|(p, b)| TreeEntry {
                path: p.to_string(),
                body: EntryBody::File(b.clone()),
            })
            .collect(),
    };
    t.sort();
    t
}

fn one(bytes: Vec<u8>, name: &str) -> rancher_cert_guard::inventory::Inventory {
    inventory(&tree_of(&[(name, bytes)]), NOW, RenewBefore::default())
}

/// The reason of the one file of a tree without certificates (the tree-level
/// `no_certificates` problem that comes with it is checked apart).
fn reason(bytes: &[u8], name: &str) -> ProblemReason {
    let inv = one(bytes.to_vec(), name);
    assert_eq!(inv.problems.len(), 2, "{inv:?}");
    assert!(inv.certificates.is_empty());
    assert_eq!(inv.problems[1].reason, ProblemReason::NoCertificates);
    inv.problems[0].reason
}

#[test]
fn every_problem_reason() {
    assert_eq!(reason(b"", "a.crt"), ProblemReason::Empty);
    assert_eq!(reason(b" \r\n\n", "a.crt"), ProblemReason::Empty);
    assert_eq!(reason(b"hello", "a.crt"), ProblemReason::BadPem);
    assert_eq!(
        reason(b"-----BEGIN CERTIFICATE-----\nMIIB\n", "a.crt"),
        ProblemReason::BadPem,
        "no END line"
    );
    assert_eq!(
        reason(
            b"-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n",
            "a.crt"
        ),
        ProblemReason::BadPem
    );
    assert_eq!(
        reason(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "a.crt"
        ),
        ProblemReason::DecodeFailed
    );
    assert_eq!(
        reason(&[0x30, 0x03, 0x02, 0x01], "a.der"),
        ProblemReason::DecodeFailed
    );
    let key_in_crt = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(
        reason(key_in_crt.as_bytes(), "a.crt"),
        ProblemReason::NoCertificateFound
    );
    let inv = one(key_in_crt.clone().into_bytes(), "a.crt");
    assert!(
        !inv.problems[0].detail.contains(&key_in_crt[40..80]),
        "detail leaks key bytes"
    );
    assert_eq!(
        reason(b"{\"data\":{}}", "dynamic-cert.json"),
        ProblemReason::NoCertificateFound
    );
    assert_eq!(
        reason(b"{not json", "dynamic-cert.json"),
        ProblemReason::DecodeFailed
    );
    assert_eq!(reason(b"", "dynamic-cert.json"), ProblemReason::Empty);
    assert_eq!(
        reason(b"{\"data\":{\"tls.crt\":\"%%%\"}}", "dynamic-cert.json"),
        ProblemReason::BadPem
    );

    // Reasons that come from the source.
    let mut t = Tree::default();
    for (p, body) in [
        ("big.crt", EntryBody::TooLarge(5 << 20)),
        (
            "link.crt",
            EntryBody::NotRegular("symbolic link to x".into()),
        ),
        (
            "locked.crt",
            EntryBody::ReadFailed("Permission denied (os error 13)".into()),
        ),
        ("token-ca.crt", EntryBody::HardLink("server-ca.crt".into())),
        ("over.crt", EntryBody::TreeTooLarge(900_000)),
        ("zz.crt", EntryBody::TooManyEntries(10_000)),
    ] {
        t.entries.push(TreeEntry {
            path: p.into(),
            body,
        });
    }
    let inv = inventory(&t, NOW, RenewBefore::default());
    let reasons: Vec<_> = inv.problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        vec![
            ProblemReason::TooLarge,
            ProblemReason::NotRegularFile,
            ProblemReason::ReadFailed,
            ProblemReason::HardLink,
            ProblemReason::TreeTooLarge,
            ProblemReason::TooManyEntries,
            ProblemReason::NoCertificates,
        ]
    );
    assert_eq!(inv.problems[3].detail, "hard link to server-ca.crt");
    assert_eq!(inv.problems[6].path, ".");
    assert_eq!(inv.overall(), Status::Warning);
    // With a certificate in the tree, no `no_certificates`.
    let c = ca("k3s-server-ca@1", NOW - DAY);
    t.entries.push(TreeEntry {
        path: "server-ca.crt".into(),
        body: EntryBody::File(c.pem.into_bytes()),
    });
    let inv = inventory(&t, NOW, RenewBefore::default());
    assert!(inv
        .problems
        .iter()
        .all(|p| p.reason != ProblemReason::NoCertificates));
}

#[test]
fn directory_source_reports_symlinks_large_files_and_skips_temporary_certs() {
    let dir = tempfile::tempdir().unwrap();
    let c = ca("k3s-server-ca@1", NOW - DAY);
    std::fs::write(dir.path().join("server-ca.crt"), &c.pem).unwrap();
    std::os::unix::fs::symlink("server-ca.crt", dir.path().join("link.crt")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("escape.crt")).unwrap();
    std::fs::write(dir.path().join("huge.crt"), vec![b'A'; 1024 * 1024 + 1]).unwrap();
    std::fs::create_dir_all(dir.path().join("temporary-certs")).unwrap();
    std::fs::write(dir.path().join("temporary-certs/x.crt"), b"junk").unwrap();
    std::fs::write(dir.path().join("dynamic-cert-regenerate"), b"").unwrap();
    let tree = read_dir_tree(dir.path()).unwrap();
    let inv = inventory(&tree, NOW, RenewBefore::default());
    let mut problems: Vec<(String, ProblemReason)> = inv
        .problems
        .iter()
        .map(|p| (p.path.clone(), p.reason))
        .collect();
    problems.sort();
    assert_eq!(
        problems,
        vec![
            ("escape.crt".into(), ProblemReason::NotRegularFile),
            ("huge.crt".into(), ProblemReason::TooLarge),
            ("link.crt".into(), ProblemReason::NotRegularFile),
        ]
    );
    assert_eq!(inv.certificates.len(), 1);
    assert_eq!(
        inv.role_of("dynamic-cert-regenerate"),
        Some(FileRole::Other)
    );
    assert!(read_dir_tree(&dir.path().join("missing")).is_err());
}

#[test]
fn der_crlf_text_around_and_bundles() {
    let c = ca("k3s-client-ca@1700000000", NOW - 10 * DAY);
    let l = leaf(
        &c,
        "system:admin",
        Some("system:masters"),
        c.not_before,
        NOW + 100 * DAY,
        false,
    );
    let bundle = format!(
        "subject=CN = system:admin\nissuer=whatever\n{}\nsome trailing text\n{}",
        l.pem, c.pem
    );
    let crlf = bundle.replace('\n', "\r\n");
    let indented: String = bundle.lines().map(|x| format!("   {x}\n")).collect();
    let inv = inventory(
        &tree_of(&[
            ("der.crt", l.der.clone()),
            ("crlf.crt", crlf.into_bytes()),
            ("text.crt", bundle.into_bytes()),
            ("indented.pem", indented.into_bytes()),
        ]),
        NOW,
        RenewBefore::default(),
    );
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    assert_eq!(inv.certificates.len(), 7);
    for f in ["crlf.crt", "text.crt", "indented.pem"] {
        let blocks: Vec<_> = inv.certificates.iter().filter(|x| x.path == f).collect();
        assert_eq!(blocks.len(), 2, "{f}");
        assert_eq!(
            (blocks[0].kind, blocks[1].kind),
            (CertKind::Leaf, CertKind::Chain)
        );
        assert_eq!(blocks[0].not_after, NOW + 100 * DAY);
        assert_eq!(blocks[1].not_after, c.not_after);
    }
    assert_eq!(
        inv.certificates
            .iter()
            .find(|x| x.path == "der.crt")
            .unwrap()
            .kind,
        CertKind::Leaf
    );
}

#[test]
fn generalized_time_after_2049_and_key_algorithms() {
    // 2051 needs GeneralizedTime.
    let c = ca("k3s-server-ca@1", 2_500_000_000 - 3650 * DAY);
    assert_eq!(c.not_after, 2_500_000_000);
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ed_leaf = leaf_with_key(&c, "ed", None, NOW - DAY, 2_600_000_000, true, ed);
    let rsa_leaf = leaf_with_key(
        &c,
        "rsa",
        None,
        NOW - DAY,
        NOW + 400 * DAY,
        false,
        rsa_keypair(),
    );
    let inv = inventory(
        &tree_of(&[
            ("ca.crt", c.pem.clone().into_bytes()),
            ("ed.crt", ed_leaf.pem.into_bytes()),
            ("rsa.crt", rsa_leaf.pem.into_bytes()),
        ]),
        NOW,
        RenewBefore::default(),
    );
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let get = |p: &str| inv.certificates.iter().find(|x| x.path == p).unwrap();
    assert_eq!(get("ca.crt").not_after, 2_500_000_000);
    assert_eq!(get("ed.crt").not_after, 2_600_000_000);
    assert_eq!(get("rsa.crt").not_after, NOW + 400 * DAY);
    assert_eq!(get("rsa.crt").status, Status::Ok);
    let json = serde_json::to_value(get("ed.crt")).unwrap();
    assert_eq!(json["not_after"], "2052-05-22T14:13:20Z");
}

#[test]
fn x509_v1_without_extensions_is_a_leaf() {
    let der = v1_cert_der("python-api", NOW - 400 * DAY, NOW - DAY);
    let inv = one(pem_of(&der).into_bytes(), "python-api.crt");
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let c = &inv.certificates[0];
    assert_eq!(c.kind, CertKind::Leaf);
    assert!(!c.is_ca);
    assert_eq!(c.status, Status::Expired);
    assert_eq!(c.subject, "CN=python-api");
    assert_eq!(c.serial, "123");
}

#[test]
fn key_files_are_named_never_read() {
    // A .key file holding garbage is not a problem: its bytes are never parsed.
    let inv = one(b"\x00\x01 garbage".to_vec(), "service.key");
    let reasons: Vec<_> = inv.problems.iter().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        vec![ProblemReason::NoCertificates],
        "only the tree's"
    );
    assert_eq!(inv.keys, vec!["service.key".to_string()]);
    let inv = one(rsa_key_pem().into_bytes(), "service.key");
    let json = serde_json::to_string(&inv).unwrap();
    assert!(!json.contains("PRIVATE"));
}

/// Tests against the real K3s/RKE2 certificates beside the project (skipped when absent).
#[test]
fn real_k3s_certificates_from_the_shared_corpus() {
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/k3s-real-certs");
    if !corpus.exists() {
        eprintln!("SKIPPED: {} absent", corpus.display());
        return;
    }
    let tree = read_dir_tree(&corpus).unwrap();
    let inv = inventory(&tree, NOW, RenewBefore::default());
    let ca = inv
        .certificates
        .iter()
        .find(|c| c.path == "bl000m__k3d_keycloak/server-ca.crt")
        .unwrap();
    assert_eq!(ca.kind, CertKind::Ca);
    assert_eq!(ca.subject, "CN=k3s-server-ca@1718015090");
    let apiserver: Vec<_> = inv
        .certificates
        .iter()
        .filter(|c| c.path == "bl000m__k3d_keycloak/client-kube-apiserver.crt")
        .collect();
    assert_eq!(apiserver.len(), 2);
    assert_eq!(apiserver[0].subject, "CN=system:apiserver,O=system:masters");
    assert_eq!(apiserver[0].status, Status::Expired);
    assert_eq!(apiserver[1].kind, CertKind::Chain);
}
