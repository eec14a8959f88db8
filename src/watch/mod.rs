//! `watch`, the sidecar: find the Rancher containers, look at their certificates at start,
//! exactly when the next one enters the renewal window, on container events and on a slow
//! safety interval; repair what is due (one repair per container at a time, cooldown, circuit
//! breaker, maintenance window); serve health, readiness, metrics and status over HTTP.
//! Also `healthcheck`, the image's HEALTHCHECK.
//!
//! Wiring only; the parts are:
//! [`schedule`] (pure: window, decision) · [`gate`] (cooldown, breaker) · [`targets`]
//! (selection, self-exclusion, events → triggers) · [`events`] (the stream, reconnecting) ·
//! [`controller`] (the loop) · [`runner`] (the loop's Docker side) · [`state`] (what HTTP reads).

pub mod controller;
pub mod events;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod targets;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::docker::DockerClient;
use crate::exit::{print_error, Outcome};
use crate::inventory::RenewBefore;
use crate::repair::RepairOptions;
use crate::token::ApiToken;
use controller::{Clock, Config, Controller};
use events::{Backoff, RawEvent, StreamHealth};
use http::AppState;
use metrics::Metrics;
use runner::DockerRunner;

use state::{Shared, StatusDoc};

/// `watch`'s settings, parsed and checked once.
pub struct WatchConfig {
    pub loop_cfg: Config,
    pub listen: String,
    pub addr_file: std::path::PathBuf,
    pub token: Option<ApiToken>,
    pub tls_path: String,
    pub renew_before: RenewBefore,
    pub repair: RepairOptions,
    /// Which x509-certificate-exporter series `/metrics` serves.
    pub exporter_compat: metrics::ExporterCompat,
}

/// `healthcheck`'s settings.
#[derive(Debug, Clone)]
pub struct Healthcheck {
    /// Where `watch` recorded the address it listens on.
    pub addr_file: std::path::PathBuf,
    /// The address to try when there is no address file.
    pub listen: String,
    pub timeout: Duration,
    /// The path to query (`/healthz`, `/status`, `/metrics`).
    pub path: String,
    /// Print the answer's body.
    pub print: bool,
}

/// `rancher-cert-guard watch`: runs until SIGTERM or SIGINT (a second one exits at once).
pub async fn run_watch(cfg: WatchConfig) -> Outcome {
    let shutdown = CancellationToken::new();
    tokio::spawn(crate::shutdown::on_signals(shutdown.clone()));
    watch(cfg, shutdown).await
}

struct Health {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
}

impl StreamHealth for Health {
    fn connected(&self, up: bool) {
        self.shared.set_docker_up(up);
    }
    fn error(&self, kind: &'static str) {
        self.metrics.docker_error(kind);
    }
}

/// `watch` with an injected shutdown signal (tests cancel the token).
pub async fn watch(cfg: WatchConfig, shutdown: CancellationToken) -> Outcome {
    let listener = match TcpListener::bind(&cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            print_error(format!(
                "cannot listen on {}: {e} (set --listen / CERT_GUARD_LISTEN)",
                cfg.listen
            ));
            return Outcome::CannotStart;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            print_error(format!("cannot read the listening address: {e}"));
            return Outcome::CannotStart;
        }
    };
    write_addr_file(&cfg.addr_file, addr);
    http::warn_if_exposed(addr, cfg.token.as_ref());
    if !cfg.loop_cfg.policy.monitor_only {
        if let Some(dir) = &cfg.repair.backup_dir {
            if let Err(e) = crate::repair::backup::probe_writable(dir) {
                tracing::error!(error = %e, "repairs will be refused until the backup directory is writable");
            }
        }
    }

    let policy = &cfg.loop_cfg.policy;
    let doc = StatusDoc {
        version: env!("CARGO_PKG_VERSION"),
        selection: cfg.loop_cfg.selector.describe(),
        monitor_only: policy.monitor_only,
        window: policy.window.map(|w| w.to_string()),
        renew_before_days: cfg.renew_before.as_days(),
        tls_path: cfg.tls_path.clone(),
        docker_host: std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into()),
        ..StatusDoc::default()
    };
    let shared = Arc::new(Shared::new(cfg.loop_cfg.tick, doc));
    shared.tick();
    let metrics = Arc::new(Metrics::with_compat(shared.clone(), cfg.exporter_compat));
    let (cmd_tx, cmd_rx) = mpsc::channel(8);
    let server_stop = CancellationToken::new();
    let app = http::router(AppState {
        shared: shared.clone(),
        metrics: metrics.clone(),
        token: cfg.token.clone(),
        commands: cmd_tx,
    });
    let server = tokio::spawn(http::serve(listener, app, server_stop.clone()));
    tracing::info!(
        %addr,
        addr_file = %cfg.addr_file.display(),
        api = cfg.token.is_some(),
        monitor_only = policy.monitor_only,
        window = policy.window.map(|w| w.to_string()).as_deref().unwrap_or("-"),
        interval_s = cfg.loop_cfg.interval.as_secs(),
        renew_before_days = cfg.renew_before.as_days(),
        "serving /healthz /readyz /metrics /status{}",
        if cfg.token.is_some() { " and POST /v1/repair" } else { "" }
    );

    if let Some(docker) = connect(&shared, &shutdown).await {
        shared.set_docker_version(docker.server_version.clone());
        run_loop(
            cfg.loop_cfg.clone_with_own(),
            &cfg,
            docker,
            shared,
            metrics,
            cmd_rx,
            shutdown,
        )
        .await;
    }
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    let _ = std::fs::remove_file(&cfg.addr_file);
    tracing::info!("stopped");
    Outcome::Stopped
}

impl Config {
    /// The config with this process's own container filled in, never to be a target.
    fn clone_with_own(&self) -> Config {
        let mut c = self.clone();
        let mut sel = (*c.selector).clone();
        sel.own = targets::own_container();
        match &sel.own {
            Some(own) => tracing::info!(own = ?own, "running in a container; it is never a target"),
            None => tracing::debug!("not running in a container"),
        }
        c.selector = Arc::new(sel);
        c
    }
}

async fn run_loop(
    loop_cfg: Config,
    cfg: &WatchConfig,
    docker: DockerClient,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    cmd_rx: mpsc::Receiver<controller::ApiCommand>,
    shutdown: CancellationToken,
) {
    let (trig_tx, trig_rx) = mpsc::channel(256);
    let events_docker = docker.clone();
    let pump = tokio::spawn(events::pump(
        move || {
            Box::pin(
                events_docker
                    .container_events()
                    .map(|r| r.map(RawEvent::from)),
            )
        },
        loop_cfg.selector.clone(),
        trig_tx,
        Arc::new(Health {
            shared: shared.clone(),
            metrics: metrics.clone(),
        }),
        shutdown.clone(),
    ));
    let runner = Arc::new(DockerRunner {
        docker,
        tls_path: cfg.tls_path.clone(),
        renew_before: cfg.renew_before,
        opts: cfg.repair.clone(),
        me: crate::process::me(),
    });
    Controller::new(loop_cfg, runner, shared, metrics, Clock::System)
        .run(trig_rx, cmd_rx, shutdown)
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(1), pump).await;
}

/// Connect to Docker, retrying with backoff (the daemon may start after us); `None` on shutdown.
async fn connect(shared: &Shared, shutdown: &CancellationToken) -> Option<DockerClient> {
    let mut backoff = Backoff::new(Duration::from_millis(500), shared.tick);
    loop {
        shared.tick();
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = tokio::time::timeout(Duration::from_secs(10), DockerClient::connect()) => r,
        };
        match attempt {
            Ok(Ok(d)) => {
                tracing::info!(host = %d.host, server = %d.server_version, api = %d.api_version, "connected to Docker");
                return Some(d);
            }
            Ok(Err(e)) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach Docker yet");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(_) => tracing::warn!("Docker did not answer within 10s; retrying"),
        }
    }
}

/// Record where we listen, for `healthcheck` (atomic replace; failure only warns: the
/// healthcheck then falls back to --listen).
fn write_addr_file(path: &Path, addr: SocketAddr) {
    let result = (|| -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, format!("{addr}\n"))?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the address file; `healthcheck` will use --listen");
    }
}

/// Where to reach a listener bound to `addr`: the unspecified address becomes loopback.
pub fn probe_addrs(addr: &str) -> Vec<String> {
    match addr.trim().parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if a.ip().is_unspecified() => {
            vec![format!("127.0.0.1:{}", a.port())]
        }
        Ok(SocketAddr::V6(a)) if a.ip().is_unspecified() => {
            vec![
                format!("[::1]:{}", a.port()),
                format!("127.0.0.1:{}", a.port()),
            ]
        }
        Ok(a) => vec![a.to_string()],
        Err(_) => vec![addr.trim().to_string()],
    }
}

/// `rancher-cert-guard healthcheck`: GET /healthz (or `--path`) of the local `watch`, at the
/// address it recorded; 0 when it answers 200.
pub async fn run_healthcheck(args: &Healthcheck) -> Outcome {
    let from_file = std::fs::read_to_string(&args.addr_file)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let addr = from_file.unwrap_or_else(|| args.listen.clone());
    let timeout = args.timeout.max(Duration::from_secs(1));
    let path = if args.path.starts_with('/') {
        args.path.clone()
    } else {
        format!("/{}", args.path)
    };
    let mut last = String::new();
    for a in probe_addrs(&addr) {
        match crate::probe::http_get(&format!("http://{a}{path}"), timeout).await {
            Ok((code, body)) => {
                if args.print {
                    print!("{body}");
                }
                if code == 200 {
                    return Outcome::Healthy(true);
                }
                eprintln!(
                    "unhealthy: http://{a}{path} answered {code}: {}",
                    body.trim()
                );
                return Outcome::Healthy(false);
            }
            Err(e) => last = e,
        }
    }
    eprintln!("unhealthy: {last}");
    Outcome::Healthy(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_addresses() {
        assert_eq!(probe_addrs("0.0.0.0:9795"), vec!["127.0.0.1:9795"]);
        assert_eq!(
            probe_addrs("[::]:9795"),
            vec!["[::1]:9795", "127.0.0.1:9795"]
        );
        assert_eq!(probe_addrs("127.0.0.1:4000\n"), vec!["127.0.0.1:4000"]);
        assert_eq!(probe_addrs("localhost:4000"), vec!["localhost:4000"]);
    }

    #[test]
    fn addr_file_roundtrip_creates_the_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/dir/addr");
        write_addr_file(&p, "127.0.0.1:1234".parse().unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "127.0.0.1:1234\n");
    }
}
