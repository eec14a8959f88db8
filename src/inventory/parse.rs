//! Parsing of one file's bytes: PEM bundles, DER, and the `dynamic-cert.json` Kubernetes Secret.
//!
//! Error details name what was wrong (a line number, a block type), never the file's content.

use base64::Engine;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

use super::ProblemReason;

/// One decoded certificate, before it is judged.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    pub subject: String,
    pub issuer: String,
    pub subject_cn: String,
    pub issuer_cn: String,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub sha256: String,
}

/// The certificates of one file, in file order.
#[derive(Debug, Clone)]
pub struct FileContent {
    pub certs: Vec<ParsedCert>,
}

/// Why a file yields no certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub reason: ProblemReason,
    pub detail: String,
}

fn fail(reason: ProblemReason, detail: impl Into<String>) -> ParseFailure {
    ParseFailure {
        reason,
        detail: detail.into(),
    }
}

/// Parse a file. `serving` selects the `dynamic-cert.json` format.
pub fn parse_file(bytes: &[u8], serving: bool) -> Result<FileContent, ParseFailure> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(fail(ProblemReason::Empty, "the file is empty"));
    }
    if serving {
        return parse_serving_json(bytes);
    }
    parse_cert_bytes(bytes)
}

/// PEM (one or more blocks) or a single DER certificate.
pub fn parse_cert_bytes(bytes: &[u8]) -> Result<FileContent, ParseFailure> {
    if contains(bytes, b"-----BEGIN ") {
        let blocks = pem_blocks(bytes)?;
        let mut certs = Vec::new();
        let mut other = Vec::new();
        for block in blocks {
            if block.label == "CERTIFICATE" || block.label == "X509 CERTIFICATE" {
                let der = base64::engine::general_purpose::STANDARD
                    .decode(&block.base64)
                    .map_err(|e| {
                        fail(
                            ProblemReason::BadPem,
                            format!(
                                "PEM block {} (line {}): invalid base64: {e}",
                                certs.len(),
                                block.line
                            ),
                        )
                    })?;
                certs.push(parse_der(&der).map_err(|e| {
                    fail(
                        ProblemReason::DecodeFailed,
                        format!("PEM block at line {}: {e}", block.line),
                    )
                })?);
            } else {
                other.push(block.label);
            }
        }
        if certs.is_empty() {
            return Err(fail(
                ProblemReason::NoCertificateFound,
                format!(
                    "PEM without a CERTIFICATE block (found: {})",
                    other.join(", ")
                ),
            ));
        }
        return Ok(FileContent { certs });
    }
    if bytes.first() == Some(&0x30) {
        return parse_der(bytes)
            .map(|c| FileContent { certs: vec![c] })
            .map_err(|e| fail(ProblemReason::DecodeFailed, format!("DER: {e}")));
    }
    Err(fail(
        ProblemReason::BadPem,
        "neither PEM (no -----BEGIN line) nor DER (no ASN.1 SEQUENCE)",
    ))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct PemBlock {
    label: String,
    base64: String,
    line: usize,
}

/// Every `-----BEGIN X-----` … `-----END X-----` block; text around blocks is ignored, CRLF
/// and indentation are accepted. Headers inside a block (`Proc-Type:`) are skipped.
fn pem_blocks(bytes: &[u8]) -> Result<Vec<PemBlock>, ParseFailure> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut current: Option<PemBlock> = None;
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.trim();
        let lineno = n + 1;
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            if let Some(open) = &current {
                return Err(fail(
                    ProblemReason::BadPem,
                    format!(
                        "BEGIN at line {lineno} inside the block opened at line {}",
                        open.line
                    ),
                ));
            }
            current = Some(PemBlock {
                label: label.to_string(),
                base64: String::new(),
                line: lineno,
            });
        } else if let Some(label) = line
            .strip_prefix("-----END ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            match current.take() {
                Some(block) if block.label == label => out.push(block),
                Some(block) => {
                    return Err(fail(
                        ProblemReason::BadPem,
                        format!(
                            "END {label} at line {lineno} closes BEGIN {} of line {}",
                            block.label, block.line
                        ),
                    ))
                }
                None => {
                    return Err(fail(
                        ProblemReason::BadPem,
                        format!("END at line {lineno} without BEGIN"),
                    ))
                }
            }
        } else if let Some(block) = current.as_mut() {
            if !line.contains(':') {
                block.base64.push_str(line);
            }
        }
    }
    if let Some(open) = current {
        return Err(fail(
            ProblemReason::BadPem,
            format!("BEGIN {} at line {} has no END line", open.label, open.line),
        ));
    }
    Ok(out)
}

/// Decode one DER certificate.
pub fn parse_der(der: &[u8]) -> Result<ParsedCert, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let validity = cert.validity();
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|bc| bc.value.ca)
        .unwrap_or(false);
    Ok(ParsedCert {
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        subject_cn: common_name(cert.subject()),
        issuer_cn: common_name(cert.issuer()),
        serial: cert.serial.to_str_radix(16),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        is_ca,
        sha256: hex_upper(&Sha256::digest(der)),
    })
}

pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A name the way Go's `pkix.Name.String()` prints it: last RDN first, `,`-separated.
fn rfc4514(name: &X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut parts: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|attr| {
                let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| attr.attr_type().to_id_string());
                let value = attr
                    .as_str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| "#".to_string() + &hex_upper(attr.attr_value().data));
                format!("{key}={}", escape_rdn(&value))
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    parts.reverse();
    parts.join(",")
}

fn escape_rdn(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string()
}

/// `dynamic-cert.json`: the JSON encoding of a Kubernetes `core/v1` Secret with the PEM
/// certificate (leaf, or leaf + CA in newer dynamiclistener) base64-encoded in
/// `data["tls.crt"]`. `tls.key` is never read.
fn parse_serving_json(bytes: &[u8]) -> Result<FileContent, ParseFailure> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        fail(
            ProblemReason::DecodeFailed,
            format!(
                "not a JSON Kubernetes Secret: line {}, column {}",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Some(b64) = value
        .get("data")
        .and_then(|d| d.get("tls.crt"))
        .and_then(|v| v.as_str())
    else {
        return Err(fail(
            ProblemReason::NoCertificateFound,
            "Secret without data[\"tls.crt\"]",
        ));
    };
    if b64.is_empty() {
        return Err(fail(ProblemReason::Empty, "data[\"tls.crt\"] is empty"));
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| {
            fail(
                ProblemReason::BadPem,
                format!("data[\"tls.crt\"] is not base64: {e}"),
            )
        })?;
    parse_cert_bytes(&pem).map_err(|f| ParseFailure {
        reason: f.reason,
        detail: format!("data[\"tls.crt\"]: {}", f.detail),
    })
}
