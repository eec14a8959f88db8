//! Inventory: the pure core of the pipeline. Bytes of a TLS tree in, certificate findings out.
//!
//! No I/O and no clock: the caller passes the tree (see [`crate::source::Tree`]) and `now`.
//! Key files (`*.key`) are named only; their bytes are never parsed, logged or reported.

pub mod parse;

use serde::Serialize;

use crate::source::{EntryBody, Tree};
pub use parse::{parse_file, FileContent, ParseFailure};

/// Seconds in a day, for `--renew-before DAYS`.
pub const DAY: i64 = 86_400;

/// How close to expiry a certificate may get before it is due for renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewBefore {
    days: u32,
}

impl RenewBefore {
    pub fn days(days: u32) -> Self {
        Self { days }
    }
    pub fn as_days(self) -> u32 {
        self.days
    }
    pub fn as_seconds(self) -> i64 {
        i64::from(self.days) * DAY
    }
}

impl Default for RenewBefore {
    fn default() -> Self {
        Self::days(90)
    }
}

/// A certificate's standing against the clock and the renewal window, in the vocabulary of
/// `k3s certificate check` (OK, WARNING, EXPIRED, NOT YET VALID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    NotYetValid,
    Expired,
    /// Only for a whole report whose source could not be read.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::NotYetValid => "not_yet_valid",
            Status::Expired => "expired",
            Status::Unknown => "unknown",
        }
    }
    /// The label `k3s certificate check -o table` prints.
    pub fn table_label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::NotYetValid => "NOT YET VALID",
            Status::Expired => "EXPIRED",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// What one certificate block is, from the role of its file and its position in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CertKind {
    /// First block of a file whose first certificate is not a CA: what K3s regenerates.
    Leaf,
    /// First block of a file whose first certificate is a CA: never to be deleted.
    Ca,
    /// First block of `dynamic-cert.json`: the :6443 supervisor certificate.
    Serving,
    /// Any later block of a file (the issuing CA K3s appends after every leaf).
    Chain,
}

/// The role of a whole file, which decides what `repair` may do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    Leaf,
    Ca,
    Serving,
    Key,
    /// A file that is known and holds no certificate (`dynamic-cert-regenerate`).
    Other,
    Problem,
}

/// Why a file could not be judged. Stable codes, shared with x509-certificate-exporter where
/// they overlap, so alert rules can pin them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemReason {
    Empty,
    BadPem,
    NoCertificateFound,
    DecodeFailed,
    TooLarge,
    NotRegularFile,
    ReadFailed,
    /// A hard link to another file of the tree: judged once, under the other name.
    HardLink,
    /// Not read: the tree's byte budget was spent ([`crate::source::MAX_TREE_BYTES`]).
    TreeTooLarge,
    /// This entry and every one after it were not read ([`crate::source::MAX_ENTRIES`]).
    TooManyEntries,
    /// The whole tree holds no certificate (path `.`): never a silent OK.
    NoCertificates,
}

impl ProblemReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemReason::Empty => "empty",
            ProblemReason::BadPem => "bad_pem",
            ProblemReason::NoCertificateFound => "no_certificate_found",
            ProblemReason::DecodeFailed => "decode_failed",
            ProblemReason::TooLarge => "too_large",
            ProblemReason::NotRegularFile => "not_regular_file",
            ProblemReason::ReadFailed => "read_failed",
            ProblemReason::HardLink => "hard_link",
            ProblemReason::TreeTooLarge => "tree_too_large",
            ProblemReason::TooManyEntries => "too_many_entries",
            ProblemReason::NoCertificates => "no_certificates",
        }
    }
}

/// One certificate block found in the tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertRecord {
    /// Relative to the TLS directory, `/`-separated (`etcd/server-client.crt`).
    pub path: String,
    /// Position of the block in its file (0 = the certificate that decides the file).
    pub index: usize,
    pub kind: CertKind,
    /// RFC 4514 order, as Go and `k3s certificate check` print it: `CN=system:admin,O=system:masters`.
    pub subject: String,
    pub issuer: String,
    /// Lower-case hex without separators.
    pub serial: String,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub not_before: i64,
    #[serde(with = "crate::timefmt::rfc3339")]
    pub not_after: i64,
    pub is_ca: bool,
    /// `not_after - now`; negative once expired.
    pub seconds_left: i64,
    pub status: Status,
    /// SHA-256 of the DER, upper-case hex: how `repair` proves CAs were not touched.
    pub sha256: String,
    /// Subject and issuer common names, for metrics labels.
    #[serde(skip)]
    pub subject_cn: String,
    #[serde(skip)]
    pub issuer_cn: String,
}

/// A file that could not be judged.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: ProblemReason,
    /// Human explanation. Never contains file content.
    pub detail: String,
}

/// The classification of one file of the tree.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileRecord {
    pub path: String,
    pub role: FileRole,
}

/// Everything learnt from one TLS tree at one instant.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Inventory {
    pub certificates: Vec<CertRecord>,
    pub keys: Vec<String>,
    pub problems: Vec<Problem>,
    #[serde(skip)]
    pub files: Vec<FileRecord>,
}

/// Files K3s writes under `tls/` that hold no certificate and are not a problem.
const KNOWN_NON_CERT_FILES: &[&str] = &["dynamic-cert-regenerate"];

/// The cache of the :6443 serving certificate.
pub const SERVING_FILE: &str = "dynamic-cert.json";

pub fn status_at(not_before: i64, not_after: i64, now: i64, renew_before: RenewBefore) -> Status {
    if now < not_before {
        Status::NotYetValid
    } else if now >= not_after {
        Status::Expired
    } else if not_after - now <= renew_before.as_seconds() {
        Status::Warning
    } else {
        Status::Ok
    }
}

fn is_key_path(path: &str) -> bool {
    path.ends_with(".key")
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Judge every file of `tree` at `now` (Unix seconds).
pub fn inventory(tree: &Tree, now: i64, renew_before: RenewBefore) -> Inventory {
    let mut inv = Inventory::default();
    for entry in &tree.entries {
        let path = entry.path.clone();
        let problem = |reason: ProblemReason, detail: String, inv: &mut Inventory| {
            inv.problems.push(Problem {
                path: path.clone(),
                reason,
                detail,
            });
            inv.files.push(FileRecord {
                path: path.clone(),
                role: FileRole::Problem,
            });
        };
        match &entry.body {
            EntryBody::NotRegular(what) => problem(
                ProblemReason::NotRegularFile,
                format!("{what}; not followed"),
                &mut inv,
            ),
            EntryBody::TooLarge(size) => problem(
                ProblemReason::TooLarge,
                format!("{size} bytes, over the 1 MiB limit; not read"),
                &mut inv,
            ),
            EntryBody::ReadFailed(why) => problem(ProblemReason::ReadFailed, why.clone(), &mut inv),
            EntryBody::HardLink(to) => problem(
                ProblemReason::HardLink,
                format!("hard link to {to}"),
                &mut inv,
            ),
            EntryBody::TreeTooLarge(size) => problem(
                ProblemReason::TreeTooLarge,
                format!(
                    "{size} bytes, not read: the files read before it used the {} MiB budget of a tree",
                    crate::source::MAX_TREE_BYTES >> 20
                ),
                &mut inv,
            ),
            EntryBody::TooManyEntries(cap) => problem(
                ProblemReason::TooManyEntries,
                format!("the tree has more than {cap} entries: this one and every entry after it were not read"),
                &mut inv,
            ),
            EntryBody::File(_) if is_key_path(&entry.path) => {
                // Named only: the bytes of a key never enter the inventory.
                inv.keys.push(path.clone());
                inv.files.push(FileRecord {
                    path: path.clone(),
                    role: FileRole::Key,
                });
            }
            EntryBody::File(_) if KNOWN_NON_CERT_FILES.contains(&file_name(&entry.path)) => {
                inv.files.push(FileRecord {
                    path: path.clone(),
                    role: FileRole::Other,
                });
            }
            EntryBody::File(bytes) => {
                let serving = file_name(&entry.path) == SERVING_FILE;
                match parse_file(bytes, serving) {
                    Err(ParseFailure { reason, detail }) => problem(reason, detail, &mut inv),
                    Ok(FileContent { certs }) => {
                        let first_is_ca = certs.first().map(|c| c.is_ca).unwrap_or(false);
                        let role = if serving {
                            FileRole::Serving
                        } else if first_is_ca {
                            FileRole::Ca
                        } else {
                            FileRole::Leaf
                        };
                        for (index, c) in certs.into_iter().enumerate() {
                            let kind = match (index, role) {
                                (0, FileRole::Serving) => CertKind::Serving,
                                (0, FileRole::Ca) => CertKind::Ca,
                                (0, _) => CertKind::Leaf,
                                _ => CertKind::Chain,
                            };
                            inv.certificates.push(CertRecord {
                                path: path.clone(),
                                index,
                                kind,
                                subject: c.subject,
                                issuer: c.issuer,
                                serial: c.serial,
                                not_before: c.not_before,
                                not_after: c.not_after,
                                is_ca: c.is_ca,
                                seconds_left: c.not_after.saturating_sub(now),
                                status: status_at(c.not_before, c.not_after, now, renew_before),
                                sha256: c.sha256,
                                subject_cn: c.subject_cn,
                                issuer_cn: c.issuer_cn,
                            });
                        }
                        inv.files.push(FileRecord { path, role });
                    }
                }
            }
        }
    }
    inv.keys.sort();
    if inv.certificates.is_empty() {
        // An empty or wrong directory must not pass as healthy.
        inv.problems.push(Problem {
            path: NO_CERTIFICATES_PATH.into(),
            reason: ProblemReason::NoCertificates,
            detail: format!(
                "no certificate in the whole tree ({} files, {} keys): is this a K3s TLS directory?",
                tree.entries.len(),
                inv.keys.len()
            ),
        });
    }
    inv
}

/// The path of a problem about the whole tree.
pub const NO_CERTIFICATES_PATH: &str = ".";

impl Inventory {
    /// The certificates that decide their file's status (block 0 of every file).
    pub fn deciding(&self) -> impl Iterator<Item = &CertRecord> {
        self.certificates
            .iter()
            .filter(|c| c.kind != CertKind::Chain)
    }

    /// Worst status: expired, then not yet valid, then warning (a due certificate or any
    /// problem file), else ok.
    pub fn overall(&self) -> Status {
        let worst = self
            .deciding()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok);
        if worst < Status::Warning && !self.problems.is_empty() {
            Status::Warning
        } else {
            worst
        }
    }

    /// Leaves and the serving certificate: what K3s regenerates and `repair` may renew.
    pub fn renewable(&self) -> impl Iterator<Item = &CertRecord> {
        self.certificates
            .iter()
            .filter(|c| matches!(c.kind, CertKind::Leaf | CertKind::Serving))
    }

    /// Paths of the CA files, with the fingerprint of their first certificate.
    pub fn ca_fingerprints(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .certificates
            .iter()
            .filter(|c| c.kind == CertKind::Ca)
            .map(|c| (c.path.clone(), c.sha256.clone()))
            .collect();
        v.sort();
        v
    }

    pub fn role_of(&self, path: &str) -> Option<FileRole> {
        self.files.iter().find(|f| f.path == path).map(|f| f.role)
    }

    /// Certificates sorted for display: leaves and the serving cert first, then CAs, then
    /// chain blocks; soonest expiry first within each group.
    pub fn sorted_for_display(&self) -> Vec<&CertRecord> {
        let rank = |k: CertKind| match k {
            CertKind::Leaf | CertKind::Serving => 0,
            CertKind::Ca => 1,
            CertKind::Chain => 2,
        };
        let mut v: Vec<&CertRecord> = self.certificates.iter().collect();
        v.sort_by(|a, b| {
            rank(a.kind)
                .cmp(&rank(b.kind))
                .then(a.not_after.cmp(&b.not_after))
                .then(a.path.cmp(&b.path))
                .then(a.index.cmp(&b.index))
        });
        v
    }
}

#[cfg(test)]
mod tests;
