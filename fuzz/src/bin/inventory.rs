//! One file's inventory: `inventory::parse_file` and `inventory::inventory` on a one-entry
//! tree — PEM bundles, DER, `dynamic-cert.json`, keys — whatever the bytes.
//!
//! Input: 1 byte file name (from [`NAMES`]), 5 bytes `now`, 2 bytes `--renew-before` days,
//! then the file's bytes.

use rancher_cert_guard::inventory::{
    self, parse_file, status_at, CertKind, FileRole, ProblemReason, RenewBefore,
};
use rancher_cert_guard::source::{EntryBody, Tree, TreeEntry};
use rancher_cert_guard_fuzz::Input;

/// The names that change how a file is judged: a leaf, a CA, the serving cache, an `etcd/`
/// leaf, a key (never parsed), the regenerate trigger (never parsed), anything else.
const NAMES: [&str; 8] = [
    "client-admin.crt",
    "server-ca.crt",
    "dynamic-cert.json",
    "etcd/peer-server-client.crt",
    "client-admin.key",
    "dynamic-cert-regenerate",
    "serving-kube-apiserver.crt",
    "etcd/dynamic-cert.json",
];

fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let name = NAMES[usize::from(input.byte()) % NAMES.len()];
    let now = input.time();
    let renew = RenewBefore::days(u32::from(input.u16()));
    let body = input.rest();

    let serving = name.ends_with(inventory::SERVING_FILE);
    let direct = parse_file(body, serving);
    // The other format must not panic either.
    let _ = parse_file(body, !serving);

    let tree = Tree {
        entries: vec![TreeEntry {
            path: name.to_string(),
            body: EntryBody::File(body.to_vec()),
        }],
    };
    let inv = inventory::inventory(&tree, now, renew);

    if name.ends_with(".key") {
        // A key is named, never read: no certificate, no problem of its own.
        assert_eq!(inv.keys, vec![name.to_string()]);
        assert!(inv.certificates.is_empty());
        assert!(inv
            .problems
            .iter()
            .all(|p| p.reason == ProblemReason::NoCertificates));
    } else if name == "dynamic-cert-regenerate" {
        assert_eq!(inv.role_of(name), Some(FileRole::Other));
        assert!(inv.certificates.is_empty());
    } else {
        match &direct {
            Ok(content) => {
                assert!(!content.certs.is_empty(), "a parsed file has a certificate");
                assert_eq!(inv.certificates.len(), content.certs.len());
                assert!(inv.problems.is_empty());
            }
            Err(f) => {
                assert!(inv.certificates.is_empty());
                assert_eq!(inv.problems[0].reason, f.reason);
                assert_eq!(inv.role_of(name), Some(FileRole::Problem));
            }
        }
    }

    for (i, c) in inv.certificates.iter().enumerate() {
        assert_eq!(c.path, name);
        assert_eq!(c.index, i);
        assert_eq!(c.kind == CertKind::Chain, i > 0);
        assert_eq!(c.seconds_left, c.not_after - now);
        assert_eq!(c.status, status_at(c.not_before, c.not_after, now, renew));
        assert_eq!(c.sha256.len(), 64);
        assert!(c.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // A problem is never a silent OK.
    if !inv.problems.is_empty() {
        assert_ne!(inv.overall(), inventory::Status::Ok);
    }
    // The JSON report of it can always be written.
    serde_json::to_vec(&inv).expect("inventory serialises");
}

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}
