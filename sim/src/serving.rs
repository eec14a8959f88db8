//! The k3s supervisor's serving certificate on :6443 (CN=k3s, O=k3s), cached
//! in `tls/dynamic-cert.json` and in the secret `kube-system/k3s-serving`.
//!
//! The secret store is a file outside the TLS dir (the "datastore", see
//! [`crate::paths::SERVING_SECRET`]). Start-up sync follows dynamiclistener
//! v0.2.0:
//!
//! | file            | secret  | result                                        |
//! |-----------------|---------|-----------------------------------------------|
//! | has data        | missing | secret re-created from the file               |
//! | missing / empty | present | file written from the secret                  |
//! | present         | present | the secret is copied into the file            |
//! | missing         | missing | a new certificate is generated into both      |
//!
//! Renewal: era v1.18 never renews (the real bug); eras v0.8 and v1.19 renew
//! at start when the cert expires within 90 days or no longer verifies
//! against server-ca. `tls/dynamic-cert-regenerate` forces a new cert in era
//! v1.19 (newer K3s) and is deleted; older eras ignore it.

use std::collections::BTreeMap;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rcgen::KeyPair;
use serde_json::Value;

use crate::config::Era;
use crate::fsutil;
use crate::k3s::{Ctx, RENEW_DAYS};
use crate::log;
use crate::paths::{p, tls, SERVING_SECRET};
use crate::pki::{self, Ca, LeafSpec, Usage};

const ANNOTATION_PREFIX: &str = "listener.cattle.io/cn-";
const DNS_SANS: &[&str] = &["localhost", "kubernetes", "kubernetes.default"];
const IP_SANS: &[&str] = &["127.0.0.1"];

/// A stored secret: its exact JSON text and the parsed value.
struct Stored {
    text: String,
    value: Value,
}

impl Stored {
    /// The first certificate of `data."tls.crt"`.
    fn leaf(&self) -> Option<Vec<u8>> {
        let pem = decode_field(&self.value, "tls.crt")?;
        pki::cert_ders(&pem).into_iter().next()
    }

    /// The key of `data."tls.key"`.
    fn key(&self) -> Option<KeyPair> {
        pki::parse_key_pem(&decode_field(&self.value, "tls.key")?).ok()
    }

    /// `map[listener.cattle.io/cn-x:x ...]` of the CN annotations, as Go prints it.
    fn cns(&self) -> (usize, String) {
        let mut cns = Vec::new();
        if let Some(a) = self.value["metadata"]["annotations"].as_object() {
            for (k, v) in a {
                if k.starts_with(ANNOTATION_PREFIX) {
                    cns.push(format!("{k}:{}", v.as_str().unwrap_or("")));
                }
            }
        }
        (cns.len(), format!("map[{}]", cns.join(" ")))
    }
}

fn decode_field(v: &Value, field: &str) -> Option<String> {
    let b = B64.decode(v["data"][field].as_str()?.trim()).ok()?;
    String::from_utf8(b).ok()
}

/// Reads a secret file; `None` when missing, empty or without TLS data.
fn load(path: &Path) -> Option<Stored> {
    let text = fsutil::read_string(path)?;
    if text.trim().is_empty() {
        return None;
    }
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            log::k3s_warn(format!("ignoring unparsable {}: {e}", path.display()));
            return None;
        }
    };
    let s = Stored { text, value };
    s.leaf()?;
    Some(s)
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fsutil::write(path, text.as_bytes(), 0o600)
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// Settles the serving cert for this start; returns the leaf's DER.
pub fn ensure(ctx: &Ctx, server_ca: &Ca) -> Result<Vec<u8>, String> {
    let file_path = tls("dynamic-cert.json");
    let store_path = p(SERVING_SECRET);
    let era = ctx.cfg.era;

    let current = match (load(&file_path), load(&store_path)) {
        (Some(file), None) => {
            let (n, map) = file.cns();
            log::k3s_info(format!(
                "Creating new TLS secret for kube-system/k3s-serving (count: {n}): {map}"
            ));
            write(&store_path, &file.text)?;
            Some(file)
        }
        (_, Some(secret)) => {
            write(&file_path, &secret.text)?;
            Some(secret)
        }
        (None, None) => None,
    };

    let trigger = tls("dynamic-cert-regenerate");
    // Only newer K3s (the cert CLI era, represented by v1.19 here) honours the trigger;
    // v0.8 and v1.18 leave the file alone and ignore it.
    let forced = era == Era::V1_19 && trigger.exists();

    let renewed = match current {
        None => generate(ctx, server_ca, None, None)?,
        Some(cur) if forced => {
            log::k3s_info("Regenerating dynamic certificate (dynamic-cert-regenerate found)");
            generate(ctx, server_ca, None, Some(&cur.value))?
        }
        Some(cur) if era.renews_serving() => {
            let leaf = cur.leaf().unwrap_or_default();
            if !pki::verifies(&leaf, &server_ca.der) {
                log::k3s_info(
                    "k3s-serving certificate is not signed by the current server CA, regenerating",
                );
                generate(ctx, server_ca, cur.key(), Some(&cur.value))?
            } else {
                let v = pki::view(&leaf)?;
                let left = v.not_after - ctx.now;
                if left <= pki::days(RENEW_DAYS) {
                    log::k3s_info(format!(
                        "certificate {} will expire in {:.6} days at {}",
                        v.subject,
                        left.as_seconds_f64() / 86400.0,
                        pki::go_time(v.not_after)
                    ));
                    generate(ctx, server_ca, cur.key(), Some(&cur.value))?
                } else {
                    cur
                }
            }
        }
        Some(cur) => cur,
    };
    if forced {
        fsutil::remove(&trigger).map_err(|e| format!("remove {}: {e}", trigger.display()))?;
    }

    let (n, map) = renewed.cns();
    let ver = renewed.value["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    log::k3s_info(format!(
        "Active TLS secret k3s-serving (ver={ver}) (count {n}): {map}"
    ));
    renewed
        .leaf()
        .ok_or_else(|| "serving secret without a certificate".into())
}

/// Signs a new serving cert (keeping `key` when given), writes it to the
/// file and the secret store, and returns the stored form. `prev` is the
/// previous secret, whose uid/creationTimestamp a renewal keeps.
fn generate(
    ctx: &Ctx,
    server_ca: &Ca,
    key: Option<KeyPair>,
    prev: Option<&Value>,
) -> Result<Stored, String> {
    let key = match key {
        Some(k) => k,
        None => pki::generate_ec_key()?,
    };
    let spec = LeafSpec {
        cn: "k3s",
        org: Some("k3s"),
        usage: Usage::Server,
        dns: DNS_SANS,
        ips: IP_SANS,
    };
    let ca_view = pki::view(&server_ca.der)?;
    let der = pki::sign_leaf(
        &spec,
        &key,
        server_ca,
        ca_view.not_before,
        ctx.serving_not_after(),
    )?;
    let text = secret_json(ctx, &der, &key, server_ca, prev);
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("secret JSON: {e}"))?;
    let stored = Stored { text, value };
    let (n, map) = stored.cns();
    let verb = if prev.is_some() {
        "Updating"
    } else {
        "Creating new"
    };
    log::k3s_info(format!(
        "{verb} TLS secret for kube-system/k3s-serving (count: {n}): {map}"
    ));
    write(&tls("dynamic-cert.json"), &stored.text)?;
    write(&p(SERVING_SECRET), &stored.text)?;
    Ok(stored)
}

/// JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// The secret as Go's `json.Encoder` writes a `v1.Secret`: compact, fields
/// in struct order, map keys sorted, trailing newline.
fn secret_json(ctx: &Ctx, der: &[u8], key: &KeyPair, ca: &Ca, prev: Option<&Value>) -> String {
    let era = ctx.cfg.era;
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    let mut cns: Vec<&str> = DNS_SANS.iter().chain(IP_SANS).copied().collect();
    cns.sort_unstable();
    for cn in &cns {
        annotations.insert(format!("{ANNOTATION_PREFIX}{cn}"), cn.to_string());
    }
    let mut crt = pki::cert_pem(der);
    if era == Era::V1_19 {
        // dynamiclistener v0.2.1: fingerprint; the sim also ships the chain.
        annotations.insert(
            "listener.cattle.io/fingerprint".into(),
            format!("SHA1={}", pki::fingerprint_sha1(der)),
        );
        crt.push_str(&pki::cert_pem(&ca.der));
    } else {
        // dynamiclistener v0.2.0: SHA-256 over the sorted CNs.
        annotations.insert(
            "listener.cattle.io/hash".into(),
            pki::sha256_hex(cns.concat().as_bytes()),
        );
    }
    let ann: Vec<String> = annotations
        .iter()
        .map(|(k, v)| format!("{}:{}", js(k), js(v)))
        .collect();
    let ann = format!("{{{}}}", ann.join(","));

    let metadata = if era == Era::V1_19 {
        let prev_str = |f: &str| {
            prev.and_then(|p| p["metadata"][f].as_str())
                .map(str::to_string)
        };
        let h = pki::random_hex(16);
        let uid = prev_str("uid").unwrap_or_else(|| {
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[0..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        });
        let created = prev_str("creationTimestamp").unwrap_or_else(|| pki::rfc3339(ctx.now));
        let version = prev_str("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v + 1)
            .unwrap_or(239);
        format!(
            r#"{{"name":"k3s-serving","namespace":"kube-system","uid":{},"resourceVersion":{},"creationTimestamp":{},"annotations":{ann}}}"#,
            js(&uid),
            js(&version.to_string()),
            js(&created)
        )
    } else {
        format!(r#"{{"creationTimestamp":null,"annotations":{ann}}}"#)
    };
    format!(
        "{{\"metadata\":{metadata},\"data\":{{\"tls.crt\":{},\"tls.key\":{}}},\"type\":\"kubernetes.io/tls\"}}\n",
        js(&B64.encode(crt)),
        js(&B64.encode(pki::key_pem(key)))
    )
}
