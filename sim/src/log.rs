//! Rancher-style log lines on stdout: `2006/01/02 15:04:05 [INFO] message` (UTC).
//!
//! Every line is written with one `write_all` and flushed at once, so that
//! `docker logs` shows it immediately even though stdout is a pipe.
//!
//! k3s's own lines (`k3s_*`) go to stdout too, unless `SIM_K3S_LOG=file`
//! sends them to `/var/lib/rancher/k3s.log` (appended), like Rancher
//! >= v2.5.10 which starts k3s with `--log=./k3s.log` (rancher/norman commit 986dd5b2, `pkg/kwrapper/k8s/k3s_linux.go`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::paths::{p, K3S_LOG};

/// Whether k3s's lines go to [`K3S_LOG`] instead of stdout.
static K3S_TO_FILE: AtomicBool = AtomicBool::new(false);

/// Sends k3s's lines to the log file (`true`) or stdout (`false`).
pub fn set_k3s_to_file(on: bool) {
    K3S_TO_FILE.store(on, Ordering::Relaxed);
}

fn format_line(level: &str, msg: &str) -> String {
    let fmt = format_description!("[year]/[month]/[day] [hour]:[minute]:[second]");
    let ts = OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "0000/00/00 00:00:00".into());
    format!("{ts} [{level}] {msg}\n")
}

/// Writes one line with the given level (`INFO`, `WARN`, `FATAL`, ...).
pub fn line(level: &str, msg: &str) {
    let text = format_line(level, msg);
    let mut out = std::io::stdout().lock();
    // Nothing sensible can be done if stdout is gone; keep running.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// One of k3s's own lines: stdout, or appended to [`K3S_LOG`].
pub fn k3s_line(level: &str, msg: &str) {
    if !K3S_TO_FILE.load(Ordering::Relaxed) {
        return line(level, msg);
    }
    let path = p(K3S_LOG);
    let text = format_line(level, msg);
    // A log file that cannot be written is not worth dying for.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// k3s's `[INFO] ...`
pub fn k3s_info(msg: impl AsRef<str>) {
    k3s_line("INFO", msg.as_ref());
}

/// k3s's `[WARN] ...`
pub fn k3s_warn(msg: impl AsRef<str>) {
    k3s_line("WARN", msg.as_ref());
}

/// k3s's `[FATAL] ...`
pub fn k3s_fatal(msg: impl AsRef<str>) {
    k3s_line("FATAL", msg.as_ref());
}

/// `[INFO] ...`
pub fn info(msg: impl AsRef<str>) {
    line("INFO", msg.as_ref());
}

/// `[FATAL] ...` (the caller decides whether to exit).
pub fn fatal(msg: impl AsRef<str>) {
    line("FATAL", msg.as_ref());
}
