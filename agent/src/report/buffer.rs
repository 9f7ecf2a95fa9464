//! The disk buffer of reports not yet accepted by the operator.
//!
//! One file per report, `<window start ms>-<window end ms>.json`, zero-padded so that the
//! names sort in window order. A report is written (to a temporary file, synced, then
//! renamed) before it is first sent and deleted once the operator has answered for it, so
//! that a report survives an operator outage and an agent restart. The buffer holds at
//! most `capacity` reports (one hour of windows by default); beyond that the oldest is
//! dropped and counted.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Opening or writing the buffer failed.
#[derive(Debug, thiserror::Error)]
#[error("report buffer {path}: {what}: {source}")]
pub struct BufferError {
    path: PathBuf,
    what: &'static str,
    source: std::io::Error,
}

/// Reports on disk, oldest first.
pub struct ReportBuffer {
    dir: PathBuf,
    capacity: usize,
    files: VecDeque<PathBuf>,
}

impl ReportBuffer {
    /// Opens (creating it if needed) the buffer in `dir` and finds the reports a previous
    /// run left there.
    pub fn open(dir: &Path, capacity: usize) -> Result<Self, BufferError> {
        let error = |what, source| BufferError {
            path: dir.to_path_buf(),
            what,
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| error("cannot create the folder", e))?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| error("cannot list the folder", e))? {
            let path = entry
                .map_err(|e| error("cannot list the folder", e))?
                .path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => files.push(path),
                // A write cut short by a crash.
                Some("tmp") => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        files.sort();
        if !files.is_empty() {
            tracing::info!(dir = %dir.display(), reports = files.len(), "reports left by a previous run will be sent first");
        }
        let mut buffer = Self {
            dir: dir.to_path_buf(),
            capacity: capacity.max(1),
            files: files.into(),
        };
        buffer.enforce_capacity();
        Ok(buffer)
    }

    /// Adds a report. Returns how many old reports were dropped to make room.
    pub fn push(
        &mut self,
        window_start_ms: i64,
        window_end_ms: i64,
        body: &[u8],
    ) -> Result<usize, BufferError> {
        let name = format!("{window_start_ms:020}-{window_end_ms:020}.json");
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(body)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| BufferError {
            path: path.clone(),
            what: "cannot write the report",
            source,
        })?;
        if !self.files.contains(&path) {
            // Windows arrive in order; keep the queue sorted even if the clock stepped back.
            let at = self.files.partition_point(|p| p < &path);
            self.files.insert(at, path);
        }
        Ok(self.enforce_capacity())
    }

    /// The oldest report: its file and body. A file that cannot be read is dropped (and
    /// returned as `Err` with its path) so that it cannot block the queue.
    pub fn oldest(&mut self) -> Option<Result<(PathBuf, Vec<u8>), PathBuf>> {
        let path = self.files.front()?.clone();
        match std::fs::read(&path) {
            Ok(body) => Some(Ok((path, body))),
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read a buffered report; dropping it");
                self.remove(&path);
                Some(Err(path))
            }
        }
    }

    /// Deletes a report (sent, or given up).
    pub fn remove(&mut self, path: &Path) {
        if let Err(error) = std::fs::remove_file(path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "cannot delete a sent report");
        }
        self.files.retain(|p| p != path);
    }

    /// Reports waiting.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn enforce_capacity(&mut self) -> usize {
        let mut dropped = 0;
        while self.files.len() > self.capacity {
            let Some(oldest) = self.files.pop_front() else {
                break;
            };
            tracing::warn!(path = %oldest.display(), capacity = self.capacity, "report buffer full: dropping the oldest report");
            let _ = std::fs::remove_file(&oldest);
            dropped += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_bounds_size_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut buffer = ReportBuffer::open(dir.path(), 3).unwrap();
        for start in [20_000, 0, 10_000] {
            assert_eq!(
                buffer
                    .push(start, start + 10_000, format!("{start}").as_bytes())
                    .unwrap(),
                0
            );
        }
        assert_eq!(buffer.push(30_000, 40_000, b"30000").unwrap(), 1); // 0 dropped
        let (path, body) = buffer.oldest().unwrap().unwrap();
        assert_eq!(body, b"10000");
        buffer.remove(&path);
        std::fs::write(dir.path().join("x.json.tmp"), b"half").unwrap();
        drop(buffer);

        let mut reopened = ReportBuffer::open(dir.path(), 3).unwrap();
        assert_eq!(reopened.len(), 2);
        assert!(!dir.path().join("x.json.tmp").exists());
        let (_, body) = reopened.oldest().unwrap().unwrap();
        assert_eq!(body, b"20000");
        // Reopening with a smaller capacity drops the oldest.
        drop(reopened);
        let mut small = ReportBuffer::open(dir.path(), 1).unwrap();
        assert_eq!(small.oldest().unwrap().unwrap().1, b"30000");
    }

    #[test]
    fn an_unwritable_folder_is_a_clear_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let error = ReportBuffer::open(&file.path().join("sub"), 3)
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("cannot create the folder"), "{error}");
    }
}
