//! Certificate and key helpers, shaped after k3s `createSigningCertKey` /
//! `createClientCertKey` and client-go's `certutil`.
//!
//! * Keys are ECDSA P-256, written like Go's `x509.MarshalECPrivateKey` as
//!   `-----BEGIN EC PRIVATE KEY-----` (SEC1). PKCS#8 keys are read as well.
//! * CAs: serial 0, self-signed, CA:TRUE (critical), SubjectKeyId = SHA-1 of
//!   the public key (as Go computes it), KeyUsage
//!   digitalSignature|keyEncipherment|keyCertSign, 3650 days.
//! * Leaves: random 63-bit serial, KeyUsage digitalSignature|keyEncipherment
//!   (critical), ExtKeyUsage, AuthorityKeyId of the CA, notBefore = the CA's
//!   notBefore.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A signing CA: its certificate (first block of the `.crt`) and key.
pub struct Ca {
    pub der: Vec<u8>,
    pub key: KeyPair,
}

/// Extended key usage of a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    Client,
    Server,
    /// ServerAuth + ClientAuth (the etcd certs).
    Both,
}

/// What a leaf certificate should contain.
pub struct LeafSpec<'a> {
    pub cn: &'a str,
    pub org: Option<&'a str>,
    pub usage: Usage,
    pub dns: &'a [&'a str],
    pub ips: &'a [&'a str],
}

/// The parts of a parsed certificate the simulation looks at.
pub struct CertView {
    /// Go `pkix.Name.String()` style, e.g. `CN=system:admin,O=system:masters`.
    pub subject: String,
    pub issuer: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

// --- DER plumbing for SEC1 <-> PKCS#8 -------------------------------------

/// `ecPublicKey` and `prime256v1` OIDs, DER-encoded.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// One DER element split off the front of a buffer.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    /// The whole element (header and content).
    raw: &'a [u8],
    /// What follows the element.
    rest: &'a [u8],
}

/// Splits one DER TLV off `b`.
fn read_tlv(b: &[u8]) -> Option<Tlv<'_>> {
    let tag = *b.first()?;
    let l0 = *b.get(1)?;
    let (len, hdr) = if l0 < 0x80 {
        (l0 as usize, 2)
    } else {
        let n = (l0 & 0x7f) as usize;
        if n == 0 || n > 3 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some(Tlv {
        tag,
        content: &b[hdr..end],
        raw: &b[..end],
        rest: &b[end..],
    })
}

/// Encodes one DER TLV.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

/// PKCS#8 (as ring produces it) → SEC1 `ECPrivateKey` with the curve
/// parameters `[0]` included, like Go's `MarshalECPrivateKey`.
fn pkcs8_to_sec1(pkcs8: &[u8]) -> Option<Vec<u8>> {
    let outer = read_tlv(pkcs8).filter(|t| t.tag == 0x30)?;
    let version = read_tlv(outer.content)?;
    let algorithm = read_tlv(version.rest)?;
    let inner = read_tlv(algorithm.rest).filter(|t| t.tag == 0x04)?;
    let ec = read_tlv(inner.content).filter(|t| t.tag == 0x30)?;
    let ec_version = read_tlv(ec.content)?;
    let private = read_tlv(ec_version.rest)?;
    let mut body = Vec::new();
    body.extend_from_slice(ec_version.raw);
    body.extend_from_slice(private.raw);
    if private.rest.first() != Some(&0xa0) {
        body.extend_from_slice(&tlv(0xa0, OID_P256));
    }
    body.extend_from_slice(private.rest);
    Some(tlv(0x30, &body))
}

/// SEC1 `ECPrivateKey` (P-256) → PKCS#8 so that ring can load it.
fn sec1_to_pkcs8(sec1: &[u8]) -> Vec<u8> {
    let mut alg = Vec::new();
    alg.extend_from_slice(OID_EC_PUBLIC_KEY);
    alg.extend_from_slice(OID_P256);
    let mut body = vec![0x02, 0x01, 0x00];
    body.extend_from_slice(&tlv(0x30, &alg));
    body.extend_from_slice(&tlv(0x04, sec1));
    tlv(0x30, &body)
}

// --- keys -----------------------------------------------------------------

/// A fresh ECDSA P-256 key.
pub fn generate_ec_key() -> Result<KeyPair, String> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| format!("generate key: {e}"))
}

/// The key as `EC PRIVATE KEY` PEM (falls back to PKCS#8 for non-EC keys).
pub fn key_pem(key: &KeyPair) -> String {
    match pkcs8_to_sec1(key.serialized_der()) {
        Some(sec1) if key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 => {
            pem_lf("EC PRIVATE KEY", sec1)
        }
        _ => key.serialize_pem(),
    }
}

/// Reads a private key from PEM (`EC PRIVATE KEY` or `PRIVATE KEY`).
pub fn parse_key_pem(text: &str) -> Result<KeyPair, String> {
    let block = pem::parse(text).map_err(|e| format!("parse key PEM: {e}"))?;
    let der = match block.tag() {
        "EC PRIVATE KEY" => sec1_to_pkcs8(block.contents()),
        "PRIVATE KEY" => block.contents().to_vec(),
        other => return Err(format!("unsupported key type {other}")),
    };
    KeyPair::try_from(der.as_slice()).map_err(|e| format!("load key: {e}"))
}

// --- certificates ---------------------------------------------------------

/// One certificate as PEM.
pub fn cert_pem(der: &[u8]) -> String {
    pem_lf("CERTIFICATE", der.to_vec())
}

/// PEM with `\n` line endings (the `pem` crate defaults to CRLF).
fn pem_lf(tag: &str, der: Vec<u8>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(tag, der), config)
}

/// All `CERTIFICATE` blocks of a PEM text, in order.
pub fn cert_ders(text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(text)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| p.into_contents())
        .collect()
}

/// PrintableString when Go would choose it, UTF8String otherwise.
fn dn_value(s: &str) -> DnValue {
    match rcgen::string::PrintableString::try_from(s) {
        Ok(p) => DnValue::PrintableString(p),
        Err(_) => DnValue::Utf8String(s.to_string()),
    }
}

/// `n` days as a duration.
pub fn days(n: i64) -> Duration {
    Duration::days(n)
}

/// Truncates to whole seconds (X.509 times have second precision).
pub fn trunc(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data)
        .as_ref()
        .to_vec()
}

/// Random positive 63-bit serial (Go: `rand.Int(rand.Reader, MaxInt64-1)`).
fn random_serial() -> SerialNumber {
    let mut b = [0u8; 8];
    // SystemRandom only fails if the OS has no entropy source at all.
    SystemRandom::new().fill(&mut b).expect("OS random source");
    let n = (u64::from_be_bytes(b) >> 1).max(1);
    SerialNumber::from(n)
}

/// Self-signed k3s CA with the given CN, key and notBefore; 3650 days from now.
pub fn mint_ca(
    cn: &str,
    key: &KeyPair,
    not_before: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, dn_value(cn));
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&[0]));
    params.not_before = trunc(not_before);
    params.not_after = trunc(now + days(3650));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.key_identifier_method = KeyIdMethod::PreSpecified(sha1(key.public_key_raw()));
    params
        .self_signed(key)
        .map(|c| c.der().to_vec())
        .map_err(|e| format!("sign CA {cn}: {e}"))
}

/// A leaf signed by `ca`.
pub fn sign_leaf(
    spec: &LeafSpec,
    key: &KeyPair,
    ca: &Ca,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<Vec<u8>, String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // Go orders O before CN in the encoded name.
    if let Some(o) = spec.org {
        dn.push(DnType::OrganizationName, dn_value(o));
    }
    dn.push(DnType::CommonName, dn_value(spec.cn));
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial());
    params.not_before = trunc(not_before);
    params.not_after = trunc(not_after);
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = match spec.usage {
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Both => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    for d in spec.dns {
        let name = (*d).try_into().map_err(|e| format!("SAN {d}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in spec.ips {
        let addr: IpAddr = ip.parse().map_err(|e| format!("SAN {ip}: {e}"))?;
        params.subject_alt_names.push(SanType::IpAddress(addr));
    }
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(&ca.der.as_slice().into(), &ca.key)
        .map_err(|e| format!("load CA as issuer: {e}"))?;
    params
        .signed_by(key, &issuer)
        .map(|c| c.der().to_vec())
        .map_err(|e| format!("sign {}: {e}", spec.cn))
}

/// True when `leaf` was issued by `ca`: issuer DN equals the CA subject and
/// the signature verifies with the CA key. Validity dates are not checked.
pub fn verifies(leaf: &[u8], ca: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(leaf),
        X509Certificate::from_der(ca),
    ) else {
        return false;
    };
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Go `pkix.Name.String()`: attributes in reverse order, comma-separated.
fn name_string(name: &x509_parser::x509::X509Name) -> String {
    let mut parts = Vec::new();
    for rdn in name.iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let short = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                _ => oid,
            };
            let value = attr.as_str().unwrap_or("?");
            parts.push(format!("{short}={value}"));
        }
    }
    parts.reverse();
    parts.join(",")
}

/// Parses the fields the simulation needs.
pub fn view(der: &[u8]) -> Result<CertView, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("parse cert: {e}"))?;
    Ok(CertView {
        subject: name_string(cert.subject()),
        issuer: name_string(cert.issuer()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    })
}

/// SHA-1 of the DER, upper-case hex (dynamiclistener's fingerprint).
pub fn fingerprint_sha1(der: &[u8]) -> String {
    sha1(der).iter().map(|b| format!("{b:02X}")).collect()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Random lower-case hex string of `n` bytes.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    SystemRandom::new().fill(&mut b).expect("OS random source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Go's `time.Time.String()` for UTC: `2021-09-18 12:00:00 +0000 UTC`.
pub fn go_time(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
    );
    t.format(&f).unwrap_or_default()
}

/// RFC 3339 with a `Z` suffix, second precision (Go's `time.RFC3339`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec1_round_trip() {
        let key = generate_ec_key().unwrap();
        let pem_text = key_pem(&key);
        assert!(pem_text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(!pem_text.contains('\r'));
        let back = parse_key_pem(&pem_text).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        // PKCS#8 is accepted too.
        let back = parse_key_pem(&key.serialize_pem()).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn ca_and_leaf() {
        let now = trunc(OffsetDateTime::now_utc());
        let key = generate_ec_key().unwrap();
        let ca = Ca {
            der: mint_ca("k3s-server-ca@1", &key, now - days(10), now).unwrap(),
            key,
        };
        let spec = LeafSpec {
            cn: "system:admin",
            org: Some("system:masters"),
            usage: Usage::Client,
            dns: &["localhost"],
            ips: &["127.0.0.1"],
        };
        let leaf_key = generate_ec_key().unwrap();
        let leaf = sign_leaf(&spec, &leaf_key, &ca, now - days(10), now + days(5)).unwrap();
        assert!(verifies(&leaf, &ca.der));
        let v = view(&leaf).unwrap();
        assert_eq!(v.subject, "CN=system:admin,O=system:masters");
        assert_eq!(v.issuer, "CN=k3s-server-ca@1");
        assert_eq!(v.not_before, now - days(10));
        assert_eq!(v.not_after, now + days(5));

        // A CA with the same key but another name does not verify the leaf.
        let other = mint_ca("k3s-server-ca@2", &ca.key, now, now).unwrap();
        assert!(!verifies(&leaf, &other));
        // Neither does a CA with another key and the same name.
        let other_key = generate_ec_key().unwrap();
        let other = mint_ca("k3s-server-ca@1", &other_key, now, now).unwrap();
        assert!(!verifies(&leaf, &other));
    }
}
