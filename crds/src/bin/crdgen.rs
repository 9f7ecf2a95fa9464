//! Writes the Verdant CRD manifests into a folder (default: the `crds/` crate folder).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for (file, crd) in verdant_crds::manifests::all() {
        let path = out.join(file);
        std::fs::write(&path, verdant_crds::manifests::render(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
