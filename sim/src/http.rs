//! Rancher's plain-HTTP listener on :80 (only `/ping` and `/healthz`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Serves forever, one thread per connection.
pub fn serve(listener: TcpListener) -> ! {
    loop {
        if let Ok((stream, _)) = listener.accept() {
            std::thread::spawn(move || handle(stream));
        }
    }
}

fn handle(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    // Read up to the end of the request head (bodies are ignored).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("").split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/ping") => ("200 OK", "pong"),
        ("GET" | "HEAD", "/healthz") => ("200 OK", "ok"),
        ("GET" | "HEAD", _) => ("404 Not Found", "404 page not found\n"),
        _ => ("405 Method Not Allowed", "method not allowed\n"),
    };
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        resp.push_str(body);
    }
    let _ = stream.write_all(resp.as_bytes());
    let _ = stream.flush();
}
