//! Dispatch of the subcommands: each returns an [`Outcome`]; [`crate::exit`] maps it to the
//! process's exit code.

use crate::check::{check, Target};
use crate::cli::{CheckArgs, Cli, Command, Output, RepairArgs, SourceArgs};
use crate::config;
use crate::diagnose::clock::{check_clock, DEFAULT_TOLERANCE_SECS};
use crate::docker::DockerClient;
use crate::error::Error;
use crate::exit::{print_error, Outcome};
use crate::inventory::{RenewBefore, Status};
use crate::repair::{repair_container, repair_dir};
use crate::report::CheckReport;
use crate::timefmt;
use tokio_util::sync::CancellationToken;

/// Run a command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    let outcome = match cli.command {
        Command::Check(args) => run_check(args).await,
        Command::Repair(args) => run_repair(args).await,
        Command::Watch(args) => match config::watch_config(&args) {
            Ok(cfg) => crate::watch::run_watch(cfg).await,
            Err(e) => {
                print_error(e);
                Outcome::Usage
            }
        },
        Command::Healthcheck(args) => {
            crate::watch::run_healthcheck(&config::healthcheck(&args)).await
        }
    };
    outcome.code()
}

/// The command line's source, once: a directory or a container.
fn target_of(src: &SourceArgs) -> Result<Target, Error> {
    match (&src.dir, &src.container) {
        (Some(dir), _) => Ok(Target::Dir(dir.clone())),
        (None, Some(name)) => Ok(Target::Container {
            name: name.clone(),
            tls_path: src.tls_path.clone(),
        }),
        (None, None) => Err(Error::Invalid("give --dir PATH or --container NAME".into())),
    }
}

/// A connected Docker client when the target is a container.
async fn docker_for(target: &Target) -> Result<Option<DockerClient>, Error> {
    match target {
        Target::Dir(_) => Ok(None),
        Target::Container { .. } => DockerClient::connect().await.map(Some),
    }
}

async fn run_check(args: CheckArgs) -> Outcome {
    let renew_before = RenewBefore::days(args.source.renew_before);
    let now = timefmt::now();
    let target = match target_of(&args.source) {
        Ok(t) => t,
        Err(e) => {
            print_error(&e);
            return Outcome::Usage;
        }
    };
    let describe = target.describe();
    let result = async {
        let docker = docker_for(&target).await?;
        let (tree, inv) = check(&target, docker.as_ref(), now, renew_before).await?;
        // The clock gate: the daemon's clock, where there is one, and the certificates.
        let daemon_now = match &docker {
            Some(d) => d.daemon_time().await.ok(),
            None => None,
        };
        let clock = check_clock(now, daemon_now, &inv, DEFAULT_TOLERANCE_SECS).err();
        // The era the image carries (where remedies differ by version).
        let era = match (&docker, &target) {
            (Some(d), Target::Container { name, .. }) => d
                .inspect(name)
                .await
                .ok()
                .map(|i| crate::docker::Era::of(&i))
                .filter(|e| e.is_known()),
            _ => None,
        };
        // The file bodies are not needed for the report: free them before it is built (peak
        // memory on a 10 000-file tree, bench/RESULTS.md).
        drop(tree);
        Ok::<_, Error>((inv, clock, era))
    }
    .await;
    let report = match result {
        Ok((inv, clock, era)) => {
            let mut r = CheckReport::new(describe, now, renew_before, &inv);
            r.era = era;
            if let Some(c) = &clock {
                eprintln!(
                    "warning: the clock looks wrong, so every status below is in doubt: {}",
                    c.reason
                );
            }
            r.clock = clock;
            r
        }
        Err(e) => {
            print_error(&e);
            CheckReport::unknown(describe, now, renew_before, e.to_string())
        }
    };
    match args.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Table if report.status != Status::Unknown => print!("{}", report.to_table()),
        Output::Table => {}
    }
    // A wrong clock makes every verdict unknown, whatever the certificates say.
    if report.clock.is_some() {
        return Outcome::Checked(Status::Unknown);
    }
    Outcome::Checked(report.status)
}

async fn run_repair(args: RepairArgs) -> Outcome {
    let opts = match config::repair_options(
        &args.ladder,
        args.source.renew_before,
        args.dry_run,
        args.force,
        "repair",
    ) {
        Ok(o) => o,
        Err(e) => {
            print_error(e);
            return Outcome::Usage;
        }
    };
    let target = match target_of(&args.source) {
        Ok(t) => t,
        Err(e) => {
            print_error(&e);
            return Outcome::Usage;
        }
    };
    // SIGINT/SIGTERM: the step in progress is finished or rolled forward and the container
    // is left running (exit 7); a second signal exits at once.
    let cancel = CancellationToken::new();
    let signals = tokio::spawn(crate::shutdown::on_signals(cancel.clone()));
    let result = async {
        match &target {
            Target::Dir(dir) => repair_dir(dir, &opts).await,
            Target::Container { name, tls_path } => {
                let docker = DockerClient::connect().await?;
                repair_container(&docker, name, tls_path, &opts, &cancel).await
            }
        }
    }
    .await;
    signals.abort();
    match result {
        Ok(report) => {
            match args.output {
                Output::Json => println!("{}", report.to_json()),
                Output::Table => print!("{}", report.to_table()),
            }
            if let Some(d) = &report.diagnosis {
                eprintln!("{}: {d}", report.result.as_str());
            }
            Outcome::of_repair(&report)
        }
        Err(e) => {
            print_error(&e);
            if args.output == Output::Json {
                println!(
                    "{}",
                    serde_json::json!({"result": "unknown", "error": e.to_string()})
                );
            }
            Outcome::Unknown
        }
    }
}
