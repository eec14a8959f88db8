//! The `watch` HTTP server stays up under greedy and slow clients (issue 10 item 5): clients
//! that pipeline `GET /status` and never read, and clients that never finish their headers,
//! from several loopback addresses, 56 of them, hold every connection they can get — and
//! `/healthz` still answers at once, the stuck connections are cut within the write timeout,
//! the slow ones within the header timeout, and a fresh client is served again afterwards.
//! Bounded: 56 clients, every wait has a deadline, ~15 s in all. No Docker needed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rancher_cert_guard::inventory::{CertKind, CertRecord, Status};
use rancher_cert_guard::report::CheckReport;
use rancher_cert_guard::watch::http::{self, AppState};
use rancher_cert_guard::watch::metrics::Metrics;
use rancher_cert_guard::watch::state::{Shared, StatusDoc, TargetStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The server's write timeout and header timeout (both 5 s) plus slack for a loaded machine.
const CUT_WITHIN: Duration = Duration::from_secs(9);

/// A status document of ~1.5 MB: a few pipelined `/status` fill any socket buffer.
fn big_shared() -> Arc<Shared> {
    let certs = (0..3000)
        .map(|i| CertRecord {
            path: format!("dir/cert-{i}.crt"),
            index: 0,
            kind: CertKind::Leaf,
            subject: format!("CN=system:node:{i},O=system:nodes"),
            issuer: "CN=k3s-client-ca@1700000000".into(),
            serial: format!("{i:016x}"),
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            is_ca: false,
            seconds_left: 1,
            status: Status::Ok,
            sha256: "AB".repeat(32),
            subject_cn: format!("system:node:{i}"),
            issuer_cn: "k3s-client-ca@1700000000".into(),
        })
        .collect();
    let report = CheckReport {
        source: "container:rancher:/var/lib/rancher/k3s/server/tls".into(),
        checked_at: 1_750_000_000,
        renew_before_days: 90,
        status: Status::Ok,
        certificates: certs,
        keys: vec![],
        problems: vec![],
        error: None,
        clock: None,
        era: None,
    };
    let shared = Arc::new(Shared::new(Duration::from_secs(30), StatusDoc::default()));
    shared.tick();
    let mut targets = BTreeMap::new();
    targets.insert(
        "rancher".to_string(),
        TargetStatus {
            container: "rancher".into(),
            up: true,
            inventory: Some(report),
            ..TargetStatus::default()
        },
    );
    shared.publish(targets);
    shared
}

async fn start_server() -> SocketAddr {
    let shared = big_shared();
    let metrics = Arc::new(Metrics::new(shared.clone()));
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    std::mem::forget(_rx);
    let app = http::router(AppState {
        shared,
        metrics,
        token: None,
        commands: tx,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(http::serve(
        listener,
        app,
        tokio_util::sync::CancellationToken::new(),
    ));
    addr
}

/// A connection from `from` (any 127.0.0.0/8 address is loopback) with a small receive buffer.
async fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    s.connect(server).await.unwrap()
}

/// GET `path` on a fresh connection from `from`, within `limit`: (status, body).
async fn get(
    from: &str,
    server: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let mut s = connect_from(from, server).await;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no status line in {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((code, body))
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("GET {path} from {from}: no answer within {limit:?}"))?
}

/// Read until the server closes (EOF or reset) or `limit` passes; (bytes read, closed).
async fn drain(s: &mut TcpStream, limit: Duration) -> (usize, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut total = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (total, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthz_answers_while_greedy_and_slow_clients_hold_every_connection() {
    let server = start_server().await;
    let (code, status) = get("127.0.0.1", server, "/status", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let status_len = status.len();
    assert!(status_len > 1_000_000, "{status_len}");

    // 48 greedy clients from six addresses (more than the server serves in all, more than it
    // serves per address): 64 pipelined GET /status each, never read.
    let pipelined = "GET /status HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let mut greedy = Vec::new();
    for peer in 1..=6 {
        for _ in 0..8 {
            let mut s = connect_from(&format!("127.0.0.{peer}"), server).await;
            s.write_all(pipelined.as_bytes()).await.unwrap();
            greedy.push(s);
        }
    }
    // 8 slow clients: half a request line, then nothing.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = connect_from("127.0.0.7", server).await;
        s.write_all(b"GET /status HT").await.unwrap();
        slow.push(s);
    }
    let attack = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The probes get through, from an address that already holds its share and from another.
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let from = if i % 2 == 0 { "127.0.0.1" } else { "127.0.0.9" };
        let t0 = Instant::now();
        let r = get(from, server, "/healthz", Duration::from_secs(2)).await;
        worst = worst.max(t0.elapsed());
        assert_eq!(r, Ok((200, "ok\n".to_string())), "probe {i} from {from}");
    }
    eprintln!("20 /healthz probes under attack: slowest {worst:?}");
    assert!(
        attack.elapsed() < Duration::from_secs(4),
        "the probes ran while the connections were held"
    );

    // The greedy connections are cut by the write timeout: draining now yields what sat in
    // the socket buffers, then the close — far less than the 64 responses asked for.
    tokio::time::sleep(CUT_WITHIN.saturating_sub(attack.elapsed())).await;
    for (i, s) in slow.iter_mut().enumerate() {
        let (n, closed) = drain(s, Duration::from_millis(500)).await;
        assert!(
            closed,
            "slow client {i} still open after {:?} ({n} bytes)",
            attack.elapsed()
        );
    }
    for (i, s) in greedy.iter_mut().enumerate() {
        let (n, closed) = drain(s, Duration::from_secs(3)).await;
        assert!(
            closed,
            "greedy client {i} still open after {:?}",
            attack.elapsed()
        );
        assert!(
            n < 16 * status_len,
            "greedy client {i} got {n} bytes: the server kept writing to a client that does not read"
        );
    }

    // Capacity is back: a well-behaved client gets the whole document.
    let (code, body) = get("127.0.0.8", server, "/status", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((code, body.len()), (200, status_len));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limits_only_the_probes_answer() {
    let server = start_server().await;
    // One address holds its 8 connections with unfinished requests.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = connect_from("127.0.0.3", server).await;
        s.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let limit = Duration::from_secs(3);
    assert_eq!(
        get("127.0.0.3", server, "/healthz", limit).await.unwrap(),
        (200, "ok\n".into())
    );
    assert_eq!(
        get("127.0.0.3", server, "/readyz", limit).await.unwrap().0,
        503,
        "not ready: no first scan"
    );
    let (code, body) = get("127.0.0.3", server, "/metrics", limit).await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("only /healthz and /readyz"), "{body}");
    // Another address is served in full.
    assert_eq!(
        get("127.0.0.4", server, "/metrics", limit).await.unwrap().0,
        200
    );
    drop(held);
}
