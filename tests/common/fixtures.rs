//! Certificate fixtures generated with rcgen in the real K3s layout (k3s `pkg/daemons/control/deps/deps.go`, rancher/dynamiclistener `cert/cert.go`):
//! ECDSA P-256 CAs `k3s-<x>-ca@<unix>` of 3650 days with serial 0, leaves of 365 days written
//! as leaf + CA with notBefore equal to the CA's, an RSA `service.key`, `etcd/`, and both
//! historic shapes of `dynamic-cert.json`.
#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SigningKey,
};
use time::{Duration, OffsetDateTime};

pub const DAY: i64 = 86_400;

pub fn ts(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A CA with its key.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub pem: String,
    pub der: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
}

impl Ca {
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }
}

pub fn ca(cn: &str, not_before: i64) -> Ca {
    ca_with_key(cn, not_before, KeyPair::generate().unwrap())
}

pub fn ca_with_key(cn: &str, not_before: i64, key: KeyPair) -> Ca {
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
        der: cert.der().to_vec(),
        params: p,
        key,
        not_before,
        not_after: not_before + 3650 * DAY,
    }
}

/// A signed leaf: (cert PEM, key PEM, DER).
pub struct Leaf {
    pub pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

pub fn leaf(
    ca: &Ca,
    cn: &str,
    o: Option<&str>,
    not_before: i64,
    not_after: i64,
    server: bool,
) -> Leaf {
    leaf_with_key(
        ca,
        cn,
        o,
        not_before,
        not_after,
        server,
        KeyPair::generate().unwrap(),
    )
}

pub fn leaf_with_key(
    ca: &Ca,
    cn: &str,
    o: Option<&str>,
    not_before: i64,
    not_after: i64,
    server: bool,
    key: KeyPair,
) -> Leaf {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(o) = o {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(
        &rand::random::<[u8; 8]>().map(|b| b & 0x7f),
    ));
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
    p.not_after = ts(not_after);
    let cert = p.signed_by(&key, &ca.issuer()).unwrap();
    Leaf {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// A 2048-bit RSA key (PKCS#8 DER), generated once per test binary.
pub fn rsa_pkcs8_der() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        key.to_pkcs8_der().unwrap().as_bytes().to_vec()
    })
}

pub fn rsa_key_pem() -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(rsa_pkcs8_der());
    let mut s = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END PRIVATE KEY-----\n");
    s
}

pub fn rsa_keypair() -> KeyPair {
    KeyPair::try_from(rsa_pkcs8_der()).unwrap()
}

/// The shape of `dynamic-cert.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServingShape {
    /// Written locally before the first sync, dynamiclistener < v0.3.3: leaf only,
    /// `creationTimestamp: null`, `listener.cattle.io/hash`.
    Local,
    /// Synced from Kubernetes, dynamiclistener >= v0.3.3: name/namespace/uid, fingerprint
    /// annotation, leaf + CA chain.
    Synced,
}

pub fn dynamic_cert_json(serving: &Leaf, ca: &Ca, shape: ServingShape) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let v = match shape {
        ServingShape::Local => serde_json::json!({
            "metadata": {"creationTimestamp": null, "annotations": {
                "listener.cattle.io/cn-127.0.0.1": "127.0.0.1",
                "listener.cattle.io/cn-localhost": "localhost",
                "listener.cattle.io/hash": "0f3c2a0c"}},
            "data": {"tls.crt": b64(&serving.pem), "tls.key": b64(&serving.key_pem)},
            "type": "kubernetes.io/tls"
        }),
        ServingShape::Synced => serde_json::json!({
            "metadata": {"name": "k3s-serving", "namespace": "kube-system",
                "uid": "2f9b1d3e-0000-4000-8000-000000000000", "resourceVersion": "11246",
                "creationTimestamp": "2021-12-07T19:25:48Z",
                "annotations": {"listener.cattle.io/cn-10.43.0.1": "10.43.0.1",
                    "listener.cattle.io/cn-__1-f16284": "::1",
                    "listener.cattle.io/fingerprint": "SHA1=C828"},
                "managedFields": []},
            "data": {"tls.crt": b64(&format!("{}{}", serving.pem, ca.pem)), "tls.key": b64(&serving.key_pem)},
            "type": "kubernetes.io/tls"
        }),
    };
    serde_json::to_string(&v).unwrap() + "\n"
}

/// What a generated tree should look like when judged, for assertions.
#[derive(Debug, Clone)]
pub struct Expected {
    /// (path, index, not_after) of every certificate block.
    pub certs: Vec<(String, usize, i64)>,
    pub ca_files: Vec<String>,
    pub leaf_files: Vec<String>,
    pub key_files: Vec<String>,
}

/// Options of a generated K3s TLS tree.
#[derive(Debug, Clone)]
pub struct TreeSpec {
    /// Unix time the CAs were created (leaves' notBefore too).
    pub ca_created: i64,
    /// Unix time the leaves expire.
    pub leaf_not_after: i64,
    /// Unix time the serving certificate expires.
    pub serving_not_after: i64,
    pub shape: ServingShape,
}

impl TreeSpec {
    /// A tree whose leaves expire `leaf_days` days after `now` (negative: already expired).
    pub fn days_left(now: i64, leaf_days: i64) -> Self {
        let not_after = now + leaf_days * DAY;
        TreeSpec {
            ca_created: not_after - 365 * DAY,
            leaf_not_after: not_after,
            serving_not_after: not_after,
            shape: ServingShape::Synced,
        }
    }
}

/// (file, CA, CN, O, server)
const LEAVES: &[(&str, &str, &str, Option<&str>, bool)] = &[
    (
        "client-admin",
        "client-ca",
        "system:admin",
        Some("system:masters"),
        false,
    ),
    (
        "client-controller",
        "client-ca",
        "system:kube-controller-manager",
        None,
        false,
    ),
    (
        "client-scheduler",
        "client-ca",
        "system:kube-scheduler",
        None,
        false,
    ),
    (
        "client-kube-apiserver",
        "client-ca",
        "system:apiserver",
        Some("system:masters"),
        false,
    ),
    (
        "client-kube-proxy",
        "client-ca",
        "system:kube-proxy",
        None,
        false,
    ),
    (
        "client-k3s-controller",
        "client-ca",
        "system:k3s-controller",
        None,
        false,
    ),
    (
        "client-k3s-cloud-controller",
        "client-ca",
        "k3s-cloud-controller-manager",
        None,
        false,
    ),
    (
        "client-supervisor",
        "client-ca",
        "system:k3s-supervisor",
        Some("system:masters"),
        false,
    ),
    (
        "client-auth-proxy",
        "request-header-ca",
        "system:auth-proxy",
        None,
        false,
    ),
    (
        "serving-kube-apiserver",
        "server-ca",
        "kube-apiserver",
        None,
        true,
    ),
    (
        "etcd/server-client",
        "etcd/server-ca",
        "etcd-server",
        None,
        true,
    ),
    ("etcd/client", "etcd/server-ca", "etcd-client", None, false),
    (
        "etcd/peer-server-client",
        "etcd/peer-ca",
        "etcd-peer",
        None,
        true,
    ),
];

const CAS: &[(&str, &str)] = &[
    ("client-ca", "k3s-client-ca"),
    ("server-ca", "k3s-server-ca"),
    ("request-header-ca", "k3s-request-header-ca"),
    ("etcd/server-ca", "etcd-server-ca"),
    ("etcd/peer-ca", "etcd-peer-ca"),
];

fn write(dir: &Path, rel: &str, data: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// The five K3s CAs of a tree, by file stem (`client-ca`, `etcd/peer-ca`, …).
pub type Cas = std::collections::HashMap<&'static str, Ca>;

/// Mint the K3s CAs created at `ca_created`.
pub fn k3s_cas(ca_created: i64) -> Cas {
    CAS.iter()
        .map(|(file, prefix)| (*file, ca(&format!("{prefix}@{ca_created}"), ca_created)))
        .collect()
}

/// Write a complete K3s server TLS tree into `dir`.
pub fn write_k3s_tree(dir: &Path, spec: &TreeSpec) -> Expected {
    write_k3s_tree_with(dir, spec, &k3s_cas(spec.ca_created))
}

/// Write a complete K3s server TLS tree into `dir`, with the given CAs (two trees written with
/// the same CAs are the same cluster before and after K3s renewed its leaves).
pub fn write_k3s_tree_with(dir: &Path, spec: &TreeSpec, cas: &Cas) -> Expected {
    let mut exp = Expected {
        certs: vec![],
        ca_files: vec![],
        leaf_files: vec![],
        key_files: vec![],
    };
    for (file, _) in CAS {
        let c = &cas[file];
        write(dir, &format!("{file}.crt"), &c.pem);
        write(dir, &format!("{file}.key"), c.key.serialize_pem());
        exp.certs.push((format!("{file}.crt"), 0, c.not_after));
        exp.ca_files.push(format!("{file}.crt"));
        exp.key_files.push(format!("{file}.key"));
    }
    for (file, ca_name, cn, o, server) in LEAVES {
        let c = &cas[ca_name];
        let l = leaf(c, cn, *o, spec.ca_created, spec.leaf_not_after, *server);
        write(dir, &format!("{file}.crt"), format!("{}{}", l.pem, c.pem));
        write(dir, &format!("{file}.key"), &l.key_pem);
        exp.certs
            .push((format!("{file}.crt"), 0, spec.leaf_not_after));
        exp.certs.push((format!("{file}.crt"), 1, c.not_after));
        exp.leaf_files.push(format!("{file}.crt"));
        exp.key_files.push(format!("{file}.key"));
    }
    for k in ["client-kubelet.key", "serving-kubelet.key"] {
        write(dir, k, KeyPair::generate().unwrap().serialize_pem());
        exp.key_files.push(k.to_string());
    }
    write(dir, "service.key", rsa_key_pem());
    exp.key_files.push("service.key".into());
    let server_ca = &cas["server-ca"];
    let serving = leaf(
        server_ca,
        "k3s",
        Some("k3s"),
        spec.ca_created,
        spec.serving_not_after,
        true,
    );
    write(
        dir,
        "dynamic-cert.json",
        dynamic_cert_json(&serving, server_ca, spec.shape),
    );
    exp.certs
        .push(("dynamic-cert.json".into(), 0, spec.serving_not_after));
    if spec.shape == ServingShape::Synced {
        exp.certs
            .push(("dynamic-cert.json".into(), 1, server_ca.not_after));
    }
    // kube-apiserver's --cert-dir: skipped by the inventory.
    write(
        dir,
        "temporary-certs/apiserver-loopback-client__.crt",
        b"not a cert",
    );
    exp.key_files.sort();
    exp
}

// ---- a hand-built X.509 v1 certificate (no version field, no extensions) ----

fn der_len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        vec![n as u8]
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut v = vec![0x80 | bytes.len() as u8];
        v.extend(bytes);
        v
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    v.extend(der_len(content.len()));
    v.extend_from_slice(content);
    v
}

fn name(cn: &str) -> Vec<u8> {
    let atv = tlv(
        0x30,
        &[tlv(0x06, &[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())].concat(),
    );
    tlv(0x30, &tlv(0x31, &atv))
}

fn utc_time(t: i64) -> Vec<u8> {
    let d = ts(t);
    let s = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        d.year() % 100,
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    );
    tlv(0x17, s.as_bytes())
}

/// A self-signed X.509 v1 certificate (ECDSA P-256), as DER.
pub fn v1_cert_der(cn: &str, not_before: i64, not_after: i64) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let alg = tlv(
        0x30,
        &tlv(0x06, &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]),
    );
    let tbs = tlv(
        0x30,
        &[
            tlv(0x02, &[0x01, 0x23]),
            alg.clone(),
            name(cn),
            tlv(0x30, &[utc_time(not_before), utc_time(not_after)].concat()),
            name(cn),
            key.subject_public_key_info(),
        ]
        .concat(),
    );
    let sig = key.sign(&tbs).unwrap();
    let mut bits = vec![0u8];
    bits.extend(sig);
    tlv(0x30, &[tbs, alg, tlv(0x03, &bits)].concat())
}

pub fn pem_of(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s + "-----END CERTIFICATE-----\n"
}

pub fn days(n: i64) -> Duration {
    Duration::days(n)
}
