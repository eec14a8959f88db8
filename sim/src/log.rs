//! Rancher-style log lines on stdout: `2006/01/02 15:04:05 [INFO] message` (UTC).
//!
//! Every line is written with one `write_all` and flushed at once, so that
//! `docker logs` shows it immediately even though stdout is a pipe.

use std::io::Write;
use time::macros::format_description;
use time::OffsetDateTime;

/// Writes one line with the given level (`INFO`, `WARN`, `FATAL`, ...).
pub fn line(level: &str, msg: &str) {
    let fmt = format_description!("[year]/[month]/[day] [hour]:[minute]:[second]");
    let ts = OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "0000/00/00 00:00:00".into());
    let text = format!("{ts} [{level}] {msg}\n");
    let mut out = std::io::stdout().lock();
    // Nothing sensible can be done if stdout is gone; keep running.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `[INFO] ...`
pub fn info(msg: impl AsRef<str>) {
    line("INFO", msg.as_ref());
}

/// `[WARN] ...`
pub fn warn(msg: impl AsRef<str>) {
    line("WARN", msg.as_ref());
}

/// `[FATAL] ...` (the caller decides whether to exit).
pub fn fatal(msg: impl AsRef<str>) {
    line("FATAL", msg.as_ref());
}
