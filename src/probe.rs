//! Health probes: Rancher's `/ping` (inside the container or from the tool) and a minimal
//! HTTP/1.1 GET over loopback for `--health-url` and `healthcheck`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::docker::DockerClient;

/// The shell snippet run inside the Rancher container: curl in real images, wget in busybox.
pub const PING_SCRIPT: &str = "curl -fsS --max-time 3 http://127.0.0.1:80/ping 2>/dev/null || wget -qO- http://127.0.0.1:80/ping 2>/dev/null";

/// GET `url` (http only); returns (status, body). Bodies over 64 KiB are cut.
pub async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') && !hostport.ends_with(']') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let host = hostport;
    let work = async {
        let mut s = TcpStream::connect(&addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: rancher-cert-guard\r\n\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.take(64 * 1024)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "not an HTTP response".to_string())?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{url}: no answer within {}s", timeout.as_secs()))?
}

/// Does Rancher answer `pong`? From the tool with `health_url`, else inside the container.
pub async fn rancher_ping(
    docker: &DockerClient,
    container: &str,
    health_url: Option<&str>,
) -> bool {
    match health_url {
        Some(url) => {
            matches!(http_get(url, Duration::from_secs(3)).await, Ok((200, body)) if body.trim() == "pong")
        }
        None => matches!(
            docker.exec(container, &["sh", "-c", PING_SCRIPT], Duration::from_secs(8)).await,
            Ok((0, out)) if out.trim() == "pong"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn http_get_reads_status_and_body_from_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /ping HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong")
                .await
                .unwrap();
        });
        let (status, body) = http_get(&format!("http://{addr}/ping"), Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!((status, body.as_str()), (200, "pong"));
        assert!(http_get("https://127.0.0.1/", Duration::from_secs(1))
            .await
            .is_err());
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            http_get(&format!("http://{closed}/"), Duration::from_secs(1))
                .await
                .is_err()
        );
    }
}
