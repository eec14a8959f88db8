//! Time formatting shared by reports, logs and metrics: Unix seconds in, RFC 3339 out.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Unix seconds as RFC 3339 UTC (`2025-06-10T10:24:50Z`).
pub fn rfc3339(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ts.to_string())
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `Jan 02, 2006 15:04 UTC`, the EXPIRES column of `k3s certificate check -o table`.
pub fn table_date(ts: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{} {:02}, {} {:02}:{:02} UTC",
            MONTHS[t.month() as usize - 1],
            t.day(),
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => ts.to_string(),
    }
}

/// Humanized residual time: `10 years`, `3 months`, `20 days`, `5 hours`, `-5 days`.
pub fn residual(seconds: i64) -> String {
    let (sign, s) = if seconds < 0 {
        ("-", -seconds)
    } else {
        ("", seconds)
    };
    let (n, unit) = if s >= 365 * 86_400 {
        (s / (365 * 86_400), "year")
    } else if s >= 60 * 86_400 {
        (s / (30 * 86_400), "month")
    } else if s >= 86_400 {
        (s / 86_400, "day")
    } else if s >= 3_600 {
        (s / 3_600, "hour")
    } else if s >= 60 {
        (s / 60, "minute")
    } else {
        (s, "second")
    };
    format!("{sign}{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// serde adapter: `i64` Unix seconds serialized as RFC 3339.
pub mod rfc3339 {
    pub fn serialize<S: serde::Serializer>(ts: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(table_date(1_749_551_090), "Jun 10, 2025 10:24 UTC");
        assert_eq!(residual(365 * 86_400 * 10), "10 years");
        assert_eq!(residual(20 * 86_400 + 5), "20 days");
        assert_eq!(residual(-5 * 86_400), "-5 days");
        assert_eq!(residual(86_400), "1 day");
    }
}
