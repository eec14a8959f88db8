//! The accept loop of the HTTP server: connection limits per peer and in all, the health-only
//! lane for connections over them, the write deadline, connection recycling and a shutdown that
//! never waits on a client for more than a second (see the parent module for the why).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::{
    is_loopback, ApiToken, Peer, HEADER_TIMEOUT, HEALTH_ONLY_DEADLINE, MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_PEER, MAX_CONNECTION_AGE, MAX_HEALTH_ONLY_CONNECTIONS, REQUEST_TIMEOUT,
    WRITE_TIMEOUT,
};

/// The warning to give when the server listens beyond loopback without a token, or `None`.
pub fn exposure_warning(addr: SocketAddr, token_configured: bool) -> Option<String> {
    if token_configured || is_loopback(addr.ip()) {
        return None;
    }
    Some(format!(
        "listening on {addr}, beyond loopback, without an API token: whoever reaches this \
         port reads /metrics and the /status summary (container names, certificate names and \
         expiry dates, repair counts); the full /status answers only loopback peers and the \
         bearer token, and POST /v1/repair is off. In a container this is expected when the \
         port is published on the host's loopback only (-p 127.0.0.1:9795:9795, as \
         compose/docker-compose.yml does); otherwise listen on 127.0.0.1 or set \
         --api-token-file"
    ))
}

/// Log [`exposure_warning`] (call once the listener is bound).
pub fn warn_if_exposed(addr: SocketAddr, token: Option<&ApiToken>) {
    if let Some(w) = exposure_warning(addr, token.is_some()) {
        tracing::warn!(%addr, "{w}");
    }
}

/// Which endpoints a connection gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    /// Every endpoint, keep-alive.
    Full,
    /// Over the limits: `/healthz` and `/readyz`, one request, then closed.
    HealthOnly,
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its peer; uncounted when dropped.
struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.peers.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// What a connection holds while it is open; released when dropped.
struct Admission {
    lane: Lane,
    _permit: OwnedSemaphorePermit,
    /// Full-lane connections count against their peer.
    _peer: Option<PeerSlot>,
}

/// The counters behind the limits.
struct Limits {
    full: Arc<Semaphore>,
    health_only: Arc<Semaphore>,
    peers: Arc<Peers>,
}

impl Limits {
    fn new() -> Self {
        Self {
            full: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            health_only: Arc::new(Semaphore::new(MAX_HEALTH_ONLY_CONNECTIONS)),
            peers: Arc::new(Peers::default()),
        }
    }

    /// The full lane while the peer and the server are under their limits, else the
    /// health-only lane while it has room, else `None` (close the connection).
    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        if let Some(slot) = self.peers.take(ip, MAX_CONNECTIONS_PER_PEER) {
            if let Ok(permit) = self.full.clone().try_acquire_owned() {
                return Some(Admission {
                    lane: Lane::Full,
                    _permit: permit,
                    _peer: Some(slot),
                });
            }
        }
        let permit = self.health_only.clone().try_acquire_owned().ok()?;
        Some(Admission {
            lane: Lane::HealthOnly,
            _permit: permit,
            _peer: None,
        })
    }
}

/// Serve `app` on `listener` until `shutdown`; then stop accepting, let open requests finish
/// for up to a second, and return.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let limits = Limits::new();
    let mut conns = JoinSet::new();
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let Some(admission) = limits.admit(peer.ip().to_canonical()) else {
            tracing::debug!(%peer, "every lane is full: connection closed");
            continue; // dropping the stream closes it
        };
        if admission.lane == Lane::HealthOnly {
            tracing::debug!(%peer, "connection limits reached: health-only lane");
        }
        let app = app.clone();
        let close = close_rx.clone();
        conns.spawn(async move {
            let lane = admission.lane;
            serve_connection(stream, peer, lane, app, close).await;
            drop(admission);
        });
    }
    drop(listener);
    let _ = close_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_millis(1500), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.abort_all();
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    lane: Lane,
    app: Router,
    mut close: tokio::sync::watch::Receiver<bool>,
) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};

    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(Peer(peer));
        let mut app = app.clone();
        async move {
            let path = req.uri().path();
            if lane == Lane::HealthOnly && path != "/healthz" && path != "/readyz" {
                return Ok::<_, std::convert::Infallible>(busy());
            }
            tower_service::Service::call(&mut app, req).await
        }
    });
    let (header_timeout, life) = match lane {
        Lane::Full => (HEADER_TIMEOUT, MAX_CONNECTION_AGE),
        Lane::HealthOnly => (HEALTH_ONLY_DEADLINE, HEALTH_ONLY_DEADLINE),
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .max_buf_size(16 * 1024)
        .keep_alive(lane == Lane::Full)
        .header_read_timeout(header_timeout);
    let io = TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT));
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // A health-only connection is cut at its deadline, whatever it is doing.
        _ = tokio::time::sleep(life), if lane == Lane::HealthOnly => {}
        // A full one finishes its response in flight (bounded by the request and write
        // timeouts) and closes.
        _ = tokio::time::sleep(life), if lane == Lane::Full => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(REQUEST_TIMEOUT + WRITE_TIMEOUT, conn).await;
        }
        _ = close.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

/// The answer of the health-only lane to anything but the probes.
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, "1"),
            (header::CONNECTION, "close"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "busy: too many connections (from this address, or in all); only /healthz and /readyz answer now\n",
    )
        .into_response()
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `limit`: a
/// client that stops reading cannot hold a connection (and its response) forever.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    /// Armed at the first write that could not proceed; cleared by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After the inner write returned `Pending`: `Pending` until the deadline, then the error.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response write timed out: the client does not read",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, p: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match p {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(p, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(p, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(p, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.progress(p, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_is_warned_beyond_loopback_without_a_token() {
        let w = |a: &str, t: bool| exposure_warning(a.parse().unwrap(), t);
        assert!(w("0.0.0.0:9795", false).is_some_and(|m| m.contains("--api-token-file")));
        assert!(w("[::]:9795", false).is_some());
        assert!(w("192.168.1.5:9795", false).is_some());
        assert_eq!(w("0.0.0.0:9795", true), None);
        assert_eq!(w("127.0.0.1:9795", false), None);
        assert_eq!(w("[::1]:9795", false), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_times_out() {
        use tokio::io::AsyncWriteExt;
        // A pipe whose reader never reads: the writer fills it, then stalls.
        let (a, _b) = tokio::io::duplex(1024);
        let mut w = WriteDeadline::new(a, Duration::from_secs(5));
        let t0 = tokio::time::Instant::now();
        let err = w.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_not_cut() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut total = 0;
            while total < 8192 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                total += b.read(&mut buf).await.unwrap();
            }
        });
        let mut w = WriteDeadline::new(a, Duration::from_secs(5));
        w.write_all(&[0u8; 8192]).await.unwrap();
        reader.await.unwrap();
    }
}
