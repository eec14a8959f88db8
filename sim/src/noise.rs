//! `SIM_NOISE=1`: a healthy Rancher is not a quiet one. While it serves,
//! a real Rancher server logs x509 errors about downstream clusters, agents,
//! catalogs, its webhook and browsers — none of them about its embedded k3s.
//! This prints such lines (from [`crate::noise_lines`], each quoted in a
//! public issue) every ~0.5 s, round-robin, for as long as the process lives.

use std::time::Duration;

use crate::log;
use crate::noise_lines::NOISE_LINES;

/// Time between two noise lines.
const EVERY: Duration = Duration::from_millis(500);

/// Starts the noise in a background thread.
pub fn start() {
    std::thread::spawn(|| {
        for (level, msg, _source) in NOISE_LINES.iter().cycle() {
            std::thread::sleep(EVERY);
            log::line(level, msg);
        }
    });
}
