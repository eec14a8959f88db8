//! The embedded K3s's own log file. Rancher ≥ v2.5.10 and ≥ v2.6.0 start K3s with
//! `--log=./k3s.log` (rancher/norman commit 986dd5b2, `pkg/kwrapper/k8s/k3s_linux.go`), so its lines land in
//! `/var/lib/rancher/k3s.log` and `docker logs` shows only Rancher's. The file outlives every
//! restart: only the lines written since the container's last start may decide anything, or
//! a failure fixed a year ago would call for a repair forever.

/// Where Rancher ≥ v2.5.10 makes K3s write its log (the image's `WORKDIR` is /var/lib/rancher).
pub const K3S_LOG_PATH: &str = "/var/lib/rancher/k3s.log";

/// At most this much of the end of the file is read.
pub const TAIL_BYTES: usize = 256 * 1024;

/// The lines of `text` (the end of the log file) written at or after `since` (Unix seconds).
/// A line's time is its own leading timestamp, or the last one seen before it (continuation
/// lines); lines before the first timestamp are dropped (the tail cut them from their own).
/// `year`: the current year, for klog lines (`E1126 05:44:30.123456 …`), which carry none.
pub fn lines_since(text: &str, since: i64, year: i32) -> String {
    let mut out = String::new();
    let mut current: Option<i64> = None;
    for line in text.lines() {
        if let Some(t) = timestamp(line, year) {
            current = Some(t);
        }
        if current.is_some_and(|t| t >= since) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A field of ASCII digits, taken by bytes: a line is any text, and a field cut through a
/// multi-byte character is simply not a number (slicing the `str` there panicked).
fn num(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    b.iter().try_fold(0i64, |n, c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

fn unix(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// `2024-01-02T03:04:05…` or `2024/01/02 03:04:05` at `s`'s start.
fn ymd_hms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || !matches!(b[4], b'-' | b'/') || b[7] != b[4] || !matches!(b[10], b'T' | b' ')
    {
        return None;
    }
    unix(
        num(&b[0..4])?,
        num(&b[5..7])?,
        num(&b[8..10])?,
        num(&b[11..13])?,
        num(&b[14..16])?,
        num(&b[17..19])?,
    )
}

/// The leading timestamp of a K3s log line, in the forms K3s writes: logrus text
/// (`time="2024-01-02T03:04:05Z" level=…`), RFC 3339 or `YYYY/MM/DD hh:mm:ss` first, or klog
/// (`I0102 03:04:05.123456  …`).
pub fn timestamp(line: &str, year: i32) -> Option<i64> {
    let l = line.trim_start();
    if let Some(rest) = l.strip_prefix("time=\"") {
        return ymd_hms(rest);
    }
    if let Some(t) = ymd_hms(l) {
        return Some(t);
    }
    let b = l.as_bytes();
    if b.len() >= 14 && matches!(b[0], b'I' | b'W' | b'E' | b'F') && b[5] == b' ' && b[8] == b':' {
        return unix(
            i64::from(year),
            num(&b[1..3])?,
            num(&b[3..5])?,
            num(&b[6..8])?,
            num(&b[9..11])?,
            num(&b[12..14])?,
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_the_forms_k3s_writes() {
        let t = 1_764_126_245; // 2025-11-26T03:04:05Z
        assert_eq!(
            timestamp(
                "time=\"2025-11-26T03:04:05Z\" level=info msg=\"Starting k3s\"",
                2025
            ),
            Some(t)
        );
        assert_eq!(timestamp("2025/11/26 03:04:05 [ERROR] x", 2025), Some(t));
        assert_eq!(timestamp("2025-11-26T03:04:05.123Z x", 2025), Some(t));
        assert_eq!(
            timestamp("E1126 03:04:05.123456    1234 file.go:1] x", 2025),
            Some(t)
        );
        assert_eq!(timestamp("  continuation of a stack trace", 2025), None);
        assert_eq!(timestamp("time=\"garbage", 2025), None);
        assert_eq!(timestamp("2025/13/40 99:99:99 x", 2025), None);
    }

    /// Found by the fuzz target `logs` (fuzz/RESULTS.md): a multi-byte character where a
    /// digit belongs (`17é08:36`) panicked — the fields were sliced out of the `str` by byte
    /// offsets. Any line of `/var/lib/rancher/k3s.log`, which a process of the container can
    /// write, stopped the diagnosis.
    #[test]
    fn a_character_cut_by_a_field_is_not_a_panic() {
        for line in [
            "2020/02/23 17\u{e9}08:36 [INFO] Waiting for server",
            "2018-11-28T11\u{fffd}36Z level=error",
            "2018/08/13 t\u{fffd}10:20:27 [INFO]",
            "2018/03/16 00:43:\u{fffd}s35 [ERROR]",
            "time=\"2019-08-31T03:55:t\u{fffd}00Z\" level=error",
            "E1126 03:04:0\u{e9}.123456 1 x.go:1] x",
            "E1126 03:0\u{e9}:05.123456 1 x.go:1] x",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            assert_eq!(timestamp(line, 2025), None, "{line:?}");
        }
        assert_eq!(
            lines_since(
                "2025/11/26 03:04:05 ok\n2025/11/26 03\u{e9}04:06 cut\n",
                0,
                2025
            ),
            "2025/11/26 03:04:05 ok\n2025/11/26 03\u{e9}04:06 cut\n"
        );
    }

    #[test]
    fn only_lines_since_the_last_start_count() {
        let text = "cut line without a time\n\
                    2025/11/26 03:00:00 [ERROR] old failure x509: certificate has expired\n\
                    \tcontinuation of the old one\n\
                    time=\"2025-11-26T03:04:05Z\" level=info msg=\"Starting k3s\"\n\
                    \tcontinuation of the new one\n\
                    E1126 03:05:00.000000   1 x.go:1] new failure\n";
        let got = lines_since(text, 1_764_126_245, 2025);
        assert_eq!(
            got,
            "time=\"2025-11-26T03:04:05Z\" level=info msg=\"Starting k3s\"\n\tcontinuation of the new one\nE1126 03:05:00.000000   1 x.go:1] new failure\n"
        );
    }
}
