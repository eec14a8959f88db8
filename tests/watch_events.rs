//! `watch` (the binary on the host) and Docker events: a container recreated under the same
//! name is picked up at once, and the events stream survives its socket being cut and restored.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// `watch` running on the host, stopped (SIGTERM, then SIGKILL) when dropped.
struct Watch {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Watch {
    fn start(dir: &Path, docker_host: Option<&str>, args: &[&str]) -> Watch {
        let addr_file = dir.join("addr");
        let log = dir.join("watch.log");
        let mut cmd = Command::new(bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("CERT_GUARD_") {
                cmd.env_remove(k);
            }
        }
        if let Some(h) = docker_host {
            cmd.env("DOCKER_HOST", h);
        }
        let child = cmd
            .args(["watch", "--listen", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut addr = String::new();
        wait_for(10, "the address file", || {
            addr = std::fs::read_to_string(&addr_file)
                .unwrap_or_default()
                .trim()
                .to_string();
            !addr.is_empty()
        });
        Watch { child, addr, log }
    }

    fn status(&self) -> serde_json::Value {
        http_get(&self.addr, "/status")
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    fn ready(&self) -> bool {
        http_get(&self.addr, "/readyz").is_some_and(|(c, _)| c == 200)
    }

    fn metric(&self, prefix: &str) -> f64 {
        http_get(&self.addr, "/metrics")
            .map(|(_, m)| {
                m.lines()
                    .filter(|l| l.starts_with(prefix))
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum()
            })
            .unwrap_or(0.0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_sim(name: &str, leaf_days: u32) -> String {
    docker(&[
        "run",
        "-d",
        "--name",
        name,
        "--label",
        TEST_LABEL,
        "--network",
        "none",
        "-e",
        &format!("SIM_LEAF_DAYS={leaf_days}"),
        "-e",
        "SIM_BOOT_SECONDS=1",
        &sim_image(),
    ])
}

#[test]
fn a_container_recreated_under_the_same_name_is_picked_up() {
    if !docker_available() {
        return;
    }
    ensure_image(&sim_image(), "build-sim-image.sh");
    let name = unique("recreate");
    let _c = ContainerGuard(name.clone());
    let first_id = run_sim(&name, 365);
    let dir = tempfile::tempdir().unwrap();
    let w = Watch::start(
        dir.path(),
        None,
        &["--container", &name, "--monitor-only", "--interval", "3600"],
    );
    wait_for(30, "watch to be ready", || w.ready());
    wait_for(10, "the first look", || {
        w.status()["targets"][&name]["id"].as_str() == Some(first_id.as_str())
    });
    assert_eq!(
        w.status()["targets"][&name]["reasons"],
        serde_json::json!([])
    );

    // Recreate: same name, new container, certificates now due.
    docker(&["rm", "-f", "-v", &name]);
    let t0 = Instant::now();
    let second_id = run_sim(&name, 20);
    wait_for(15, "the recreated container to be looked at", || {
        let s = w.status();
        let t = &s["targets"][&name];
        t["id"].as_str() == Some(second_id.as_str())
            && t["reasons"].as_array().is_some_and(|r| !r.is_empty())
    });
    let took = t0.elapsed();
    eprintln!("recreated container looked at after {took:?}");
    // The safety interval is an hour: only the events can have done this.
    assert!(took < Duration::from_secs(15));
    let s = w.status();
    let decision = s["targets"][&name]["decision"].as_str().unwrap_or("");
    assert!(decision.contains("--monitor-only"), "{decision}");
    assert!(w.log().contains("monitor-only"), "{}", w.log());
    assert_eq!(
        w.metric(&format!(
            "rancher_cert_guard_repairs_total{{container=\"{name}\",result=\"repaired\"}}"
        )),
        0.0,
        "monitor-only never repairs"
    );
}

/// A unix-socket proxy to the Docker socket that can be cut (listener closed, every open
/// connection shut down) and restored, like a daemon restart seen from a client.
struct SocketProxy {
    path: PathBuf,
    upstream: PathBuf,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SocketProxy {
    fn start(path: &Path, upstream: &Path) -> SocketProxy {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (s, c, up) = (stop.clone(), conns.clone(), upstream.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = UnixStream::connect(&up) else {
                            continue;
                        };
                        let mut list = c.lock().unwrap();
                        list.push(client.try_clone().unwrap());
                        list.push(server.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                        pipe(server, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        SocketProxy {
            path: path.to_path_buf(),
            upstream: upstream.to_path_buf(),
            stop,
            conns,
            thread: Some(thread),
        }
    }

    fn cut(&mut self) {
        let Some(t) = self.thread.take() else {
            return; // already cut
        };
        self.stop.store(true, Ordering::SeqCst);
        t.join().unwrap();
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }

    fn restore(&mut self) {
        *self = SocketProxy::start(&self.path.clone(), &self.upstream.clone());
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn the_events_stream_survives_a_cut_socket() {
    if !docker_available() {
        return;
    }
    ensure_image(&sim_image(), "build-sim-image.sh");
    let upstream = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"));
    let name = unique("cut");
    let _c = ContainerGuard(name.clone());
    run_sim(&name, 365);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let mut proxy = SocketProxy::start(&sock, &upstream);
    let host = format!("unix://{}", sock.display());
    let w = Watch::start(
        dir.path(),
        Some(&host),
        &["--container", &name, "--monitor-only", "--interval", "3600"],
    );
    wait_for(30, "watch to be ready", || w.ready());

    // Cut: not ready, the stream error counted, alive all along.
    proxy.cut();
    wait_for(10, "readiness to drop", || !w.ready());
    assert_eq!(http_get(&w.addr, "/healthz").unwrap().0, 200);
    assert!(w.metric("rancher_cert_guard_docker_errors_total{kind=\"events_stream\"}") >= 1.0);

    // Restore: reconnects with backoff, ready again.
    std::thread::sleep(Duration::from_secs(3));
    proxy.restore();
    let t0 = Instant::now();
    wait_for(40, "readiness to come back", || w.ready());
    eprintln!("reconnected {:?} after the restore", t0.elapsed());

    // And the new stream delivers: a restart is looked at within seconds.
    let checks = |w: &Watch| {
        w.metric(&format!(
            "rancher_cert_guard_checks_total{{container=\"{name}\",result=\"ok\"}}"
        ))
    };
    let before = checks(&w);
    docker(&["restart", "-t", "1", &name]);
    wait_for(
        15,
        "the restart to be looked at through the new stream",
        || checks(&w) > before,
    );
    assert!(w.log().contains("reconnecting"), "{}", w.log());
}
