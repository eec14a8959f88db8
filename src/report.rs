//! Reports: the `check` report in JSON and as a table like `k3s certificate check -o table`.

use serde::Serialize;

use crate::inventory::{Inventory, RenewBefore, Status};
use crate::timefmt;

/// A writer that only counts bytes.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len();
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `check` report (its JSON shape is part of the CLI contract).
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub source: String,
    #[serde(with = "timefmt::rfc3339")]
    pub checked_at: i64,
    pub renew_before_days: u32,
    pub status: Status,
    pub certificates: Vec<crate::inventory::CertRecord>,
    pub keys: Vec<String>,
    pub problems: Vec<crate::inventory::Problem>,
    /// Present only when the source could not be read (status `unknown`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Present only when the clocks disagree: every status above rests on them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::diagnose::clock::ClockSkew>,
    /// A container's Rancher and K3s versions, when its image says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub era: Option<crate::docker::Era>,
}

impl CheckReport {
    pub fn new(source: String, now: i64, renew_before: RenewBefore, inv: &Inventory) -> Self {
        Self {
            source,
            checked_at: now,
            renew_before_days: renew_before.as_days(),
            status: inv.overall(),
            certificates: inv.sorted_for_display().into_iter().cloned().collect(),
            keys: inv.keys.clone(),
            problems: inv.problems.clone(),
            error: None,
            clock: None,
            era: None,
        }
    }

    pub fn unknown(source: String, now: i64, renew_before: RenewBefore, error: String) -> Self {
        Self {
            source,
            checked_at: now,
            renew_before_days: renew_before.as_days(),
            status: Status::Unknown,
            certificates: vec![],
            keys: vec![],
            problems: vec![],
            error: Some(error),
            clock: None,
            era: None,
        }
    }

    /// Pretty JSON. Serialized twice: once to count its bytes, once into a buffer of exactly
    /// that size — a growing buffer would hold up to twice the report's size while it doubles
    /// (20 MB for a 10 000-file tree, more than the rest of `check` together).
    pub fn to_json(&self) -> String {
        let fail = |e: serde_json::Error| format!("{{\"error\":\"{e}\"}}");
        let mut counter = ByteCount(0);
        if let Err(e) = serde_json::to_writer_pretty(&mut counter, self) {
            return fail(e);
        }
        let mut buf = Vec::with_capacity(counter.0);
        match serde_json::to_writer_pretty(&mut buf, self) {
            // serde_json writes valid UTF-8 only.
            Ok(()) => String::from_utf8(buf).unwrap_or_default(),
            Err(e) => fail(e),
        }
    }

    /// Table: leaves first, soonest expiry first; problems after.
    pub fn to_table(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "FILENAME".into(),
            "SUBJECT".into(),
            "ISSUER".into(),
            "EXPIRES".into(),
            "RESIDUAL TIME".into(),
            "STATUS".into(),
        ]];
        for c in &self.certificates {
            let file = if c.index == 0 {
                c.path.clone()
            } else {
                format!("{} [{}]", c.path, c.index)
            };
            rows.push([
                file,
                c.subject.clone(),
                c.issuer.clone(),
                timefmt::table_date(c.not_after),
                timefmt::residual(c.seconds_left),
                c.status.table_label().to_string(),
            ]);
        }
        let mut widths = [0usize; 6];
        for r in &rows {
            for (i, cell) in r.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = format!(
            "source: {}  checked: {}  renew-before: {} days  status: {}\n",
            self.source,
            timefmt::rfc3339(self.checked_at),
            self.renew_before_days,
            self.status.table_label()
        );
        for r in &rows {
            let line: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
                .collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
        }
        if !self.keys.is_empty() {
            out.push_str(&format!("keys (not read): {}\n", self.keys.join(", ")));
        }
        if !self.problems.is_empty() {
            out.push_str("PROBLEMS\n");
            for p in &self.problems {
                out.push_str(&format!(
                    "  {}  {}  {}\n",
                    p.path,
                    p.reason.as_str(),
                    p.detail
                ));
            }
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("error: {e}\n"));
        }
        if let Some(e) = self.era.as_ref().filter(|e| e.is_known()) {
            out.push_str(&format!(
                "rancher: {}  k3s: {}\n",
                e.rancher.as_deref().unwrap_or("?"),
                e.k3s.as_deref().unwrap_or("?")
            ));
        }
        if let Some(c) = &self.clock {
            out.push_str(&format!("CLOCK: {}\n", c.reason));
        }
        out
    }
}
