//! Thin binary: parse the command line, start logging, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use rancher_cert_guard::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            rancher_cert_guard::exit::print_error(format!("cannot start the async runtime: {e}"));
            return ExitCode::from(rancher_cert_guard::exit::Outcome::Unknown.code());
        }
    };
    ExitCode::from(runtime.block_on(rancher_cert_guard::run(cli)))
}

fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log redirected to a file or collected by
    // Docker stays plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
