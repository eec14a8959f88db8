//! The log classifier and K3s's log file: `diagnose::logs::scan` / `classify_line` and
//! `diagnose::logfile::lines_since` / `timestamp` on any text a container can print.
//!
//! Input: 1 control byte (bit 0: the text is repeated up to 256 KiB, so that work that grows
//! faster than the input shows as a hang), 5 bytes `since`, 2 bytes the year, then the text.
//!
//! Properties: no panic; linear time (the fuzzer's timeout); bounded output: at most
//! `MAX_SAMPLES` samples of at most `SAMPLE_CHARS` characters without control characters,
//! and `lines_since` returns a subset of the lines it was given.

use rancher_cert_guard::diagnose::logfile::{lines_since, timestamp};
use rancher_cert_guard::diagnose::logs::{
    classify_line, scan, LineClass, MAX_SAMPLES, SAMPLE_CHARS,
};
use rancher_cert_guard_fuzz::Input;

const REPEATED: usize = 256 * 1024;

fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let control = input.byte();
    let since = input.time();
    let year = i32::from(input.u16() as i16) + 2000;
    let text = String::from_utf8_lossy(input.rest());
    let text = if control & 1 == 1 && !text.is_empty() {
        text.repeat(REPEATED.div_ceil(text.len()))
    } else {
        text.into_owned()
    };

    let found = scan(&text);
    assert!(found.samples.len() <= MAX_SAMPLES);
    for s in &found.samples {
        assert!(s.chars().count() <= SAMPLE_CHARS);
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }
    let mut classes = 0;
    for line in text.split('\n') {
        if !matches!(
            classify_line(line),
            LineClass::Unrelated | LineClass::K3sExited
        ) {
            classes += 1;
        }
        let _ = timestamp(line, year);
    }
    // A sample is taken from the first lines that are about certificates, and only from them.
    assert_eq!(found.samples.len(), classes.min(MAX_SAMPLES));

    let recent = lines_since(&text, since, year);
    assert!(recent.len() <= text.len() + 1);
    // Compared without a final `\r`: `str::lines` keeps one that ends the text without a
    // `\n`, and the `\n` that `lines_since` appends makes it a CRLF ending.
    let unended = |l: &str| l.strip_suffix('\r').unwrap_or(l).to_string();
    let lines: std::collections::HashSet<String> = text.lines().map(unended).collect();
    assert!(recent.lines().all(|l| lines.contains(&unended(l))));
}

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}
