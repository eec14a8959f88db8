//! What a look at a container gathers besides its TLS tree: the logs since its last start
//! (Docker's, and the end of K3s's own log file), and its era — the Rancher and K3s versions
//! it carries, where remedies differ between them.

use serde::Serialize;

use super::engine::Engine;
use super::plan::{signatures, Signature};
use crate::diagnose::clock::{check_clock, ClockSkew, DEFAULT_TOLERANCE_SECS};
use crate::diagnose::logfile::{self, K3S_LOG_PATH, TAIL_BYTES};
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

/// The Rancher and embedded K3s versions of a container, from its image's environment
/// (`ENV CATTLE_SERVER_VERSION` and `ENV CATTLE_K3S_VERSION` in rancher/rancher's
/// package/Dockerfile).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Era {
    pub rancher: Option<String>,
    pub k3s: Option<String>,
}

impl Era {
    pub fn of(info: &ContainerInfo) -> Self {
        let get = |k: &str| {
            info.env
                .iter()
                .find_map(|e| e.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(str::to_string)
                .filter(|v| !v.is_empty())
        };
        Era {
            rancher: get("CATTLE_SERVER_VERSION"),
            k3s: get("CATTLE_K3S_VERSION"),
        }
    }

    pub fn is_known(&self) -> bool {
        self.rancher.is_some() || self.k3s.is_some()
    }

    /// (major, minor) of the embedded K3s, e.g. `v1.18.8+k3s1` → (1, 18).
    pub fn k3s_minor(&self) -> Option<(u32, u32)> {
        let v = self.k3s.as_deref()?.trim_start_matches('v');
        let mut it = v.split(['.', '+', '-']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }

    /// Does this K3s honour `tls/dynamic-cert-regenerate`? K3s of Rancher ≤ v2.5.7
    /// (v0.8, v1.17, v1.18, dynamiclistener ≤ v0.2.0) never reads it; writing it there only
    /// leaves a stray file. Unknown versions get it (it is harmless).
    pub fn honours_regenerate_trigger(&self) -> bool {
        !matches!(self.k3s_minor(), Some((0, _)) | Some((1, 0..=18)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_from_the_image_environment() {
        let mut i = ContainerInfo {
            id: "x".into(),
            name: "r".into(),
            image: String::new(),
            image_id: String::new(),
            status: String::new(),
            running: true,
            restarting: false,
            started_at: None,
            restart_count: 0,
            labels: Default::default(),
            auto_remove: false,
            env: vec![
                "PATH=/bin".into(),
                "CATTLE_SERVER_VERSION=v2.5.7".into(),
                "CATTLE_K3S_VERSION=v1.18.8+k3s1".into(),
            ],
        };
        let e = Era::of(&i);
        assert_eq!(e.rancher.as_deref(), Some("v2.5.7"));
        assert_eq!(e.k3s_minor(), Some((1, 18)));
        assert!(!e.honours_regenerate_trigger());
        i.env = vec!["CATTLE_K3S_VERSION=v1.21.7+k3s1".into()];
        assert!(Era::of(&i).honours_regenerate_trigger());
        i.env = vec![];
        assert!(!Era::of(&i).is_known());
        assert!(Era::of(&i).honours_regenerate_trigger());
    }
}
