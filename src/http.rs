//! The HTTP side of `watch`: `/healthz`, `/readyz`, `/metrics`, `/status`, and — only when a
//! bearer token is configured — `POST /v1/repair?container=NAME`.
//!
//! axum routes on a small hyper accept loop rather than `axum::serve`, for what a sidecar
//! exposed to a scraper needs and `axum::serve` does not offer: a header-read timeout (a slow
//! client cannot hold a connection), bounded buffers, a connection cap, and a shutdown that
//! never waits on a client for more than a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Format, Metrics};
use crate::watch::controller::{ApiCommand, ApiReply};
use crate::watch::state::Shared;

/// Whole-request deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send its request headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Request bodies are never needed; anything bigger is refused.
pub const BODY_LIMIT: usize = 4 * 1024;
/// Connections served at once (a scraper, a probe, a person).
pub const MAX_CONNECTIONS: usize = 32;

/// The bearer token of the mutating API. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl std::str::FromStr for ApiToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("the API token is empty".into());
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the API token contains whitespace".into());
        }
        Ok(Self(t.into()))
    }
}

impl ApiToken {
    /// Read a token file (Docker/Compose secrets: `/run/secrets/NAME`); surrounding whitespace
    /// is ignored.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the API token file {}: {e}", path.display()))?;
        text.parse()
            .map_err(|e| format!("{e} (file {})", path.display()))
    }

    /// Constant-time comparison (of SHA-256 digests, so the length does not leak either).
    pub fn matches(&self, presented: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    pub token: Option<ApiToken>,
    pub commands: mpsc::Sender<ApiCommand>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/v1/repair", post(repair))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(deadline))
        .with_state(state)
}

async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "request timed out\n").into_response(),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.shared.stalled() {
        None => text(StatusCode::OK, "ok\n".into()),
        Some(age) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "stalled: the watch loop last ticked {}s ago (it ticks every {}s)\n",
                age.as_secs(),
                s.shared.tick.as_secs()
            ),
        ),
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    let why = s.shared.not_ready();
    if why.is_empty() {
        text(StatusCode::OK, "ready\n".into())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
    }
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        s.metrics.encode_as(format),
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    Json(s.shared.snapshot()).into_response()
}

fn json(code: StatusCode, v: serde_json::Value) -> Response {
    (code, Json(v)).into_response()
}

async fn repair(State(s): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    // Without a token the endpoint does not exist.
    let Some(token) = &s.token else {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !presented.is_some_and(|p| token.matches(p)) {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"rancher-cert-guard\"",
            )],
            "unauthorized\n",
        )
            .into_response();
    }
    let q: HashMap<String, String> = match Query::try_from_uri(&uri) {
        Ok(Query(q)) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let Some(container) = q.get("container").filter(|c| !c.is_empty()).cloned() else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "give ?container=NAME"}),
        );
    };
    let force = matches!(q.get("force").map(String::as_str), Some("true" | "1"));
    let (tx, rx) = oneshot::channel();
    let cmd = ApiCommand::Repair {
        container: container.clone(),
        force,
        reply: tx,
    };
    if s.commands.send(cmd).await.is_err() {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "shutting down"}),
        );
    }
    let reply = match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(r)) => r,
        _ => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "the watch loop did not answer"}),
            )
        }
    };
    let c = container.as_str();
    match reply {
        ApiReply::Accepted => json(
            StatusCode::ACCEPTED,
            serde_json::json!({"container": c, "accepted": true, "force": force, "status": "/status"}),
        ),
        ApiReply::NotFound => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"container": c, "error": "not a watched container"}),
        ),
        ApiReply::Busy => json(
            StatusCode::CONFLICT,
            serde_json::json!({"container": c, "error": "a repair or check of this container is in progress"}),
        ),
        ApiReply::MonitorOnly => json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"container": c, "error": "--monitor-only: repairs are disabled"}),
        ),
        ApiReply::Tripped(after) => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, after.as_secs().to_string())],
            Json(serde_json::json!({"container": c, "error": "circuit breaker open: too many repairs in the last 24 h", "retry_after_s": after.as_secs()})),
        )
            .into_response(),
    }
}

/// Serve `app` on `listener` until `shutdown`; then stop accepting, let open requests finish
/// for up to a second, and return.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    use hyper::server::conn::http1;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
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
        let service = TowerToHyperService::new(app.clone());
        let mut close = close_rx.clone();
        conns.spawn(async move {
            let _permit = permit;
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(16 * 1024);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = close.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare_and_redaction() {
        let t: ApiToken = " s3cret\n".parse().unwrap();
        assert!(t.matches("s3cret"));
        assert!(!t.matches("s3cre"));
        assert!(!t.matches("s3cretx"));
        assert!(!t.matches(""));
        assert_eq!(format!("{t:?}"), "ApiToken(<redacted>)");
        assert!("".parse::<ApiToken>().is_err());
        assert!("a b".parse::<ApiToken>().is_err());
    }
}
