//! The exposition of the metrics: which text format a scrape gets ([`Format::negotiate`]), the
//! classic format rewritten from prometheus-client's OpenMetrics ([`openmetrics_to_text`]),
//! and label values escaped as both formats require ([`LabelValue`]).

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// The content type of the OpenMetrics output.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`# EOF`, `info` and counter families without their suffix).
    OpenMetrics,
    /// The classic text format 0.0.4, what `promtool check metrics` and older scrapers read.
    Text,
}

impl Format {
    /// OpenMetrics when `Accept` names it with a quality at least that of the classic format
    /// (`text/plain`, `text/*`, `*/*`), the classic format otherwise (no `Accept`, `*/*`,
    /// `text/plain`). Formats this server cannot produce (protobuf) do not count. Prometheus
    /// 2.42 sends `application/openmetrics-text;version=1.0.0,application/openmetrics-text;
    /// version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1` (`acceptHeader` of its
    /// scrape/scrape.go, as compiled into Debian's 2.42.0 binary).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Format::Text => TEXT_CONTENT_TYPE,
        }
    }
}

/// A label value. Encoded escaped (`\` → `\\`, `"` → `\"`, newline → `\n`), the one escaping
/// both the OpenMetrics and the 0.0.4 text format define for label values.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelValue(pub String);

impl From<&str> for LabelValue {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for LabelValue {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl EncodeLabelValue for LabelValue {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write_escaped(encoder, &self.0)
    }
}

/// Write `s` as an escaped label value.
pub fn write_escaped(w: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let replacement = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        w.write_str(replacement)?;
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// Rewrite prometheus-client's OpenMetrics text as the classic text format 0.0.4: the family
/// name of a counter takes its `_total` suffix and that of an info its `_info` suffix (then a
/// gauge), `# UNIT` and `# EOF` go. Sample lines are the same in both formats (label escaping
/// included), so they pass unchanged. Only the types this module emits are handled.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    // prometheus-client writes `# HELP` before `# TYPE`: hold the help until the type names
    // the family.
    let mut help: Option<(&str, &str)> = None;
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (family, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                _ => (name.to_string(), "untyped"),
            };
            if let Some((help_name, text)) = help.take() {
                if help_name == name {
                    let _ = writeln!(out, "# HELP {family} {text}");
                }
            }
            let _ = writeln!(out, "# TYPE {family} {kind}");
        } else if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
