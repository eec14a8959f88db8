//! One run at a time per target: a one-shot `repair` and the sidecar — in different
//! containers, sharing the backup volume or not — never act on the same container at once.
//!
//! Two locks, taken in this order and released in reverse:
//! 1. `flock` on `<backup-dir>/.lock.<id>`: runs that share the backup directory (and so the
//!    journal). The kernel releases it when its holder dies, however it dies.
//! 2. A lease on the Docker side: a container named after the target's id, created and never
//!    started ([`crate::docker::Lease`]). The daemon refuses a second container of that name,
//!    so runs that share nothing but the daemon still exclude each other. A lease whose holder
//!    is dead (its container gone or restarted, its process gone, or past its expiry) is stale
//!    and taken over; the taker then finishes what the dead run left.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::engine::Engine;
use crate::docker::{ContainerInfo, Lease};
use crate::error::Error;
use crate::process::{Me, OwnId};

/// Run ids of the repairs in progress in this process: a lease of ours whose run is not here
/// belongs to a job that was cut, and is stale.
static ACTIVE_RUNS: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn set_active(run_id: &str, active: bool) {
    let mut g = ACTIVE_RUNS.lock().unwrap_or_else(|p| p.into_inner());
    let set = g.get_or_insert_with(HashSet::new);
    if active {
        set.insert(run_id.to_string());
    } else {
        set.remove(run_id);
    }
}

fn is_active(run_id: &str) -> bool {
    let g = ACTIVE_RUNS.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref().is_some_and(|s| s.contains(run_id))
}

/// Who this run is, for the lease it takes.
#[derive(Debug, Clone)]
pub struct Holder {
    pub me: Me,
    pub run_id: String,
    /// What the run is (`repair`, `watch`), for "busy" messages.
    pub what: &'static str,
}

impl Holder {
    pub fn new(what: &'static str) -> Self {
        Holder {
            me: crate::process::me(),
            run_id: crate::process::run_id(),
            what,
        }
    }

    fn describe(&self) -> String {
        let where_ = match &self.me.container {
            Some(OwnId::Full(id)) | Some(OwnId::Prefix(id)) => {
                format!("in container {}", &id[..12.min(id.len())])
            }
            None => format!("on host {}", self.me.host),
        };
        format!(
            "{} (pid {} {where_}, run {})",
            self.what, self.me.pid, self.run_id
        )
    }
}

/// Is a lease's holder still alive?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Alive(String),
    Stale(String),
}

/// Judge `lease` from here, at `now`.
pub async fn liveness<E: Engine>(engine: &E, lease: &Lease, me: &Me, now: i64) -> Liveness {
    // Ours (this very process): alive exactly while its run is in progress.
    if lease.host == me.host && lease.pid == me.pid && lease.pid_start == me.pid_start {
        return if is_active(&lease.run_id) {
            Liveness::Alive("a repair in progress in this process".into())
        } else {
            Liveness::Stale("left by a job of this process that was cut".into())
        };
    }
    if lease.expires <= now {
        return Liveness::Stale(format!(
            "expired at {}",
            crate::timefmt::rfc3339(lease.expires)
        ));
    }
    if let Some(c) = &lease.holder_container {
        if !lease.daemon_id.is_empty() && lease.daemon_id == engine.daemon_id() {
            return match engine.inspect(c).await {
                Err(Error::ContainerNotFound { .. }) => {
                    Liveness::Stale(format!("its container {c:.12} is gone"))
                }
                Ok(i) if !i.running => {
                    Liveness::Stale(format!("its container {c:.12} is not running"))
                }
                Ok(i) if lease.holder_started.is_some() && i.started_at != lease.holder_started => {
                    Liveness::Stale(format!("its container {c:.12} restarted since"))
                }
                Ok(_) => Liveness::Alive(format!("its container {c:.12} runs")),
                Err(e) => Liveness::Alive(format!("cannot check its container: {e}")),
            };
        }
    } else if lease.host == me.host && me.container.is_none() {
        // A process on this host, in our pid namespace.
        return match crate::process::pid_start(lease.pid) {
            Some(s) if Some(s) == lease.pid_start => {
                Liveness::Alive(format!("process {} runs", lease.pid))
            }
            _ => Liveness::Stale(format!("process {} is gone", lease.pid)),
        };
    }
    Liveness::Alive(format!(
        "cannot check its holder from here; honoured until {}",
        crate::timefmt::rfc3339(lease.expires)
    ))
}

/// Both locks, held.
#[derive(Debug)]
pub struct Held {
    flock: Option<File>,
    lease_id: String,
    run_id: String,
    /// The stale lease taken over, if any: a run died while acting on this container.
    pub took_over: Option<(Lease, String)>,
}

/// The outcome of [`acquire`].
#[derive(Debug)]
pub enum Acquired {
    Held(Box<Held>),
    /// Someone else acts on the container: who, in words.
    Busy(String),
}

fn flock(dir: &Path, target_id: &str, holder: &Holder) -> Result<Option<File>, Error> {
    let p = dir.join(format!(".lock.{}", &target_id[..12.min(target_id.len())]));
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&p)
        .map_err(|e| Error::Backup {
            path: p.display().to_string(),
            detail: format!("cannot open the lock file: {e}"),
        })?;
    match f.try_lock() {
        Ok(()) => {
            let mut f = f;
            let _ = f.set_len(0);
            let _ = writeln!(f, "{}", holder.describe());
            Ok(Some(f))
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::Backup {
            path: p.display().to_string(),
            detail: format!("cannot lock: {e}"),
        }),
    }
}

/// Take both locks on `info`, waiting up to `wait` for another run to finish. `valid_for`:
/// how long this run may take at most (the lease's expiry).
pub async fn acquire<E: Engine>(
    engine: &E,
    backup_dir: &Path,
    info: &ContainerInfo,
    holder: &Holder,
    valid_for: Duration,
    wait: Duration,
) -> Result<Acquired, Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let own_started = match &holder.me.container {
        Some(OwnId::Full(id)) => engine.inspect(id).await.ok().and_then(|i| i.started_at),
        _ => None,
    };
    loop {
        let busy = match flock(backup_dir, &info.id, holder)? {
            None => {
                let who = std::fs::read_to_string(
                    backup_dir.join(format!(".lock.{}", &info.id[..12.min(info.id.len())])),
                )
                .unwrap_or_default();
                format!(
                    "another run holds the lock on {} in {}: {}",
                    info.name,
                    backup_dir.display(),
                    who.trim()
                )
            }
            Some(file) => {
                let now = engine.now();
                let lease = Lease {
                    lease_id: String::new(),
                    target_id: info.id.clone(),
                    run_id: holder.run_id.clone(),
                    holder: holder.describe(),
                    expires: now + valid_for.as_secs() as i64,
                    daemon_id: engine.daemon_id(),
                    holder_container: match &holder.me.container {
                        Some(OwnId::Full(id)) => Some(id.clone()),
                        _ => None,
                    },
                    holder_started: own_started.clone(),
                    host: holder.me.host.clone(),
                    pid: holder.me.pid,
                    pid_start: holder.me.pid_start,
                };
                set_active(&holder.run_id, true);
                let mut took_over = None;
                let mut outcome = None;
                for _ in 0..2 {
                    match engine.create_lease(info, &lease).await {
                        Ok(None) => {
                            let lease_id = engine
                                .find_lease(&info.id)
                                .await
                                .ok()
                                .flatten()
                                .filter(|l| l.run_id == holder.run_id)
                                .map(|l| l.lease_id)
                                .unwrap_or_default();
                            outcome = Some(Ok(Held {
                                flock: Some(file),
                                lease_id,
                                run_id: holder.run_id.clone(),
                                took_over: took_over.take(),
                            }));
                            break;
                        }
                        Ok(Some(held)) => match liveness(engine, &held, &holder.me, now).await {
                            Liveness::Stale(why) => {
                                tracing::warn!(container = %info.name, holder = %held.holder, %why, "taking over a stale lease: a run died while acting on this container");
                                if !held.lease_id.is_empty() {
                                    let _ = engine.remove_lease(&held.lease_id).await;
                                }
                                took_over = Some((held, why));
                            }
                            Liveness::Alive(why) => {
                                outcome = Some(Err(format!(
                                    "another run acts on {}: {} ({why}; lease until {})",
                                    info.name,
                                    held.holder,
                                    crate::timefmt::rfc3339(held.expires)
                                )));
                                break;
                            }
                        },
                        Err(e) => {
                            set_active(&holder.run_id, false);
                            return Err(e);
                        }
                    }
                }
                match outcome {
                    Some(Ok(h)) => return Ok(Acquired::Held(Box::new(h))),
                    Some(Err(who)) => {
                        set_active(&holder.run_id, false);
                        who
                    }
                    None => {
                        set_active(&holder.run_id, false);
                        format!("the lease on {} changed hands while taking it", info.name)
                    }
                }
            }
        };
        if tokio::time::Instant::now() >= deadline {
            return Ok(Acquired::Busy(busy));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Release both locks (the lease only if it is still ours).
pub async fn release<E: Engine>(engine: &E, target_id: &str, held: Held) {
    if let Ok(Some(l)) = engine.find_lease(target_id).await {
        if l.run_id == held.run_id {
            let _ = engine.remove_lease(&l.lease_id).await;
        }
    } else if !held.lease_id.is_empty() {
        let _ = engine.remove_lease(&held.lease_id).await;
    }
    set_active(&held.run_id, false);
    drop(held.flock);
}

/// Someone acting on `info` right now, or a dead run's lease (read-only: for `watch`'s looks
/// and the decision before any lock is taken).
pub async fn lease_state<E: Engine>(
    engine: &E,
    info: &ContainerInfo,
    me: &Me,
) -> Option<(Lease, Liveness)> {
    let lease = engine.find_lease(&info.id).await.ok().flatten()?;
    let l = liveness(engine, &lease, me, engine.now()).await;
    Some((lease, l))
}
