//! Start-up scenarios of the simulated Rancher, run on the host against a
//! scratch `SIM_ROOT` (no Docker needed). The Docker image runs exactly this
//! binary as PID 1; `scripts/build-sim-image.sh` builds it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use x509_parser::pem::Pem;

const BIN: &str = env!("CARGO_BIN_EXE_sim-rancher");
const TLS: &str = "var/lib/rancher/k3s/server/tls";

/// A scratch root directory, removed on drop.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sim-flow-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Root(dir)
    }

    /// The `kube-system/k3s-serving` secret in the simulated datastore.
    fn store(&self) -> PathBuf {
        self.0
            .join("var/lib/rancher/management-state/secrets/kube-system/k3s-serving.json")
    }

    fn tls(&self, rel: &str) -> PathBuf {
        self.0.join(TLS).join(rel)
    }

    /// One start of `rancher` with the given extra environment.
    fn start(&self, env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(BIN);
        cmd.arg0("rancher")
            .env("SIM_ROOT", &self.0)
            .env("SIM_BOOT_SECONDS", "0")
            .env("SIM_HTTP_ADDR", "127.0.0.1:0")
            .env_remove("SIM_ERA")
            .env_remove("SIM_LEAF_DAYS")
            .env_remove("SIM_SERVING_DAYS")
            .env_remove("SIM_NOISE")
            .env_remove("SIM_CLOCK_SKEW_DAYS")
            .env_remove("SIM_NO_REGEN")
            .env_remove("SIM_K3S_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Run {
            child,
            rx,
            lines: Vec::new(),
        }
    }

    /// `kubectl ARGS` against this root: (exit code, stdout + stderr).
    fn kubectl(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(BIN)
            .arg0("kubectl")
            .args(args)
            .env("SIM_ROOT", &self.0)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// notAfter (unix) of the first cert of a leaf file under tls/.
    fn not_after(&self, rel: &str) -> i64 {
        let pem = std::fs::read_to_string(self.tls(rel)).unwrap();
        first_cert_not_after(&pem)
    }

    /// notAfter (unix) and issuer of the serving cert in dynamic-cert.json.
    fn serving(&self) -> (i64, String) {
        use base64::Engine;
        let text = std::fs::read_to_string(self.tls("dynamic-cert.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let pem = base64::engine::general_purpose::STANDARD
            .decode(v["data"]["tls.crt"].as_str().unwrap())
            .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        let blocks: Vec<Pem> = Pem::iter_from_buffer(pem.as_bytes())
            .map(|p| p.unwrap())
            .collect();
        let cert = blocks[0].parse_x509().unwrap();
        (
            cert.validity().not_after.timestamp(),
            cert.issuer().to_string(),
        )
    }

    /// Contents of every CA file and service.key.
    fn ca_snapshot(&self) -> Vec<(String, Vec<u8>)> {
        [
            "client-ca.crt",
            "client-ca.key",
            "server-ca.crt",
            "server-ca.key",
            "request-header-ca.crt",
            "request-header-ca.key",
            "etcd/server-ca.crt",
            "etcd/server-ca.key",
            "etcd/peer-ca.crt",
            "etcd/peer-ca.key",
            "service.key",
        ]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(self.tls(f)).unwrap()))
        .collect()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn first_cert_not_after(pem: &str) -> i64 {
    let block = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    block.parse_x509().unwrap().validity().not_after.timestamp()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn days_left(not_after: i64) -> i64 {
    (not_after - now() + 43_200).div_euclid(86_400)
}

/// A running `rancher` process and its log.
struct Run {
    child: Child,
    rx: Receiver<String>,
    lines: Vec<String>,
}

impl Run {
    /// Waits for a log line containing `pat`; panics with the log on timeout.
    fn wait_for(&mut self, pat: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        if let Some(l) = self.lines.iter().find(|l| l.contains(pat)) {
            return l.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line.contains(pat) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no log line with {pat:?}; log:\n{}", self.lines.join("\n"));
    }

    /// Waits until Rancher is either healthy or stuck; returns which line.
    fn outcome(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.lines.iter().find(|l| {
                l.contains("Rancher startup complete")
                    || l.contains("Waiting for server to become available")
            }) {
                return l.clone();
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no outcome; log:\n{}", self.lines.join("\n")));
            if let Ok(line) = self.rx.recv_timeout(left) {
                self.lines.push(line);
            }
        }
    }

    /// `GET /ping` on the port from `Listening on :PORT`.
    fn ping(&mut self) -> String {
        let line = self.wait_for("Listening on :");
        let port = line.rsplit(':').next().unwrap().trim().to_string();
        let mut s = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> i32 {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "no exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit by itself.
    fn exit_code(mut self) -> i32 {
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

const HEALTHY: &str = "Rancher startup complete";
const EXPIRED: &str = "x509: certificate has expired or is not yet valid";
const UNKNOWN: &str = "x509: certificate signed by unknown authority";

/// Runs one start to its outcome and stops it; returns the outcome line.
fn boot(root: &Root, env: &[(&str, &str)]) -> String {
    let mut run = root.start(env);
    let out = run.outcome();
    assert_eq!(run.stop(), 0);
    out
}

#[test]
fn fresh_start_is_healthy_and_restart_keeps_cas() {
    let root = Root::new("fresh");
    let mut run = root.start(&[]);
    run.wait_for("Waiting for k3s to start");
    assert!(run.outcome().contains(HEALTHY));
    let resp = run.ping();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(resp.ends_with("\r\n\r\npong"), "{resp}");
    let (code, out) = root.kubectl(&[
        "get",
        "secret",
        "k3s-serving",
        "-n",
        "kube-system",
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("kubernetes.io/tls"));
    assert!(root.0.join("var/run/k3s-api.up").exists());
    assert_eq!(run.stop(), 0);
    assert!(!root.0.join("var/run/k3s-api.up").exists());

    // Layout: every leaf .crt holds leaf + CA; ~365 days.
    for leaf in [
        "client-admin",
        "client-controller",
        "client-scheduler",
        "client-kube-apiserver",
        "client-kube-proxy",
        "client-k3s-controller",
        "client-cloud-controller",
        "client-auth-proxy",
        "serving-kube-apiserver",
        "etcd/server-client",
        "etcd/client",
        "etcd/peer-server-client",
    ] {
        let text = std::fs::read_to_string(root.tls(&format!("{leaf}.crt"))).unwrap();
        assert_eq!(
            text.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{leaf}"
        );
        assert!(root.tls(&format!("{leaf}.key")).exists(), "{leaf}");
        assert_eq!(
            days_left(root.not_after(&format!("{leaf}.crt"))),
            365,
            "{leaf}"
        );
    }
    for key in ["client-kubelet.key", "serving-kubelet.key"] {
        let text = std::fs::read_to_string(root.tls(key)).unwrap();
        assert!(
            text.starts_with("-----BEGIN EC PRIVATE KEY-----\n"),
            "{key}"
        );
    }
    assert!(std::fs::read_to_string(root.tls("service.key"))
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(root.tls("temporary-certs").is_dir());

    let before = root.ca_snapshot();
    let mut run = root.start(&[]);
    assert!(run.outcome().contains(HEALTHY));
    assert!(!run
        .lines
        .iter()
        .any(|l| l.contains("Waiting for k3s to start")));
    assert_eq!(run.stop(), 0);
    assert_eq!(root.ca_snapshot(), before);
}

#[test]
fn short_leaves_renew_but_v118_serving_cert_does_not() {
    let root = Root::new("leaf20");
    let env = [("SIM_LEAF_DAYS", "20")];
    assert!(boot(&root, &env).contains(HEALTHY));
    assert_eq!(days_left(root.not_after("client-admin.crt")), 20);
    assert_eq!(days_left(root.serving().0), 20);
    assert!(boot(&root, &env).contains(HEALTHY));
    assert_eq!(days_left(root.not_after("client-admin.crt")), 365);
    assert_eq!(
        days_left(root.not_after("etcd/peer-server-client.crt")),
        365
    );
    assert_eq!(days_left(root.serving().0), 20);

    // Era v1.19 renews the serving cert as well.
    let root = Root::new("leaf20-119");
    let env = [("SIM_LEAF_DAYS", "20"), ("SIM_ERA", "v1.19")];
    assert!(boot(&root, &env).contains(HEALTHY));
    assert!(boot(&root, &env).contains(HEALTHY));
    assert_eq!(days_left(root.serving().0), 365);
}

#[test]
fn v08_expired_leaves_crash() {
    let root = Root::new("v08");
    let env = [("SIM_ERA", "v0.8"), ("SIM_LEAF_DAYS", "-5")];
    for _ in 0..2 {
        let mut run = root.start(&env);
        run.wait_for("k3s exited with: exit status 1");
        assert_eq!(run.exit_code(), 1);
    }
}

#[test]
fn expired_serving_cert_needs_file_and_secret_deleted() {
    let root = Root::new("serving");
    let env = [("SIM_SERVING_DAYS", "-5")];
    assert!(boot(&root, &env).contains(EXPIRED));
    assert_eq!(days_left(root.not_after("client-admin.crt")), 365);

    // Only the secret: re-created from the file.
    let mut run = root.start(&env);
    assert!(run.outcome().contains(EXPIRED));
    let (code, out) = root.kubectl(&[
        "--insecure-skip-tls-verify",
        "delete",
        "secret",
        "-n",
        "kube-system",
        "k3s-serving",
    ]);
    assert_eq!((code, out.trim()), (0, "secret \"k3s-serving\" deleted"));
    let (code, out) = root.kubectl(&["delete", "secret", "k3s-serving", "-n", "kube-system"]);
    assert_eq!(code, 1);
    assert!(out.contains("(NotFound)"), "{out}");
    assert_eq!(run.stop(), 0);
    let (code, out) = root.kubectl(&["get", "secret", "k3s-serving", "-n", "kube-system"]);
    assert_eq!(code, 1);
    assert!(out.contains("was refused"), "{out}");
    let mut run = root.start(&env);
    assert!(run.outcome().contains(EXPIRED));
    run.wait_for("Creating new TLS secret for kube-system/k3s-serving");
    assert_eq!(run.stop(), 0);

    // Only the file: restored from the secret.
    std::fs::remove_file(root.tls("dynamic-cert.json")).unwrap();
    assert!(boot(&root, &env).contains(EXPIRED));

    // Both: a fresh certificate.
    std::fs::remove_file(root.tls("dynamic-cert.json")).unwrap();
    std::fs::remove_file(
        root.0
            .join("var/lib/rancher/management-state/secrets/kube-system/k3s-serving.json"),
    )
    .unwrap();
    assert!(boot(&root, &env).contains(HEALTHY));
    assert_eq!(days_left(root.serving().0), 365);
}

/// The seed's manual procedure: delete every `tls/*.crt` and restart.
fn wipe_crts(root: &Root) {
    for e in std::fs::read_dir(root.tls("")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "crt") {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn wiped_crts_v119_second_restart_heals() {
    let root = Root::new("wipe119");
    let env = [("SIM_ERA", "v1.19")];
    assert!(boot(&root, &env).contains(HEALTHY));
    let keys_before = std::fs::read(root.tls("server-ca.key")).unwrap();
    wipe_crts(&root);
    assert!(boot(&root, &env).contains(UNKNOWN)); // stale k3s.yaml
    assert!(boot(&root, &env).contains(HEALTHY));
    assert_eq!(
        std::fs::read(root.tls("server-ca.key")).unwrap(),
        keys_before
    );
}

#[test]
fn wiped_crts_v118_stale_serving_cert_sticks() {
    let root = Root::new("wipe118");
    assert!(boot(&root, &[]).contains(HEALTHY));
    wipe_crts(&root);
    assert!(boot(&root, &[]).contains(HEALTHY)); // stale k3s.yaml matches the stale cert
    assert!(boot(&root, &[]).contains(UNKNOWN));
    assert!(boot(&root, &[]).contains(UNKNOWN));
    // v1.18 ignores the regenerate trigger of newer K3s...
    std::fs::write(root.tls("dynamic-cert-regenerate"), b"").unwrap();
    assert!(boot(&root, &[]).contains(UNKNOWN));
    assert!(root.tls("dynamic-cert-regenerate").exists());
    // ...deleting both copies of the serving cert clears it.
    std::fs::remove_file(root.tls("dynamic-cert.json")).unwrap();
    std::fs::remove_file(root.store()).unwrap();
    assert!(boot(&root, &[]).contains(HEALTHY));
    let (_, issuer) = root.serving();
    let ca = std::fs::read_to_string(root.tls("server-ca.crt")).unwrap();
    let ca = Pem::iter_from_buffer(ca.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(issuer, ca.parse_x509().unwrap().subject().to_string());
}

#[test]
fn missing_leaf_crt_keeps_its_key() {
    let root = Root::new("leafkey");
    assert!(boot(&root, &[]).contains(HEALTHY));
    let key = std::fs::read(root.tls("client-admin.key")).unwrap();
    let other = std::fs::read(root.tls("client-controller.key")).unwrap();
    std::fs::remove_file(root.tls("client-admin.crt")).unwrap();
    std::fs::remove_file(root.tls("client-controller.key")).unwrap();
    assert!(boot(&root, &[]).contains(HEALTHY));
    assert_eq!(std::fs::read(root.tls("client-admin.key")).unwrap(), key);
    assert_ne!(
        std::fs::read(root.tls("client-controller.key")).unwrap(),
        other
    );
    assert!(Path::new(&root.tls("client-controller.crt")).exists());
}

// ------------------------------------------------------------------ diagnosis modes

/// Lines read until `deadline`, without waiting for any particular one.
fn drain_for(run: &mut Run, d: Duration) {
    let deadline = Instant::now() + d;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(line) = run.rx.recv_timeout(left) {
            run.lines.push(line);
        }
    }
}

/// notBefore (unix) of the first cert of a file under tls/.
fn not_before(root: &Root, rel: &str) -> i64 {
    let pem = std::fs::read_to_string(root.tls(rel)).unwrap();
    let block = Pem::iter_from_buffer(pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    block
        .parse_x509()
        .unwrap()
        .validity()
        .not_before
        .timestamp()
}

#[test]
fn noise_mode_prints_unrelated_x509_lines_while_healthy() {
    let root = Root::new("noise");
    let mut run = root.start(&[("SIM_NOISE", "1")]);
    assert!(run.outcome().contains(HEALTHY));
    run.wait_for("CatalogController massimo-catalog [catalog] failed with");
    run.wait_for("failed calling webhook \"rancher.cattle.io\"");
    run.wait_for("http: TLS handshake error from");
    let noisy = run
        .lines
        .iter()
        .skip_while(|l| !l.contains(HEALTHY))
        .filter(|l| l.contains("x509") || l.contains("tls:"))
        .count();
    assert!(noisy >= 3, "{}", run.lines.join("\n"));
    // Still healthy while noisy.
    assert!(run.ping().ends_with("pong"));
    assert_eq!(run.stop(), 0);

    // Without SIM_NOISE a healthy Rancher prints nothing after startup.
    let mut run = root.start(&[]);
    assert!(run.outcome().contains(HEALTHY));
    drain_for(&mut run, Duration::from_millis(1500));
    let after: Vec<&String> = run
        .lines
        .iter()
        .skip_while(|l| !l.contains(HEALTHY))
        .skip(1)
        .collect();
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(run.stop(), 0);
}

#[test]
fn clock_skew_mode_mints_certificates_in_the_future() {
    let root = Root::new("skew");
    let env = [("SIM_CLOCK_SKEW_DAYS", "30"), ("SIM_ERA", "v1.19")];
    let out = boot(&root, &env);
    // Rancher cannot trust a serving cert that is not valid yet (k3s-io/k3s#6152).
    assert!(
        out.contains(EXPIRED) && out.contains(" is before "),
        "{out}"
    );
    let ahead = (not_before(&root, "server-ca.crt") - now()) as f64 / 86_400.0;
    assert!(
        (29.9..30.1).contains(&ahead),
        "CA starts {ahead} days ahead"
    );
    assert_eq!(
        not_before(&root, "client-admin.crt"),
        not_before(&root, "server-ca.crt")
    );
    assert_eq!(days_left(root.not_after("client-admin.crt")), 395);
    // Only the first boot is skewed; k3s does not repair it by itself.
    let cas = root.ca_snapshot();
    let out = boot(&root, &env);
    assert!(out.contains(" is before "), "{out}");
    assert_eq!(root.ca_snapshot(), cas);
}

#[test]
fn no_regen_mode_leaves_a_missing_leaf_missing() {
    let root = Root::new("noregen");
    let env = [("SIM_NO_REGEN", "client-admin.crt")];
    assert!(boot(&root, &env).contains(HEALTHY));
    assert!(
        root.tls("client-admin.crt").exists(),
        "first boot still creates it"
    );
    std::fs::remove_file(root.tls("client-admin.crt")).unwrap();
    std::fs::remove_file(root.tls("client-controller.crt")).unwrap();
    assert!(boot(&root, &env).contains(HEALTHY));
    assert!(!root.tls("client-admin.crt").exists());
    assert!(root.tls("client-admin.key").exists());
    assert!(
        root.tls("client-controller.crt").exists(),
        "other leaves come back"
    );
    // Without the knob it comes back.
    assert!(boot(&root, &[]).contains(HEALTHY));
    assert_eq!(days_left(root.not_after("client-admin.crt")), 365);
}

#[test]
fn k3s_log_file_mode_keeps_k3s_lines_out_of_stdout() {
    let root = Root::new("k3slog");
    let log = root.0.join("var/lib/rancher/k3s.log");
    let env = [("SIM_K3S_LOG", "file"), ("SIM_SERVING_DAYS", "-5")];
    let mut run = root.start(&env);
    let out = run.outcome();
    assert!(out.contains("Waiting for server to become available") && out.contains(EXPIRED));
    assert!(run.lines.iter().any(|l| l.contains("Rancher version")));
    assert!(
        !run.lines
            .iter()
            .any(|l| l.contains("generated") || l.contains("TLS secret")),
        "{}",
        run.lines.join("\n")
    );
    assert_eq!(run.stop(), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("generated self-signed CA certificate CN=k3s-server-ca@"));
    assert!(text.contains("Active TLS secret k3s-serving"));
    let len = text.len();
    // Appended at every start.
    boot(&root, &env);
    let again = std::fs::read_to_string(&log).unwrap();
    assert!(again.len() > len && again.starts_with(&text));

    // Default: stdout, no file.
    let root = Root::new("k3slog-default");
    let mut run = root.start(&[]);
    assert!(run.outcome().contains(HEALTHY));
    assert!(run
        .lines
        .iter()
        .any(|l| l.contains("generated certificate")));
    assert_eq!(run.stop(), 0);
    assert!(!root.0.join("var/lib/rancher/k3s.log").exists());
}

#[test]
fn v08_tls_startup_failure_goes_to_the_k3s_log_and_the_exit_to_stdout() {
    let root = Root::new("v08log");
    let env = [
        ("SIM_ERA", "v0.8"),
        ("SIM_LEAF_DAYS", "-5"),
        ("SIM_K3S_LOG", "file"),
    ];
    let mut run = root.start(&env);
    run.wait_for("k3s exited with: exit status 1");
    assert!(!run.lines.iter().any(|l| l.contains("starting tls server")));
    assert_eq!(run.exit_code(), 1);
    let text = std::fs::read_to_string(root.0.join("var/lib/rancher/k3s.log")).unwrap();
    assert!(text.contains("[FATAL] starting tls server: Get https://localhost:6444/"));
}

#[test]
fn invalid_diagnosis_knobs_are_refused() {
    let root = Root::new("badknobs");
    for (k, v) in [
        ("SIM_NOISE", "yes"),
        ("SIM_CLOCK_SKEW_DAYS", "soon"),
        ("SIM_NO_REGEN", "../etc/passwd"),
        ("SIM_NO_REGEN", "client-ca"),
        ("SIM_K3S_LOG", "syslog"),
    ] {
        let mut run = root.start(&[(k, v)]);
        let line = run.wait_for("[FATAL]");
        assert!(line.contains(k), "{line}");
        assert_eq!(run.exit_code(), 1, "{k}={v}");
    }
}
