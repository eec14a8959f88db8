//! The `watch` daemon (placeholder until the sidecar lands).

use crate::cli::{HealthcheckArgs, WatchArgs};

pub async fn run_watch(_args: WatchArgs) -> u8 {
    eprintln!("error: watch is not built yet");
    3
}

pub async fn run_healthcheck(_args: HealthcheckArgs) -> u8 {
    eprintln!("error: healthcheck is not built yet");
    3
}
