//! The k3s server certificates under `/var/lib/rancher/k3s/server/tls`,
//! created and renewed at start the way k3s v1.17–v1.21
//! `pkg/daemons/control/server.go` (`genCerts`) does it.
//!
//! * A CA is minted when its `.crt` or `.key` is missing (an existing `.key`
//!   is reused). Minting a CA regenerates every leaf under it.
//! * A leaf is regenerated when a file is missing (a missing `.crt` with its
//!   `.key` present keeps the key), when its CA was just minted, when it does
//!   not verify against the current CA file, or — from k3s v0.10 on (eras
//!   v1.18/v1.19) — when it expires within 90 days. Regeneration for any other
//!   reason than a missing `.crt` gets a new key, like `LoadOrGenerateKeyFile`
//!   with `regen=true`.
//! * Each leaf `.crt` holds the leaf followed by its CA.

use std::path::Path;

use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::config::Config;
use crate::fsutil;
use crate::log;
use crate::paths::{p, tls, LAST_CA_MINT};
use crate::pki::{self, Ca, LeafSpec, Usage};

/// Leaves are renewed at start when they expire within this many days.
pub const RENEW_DAYS: i64 = 90;

/// A CA file pair: `<file>.crt` / `<file>.key`, CN `<prefix>@<unix>`.
struct CaDef {
    file: &'static str,
    cn_prefix: &'static str,
}

const CAS: &[CaDef] = &[
    CaDef {
        file: "client-ca",
        cn_prefix: "k3s-client-ca",
    },
    CaDef {
        file: "server-ca",
        cn_prefix: "k3s-server-ca",
    },
    CaDef {
        file: "request-header-ca",
        cn_prefix: "k3s-request-header-ca",
    },
    CaDef {
        file: "etcd/server-ca",
        cn_prefix: "etcd-server-ca",
    },
    CaDef {
        file: "etcd/peer-ca",
        cn_prefix: "etcd-peer-ca",
    },
];

/// A leaf file pair signed by the CA `ca` (an entry of [`CAS`]).
struct LeafDef {
    file: &'static str,
    ca: &'static str,
    spec: LeafSpec<'static>,
}

const fn client(file: &'static str, ca: &'static str, cn: &'static str) -> LeafDef {
    LeafDef {
        file,
        ca,
        spec: LeafSpec {
            cn,
            org: None,
            usage: Usage::Client,
            dns: &[],
            ips: &[],
        },
    }
}

const LEAVES: &[LeafDef] = &[
    LeafDef {
        file: "client-admin",
        ca: "client-ca",
        spec: LeafSpec {
            cn: "system:admin",
            org: Some("system:masters"),
            usage: Usage::Client,
            dns: &[],
            ips: &[],
        },
    },
    client(
        "client-controller",
        "client-ca",
        "system:kube-controller-manager",
    ),
    client("client-scheduler", "client-ca", "system:kube-scheduler"),
    client("client-kube-apiserver", "client-ca", "kube-apiserver"),
    client("client-kube-proxy", "client-ca", "system:kube-proxy"),
    client(
        "client-k3s-controller",
        "client-ca",
        "system:k3s-controller",
    ),
    client(
        "client-cloud-controller",
        "client-ca",
        "cloud-controller-manager",
    ),
    client(
        "client-auth-proxy",
        "request-header-ca",
        "system:auth-proxy",
    ),
    LeafDef {
        file: "serving-kube-apiserver",
        ca: "server-ca",
        spec: LeafSpec {
            cn: "kube-apiserver",
            org: None,
            usage: Usage::Server,
            dns: &[
                "kubernetes.default.svc",
                "kubernetes.default",
                "kubernetes",
                "localhost",
            ],
            ips: &["10.43.0.1", "127.0.0.1"],
        },
    },
    LeafDef {
        file: "etcd/server-client",
        ca: "etcd/server-ca",
        spec: LeafSpec {
            cn: "etcd-server",
            org: None,
            usage: Usage::Both,
            dns: &["localhost"],
            ips: &["127.0.0.1"],
        },
    },
    client("etcd/client", "etcd/server-ca", "etcd-client"),
    LeafDef {
        file: "etcd/peer-server-client",
        ca: "etcd/peer-ca",
        spec: LeafSpec {
            cn: "etcd-peer",
            org: None,
            usage: Usage::Both,
            dns: &["localhost"],
            ips: &["127.0.0.1"],
        },
    },
];

/// Start-time context shared by all steps.
pub struct Ctx<'a> {
    pub cfg: &'a Config,
    /// No marker file yet: use the `SIM_*_DAYS` lifetimes.
    pub first_boot: bool,
    pub now: OffsetDateTime,
    /// The clock certificates are minted by: `now`, shifted by
    /// `SIM_CLOCK_SKEW_DAYS` at first boot (a clock that was wrong then).
    mint_now: OffsetDateTime,
    /// The `@<unix>` suffix for CAs minted in this start.
    ca_stamp: i64,
}

impl<'a> Ctx<'a> {
    /// The context of one start. CAs minted now are named after `now`, but
    /// always later than the previous mint: a CA re-minted within the same
    /// second (same CN, same reused key) would be indistinguishable from the
    /// old one, which would make quick test sequences flaky.
    pub fn new(cfg: &'a Config, first_boot: bool, now: OffsetDateTime) -> Self {
        let last = fsutil::read_string(&p(LAST_CA_MINT))
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let mint_now = if first_boot {
            now + pki::days(cfg.clock_skew_days)
        } else {
            now
        };
        Ctx {
            cfg,
            first_boot,
            now,
            mint_now,
            ca_stamp: now.unix_timestamp().max(last + 1),
        }
    }

    /// notBefore of a CA minted now: at first boot it is back-dated so that
    /// leaves (which copy the CA's notBefore) get a lifetime of at most a
    /// year even when `SIM_LEAF_DAYS`/`SIM_SERVING_DAYS` are short or negative.
    fn ca_not_before(&self) -> OffsetDateTime {
        if !self.first_boot {
            return self.now;
        }
        let year = pki::days(365);
        let leaf = self.mint_now + pki::days(self.cfg.leaf_days) - year;
        let serving = self.mint_now + pki::days(self.cfg.serving_days) - year;
        self.mint_now.min(leaf).min(serving)
    }

    /// notAfter of a leaf generated now.
    pub fn leaf_not_after(&self) -> OffsetDateTime {
        let d = if self.first_boot {
            self.cfg.leaf_days
        } else {
            365
        };
        self.mint_now + pki::days(d)
    }

    /// notAfter of a serving cert generated now.
    pub fn serving_not_after(&self) -> OffsetDateTime {
        let d = if self.first_boot {
            self.cfg.serving_days
        } else {
            365
        };
        self.mint_now + pki::days(d)
    }
}

/// What later steps need from the certificate pass.
pub struct K3sCerts {
    pub server_ca: Ca,
    /// `client-admin.crt` contents (leaf + CA), for the kubeconfig.
    pub admin_crt_pem: String,
    pub admin_key_pem: String,
    /// `file: subject` of every leaf that is expired or not yet valid now.
    pub invalid_leaves: Vec<String>,
}

/// Creates/renews all CAs, leaves and key-only files.
pub fn ensure_certs(ctx: &Ctx) -> Result<K3sCerts, String> {
    let dir = tls("");
    std::fs::create_dir_all(dir.join("etcd")).map_err(|e| format!("create {dir:?}: {e}"))?;
    std::fs::create_dir_all(dir.join("temporary-certs"))
        .map_err(|e| format!("create temporary-certs: {e}"))?;

    let mut cas: Vec<(&str, Ca, bool)> = Vec::new();
    for def in CAS {
        let (ca, minted) = ensure_ca(def, ctx)?;
        cas.push((def.file, ca, minted));
    }
    for def in LEAVES {
        let (_, ca, minted) = cas
            .iter()
            .find(|(f, _, _)| *f == def.ca)
            .ok_or_else(|| format!("no CA {}", def.ca))?;
        ensure_leaf(def, ca, *minted, ctx)?;
    }

    // Key-only files, created once and never rotated.
    for name in ["client-kubelet.key", "serving-kubelet.key"] {
        let path = tls(name);
        if !path.exists() {
            let key = pki::generate_ec_key()?;
            write(&path, pki::key_pem(&key).as_bytes(), 0o600)?;
        }
    }
    let service = tls("service.key");
    if !service.exists() {
        write(&service, rsa_key_pem()?.as_bytes(), 0o600)?;
    }

    let mut invalid_leaves = Vec::new();
    for def in LEAVES {
        let text = fsutil::read_string(&tls(&format!("{}.crt", def.file))).unwrap_or_default();
        if let Some(v) = pki::cert_ders(&text)
            .first()
            .and_then(|d| pki::view(d).ok())
        {
            if v.not_after < ctx.now || v.not_before > ctx.now {
                invalid_leaves.push(format!("{}.crt: {}", def.file, v.subject));
            }
        }
    }

    let server_ca = cas
        .into_iter()
        .find(|(f, _, _)| *f == "server-ca")
        .map(|(_, ca, _)| ca)
        .ok_or("no server-ca")?;
    let admin_crt_pem = fsutil::read_string(&tls("client-admin.crt")).unwrap_or_default();
    let admin_key_pem = fsutil::read_string(&tls("client-admin.key")).unwrap_or_default();
    Ok(K3sCerts {
        server_ca,
        admin_crt_pem,
        admin_key_pem,
        invalid_leaves,
    })
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    fsutil::write(path, data, mode).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Loads a key file, or `None` when missing or unreadable.
fn load_key(path: &Path) -> Option<KeyPair> {
    let text = fsutil::read_string(path)?;
    match pki::parse_key_pem(&text) {
        Ok(k) => Some(k),
        Err(e) => {
            log::k3s_warn(format!("ignoring unreadable key {}: {e}", path.display()));
            None
        }
    }
}

/// Returns the CA and whether it was minted just now.
fn ensure_ca(def: &CaDef, ctx: &Ctx) -> Result<(Ca, bool), String> {
    let crt_path = tls(&format!("{}.crt", def.file));
    let key_path = tls(&format!("{}.key", def.file));
    let existing_crt =
        fsutil::read_string(&crt_path).and_then(|text| pki::cert_ders(&text).into_iter().next());
    let key = match (load_key(&key_path), existing_crt) {
        (Some(key), Some(der)) => return Ok((Ca { der, key }, false)),
        (Some(key), None) => key,
        (None, _) => {
            let k = pki::generate_ec_key()?;
            write(&key_path, pki::key_pem(&k).as_bytes(), 0o600)?;
            k
        }
    };
    let cn = format!("{}@{}", def.cn_prefix, ctx.ca_stamp);
    write(
        &p(LAST_CA_MINT),
        format!("{}\n", ctx.ca_stamp).as_bytes(),
        0o644,
    )?;
    let der = pki::mint_ca(&cn, &key, ctx.ca_not_before(), ctx.mint_now)?;
    write(&crt_path, pki::cert_pem(&der).as_bytes(), 0o644)?;
    let v = pki::view(&der)?;
    log::k3s_info(format!(
        "generated self-signed CA certificate {}: notBefore={} notAfter={}",
        v.subject,
        pki::go_time(v.not_before),
        pki::go_time(v.not_after)
    ));
    Ok((Ca { der, key }, true))
}

fn ensure_leaf(def: &LeafDef, ca: &Ca, ca_minted: bool, ctx: &Ctx) -> Result<(), String> {
    let crt_path = tls(&format!("{}.crt", def.file));
    let key_path = tls(&format!("{}.key", def.file));
    let crt_exists = crt_path.exists();
    let key_exists = key_path.exists();
    // SIM_NO_REGEN: a k3s that does not bring this leaf back when it goes
    // missing after the first boot.
    let no_regen = !ctx.first_boot
        && ctx.cfg.no_regen.as_deref().is_some_and(|rel| {
            rel == format!("{}.crt", def.file) || rel == format!("{}.key", def.file)
        });
    if no_regen && (!crt_exists || !key_exists) {
        return Ok(());
    }

    // Decide whether to regenerate, and whether the existing key is kept.
    let keep_key = if ca_minted {
        false
    } else if !crt_exists || !key_exists {
        !crt_exists && key_exists
    } else {
        let text = fsutil::read_string(&crt_path).unwrap_or_default();
        let leaf = pki::cert_ders(&text).into_iter().next();
        match leaf {
            Some(der) if pki::verifies(&der, &ca.der) => {
                let v = pki::view(&der)?;
                let left = v.not_after - ctx.now;
                if ctx.cfg.era.renews_leaves() && left <= pki::days(RENEW_DAYS) {
                    log::k3s_info(format!(
                        "certificate {} will expire in {:.6} days at {}",
                        v.subject,
                        left.as_seconds_f64() / 86400.0,
                        pki::go_time(v.not_after)
                    ));
                    false
                } else {
                    return Ok(()); // up to date
                }
            }
            _ => {
                log::k3s_info(format!(
                    "certificate {}.crt does not verify against {}.crt, regenerating",
                    def.file, def.ca
                ));
                false
            }
        }
    };

    let key = match keep_key.then(|| load_key(&key_path)).flatten() {
        Some(k) => k,
        None => {
            let k = pki::generate_ec_key()?;
            write(&key_path, pki::key_pem(&k).as_bytes(), 0o600)?;
            k
        }
    };
    let ca_view = pki::view(&ca.der)?;
    let der = pki::sign_leaf(
        &def.spec,
        &key,
        ca,
        ca_view.not_before,
        ctx.leaf_not_after(),
    )?;
    let mut text = pki::cert_pem(&der);
    text.push_str(&pki::cert_pem(&ca.der));
    write(&crt_path, text.as_bytes(), 0o644)?;
    let v = pki::view(&der)?;
    log::k3s_info(format!(
        "generated certificate {} signed by {}: notBefore={} notAfter={}",
        v.subject,
        v.issuer,
        pki::go_time(v.not_before),
        pki::go_time(v.not_after)
    ));
    Ok(())
}

/// A fresh RSA-2048 service-account key as `RSA PRIVATE KEY` PEM.
fn rsa_key_pem() -> Result<String, String> {
    use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| format!("generate RSA key: {e}"))?;
    key.to_pkcs1_pem(LineEnding::LF)
        .map(|s| s.to_string())
        .map_err(|e| format!("encode RSA key: {e}"))
}
