//! What an interrupted repair left on a container, seen by a read-only look (its journal, or
//! the lease of a run that died) — or another run acting on it right now.

use std::path::Path;

use super::engine::Engine;
use super::journal::{self, Phase};
use super::lock::{self, Liveness};
use crate::docker::ContainerInfo;
use crate::process::Me;

/// Work an interrupted repair left on a container, as seen by a read-only look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// A journal of this container: a repair was interrupted at this step.
    Journal(Phase),
    /// A journal exists but is not acted upon (unreadable, or it fails validation).
    Refused(String),
    /// The lease of a run that died while acting on it (its journal may live elsewhere).
    Abandoned(String),
    /// Another run acts on it right now.
    Busy(String),
}

impl Pending {
    /// Work to finish now (rather than wait for, or refuse).
    pub fn needs_finishing(&self) -> bool {
        matches!(self, Pending::Journal(_) | Pending::Abandoned(_))
    }

    pub fn describe(&self) -> String {
        match self {
            Pending::Journal(p) => format!(
                "a repair was interrupted at step `{}`: finishing it",
                p.as_str()
            ),
            Pending::Refused(why) => format!("an interrupted repair's journal is refused: {why}"),
            Pending::Abandoned(why) => {
                format!("a run died while acting on this container ({why}): finishing its job")
            }
            Pending::Busy(who) => who.clone(),
        }
    }
}

/// What an interrupted repair left on `info` (read-only).
pub async fn pending<E: Engine>(
    engine: &E,
    backup_dir: Option<&Path>,
    info: &ContainerInfo,
    tls_path: &str,
    me: &Me,
) -> Option<Pending> {
    if let Some(dir) = backup_dir {
        match journal::load(dir, info) {
            Ok(Some(j)) => {
                return Some(match j.validate(info, tls_path) {
                    Ok(()) => Pending::Journal(j.phase),
                    Err(r) => Pending::Refused(r.to_string()),
                })
            }
            Ok(None) => {}
            Err(r) => return Some(Pending::Refused(r.to_string())),
        }
    }
    match lock::lease_state(engine, info, me).await {
        Some((lease, Liveness::Alive(why))) => Some(Pending::Busy(format!(
            "another run acts on {}: {} ({why})",
            info.name, lease.holder
        ))),
        Some((lease, Liveness::Stale(why))) => {
            Some(Pending::Abandoned(format!("{}: {why}", lease.holder)))
        }
        None => None,
    }
}
