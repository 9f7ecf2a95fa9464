//! What can go wrong in a simulation, with the file or object at fault.

use std::path::PathBuf;

use thiserror::Error;
use verdant_crds::PlantMappingError;

/// A simulation that could not run. Each variant names the file, site or setting at fault.
#[derive(Debug, Error)]
pub enum SimError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid EnergySite manifest: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("no EnergySite manifests (*.yaml, *.yml) in {0}; pass the folder holding the sites")]
    NoSites(PathBuf),
    #[error("EnergySite {site}: {source}")]
    Plant {
        site: String,
        #[source]
        source: PlantMappingError,
    },
    #[error(
        "EnergySite {site}: the simulator replays weather files or Static supply; provider {provider} needs live services (use forecast.provider Replay with a path)"
    )]
    UnsupportedProvider { site: String, provider: String },
    #[error(
        "EnergySite {site}: forecast.replay needs a path (configMapRef is only read in a cluster)"
    )]
    ReplayWithoutPath { site: String },
    #[error("EnergySite {site}: weather file {path}: {message}")]
    Weather {
        site: String,
        path: PathBuf,
        message: String,
    },
    #[error("two EnergySites are named {0}; names must be unique")]
    DuplicateSite(String),
    #[error("trace {path}, line {line}: {message}")]
    Trace {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("cannot draw {path}: {message}")]
    Plot { path: PathBuf, message: String },
}
