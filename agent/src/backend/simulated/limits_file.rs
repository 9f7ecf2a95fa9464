//! The file that keeps the simulated GPUs' power limits across agent processes, as real
//! GPUs keep theirs when the agent that set them is killed: JSON, GPU UUID → W.

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::BackendError;

/// The limits in `path`; a missing file holds none.
pub fn read(path: &Path) -> Result<BTreeMap<String, f64>, BackendError> {
    let unreadable = |e: String| {
        BackendError::Unavailable(format!(
            "the simulated GPUs' state file {}: {e}",
            path.display()
        ))
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(unreadable(e.to_string())),
    }
}

/// Replaces the limits in `path` with `limits` (atomically); the error says why not.
pub fn write(path: &Path, limits: &BTreeMap<&str, f64>) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(limits).map_err(|e| e.to_string())?;
    crate::cap_record::write_atomically(path, &bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
