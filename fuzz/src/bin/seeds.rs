//! Writes the seed corpora under `fuzz/seeds/<target>/`: `cargo run --features seeds --bin
//! seeds` (from `fuzz/`). The certificates are made here with rcgen in the real K3s layout
//! (k3s-facts §1–2: ECDSA P-256 CAs `k3s-<x>-ca@<unix>` of 3650 days with serial 0, leaves of
//! 365 days written as leaf + CA, both shapes of `dynamic-cert.json`); the log lines are those
//! of `tests/data/log_corpus.jsonl`, each quoted there with its public source.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

/// 2025-11-26T03:04:05Z: `now` of the inventory seeds, `since` of the log seeds.
const NOW: i64 = 1_764_126_245;
const DAY: i64 = 86_400;

fn ts(t: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t).unwrap()
}

/// A time as [`rancher_cert_guard_fuzz::Input::time`] reads it.
fn time_bytes(t: i64) -> [u8; 5] {
    let b = t.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4]]
}

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(cn: &str, not_before: i64) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.serial_number = Some(SerialNumber::from_slice(&[0]));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    p.not_before = ts(not_before);
    p.not_after = ts(not_before + 3650 * DAY);
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        params: p,
        key,
    }
}

/// (PEM, DER, key PEM) of a leaf signed by `ca`.
fn leaf(
    ca: &Ca,
    cn: &str,
    o: Option<&str>,
    not_before: i64,
    server: bool,
) -> (String, Vec<u8>, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = o {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(&[
        0x1d, 0x4f, 0x33, 0x12, 0x08, 0x61, 0x2a, 0x5c,
    ]));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    if server {
        p.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::DnsName("kubernetes".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ];
    }
    p.use_authority_key_identifier_extension = true;
    p.not_before = ts(not_before);
    p.not_after = ts(not_before + 365 * DAY);
    let cert = p
        .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
        .unwrap();
    (cert.pem(), cert.der().to_vec(), key.serialize_pem())
}

struct Out {
    dir: PathBuf,
}

impl Out {
    fn new(root: &Path, target: &str) -> Self {
        let dir = root.join(target);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }
    fn put(&self, name: &str, bytes: &[u8]) {
        fs::write(self.dir.join(name), bytes).unwrap();
    }
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn dynamic_cert_json(serving_pem: &str, key_pem: &str, ca_pem: Option<&str>) -> String {
    let v = match ca_pem {
        // dynamiclistener < v0.3.3, written locally: leaf only.
        None => serde_json::json!({
            "metadata": {"creationTimestamp": null, "annotations": {
                "listener.cattle.io/cn-127.0.0.1": "127.0.0.1",
                "listener.cattle.io/cn-localhost": "localhost",
                "listener.cattle.io/hash": "0f3c2a0c"}},
            "data": {"tls.crt": b64(serving_pem.as_bytes()), "tls.key": b64(key_pem.as_bytes())},
            "type": "kubernetes.io/tls"
        }),
        // Synced from the `kube-system/k3s-serving` secret: leaf + CA.
        Some(ca) => serde_json::json!({
            "metadata": {"name": "k3s-serving", "namespace": "kube-system",
                "uid": "2f9b1d3e-0000-4000-8000-000000000000", "resourceVersion": "11246",
                "creationTimestamp": "2021-12-07T19:25:48Z",
                "annotations": {"listener.cattle.io/cn-10.43.0.1": "10.43.0.1",
                    "listener.cattle.io/fingerprint": "SHA1=C828"}},
            "data": {"tls.crt": b64(format!("{serving_pem}{ca}").as_bytes()), "tls.key": b64(key_pem.as_bytes())},
            "type": "kubernetes.io/tls"
        }),
    };
    serde_json::to_string(&v).unwrap() + "\n"
}

fn inventory_seeds(root: &Path) -> Tree {
    let out = Out::new(root, "inventory");
    let created = NOW - 300 * DAY;
    let server_ca = ca(&format!("k3s-server-ca@{created}"), created);
    let client_ca = ca(&format!("k3s-client-ca@{created}"), created);
    let (admin_pem, admin_der, admin_key) = leaf(
        &client_ca,
        "system:admin",
        Some("system:masters"),
        created,
        false,
    );
    let (serving_pem, _, serving_key) = leaf(&server_ca, "k3s", Some("k3s"), created, true);
    let (etcd_pem, _, _) = leaf(&server_ca, "etcd-peer", None, created, true);
    let bundle = format!("{admin_pem}{}", client_ca.pem);

    // Header: file name index (see the target's NAMES), now, --renew-before days.
    let seed = |name: usize, body: &[u8]| {
        let mut v = vec![name as u8];
        v.extend(time_bytes(NOW));
        v.extend(90u16.to_le_bytes());
        v.extend(body);
        v
    };
    out.put("leaf_bundle", &seed(0, bundle.as_bytes()));
    out.put("ca", &seed(1, server_ca.pem.as_bytes()));
    out.put(
        "serving_local",
        &seed(
            2,
            dynamic_cert_json(&serving_pem, &serving_key, None).as_bytes(),
        ),
    );
    out.put(
        "serving_synced",
        &seed(
            2,
            dynamic_cert_json(&serving_pem, &serving_key, Some(&server_ca.pem)).as_bytes(),
        ),
    );
    out.put(
        "etcd_leaf",
        &seed(3, format!("{etcd_pem}{}", server_ca.pem).as_bytes()),
    );
    out.put("key", &seed(4, admin_key.as_bytes()));
    out.put("trigger", &seed(5, b""));
    out.put("der", &seed(6, &admin_der));
    out.put("crlf", &seed(0, bundle.replace('\n', "\r\n").as_bytes()));
    out.put(
        "text_around",
        &seed(
            0,
            format!("subject=CN = system:admin\n{admin_pem}\ntrailing text\n").as_bytes(),
        ),
    );
    out.put(
        "x509_label",
        &seed(
            0,
            admin_pem
                .replace("CERTIFICATE", "X509 CERTIFICATE")
                .as_bytes(),
        ),
    );
    out.put("key_only_pem", &seed(0, admin_key.as_bytes()));
    out.put(
        "bad_base64",
        &seed(
            0,
            b"-----BEGIN CERTIFICATE-----\nMIIB!!!!\n-----END CERTIFICATE-----\n",
        ),
    );
    out.put("unclosed", &seed(0, b"-----BEGIN CERTIFICATE-----\nMIIB\n"));
    out.put("empty", &seed(0, b" \n"));
    out.put("serving_no_data", &seed(2, br#"{"metadata":{},"data":{}}"#));
    Tree {
        server_ca: server_ca.pem,
        admin_pem,
        admin_key,
        serving: dynamic_cert_json(&serving_pem, &serving_key, Some("")),
    }
}

/// Files for the archive seeds.
struct Tree {
    server_ca: String,
    admin_pem: String,
    admin_key: String,
    serving: String,
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(NOW as u64);
    h
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o600);
    b.append_data(&mut h, path, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0, 0o700);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, to: &str) {
    let mut h = header(kind, 0, 0o777);
    b.append_link(&mut h, path, to).unwrap();
}

fn archive_seeds(root: &Path, t: &Tree) {
    let out = Out::new(root, "archive");
    // Control byte: bit 0 the zero tail, bit 1 checksums fixed by the target.
    let put = |name: &str, control: u8, tar: &[u8]| {
        let mut v = vec![control];
        v.extend(tar);
        out.put(name, &v);
    };

    // The K3s layout as Docker's archive API sends it: the directory first.
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "tls/");
    file(&mut b, "tls/client-admin.crt", t.admin_pem.as_bytes());
    file(&mut b, "tls/client-admin.key", t.admin_key.as_bytes());
    file(&mut b, "tls/dynamic-cert.json", t.serving.as_bytes());
    dir(&mut b, "tls/etcd/");
    file(&mut b, "tls/etcd/server-ca.crt", t.server_ca.as_bytes());
    file(&mut b, "tls/server-ca.crt", t.server_ca.as_bytes());
    dir(&mut b, "tls/temporary-certs/");
    file(
        &mut b,
        "tls/temporary-certs/apiserver-loopback-client__.crt",
        t.admin_pem.as_bytes(),
    );
    let k3s = b.into_inner().unwrap();
    put("k3s_tree", 2, &k3s);
    put("k3s_tree_tail", 3, &k3s);
    put("truncated", 2, &k3s[..k3s.len() / 2 + 100]);

    // Links: hard links inside and outside the tree, a symlink, a dangling one.
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "tls/");
    file(&mut b, "tls/server-ca.crt", t.server_ca.as_bytes());
    link(
        &mut b,
        tar::EntryType::Link,
        "tls/copy.crt",
        "tls/server-ca.crt",
    );
    link(&mut b, tar::EntryType::Link, "tls/shadow.crt", "etc/shadow");
    link(
        &mut b,
        tar::EntryType::Symlink,
        "tls/client-ca.crt",
        "../../db/state.db",
    );
    link(
        &mut b,
        tar::EntryType::Symlink,
        "tls/dynamic-cert-regenerate",
        "/var/lib/rancher/k3s/server/db/state.db",
    );
    put("links", 2, &b.into_inner().unwrap());

    // GNU long names ('L') and long link names ('K'): the Builder writes them for a GNU header.
    let long = format!("tls/{}/client-admin.crt", "d".repeat(120));
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "tls/");
    file(&mut b, &long, t.admin_pem.as_bytes());
    link(
        &mut b,
        tar::EntryType::Link,
        &format!("tls/{}.crt", "l".repeat(110)),
        &long,
    );
    let gnu = b.into_inner().unwrap();
    put("gnu_long_names", 2, &gnu);
    put("gnu_long_names_tail", 3, &gnu);

    // PAX records ('x'), as Go's archive/tar writes them for long names, and a global one ('g').
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "tls/");
    b.append_pax_extensions([
        ("path", format!("tls/{}.crt", "p".repeat(150)).as_bytes()),
        (
            "SCHILY.xattr.security.capability",
            b"\x01\x00\x00\x02".as_slice(),
        ),
    ])
    .unwrap();
    file(&mut b, "tls/pax-placeholder.crt", t.admin_pem.as_bytes());
    let mut g = header(tar::EntryType::XGlobalHeader, 0, 0o644);
    let rec = b"30 comment=rancher-cert-guard\n";
    g.set_size(rec.len() as u64);
    b.append_data(&mut g, "pax_global_header", &rec[..])
        .unwrap();
    b.append_pax_extensions([("size", b"12".as_slice())])
        .unwrap();
    file(&mut b, "tls/sized.crt", b"-----BEGIN C");
    put("pax", 2, &b.into_inner().unwrap());

    // Sizes: a file over the per-file cap, one that claims 8 GiB, a device.
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "tls/");
    file(&mut b, "tls/big.crt", &vec![b'A'; 5000]);
    let mut h = header(tar::EntryType::Block, 0, 0o600);
    b.append_data(&mut h, "tls/sda", std::io::empty()).unwrap();
    let mut sizes = b.into_inner().unwrap();
    sizes.truncate(sizes.len() - 1024);
    let mut h = header(tar::EntryType::Regular, 8 << 30, 0o600);
    h.set_path("tls/huge.crt").unwrap();
    h.set_cksum();
    sizes.extend(h.as_bytes());
    put("sizes", 3, &sizes);
}

fn journal_seeds(root: &Path) {
    let out = Out::new(root, "journal");
    let id = "3f2a9c1e5b7d4a60f18e2c9b0d7a6e5f4c3b2a1908f7e6d5c4b3a29180f7e6d5";
    let journal = |delete: &[&str], phase: &str| {
        serde_json::to_string_pretty(&serde_json::json!({
            "version": 2,
            "container_id": id,
            "container_name": "rancher",
            "image_id": "sha256:8f6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a29180f7e6d5c4b3a291800",
            "tls_path": "/var/lib/rancher/k3s/server/tls",
            "phase": phase,
            "backup": "/backups/rancher-20251126T030405Z.tar",
            "delete": delete,
            "run_id": "20251126T030405Z-4242",
            "tool_version": "0.1.0",
            "started_at": "2025-11-26T03:04:05Z",
            "updated_at": "2025-11-26T03:04:09Z"
        }))
        .unwrap()
    };
    out.put(
        "valid",
        journal(
            &[
                "client-admin.crt",
                "client-admin.key",
                "serving-kube-apiserver.crt",
                "etcd/peer-server-client.crt",
                "dynamic-cert.json",
            ],
            "wiping",
        )
        .as_bytes(),
    );
    out.put("verifying", journal(&[], "verifying").as_bytes());
    out.put(
        "hostile",
        journal(
            &[
                "client-ca.key",
                "../db/state.db",
                "/var/lib/rancher/k3s/server/db/state.db",
                "etcd/peer-ca.key",
                "service.key",
                "client-kubelet.key",
                "sub/../server-ca.crt",
            ],
            "wiping",
        )
        .as_bytes(),
    );
    out.put(
        "version_1",
        format!(r#"{{"target":"rancher","container_id":"{id}","tls_path":"/tls","step":"wiping","stopped_by_us":true,"backup":"/b/x.tar","delete":["client-admin.crt"],"started_at":"t"}}"#).as_bytes(),
    );
    out.put(
        "paths",
        b"client-admin.crt\nclient-admin.key\netcd/client.crt\ndynamic-cert.json\nclient-ca.crt\nserving-kubelet.key\n./client-admin.crt\nclient-admin.crt/\n",
    );
}

fn logs_seeds(root: &Path, repo: &Path) {
    let out = Out::new(root, "logs");
    let seed = |control: u8, text: &str| {
        let mut v = vec![control];
        v.extend(time_bytes(NOW));
        v.extend(25u16.to_le_bytes());
        v.extend(text.as_bytes());
        v
    };
    let corpus = fs::read_to_string(repo.join("tests/data/log_corpus.jsonl")).unwrap();
    let mut all = String::new();
    for (i, l) in corpus.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let line = v["line"].as_str().unwrap();
        out.put(&format!("corpus_{i:02}"), &seed(0, line));
        all.push_str(line);
        all.push('\n');
    }
    out.put("corpus_all", &seed(0, &all));
    // K3s's own log file (`/var/lib/rancher/k3s.log`): logrus text, klog, and continuation
    // lines, before and after the start at NOW. The failure line is the corpus's
    // (k3s-io/k3s#2024); the others are the shapes `logfile::timestamp` reads.
    out.put(
        "k3s_log",
        &seed(
            0,
            "cut line without a time\n\
             time=\"2025-11-26T03:00:00Z\" level=error msg=\"Failed to generate kubeconfig: server https://127.0.0.1:6443/cacerts is not trusted: Get https://127.0.0.1:6443/cacerts: x509: certificate signed by unknown authority\"\n\
             \tcontinuation\n\
             time=\"2025-11-26T03:04:05Z\" level=info msg=\"Starting k3s v1.19.13+k3s1\"\n\
             E1126 03:05:00.000000   1 reflector.go:126] Failed to list *v1.Pod: Get https://localhost:6444/api/v1/pods: x509: certificate has expired or is not yet valid\n\
             2025/11/26 03:06:00 [FATAL] k3s exited with: exit status 1\n",
        ),
    );
    out.put("repeated", &seed(1, "Get \"https://127.0.0.1:6443/version\": x509: certificate signed by unknown authority\r\n"));
}

fn window_seeds(root: &Path) {
    let out = Out::new(root, "window");
    // The windows of the README (`watch`, `--window`).
    for (i, w) in [
        "Sun 02:00-04:00",
        "Sat,Sun 01:00-05:00",
        "Mon-Fri 22:00-02:00",
        "02:00-04:00",
        "Sun 02:00-04:00 UTC",
        "00:00-24:00",
        "sunday 23:30-00:30",
    ]
    .iter()
    .enumerate()
    {
        let mut v = time_bytes(NOW).to_vec();
        v.extend(w.as_bytes());
        out.put(&format!("window_{i}"), &v);
    }
}

fn main() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz.join("seeds");
    let tree = inventory_seeds(&root);
    archive_seeds(&root, &tree);
    journal_seeds(&root);
    logs_seeds(&root, fuzz.parent().unwrap());
    window_seeds(&root);
    println!("seeds written to {}", root.display());
}
