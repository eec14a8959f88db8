//! Reading a container's files through the archive API (running, restarting or stopped):
//! streamed, bounded in time and size, nothing written to disk.

use bollard::errors::Error as BollardError;
use bollard::query_parameters as qp;
use futures_util::{Stream, StreamExt, TryStreamExt};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::*;
use crate::error::Error;
use crate::source::archive::{each_entry, tree_from_tar};
use crate::source::Tree;

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
        tokio::task::spawn_blocking(move || first_file(bridge))
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
            tokio::task::spawn_blocking(move || {
                tail_of_first_file(bridge, max, max_stream, &path_s)
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

/// The first regular file of a tar stream (at most [`crate::source::MAX_FILE_BYTES`]), or
/// `None`. Entries are read through [`each_entry`]: the daemon decides no allocation.
fn first_file<R: std::io::Read>(reader: R) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut found = None;
    each_entry(reader, |entry| {
        if !entry.header().entry_type().is_file() {
            return Ok(true);
        }
        let mut buf = Vec::new();
        entry
            .take(crate::source::MAX_FILE_BYTES)
            .read_to_end(&mut buf)?;
        found = Some(buf);
        Ok(false)
    })?;
    Ok(found)
}

/// The last `max` bytes of the first regular file of a tar stream, or `None` (also when the
/// file is over `max_stream` bytes: not read at all). Entries are read through [`each_entry`].
fn tail_of_first_file<R: std::io::Read>(
    reader: R,
    max: usize,
    max_stream: u64,
    path: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut found = None;
    each_entry(reader, |entry| {
        if !entry.header().entry_type().is_file() {
            return Ok(true);
        }
        let size = entry.header().size().unwrap_or(0);
        if size > max_stream {
            tracing::warn!(path = %path, size, "the K3s log file is too large to read through the archive API; skipped");
            return Ok(false);
        }
        let mut tail: std::collections::VecDeque<u8> =
            std::collections::VecDeque::with_capacity(max);
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
        found = Some(tail.into_iter().collect());
        Ok(false)
    })?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::source::archive::hostile_start;

    /// Before: a GNU long name or PAX header of any size was read into memory, so a hostile
    /// daemon or socket proxy decided the heap of `read_file` and of the K3s log tail (the
    /// defect the fuzz target `archive` found in the tree reader, fuzz/RESULTS.md).
    #[test]
    fn single_file_readers_cap_tar_metadata() {
        for kind in [tar::EntryType::GNULongName, tar::EntryType::XHeader] {
            let stream =
                || std::io::Cursor::new(hostile_start(kind, 64 << 20)).chain(std::io::repeat(0));
            let err = first_file(stream()).unwrap_err();
            assert!(err.to_string().contains("metadata"), "{kind:?}: {err}");
            let err = tail_of_first_file(stream(), 1024, 1 << 20, "k3s.log").unwrap_err();
            assert!(err.to_string().contains("metadata"), "{kind:?}: {err}");
        }
    }
}
