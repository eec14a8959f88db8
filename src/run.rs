//! Dispatch of the subcommands and their exit codes.

use crate::check::{check, Target};
use crate::cli::{CheckArgs, Cli, Command, Output, SourceArgs};
use crate::docker::DockerClient;
use crate::error::Error;
use crate::inventory::{RenewBefore, Status};
use crate::report::CheckReport;
use crate::timefmt;

/// Run a command; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Check(args) => run_check(args).await,
        Command::Repair(_) | Command::Watch(_) | Command::Healthcheck(_) => {
            eprintln!("error: not built yet");
            3
        }
    }
}

/// The target and, for a container, a connected Docker client.
pub async fn open_source(src: &SourceArgs) -> Result<(Target, Option<DockerClient>), Error> {
    match (&src.dir, &src.container) {
        (Some(dir), _) => Ok((Target::Dir(dir.clone()), None)),
        (None, Some(name)) => {
            let docker = DockerClient::connect().await?;
            Ok((
                Target::Container {
                    name: name.clone(),
                    tls_path: src.tls_path.clone(),
                },
                Some(docker),
            ))
        }
        (None, None) => Err(Error::Invalid("give --dir PATH or --container NAME".into())),
    }
}

async fn run_check(args: CheckArgs) -> u8 {
    let renew_before = RenewBefore::days(args.source.renew_before);
    let now = timefmt::now();
    let describe = match (&args.source.dir, &args.source.container) {
        (Some(d), _) => format!("dir:{}", d.display()),
        (None, Some(c)) => format!("container:{c}:{}", args.source.tls_path),
        _ => "?".into(),
    };
    let result = async {
        let (target, docker) = open_source(&args.source).await?;
        check(&target, docker.as_ref(), now, renew_before).await
    }
    .await;
    let report = match result {
        Ok((_, inv)) => CheckReport::new(describe, now, renew_before, &inv),
        Err(e) => {
            eprintln!("error: {e}");
            CheckReport::unknown(describe, now, renew_before, e.to_string())
        }
    };
    match args.output {
        Output::Json => println!("{}", report.to_json()),
        Output::Table if report.status != Status::Unknown => print!("{}", report.to_table()),
        Output::Table => {}
    }
    report.status.exit_code()
}
