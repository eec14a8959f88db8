//! What a look at a container gathers besides its TLS tree: the logs since its last start
//! (Docker's, and the end of K3s's own log file), and its era — the Rancher and K3s versions
//! it carries, where remedies differ between them.

use super::engine::Engine;
use super::plan::{signatures, Signature};
use crate::diagnose::clock::{check_clock, ClockSkew, DEFAULT_TOLERANCE_SECS};
use crate::diagnose::logfile::{self, K3S_LOG_PATH, TAIL_BYTES};
pub use crate::docker::Era;
use crate::docker::{parse_rfc3339_nanos, ContainerInfo};
use crate::error::Error;
use crate::inventory::{inventory, Inventory, RenewBefore};
use crate::source::Tree;

/// A read-only look at a container: what `repair` decides on, and what `watch` reports.
#[derive(Debug, Clone)]
pub struct Look {
    pub tree: Tree,
    pub inv: Inventory,
    /// Failure signatures of the embedded K3s since the last start.
    pub sigs: Vec<Signature>,
    pub logs_unreadable: Option<String>,
    /// The clocks cannot be trusted: nothing may be changed.
    pub clock: Option<ClockSkew>,
    pub era: Era,
    pub now: i64,
}

/// Read and judge `info`'s tree, its logs since its last start, the clocks and its era.
pub async fn look<E: Engine>(
    engine: &E,
    info: &ContainerInfo,
    tls_path: &str,
    renew_before: RenewBefore,
) -> Result<Look, Error> {
    let now = engine.now();
    let tree = engine.read_tree(&info.id, tls_path).await?;
    let inv = inventory(&tree, now, renew_before);
    let since = info
        .started_at
        .as_deref()
        .and_then(parse_rfc3339_nanos)
        .unwrap_or(0);
    let logs = logs_since(engine, info, since).await;
    let daemon_now = engine.daemon_time().await.ok();
    let clock = check_clock(now, daemon_now, &inv, DEFAULT_TOLERANCE_SECS).err();
    Ok(Look {
        tree,
        sigs: signatures(&logs.text),
        inv,
        logs_unreadable: logs.unreadable,
        clock,
        era: Era::of(info),
        now,
    })
}

/// The logs a decision rests on.
#[derive(Debug, Clone, Default)]
pub struct Logs {
    /// Docker's log lines since the start, then K3s's own since the start.
    pub text: String,
    /// Why the container's logs could not be read (the decision then rests on the
    /// certificates alone).
    pub unreadable: Option<String>,
}

/// The logs of `info` written at or after `since_nanos` (Unix nanoseconds).
pub async fn logs_since<E: Engine>(engine: &E, info: &ContainerInfo, since_nanos: i128) -> Logs {
    let mut out = Logs::default();
    match engine.logs_since(&info.id, since_nanos, 2000).await {
        Ok(t) => out.text = t,
        Err(e) => {
            out.unreadable = Some(format!(
                "the container's logs could not be read ({e}); the decision rests on the certificates alone"
            ))
        }
    }
    if let Ok(Some(tail)) = engine.read_tail(&info.id, K3S_LOG_PATH, TAIL_BYTES).await {
        let since = (since_nanos / 1_000_000_000) as i64;
        let year = time::OffsetDateTime::from_unix_timestamp(engine.now())
            .map(|t| t.year())
            .unwrap_or(2026);
        out.text.push_str(&logfile::lines_since(
            &String::from_utf8_lossy(&tail),
            since,
            year,
        ));
    }
    out
}
