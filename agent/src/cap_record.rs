//! The power limits this agent has set, on disk, so that a limit outlives no agent that
//! set it.
//!
//! # Expected flow
//! Before a limit is set, the GPU goes into the record; after its default is put back,
//! it leaves the record. The record is rewritten whole, atomically (a temporary file,
//! `fsync`, rename, `fsync` of the folder), so a crash leaves the old record or the new,
//! never half of one.
//!
//! # Guarantees
//! A GPU capped by this agent is in the record from before the cap until after the
//! restore. An agent killed in between (SIGKILL, OOM kill, node reboot with a hostPath
//! state folder) finds it on start and puts the default limit back
//! ([`PowerCapper::recover`](crate::capping::PowerCapper::recover)).
//!
//! # Caveats
//! The record may name a GPU that was never capped (a crash between recording and
//! setting): restoring its default then changes nothing. An `emptyDir` state folder
//! survives container restarts (the OOM-kill case), not the pod's deletion.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contents {
    /// GPU UUID → the limit this agent set, W.
    capped_w: BTreeMap<String, f64>,
}

/// The record file.
#[derive(Clone, Debug)]
pub struct CapRecord {
    path: PathBuf,
}

impl CapRecord {
    /// The record of `node`'s agent in `state_dir` (created if missing):
    /// `power-limits-<node>.json`, so that agents simulating several nodes on one machine
    /// can share a folder.
    pub fn in_dir(state_dir: &Path, node: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        Ok(Self {
            path: state_dir.join(format!("power-limits-{node}.json")),
        })
    }

    /// Where the record lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The GPUs recorded as capped, UUID → W. A missing file is an empty record; an
    /// unreadable one is an error (the caller decides; nothing is overwritten here).
    pub fn load(&self) -> std::io::Result<BTreeMap<String, f64>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice::<Contents>(&bytes)
                .map(|c| c.capped_w)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the record with `capped_w`, atomically and durably.
    pub fn store<'a>(
        &self,
        capped_w: impl IntoIterator<Item = (&'a String, &'a f64)>,
    ) -> std::io::Result<()> {
        let contents = Contents {
            capped_w: capped_w
                .into_iter()
                .map(|(uuid, w)| (uuid.clone(), *w))
                .collect(),
        };
        write_atomically(&self.path, &serde_json::to_vec_pretty(&contents)?)
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old content or the new.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let folder = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the folder is synced.
    std::fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let record = CapRecord::in_dir(&dir.path().join("state"), "gpu-1").unwrap();
        assert!(record.load().unwrap().is_empty());
        let capped: BTreeMap<String, f64> = [("GPU-a".to_owned(), 300.0)].into();
        record.store(&capped).unwrap();
        assert_eq!(record.load().unwrap(), capped);
        record.store(&BTreeMap::new()).unwrap();
        assert!(record.load().unwrap().is_empty());
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["power-limits-gpu-1.json"],
            "no temporary file left behind"
        );
        std::fs::write(record.path(), "{not json").unwrap();
        assert!(record.load().is_err());
    }
}
