//! Reading a container's files through the archive API (running, restarting or stopped):
//! streamed, bounded in time and size, nothing written to disk.

use bollard::errors::Error as BollardError;
use bollard::query_parameters as qp;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::*;
use crate::error::Error;
use crate::source::{archive::tree_from_tar, Tree};

impl DockerClient {
    /// Read a directory of a container (running, restarting or stopped) as a [`Tree`], through
    /// the archive API, streaming: no shell, no exec, nothing written to disk.
    pub async fn read_tree(&self, container: &str, path: &str) -> Result<Tree, Error> {
        self.bounded(
            "read the TLS directory",
            container,
            self.call_timeout,
            self.read_tree_unbounded(container, path),
        )
        .await
    }

    async fn read_tree_unbounded(&self, container: &str, path: &str) -> Result<Tree, Error> {
        let stream = self.archive_stream(container, path).await?;
        let reader = StreamReader::new(stream.map_err(std::io::Error::other));
        let bridge = SyncIoBridge::new(reader);
        let tree = tokio::task::spawn_blocking(move || tree_from_tar(bridge))
            .await
            .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?;
        tree.map_err(|e| Error::SourceUnreadable {
            source_name: format!("{container}:{path}"),
            detail: format!("archive stream: {e}"),
        })
    }

    /// The archive stream of `path`, with its first chunk already received so that a missing
    /// path or container surfaces as an error here.
    async fn archive_stream(
        &self,
        container: &str,
        path: &str,
    ) -> Result<
        impl Stream<Item = Result<bytes::Bytes, BollardError>> + Send + Unpin + 'static,
        Error,
    > {
        let opts = qp::DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let mut stream = Box::pin(self.docker.download_from_container(container, Some(opts)));
        let first = match stream.next().await {
            Some(Ok(b)) => b,
            Some(Err(e)) if status_code(&e) == Some(404) => {
                // Either the container or the path is missing: tell which.
                self.inspect(container).await?;
                return Err(Error::PathNotFound {
                    container: container.to_string(),
                    path: path.to_string(),
                });
            }
            Some(Err(e)) => return Err(self.map("read archive", container, e)),
            None => bytes::Bytes::new(),
        };
        Ok(futures_util::stream::iter(std::iter::once(Ok(first))).chain(stream))
    }

    /// One file of a container, or `None` when it does not exist. At most 1 MiB.
    pub async fn read_file(&self, container: &str, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let read = self.read_tree_of_file(container, path);
        match self
            .bounded("read a file", container, self.call_timeout, read)
            .await
        {
            Ok(bytes) => Ok(bytes),
            Err(Error::PathNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read_tree_of_file(
        &self,
        container: &str,
        path: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let stream = self.archive_stream(container, path).await?;
        let reader = StreamReader::new(stream.map_err(std::io::Error::other));
        let bridge = SyncIoBridge::new(reader);
        tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
            use std::io::Read;
            let mut archive = tar::Archive::new(bridge);
            for entry in archive.entries()? {
                let entry = entry?;
                if entry.header().entry_type().is_file() {
                    let mut buf = Vec::new();
                    entry
                        .take(crate::source::MAX_FILE_BYTES)
                        .read_to_end(&mut buf)?;
                    return Ok(Some(buf));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?
        .map_err(|e| Error::SourceUnreadable {
            source_name: format!("{container}:{path}"),
            detail: e.to_string(),
        })
    }

    /// The last `max` bytes of one file of a container (running or not), streaming the whole
    /// file through the archive API but keeping only its end; `None` when it does not exist.
    /// Files over `max_stream` bytes are not read at all (`Ok(None)` with a warning): the
    /// archive API cannot seek.
    pub async fn read_tail(
        &self,
        container: &str,
        path: &str,
        max: usize,
        max_stream: u64,
    ) -> Result<Option<Vec<u8>>, Error> {
        let work = async {
            let stream = match self.archive_stream(container, path).await {
                Ok(s) => s,
                Err(Error::PathNotFound { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let reader = StreamReader::new(stream.map_err(std::io::Error::other));
            let bridge = SyncIoBridge::new(reader);
            let path_s = path.to_string();
            tokio::task::spawn_blocking(move || -> std::io::Result<Option<Vec<u8>>> {
                use std::io::Read;
                let mut archive = tar::Archive::new(bridge);
                for entry in archive.entries()? {
                    let mut entry = entry?;
                    if !entry.header().entry_type().is_file() {
                        continue;
                    }
                    let size = entry.header().size().unwrap_or(0);
                    if size > max_stream {
                        tracing::warn!(path = %path_s, size, "the K3s log file is too large to read through the archive API; skipped");
                        return Ok(None);
                    }
                    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::with_capacity(max);
                    let mut buf = [0u8; 64 * 1024];
                    loop {
                        let n = entry.read(&mut buf)?;
                        if n == 0 {
                            break;
                        }
                        tail.extend(&buf[..n]);
                        let excess = tail.len().saturating_sub(max);
                        tail.drain(..excess);
                    }
                    return Ok(Some(tail.into_iter().collect()));
                }
                Ok(None)
            })
            .await
            .map_err(|e| Error::Failed(format!("archive reader task: {e}")))?
            .map_err(|e| Error::SourceUnreadable {
                source_name: format!("{container}:{path}"),
                detail: e.to_string(),
            })
        };
        self.bounded("read the K3s log file", container, self.call_timeout, work)
            .await
    }
}
