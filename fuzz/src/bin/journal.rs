//! The journal parser: `serde_json::from_slice::<Journal>`, `Journal::validate` and
//! `journal::may_delete`. Whoever can write the backup directory writes the journal; nothing it
//! says may make the tool delete a protected file or anything outside the TLS directory.
//!
//! Input: the journal's bytes. The same bytes, split at newlines, are also asked of
//! `may_delete` one path at a time.

use std::collections::HashMap;
use std::path::{Component, Path};

use rancher_cert_guard::docker::ContainerInfo;
use rancher_cert_guard::repair::journal::{may_delete, Journal, Refusal};
use rancher_cert_guard::repair::plan::is_protected;

/// Files of a K3s server's `tls/` that no repair may delete, by their exact names
/// (k3s-facts §1.1, §1.2: every CA certificate and key, the service-account keys and the
/// kubelet signing keys), independent of how `plan::is_protected` recognises them.
const K3S_NEVER_DELETED: &[&str] = &[
    "client-ca.crt",
    "client-ca.key",
    "client-ca.nochain.crt",
    "server-ca.crt",
    "server-ca.key",
    "server-ca.nochain.crt",
    "request-header-ca.crt",
    "request-header-ca.key",
    "etcd/peer-ca.crt",
    "etcd/peer-ca.key",
    "etcd/server-ca.crt",
    "etcd/server-ca.key",
    "service.key",
    "service.current.key",
    "client-kubelet.key",
    "serving-kubelet.key",
];

/// What a path the tool deletes (relative to the TLS directory) must be, said directly: a
/// plain relative path that stays inside the directory, naming a certificate, a key or the
/// serving cache, and none of the files above.
fn deletable(path: &str) -> bool {
    let inside = !path.is_empty()
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    let kind =
        path.ends_with(".crt") || path.ends_with(".key") || path.ends_with("dynamic-cert.json");
    inside && kind && !K3S_NEVER_DELETED.contains(&path) && !is_protected(path)
}

fn info_for(j: &Journal) -> ContainerInfo {
    ContainerInfo {
        id: j.container_id.clone(),
        name: j.container_name.clone(),
        image: "rancher/rancher:v2.5.7".into(),
        image_id: j.image_id.clone(),
        status: "exited".into(),
        running: false,
        restarting: false,
        started_at: None,
        restart_count: 0,
        labels: HashMap::new(),
        auto_remove: false,
        env: vec![],
    }
}

fn check(data: &[u8]) {
    if let Ok(j) = serde_json::from_slice::<Journal>(data) {
        // The container and TLS path the journal names, so validation reaches its paths.
        match j.validate(&info_for(&j), &j.tls_path) {
            Ok(()) => {
                for p in &j.delete {
                    assert!(deletable(p), "a validated journal deletes {p:?}");
                }
            }
            Err(Refusal::Forbidden(p)) => assert!(j.delete.contains(&p)),
            Err(_) => {}
        }
        // Another container or TLS path is always refused.
        let mut other = info_for(&j);
        other.id.push('x');
        assert!(j.validate(&other, &j.tls_path).is_err());
        // Serialising and reading back gives the same journal (what `save`/`load` rely on).
        let again: Journal = serde_json::from_slice(&serde_json::to_vec(&j).unwrap()).unwrap();
        assert_eq!(again, j);
    }
    for line in String::from_utf8_lossy(data).split('\n') {
        if may_delete(line) {
            assert!(deletable(line), "may_delete({line:?})");
        }
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}
