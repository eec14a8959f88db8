//! The `--window` parser: `"…".parse::<watch::schedule::Window>()`.
//!
//! Input: 5 bytes a time `t`, then the window's text.
//!
//! Properties: no panic; a parsed window prints as text that parses to the same window; the
//! next opening after `t` is inside the window, after `t`, and within a week.

use rancher_cert_guard::watch::schedule::Window;
use rancher_cert_guard_fuzz::Input;

fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let t = input.time();
    let Ok(text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    let Ok(w) = text.parse::<Window>() else {
        return;
    };
    let printed = w.to_string();
    assert_eq!(
        printed.parse::<Window>(),
        Ok(w),
        "{text:?} printed as {printed:?}"
    );
    let open = w.next_open(t);
    assert!(
        open > t && open - t <= 8 * 86_400,
        "{printed}: next_open({t}) = {open}"
    );
    assert!(
        w.contains(open),
        "{printed} does not contain its own opening {open}"
    );
}

fn main() {
    afl::fuzz!(|data: &[u8]| check(data));
}
