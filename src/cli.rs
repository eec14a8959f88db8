//! Command-line interface (clap). Every flag can also be set from a `CERT_GUARD_*` variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_TLS_PATH: &str = "/var/lib/rancher/k3s/server/tls";
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9795";

#[derive(Debug, Parser)]
#[command(
    name = "rancher-cert-guard",
    version,
    about = "Checks and renews the embedded K3s certificates of a Rancher single-node Docker install"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "CERT_GUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing env-filter syntax: `info`, `debug`, `rancher_cert_guard=debug`).
    #[arg(
        long,
        env = "CERT_GUARD_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report every certificate of a K3s TLS tree and its expiry (exit 0 ok, 1 warning, 2 expired, 3 unknown).
    Check(CheckArgs),
    /// Back up, wipe what K3s regenerates, restart and verify until the certificates are fresh.
    Repair(RepairArgs),
    /// Run as a sidecar: watch containers, repair before expiry, serve health and metrics.
    Watch(WatchArgs),
    /// Query the local `watch` /healthz (for the image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
}

/// Where the TLS tree is and how strict to be.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// Read a local directory (a mounted `.../k3s/server/tls`).
    #[arg(
        long,
        env = "CERT_GUARD_DIR",
        conflicts_with = "container",
        required_unless_present = "container"
    )]
    pub dir: Option<PathBuf>,
    /// Read a container (name or id) through the Docker API.
    #[arg(long, env = "CERT_GUARD_CONTAINER")]
    pub container: Option<String>,
    /// The TLS directory inside the container.
    #[arg(long, env = "CERT_GUARD_TLS_PATH", default_value = DEFAULT_TLS_PATH)]
    pub tls_path: String,
    /// Renewal window in days: a certificate expiring within it is due.
    #[arg(long, env = "CERT_GUARD_RENEW_BEFORE", default_value_t = 90)]
    pub renew_before: u32,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[arg(long, short = 'o', env = "CERT_GUARD_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Settings of the repair ladder, shared by `repair` and `watch`.
#[derive(Debug, Clone, Args)]
pub struct LadderArgs {
    /// Where backup archives and the journal are written (required unless --dry-run).
    #[arg(long, env = "CERT_GUARD_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// How many backup archives to keep per container.
    #[arg(long, env = "CERT_GUARD_KEEP_BACKUPS", default_value_t = 10)]
    pub keep_backups: usize,
    /// Restarts allowed to clear the unknown-authority loop before giving up.
    #[arg(long, env = "CERT_GUARD_MAX_RESTARTS", default_value_t = 3)]
    pub max_restarts: u32,
    /// Seconds the container must stay up without a restart after it answered, to count as healthy.
    #[arg(long, env = "CERT_GUARD_SETTLE", default_value_t = 60)]
    pub settle: u64,
    /// Give up the whole repair after this many seconds.
    #[arg(long, env = "CERT_GUARD_TIMEOUT", default_value_t = 900)]
    pub timeout: u64,
    /// Probe this URL for `pong` from the tool itself instead of inside the container.
    #[arg(long, env = "CERT_GUARD_HEALTH_URL")]
    pub health_url: Option<String>,
    /// Seconds `docker stop` waits before killing the container.
    #[arg(long, env = "CERT_GUARD_STOP_TIMEOUT", default_value_t = 30)]
    pub stop_timeout: u32,
    /// Seconds to wait for another run acting on the same container before giving up as busy.
    #[arg(long, env = "CERT_GUARD_LOCK_WAIT", default_value_t = 0)]
    pub lock_wait: u64,
    /// Tests only: pause after a step of the ladder (`stop`, `wipe`, `start`, `backup`,
    /// optionally `:SECONDS`), so a test can kill the process right there.
    #[arg(long, hide = true)]
    pub fault_pause_after: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub ladder: LadderArgs,
    /// Print the plan; change nothing.
    #[arg(long, env = "CERT_GUARD_DRY_RUN")]
    pub dry_run: bool,
    /// Repair even when nothing is due.
    #[arg(long, env = "CERT_GUARD_FORCE")]
    pub force: bool,
    #[arg(long, short = 'o', env = "CERT_GUARD_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Container to watch (repeatable).
    #[arg(
        long = "container",
        env = "CERT_GUARD_CONTAINERS",
        value_delimiter = ','
    )]
    pub containers: Vec<String>,
    /// Watch containers with this label (KEY=VALUE, repeatable).
    #[arg(long = "label", env = "CERT_GUARD_LABELS", value_delimiter = ',')]
    pub labels: Vec<String>,
    #[arg(long, env = "CERT_GUARD_TLS_PATH", default_value = DEFAULT_TLS_PATH)]
    pub tls_path: String,
    #[arg(long, env = "CERT_GUARD_RENEW_BEFORE", default_value_t = 90)]
    pub renew_before: u32,
    #[command(flatten)]
    pub ladder: LadderArgs,
    /// Safety re-check interval in seconds (certificates are also checked exactly when they
    /// enter the window, and on container events).
    #[arg(long, env = "CERT_GUARD_INTERVAL", default_value_t = 3600)]
    pub interval: u64,
    /// Never change anything: check, report, alert.
    #[arg(long, env = "CERT_GUARD_MONITOR_ONLY")]
    pub monitor_only: bool,
    /// Maintenance window for non-urgent repairs, e.g. `Sun 02:00-04:00` or `02:00-04:00` (UTC).
    #[arg(long, env = "CERT_GUARD_WINDOW")]
    pub window: Option<String>,
    /// Seconds to wait after a repair before another on the same container.
    #[arg(long, env = "CERT_GUARD_COOLDOWN", default_value_t = 600)]
    pub cooldown: u64,
    /// Circuit breaker: at most this many repairs per container per 24 h.
    #[arg(long, env = "CERT_GUARD_MAX_REPAIRS_PER_DAY", default_value_t = 3)]
    pub max_repairs_per_day: u32,
    /// Address of the HTTP server (/healthz /readyz /metrics /status).
    #[arg(long, env = "CERT_GUARD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// File holding the bearer token that enables `POST /v1/repair` (off without a token).
    #[arg(long, env = "CERT_GUARD_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// The bearer token itself (prefer --api-token-file: environment variables leak into
    /// `docker inspect`).
    #[arg(
        long,
        env = "CERT_GUARD_API_TOKEN",
        hide_env_values = true,
        conflicts_with = "api_token_file"
    )]
    pub api_token: Option<crate::token::ApiToken>,
    /// Where `watch` records the address it listens on, for `healthcheck`.
    #[arg(
        long,
        env = "CERT_GUARD_ADDR_FILE",
        default_value = "/tmp/rancher-cert-guard.addr"
    )]
    pub addr_file: PathBuf,
    /// x509-certificate-exporter series to serve beside `x509_cert_*`: v3 (`x509_read_errors`),
    /// v4 (`x509_source_up`, `x509_source_errors_total`) or both.
    #[arg(long, env = "CERT_GUARD_EXPORTER_COMPAT", value_enum, default_value_t = crate::watch::metrics::ExporterCompat::V3)]
    pub exporter_compat: crate::watch::metrics::ExporterCompat,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    /// Address to query when `watch` left no address file.
    #[arg(long, env = "CERT_GUARD_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    #[arg(
        long,
        env = "CERT_GUARD_ADDR_FILE",
        default_value = "/tmp/rancher-cert-guard.addr"
    )]
    pub addr_file: PathBuf,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
    /// Path to query instead of /healthz (e.g. /status or /metrics: the image has no curl).
    #[arg(long, default_value = "/healthz")]
    pub path: String,
    /// Print the answer's body on stdout.
    #[arg(long)]
    pub print: bool,
}
