//! PID 1: the simulated Rancher server with its embedded k3s.
//!
//! Start-up order (each step is faithful to K3s-in-Rancher, see the crate
//! docs): read the stale kubeconfig → k3s certificates → "API up" →
//! serving cert sync → write kubeconfig → boot delay → health decision →
//! either serve `:80` or loop forever on `Waiting for server to become
//! available`. SIGTERM/SIGINT exit at once with code 0.

use std::convert::Infallible;
use std::net::TcpListener;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use time::OffsetDateTime;

use crate::config::{Config, Era};
use crate::k3s::{self, Ctx};
use crate::paths::{p, tls, API_UP, MARKER};
use crate::pki;
use crate::{fsutil, http, kubeconfig, log, noise, serving};

/// The version string in the first log line.
pub const RANCHER_VERSION: &str = "v2.5.7-sim";

/// URL Rancher's k8scheck polls.
const VERSION_URL: &str = "https://127.0.0.1:6443/version?timeout=15m0s";

/// Entry point when called as `rancher`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.first().map(String::as_str) == Some("--version") {
        println!("rancher version {RANCHER_VERSION}");
        return 0;
    }
    let cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            log::fatal(e);
            return 1;
        }
    };
    log::set_k3s_to_file(cfg.k3s_log_file);
    if let Err(e) = install_signal_handler() {
        log::fatal(e);
        return 1;
    }
    // A stale marker from a killed previous run must not make kubectl work.
    let _ = fsutil::remove(&p(API_UP));
    log::info(format!(
        "Rancher version {RANCHER_VERSION} (era {}) is starting",
        cfg.era.name()
    ));
    match run(&cfg) {
        Ok(never) => match never {},
        Err(e) => {
            log::fatal(e);
            let _ = fsutil::remove(&p(API_UP));
            1
        }
    }
}

/// PID 1 ignores signals that have no handler: exit on SIGTERM/SIGINT once
/// no file write is in progress, removing the "API up" marker. With
/// `SIM_IGNORE_SIGTERM=1` only SIGINT is handled, so `docker stop` waits its whole
/// grace period and then kills (a Rancher that is slow to stop).
fn install_signal_handler() -> Result<(), String> {
    let ignore_term = std::env::var("SIM_IGNORE_SIGTERM").is_ok_and(|v| v.trim() == "1");
    let wanted: &[i32] = if ignore_term {
        &[SIGINT]
    } else {
        &[SIGTERM, SIGINT]
    };
    let mut signals = Signals::new(wanted).map_err(|e| format!("install signal handler: {e}"))?;
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _guard = fsutil::lock();
            let _ = std::fs::remove_file(p(API_UP));
            let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log::info(format!("Received {name}, shutting down"));
            std::process::exit(0);
        }
    });
    Ok(())
}

fn run(cfg: &Config) -> Result<Infallible, String> {
    // 2. Rancher reads the kubeconfig left by the previous run, if any.
    let stale_ca = kubeconfig::read_ca();

    // 3. k3s certificates.
    let first_boot = !p(MARKER).exists();
    let ctx = Ctx::new(cfg, first_boot, pki::trunc(OffsetDateTime::now_utc()));
    let certs = k3s::ensure_certs(&ctx)?;
    if first_boot {
        let stamp = format!("{}\n", ctx.now.unix_timestamp());
        fsutil::write(&p(MARKER), stamp.as_bytes(), 0o644)
            .map_err(|e| format!("write marker: {e}"))?;
    }
    if cfg.era == Era::V0_8 && !certs.invalid_leaves.is_empty() {
        // k3s v0.8 never renews; kube-apiserver refuses the expired certs.
        log::k3s_fatal("starting tls server: Get https://localhost:6444/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions: x509: certificate has expired or is not yet valid");
        // Rancher's own line (norman's logrus.Fatalf): always on stdout.
        log::fatal("k3s exited with: exit status 1");
        std::process::exit(1);
    }

    // 4. The Kubernetes API answers from now on.
    fsutil::write(&p(API_UP), b"", 0o644).map_err(|e| format!("write {API_UP}: {e}"))?;

    // 5. The :6443 serving cert.
    let serving = serving::ensure(&ctx, &certs.server_ca)?;

    // 6. Fresh kubeconfig; Rancher only waits for it if there was none.
    let server_ca_pem = fsutil::read_string(&tls("server-ca.crt")).unwrap_or_default();
    kubeconfig::write(&server_ca_pem, &certs.admin_crt_pem, &certs.admin_key_pem)?;
    let rancher_ca = match stale_ca {
        Some(ca) => ca,
        None => {
            log::info("Waiting for k3s to start");
            certs.server_ca.der.clone()
        }
    };

    // 7. Rancher boots, then connects to :6443 trusting `rancher_ca`.
    std::thread::sleep(cfg.boot);
    while let Some(err) = connect_error(&serving, &rancher_ca)? {
        log::info(format!(
            "Waiting for server to become available: Get \"{VERSION_URL}\": {err}"
        ));
        std::thread::sleep(Duration::from_secs(2));
    }
    // SIM_HTTP_ADDR is a development knob for running outside a container.
    let addr = std::env::var("SIM_HTTP_ADDR").unwrap_or_else(|_| "0.0.0.0:80".into());
    let listener = TcpListener::bind(&addr).map_err(|e| format!("listen on {addr}: {e}"))?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(80);
    log::info(format!("Listening on :{port}"));
    log::info("Rancher startup complete");
    if cfg.noise {
        noise::start();
    }
    http::serve(listener)
}

/// The error Go's TLS client would report for the :6443 cert, if any. Like
/// `x509.Certificate.Verify`, the validity period is checked before the chain.
fn connect_error(serving: &[u8], rancher_ca: &[u8]) -> Result<Option<String>, String> {
    let v = pki::view(serving)?;
    let now = OffsetDateTime::now_utc();
    let base = "x509: certificate has expired or is not yet valid";
    Ok(if now > v.not_after {
        Some(format!(
            "{base}: current time {} is after {}",
            pki::rfc3339(now),
            pki::rfc3339(v.not_after)
        ))
    } else if now < v.not_before {
        Some(format!(
            "{base}: current time {} is before {}",
            pki::rfc3339(now),
            pki::rfc3339(v.not_before)
        ))
    } else if !pki::verifies(serving, rancher_ca) {
        Some("x509: certificate signed by unknown authority".into())
    } else {
        None
    })
}
