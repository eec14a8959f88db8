//! The HTTP side of `watch`: `/healthz`, `/readyz`, `/metrics`, `/status`, and — only when a
//! bearer token is configured — `POST /v1/repair?container=NAME`.
//!
//! axum routes on a small hyper accept loop rather than `axum::serve`, for what a sidecar
//! exposed to a scraper needs and `axum::serve` does not offer, so that no client can lock the
//! probes out:
//! - the accept loop never waits: a connection over the limits is still accepted;
//! - at most [`MAX_CONNECTIONS`] connections get every endpoint, at most
//!   [`MAX_CONNECTIONS_PER_PEER`] of them from one address;
//! - a connection over those limits is served on a health-only lane: `/healthz` and `/readyz`
//!   answer, anything else gets `503` + `Retry-After`, and the connection closes within
//!   [`HEALTH_ONLY_DEADLINE`] ([`MAX_HEALTH_ONLY_CONNECTIONS`] at once, beyond which new
//!   connections are closed at once);
//! - a header-read timeout, bounded buffers, a response write that makes no progress for
//!   [`WRITE_TIMEOUT`] (a client that pipelines requests and never reads) closes the
//!   connection, and no connection outlives [`MAX_CONNECTION_AGE`];
//! - a shutdown that never waits on a client for more than a second.
//!
//! Who reads what: `/healthz`, `/readyz` and `/metrics` are open (the metrics name containers
//! and certificates, nothing more). `/status` gives its full document (container ids, images,
//! the inventory, backup paths, errors and log lines) to loopback peers — the image's
//! `healthcheck --path /status --print`, run inside the container — and to requests with the
//! bearer token; anyone else gets [`crate::watch::state::StatusSummary`], which reveals nothing
//! `/metrics` does not.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{mpsc, oneshot};

use crate::watch::controller::{ApiCommand, ApiReply};
use crate::watch::metrics::{Format, Metrics};
use crate::watch::state::Shared;

mod serve;
pub use serve::{exposure_warning, serve, warn_if_exposed};

/// Whole-request deadline.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must send its request headers within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Request bodies are never needed; anything bigger is refused.
pub const BODY_LIMIT: usize = 4 * 1024;
/// Connections served with every endpoint at once (a scraper, a probe, a person).
pub const MAX_CONNECTIONS: usize = 32;
/// Of those, at most this many from one address.
pub const MAX_CONNECTIONS_PER_PEER: usize = 8;
/// Connections over the limits served at once on the health-only lane.
pub const MAX_HEALTH_ONLY_CONNECTIONS: usize = 128;
/// A health-only connection is closed after this, whatever it is doing.
pub const HEALTH_ONLY_DEADLINE: Duration = Duration::from_secs(2);
/// A response write that makes no progress for this long closes the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed (gracefully: after the response in flight) at this age; clients
/// reconnect.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);

pub use crate::token::ApiToken;

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

/// The peer of a request, put there by [`serve`]. A request without one (another server, a
/// test calling the router) counts as remote.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Loopback, including IPv4-mapped loopback on a dual-stack socket.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The token of `Authorization: Bearer <token>`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"rancher-cert-guard\"",
        )],
        "unauthorized\n",
    )
        .into_response()
}

/// What `/status` shows a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusView {
    Full,
    Summary,
    /// A bearer token was presented and is wrong.
    Unauthorized,
}

/// The full document for a loopback peer or the right bearer token; `Unauthorized` for a
/// wrong token (when one is configured); the summary otherwise.
pub fn status_view(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    token: Option<&ApiToken>,
) -> StatusView {
    if let (Some(token), Some(presented)) = (token, bearer(headers)) {
        return if token.matches(presented) {
            StatusView::Full
        } else {
            StatusView::Unauthorized
        };
    }
    if peer.is_some_and(is_loopback) {
        StatusView::Full
    } else {
        StatusView::Summary
    }
}

async fn status(State(s): State<AppState>, req: Request) -> Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.0.ip());
    match status_view(peer, req.headers(), s.token.as_ref()) {
        StatusView::Full => Json(s.shared.snapshot()).into_response(),
        StatusView::Summary => Json(s.shared.summary()).into_response(),
        StatusView::Unauthorized => unauthorized(),
    }
}

fn json(code: StatusCode, v: serde_json::Value) -> Response {
    (code, Json(v)).into_response()
}

async fn repair(State(s): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    // Without a token the endpoint does not exist.
    let Some(token) = &s.token else {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    };
    if !bearer(&headers).is_some_and(|p| token.matches(p)) {
        return unauthorized();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_sees_the_full_status() {
        let token: ApiToken = "s3cret".parse().unwrap();
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        let none = HeaderMap::new();
        let remote: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
        let lo4: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let lo6: Option<IpAddr> = Some("::1".parse().unwrap());
        let mapped: Option<IpAddr> = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(status_view(remote, &none, None), StatusView::Summary);
        assert_eq!(
            status_view(remote, &none, Some(&token)),
            StatusView::Summary
        );
        assert_eq!(status_view(None, &none, Some(&token)), StatusView::Summary);
        assert_eq!(
            status_view(remote, &with("Bearer s3cret"), Some(&token)),
            StatusView::Full
        );
        assert_eq!(
            status_view(remote, &with("Bearer nope"), Some(&token)),
            StatusView::Unauthorized
        );
        assert_eq!(
            status_view(lo4, &with("Bearer nope"), Some(&token)),
            StatusView::Unauthorized
        );
        // Without a configured token a presented one means nothing.
        assert_eq!(
            status_view(remote, &with("Bearer s3cret"), None),
            StatusView::Summary
        );
        for lo in [lo4, lo6, mapped] {
            assert_eq!(status_view(lo, &none, None), StatusView::Full);
            assert_eq!(status_view(lo, &none, Some(&token)), StatusView::Full);
        }
    }

    #[tokio::test]
    async fn status_over_the_router() {
        use crate::watch::state::{StatusDoc, TargetStatus};
        let shared = Arc::new(Shared::new(Duration::from_secs(30), StatusDoc::default()));
        let mut targets = std::collections::BTreeMap::new();
        targets.insert(
            "rancher".to_string(),
            TargetStatus {
                container: "rancher".into(),
                id: Some("0123456789abcdef".into()),
                ..TargetStatus::default()
            },
        );
        shared.publish(targets);
        let (tx, _rx) = mpsc::channel(1);
        let app = router(AppState {
            metrics: Arc::new(Metrics::new(shared.clone())),
            shared,
            token: Some("s3cret".parse().unwrap()),
            commands: tx,
        });
        let ask = |peer: &str, auth: Option<&str>| {
            let mut app = app.clone();
            let mut req = Request::builder().uri("/status");
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let mut req = req.body(axum::body::Body::empty()).unwrap();
            req.extensions_mut().insert(Peer(peer.parse().unwrap()));
            async move {
                let r = tower_service::Service::call(&mut app, req).await.unwrap();
                let code = r.status();
                let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
                (code, String::from_utf8_lossy(&body).into_owned())
            }
        };
        let (code, body) = ask("10.0.0.7:40000", None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("\"view\":\"summary\""), "{body}");
        assert!(!body.contains("0123456789abcdef"), "{body}");
        let (code, body) = ask("10.0.0.7:40000", Some("Bearer s3cret")).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("0123456789abcdef"), "{body}");
        let (code, _) = ask("10.0.0.7:40000", Some("Bearer wrong")).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let (code, body) = ask("127.0.0.1:40000", None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("0123456789abcdef"), "{body}");
    }
}
