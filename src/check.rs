//! The `check` command: read a tree from its source, judge it, report.

use std::path::PathBuf;

use crate::docker::DockerClient;
use crate::error::Error;
use crate::inventory::{inventory, Inventory, RenewBefore};
use crate::source::{dir::read_dir_tree, Tree};

/// Where a TLS tree is read from.
#[derive(Debug, Clone)]
pub enum Target {
    Dir(PathBuf),
    Container { name: String, tls_path: String },
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Dir(p) => format!("dir:{}", p.display()),
            Target::Container { name, tls_path } => format!("container:{name}:{tls_path}"),
        }
    }
}

/// Read the tree of a target.
pub async fn read_tree(target: &Target, docker: Option<&DockerClient>) -> Result<Tree, Error> {
    match target {
        Target::Dir(p) => {
            let p = p.clone();
            tokio::task::spawn_blocking(move || read_dir_tree(&p))
                .await
                .map_err(|e| Error::Failed(format!("directory reader task: {e}")))?
        }
        Target::Container { name, tls_path } => {
            let docker = docker.ok_or_else(|| Error::Invalid("no Docker client".into()))?;
            docker.read_tree(name, tls_path).await
        }
    }
}

/// Read and judge.
pub async fn check(
    target: &Target,
    docker: Option<&DockerClient>,
    now: i64,
    renew_before: RenewBefore,
) -> Result<(Tree, Inventory), Error> {
    let tree = read_tree(target, docker).await?;
    let inv = inventory(&tree, now, renew_before);
    Ok((tree, inv))
}
