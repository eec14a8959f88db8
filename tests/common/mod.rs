//! Shared helpers of the integration tests: the binary, fixtures, a real Docker engine.
#![allow(dead_code)]

pub mod daemon;
pub mod fixtures;
pub mod sim;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Label on every container, volume and image the tests create; `scripts/test.sh` removes
/// whatever carries it.
pub const TEST_LABEL: &str = "rancher-cert-guard.test=true";

/// The simulated Rancher image the tests run (`RCG_SIM_IMAGE` overrides the tag, so a
/// development copy can be tested beside the suite's own).
pub fn sim_image() -> String {
    std::env::var("RCG_SIM_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rancher-cert-guard-sim:local".into())
}

/// The product image the tests run (`RCG_IMAGE` overrides the tag).
pub fn tool_image() -> String {
    std::env::var("RCG_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "rancher-cert-guard:local".into())
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rancher-cert-guard"))
}

/// Run the binary with `args`; never inherits CERT_GUARD_* settings of the developer.
pub fn run_bin(args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("CERT_GUARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().expect("run rancher-cert-guard")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The docker CLI to drive test setup with (Debian's 20.10 client when present: its classic
/// builder works offline).
pub fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

/// True when a Docker engine answers. Without one, a test skips — except under `CI=true`,
/// where it fails: CI must never pass by skipping.
pub fn docker_available() -> bool {
    let ok = Command::new(docker_cli())
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
            panic!("CI=true and no Docker engine answers: run `bash scripts/test.sh`, which starts one");
        }
        eprintln!("SKIPPED: no Docker engine answers (set CI=true to make this a failure)");
    }
    ok
}

/// Run a docker CLI command; panic with its stderr on failure; return trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let o = Command::new(docker_cli())
        .env("DOCKER_BUILDKIT", "0")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        o.status.success(),
        "docker {:?} failed: {}",
        args,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Like [`docker`] but returns the Output, whatever the status.
pub fn docker_raw(args: &[&str]) -> Output {
    Command::new(docker_cli())
        .env("DOCKER_BUILDKIT", "0")
        .args(args)
        .output()
        .expect("run docker")
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    format!(
        "rcg-test-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Removes a container (and its anonymous volumes) when dropped.
pub struct ContainerGuard(pub String);

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let _ = docker_raw(&["rm", "-f", "-v", &self.0]);
    }
}

/// Removes an image when dropped.
pub struct ImageGuard(pub String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker_raw(&["rmi", "-f", &self.0]);
    }
}

/// Path of the static busybox from Debian's busybox-static.
pub fn busybox_path() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: apt-get install busybox-static (scripts/test.sh does)");
}

/// Build a FROM-scratch busybox image holding `tls_dir` at `/var/lib/rancher/k3s/server/tls`.
pub fn build_tree_image(tls_dir: &Path) -> ImageGuard {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(busybox_path(), ctx.path().join("busybox")).unwrap();
    copy_dir(tls_dir, &ctx.path().join("tls"));
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]\n\
         COPY tls /var/lib/rancher/k3s/server/tls\nCMD [\"/bin/sh\"]\n",
    )
    .unwrap();
    let tag = format!("{}:local", unique("tree"));
    docker(&[
        "build",
        "-q",
        "--network",
        "none",
        "--label",
        TEST_LABEL,
        "-t",
        &tag,
        ctx.path().to_str().unwrap(),
    ]);
    ImageGuard(tag)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dst = to.join(e.file_name());
        if ft.is_dir() {
            copy_dir(&e.path(), &dst);
        } else if ft.is_file() {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Wait for `cond` up to `secs` seconds, polling every 200 ms.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("timed out after {secs}s waiting for {what}");
}

pub fn container_status(name: &str) -> String {
    docker_raw(&["inspect", "-f", "{{.State.Status}}", name])
        .stdout
        .iter()
        .map(|b| *b as char)
        .collect::<String>()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------- watch / compose helpers

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `http://{addr}{path}`; `None` when nothing answers. Body cut at 4 MiB.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http_request(addr, "GET", path, &[])
}

/// A minimal HTTP/1.1 request over loopback.
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    // Chunked bodies (axum streams JSON that way sometimes): de-chunk.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 || tail.len() < n {
                break;
            }
            out.push_str(&tail[..n]);
            rest = tail[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Some((code, body))
}

static IMAGE_BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Make sure a local image exists, building it with `scripts/<script>` when missing.
pub fn ensure_image(image: &str, script: &str) {
    let _lock = IMAGE_BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if docker_raw(&["image", "inspect", image]).status.success() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .env("IMAGE", tool_image())
        .env("SIM_IMAGE", sim_image())
        .output()
        .expect("run an image build script");
    assert!(
        o.status.success(),
        "scripts/{script} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Debian's docker-compose (v1); `None` (or a panic under CI=true) when it is not installed.
pub fn compose_cli() -> Option<&'static str> {
    let ok = Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some("docker-compose");
    }
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("CI=true and docker-compose is missing: apt-get install docker-compose");
    }
    eprintln!("SKIPPED: docker-compose is not installed");
    None
}
