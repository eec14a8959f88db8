//! The Docker events stream, kept alive: subscribe, forward target events to the loop as
//! [`Trigger`]s, and when the daemon goes away (restart, socket proxy cut, upgrade) reconnect
//! with exponential backoff. Every (re)connection sends [`Trigger::Resync`], so what happened
//! while the stream was down is found by listing again — after subscribing, never before.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::targets::{trigger_for, Selector, Trigger};

/// Exponential backoff with a cap and ±20 % jitter (so a fleet of sidecars does not reconnect
/// in lockstep after a daemon restart).
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// Failed attempts since the last success.
    attempt: u32,
    /// Cheap jitter state (xorshift), seeded per process.
    seed: u64,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let seed = std::process::id() as u64 ^ 0x9E37_79B9_7F4A_7C15;
        Self {
            first,
            max,
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// The delay before the next attempt; doubles each call up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let base = crate::backoff::doubling(self.first, self.attempt, self.max);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter = (self.seed % 401) as f64 / 1000.0 - 0.2; // -0.2 ..= +0.2
        base.mul_f64(1.0 + jitter).min(self.max)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// How long a fresh subscription must stay quiet (no error) to count as established. The
/// daemon answers the request headers at once; errors (socket gone, 403 from a proxy) come
/// back within milliseconds.
pub const ESTABLISH: Duration = Duration::from_millis(300);

/// One Docker event, reduced to what the loop needs.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub action: String,
    pub id: String,
    pub attributes: std::collections::HashMap<String, String>,
}

impl From<bollard::models::EventMessage> for RawEvent {
    fn from(e: bollard::models::EventMessage) -> Self {
        let actor = e.actor.unwrap_or_default();
        Self {
            action: e.action.unwrap_or_default(),
            id: actor.id.unwrap_or_default(),
            attributes: actor.attributes.unwrap_or_default(),
        }
    }
}

/// Observer of the stream's health (metrics and readiness).
pub trait StreamHealth: Send + Sync + 'static {
    fn connected(&self, up: bool);
    /// A subscription failed or broke; `kind` is a short metric label.
    fn error(&self, kind: &'static str);
}

/// Keep a subscription alive until `shutdown`. `subscribe` opens a new stream each call.
pub async fn pump<F, S, E>(
    mut subscribe: F,
    selector: Arc<Selector>,
    tx: mpsc::Sender<Trigger>,
    health: Arc<dyn StreamHealth>,
    shutdown: CancellationToken,
) where
    F: FnMut() -> S + Send,
    S: Stream<Item = Result<RawEvent, E>> + Send + Unpin,
    E: std::fmt::Display + Send,
{
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let mut stream = subscribe();
        // Establish: poll until the first item or ESTABLISH of quiet.
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(ESTABLISH, stream.next()) => r,
        };
        let failure = match first {
            Ok(Some(Err(e))) => Some(e.to_string()),
            Ok(None) => Some("the daemon closed the events stream".to_string()),
            Ok(Some(Ok(ev))) => {
                connected(&health, &tx, &mut backoff).await;
                forward(&selector, &tx, ev).await;
                None
            }
            Err(_) => {
                connected(&health, &tx, &mut backoff).await;
                None
            }
        };
        let failure = match failure {
            Some(f) => f,
            None => loop {
                let item = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(ev)) => forward(&selector, &tx, ev).await,
                    Some(Err(e)) => break e.to_string(),
                    None => break "the daemon closed the events stream".to_string(),
                }
            },
        };
        drop(stream);
        health.connected(false);
        health.error("events_stream");
        let _ = tx.send(Trigger::StreamDown(failure.clone())).await;
        let delay = backoff.next_delay();
        tracing::warn!(
            error = %failure,
            retry_in_ms = delay.as_millis() as u64,
            "Docker events stream lost; reconnecting"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

async fn connected(
    health: &Arc<dyn StreamHealth>,
    tx: &mpsc::Sender<Trigger>,
    backoff: &mut Backoff,
) {
    tracing::info!("subscribed to Docker container events");
    health.connected(true);
    backoff.reset();
    let _ = tx.send(Trigger::Resync).await;
}

async fn forward(selector: &Selector, tx: &mpsc::Sender<Trigger>, ev: RawEvent) {
    if let Some(t) = trigger_for(selector, &ev.action, &ev.id, &ev.attributes) {
        tracing::debug!(action = %ev.action, id = %ev.id, "container event");
        let _ = tx.send(t).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::time::Instant;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut prev = Duration::ZERO;
        for i in 0..12 {
            let d = b.next_delay();
            let base = Duration::from_millis(500) * 2u32.pow(i.min(6));
            let base = base.min(Duration::from_secs(30));
            assert!(
                d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2).min(Duration::from_secs(30)),
                "{i}: {d:?}"
            );
            assert!(d <= Duration::from_secs(30));
            prev = prev.max(d);
        }
        assert!(prev >= Duration::from_secs(24));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(600));
    }

    #[derive(Default)]
    struct Health {
        ups: Mutex<Vec<bool>>,
        errors: AtomicUsize,
    }
    impl StreamHealth for Health {
        fn connected(&self, up: bool) {
            self.ups.lock().unwrap().push(up);
        }
        fn error(&self, _kind: &'static str) {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn start_event(name: &str) -> RawEvent {
        let mut attributes = HashMap::new();
        attributes.insert("name".to_string(), name.to_string());
        RawEvent {
            action: "start".into(),
            id: format!("id-{name}"),
            attributes,
        }
    }

    /// The daemon is away for two attempts, then the stream connects, delivers events (only the
    /// target's pass), breaks, and connects again: Resync after each connection, backoff between.
    #[tokio::test(start_paused = true)]
    async fn reconnects_with_backoff_and_resyncs() {
        let attempts = Arc::new(AtomicUsize::new(0));
        let a = attempts.clone();
        let subscribe = move || {
            let n = a.fetch_add(1, Ordering::SeqCst);
            let items: Vec<Result<RawEvent, String>> = match n {
                0 | 1 => vec![Err("connect: no such file".into())],
                2 => vec![
                    Ok(start_event("other")),
                    Ok(start_event("rancher")),
                    Err("connection reset".into()),
                ],
                _ => vec![],
            };
            let pending_forever = n >= 3;
            let s = futures_util::stream::iter(items);
            if pending_forever {
                s.chain(futures_util::stream::pending()).boxed()
            } else {
                s.boxed()
            }
        };
        let sel = Arc::new(Selector::parse(&["rancher".into()], &[]).unwrap());
        let (tx, mut rx) = mpsc::channel(16);
        let health = Arc::new(Health::default());
        let shutdown = CancellationToken::new();
        let t0 = Instant::now();
        let task = tokio::spawn(pump(
            subscribe,
            sel,
            tx,
            health.clone() as Arc<dyn StreamHealth>,
            shutdown.clone(),
        ));
        let mut got = Vec::new();
        while got.len() < 6 {
            got.push(rx.recv().await.unwrap());
        }
        let names: Vec<String> = got
            .iter()
            .map(|t| match t {
                Trigger::Resync => "resync".to_string(),
                Trigger::StreamDown(_) => "down".to_string(),
                Trigger::Changed { name, .. } => format!("changed:{name}"),
                Trigger::Gone { name, .. } => format!("gone:{name}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "down",
                "down",
                "resync",
                "changed:rancher",
                "down",
                "resync"
            ]
        );
        // Two failed attempts: ~0.5 s and ~1 s of backoff, then connected at once; after the
        // break the backoff starts again from 0.5 s.
        let elapsed = Instant::now() - t0;
        assert!(elapsed >= Duration::from_millis(1200), "{elapsed:?}");
        assert!(elapsed <= Duration::from_millis(3000), "{elapsed:?}");
        assert_eq!(attempts.load(Ordering::SeqCst), 4);
        assert_eq!(health.errors.load(Ordering::SeqCst), 3);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("pump stops on shutdown")
            .unwrap();
    }
}
