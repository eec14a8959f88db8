//! Archive names: one container's archives, and only its own, recognised exactly.

// ---------------------------------------------------------------- archive names

/// A target as it appears in file names: `[A-Za-z0-9_.-]` kept (a leading `.` excepted),
/// every other byte `%XX`. Injective, so no two targets share a name; the identity on Docker
/// container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), so their archive names are unchanged.
pub fn escape_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for (i, b) in target.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// `<escaped target>-<YYYYMMDD>T<HHMMSS>Z[-<n>].tar`: the archive of `target` taken at `now`
/// (`n` ≥ 1 when several are taken in one second).
pub(super) fn archive_name(target: &str, now: i64, n: u32) -> String {
    let stamp = crate::timefmt::rfc3339(now).replace([':', '-'], "");
    if n == 0 {
        format!("{}-{stamp}.tar", escape_target(target))
    } else {
        format!("{}-{stamp}-{n}.tar", escape_target(target))
    }
}

/// True when `name` parses exactly as an archive name of `target` (see [`archive_name`]):
/// `rancher` never matches `rancher-2-20261124T172347Z.tar` nor `rancher-2019-pre-upgrade.tar`.
pub fn is_archive_of(name: &str, target: &str) -> bool {
    let Some(rest) = name
        .strip_prefix(&escape_target(target))
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(".tar"))
    else {
        return false;
    };
    let (stamp, n) = match rest.split_once('-') {
        Some((s, n)) => (s, Some(n)),
        None => (rest, None),
    };
    let b = stamp.as_bytes();
    let stamp_ok = b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z';
    let n_ok = n.is_none_or(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
    stamp_ok && n_ok
}

/// A temporary of an archive of `target` (`.<archive name>.tmp`), left by a killed run.
pub(super) fn is_temporary_of(name: &str, target: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".tmp"))
        .is_some_and(|n| is_archive_of(n, target))
}
