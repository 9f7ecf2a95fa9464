//! The Helm chart ships the CRDs in `helm/verdant/crds/` (Helm installs that folder before
//! the templates). They must be the very files in `crds/`, byte for byte; `make crds`
//! writes both.

use std::collections::BTreeSet;
use std::path::Path;

#[test]
fn helm_chart_crds_are_the_committed_manifests() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chart_dir = crate_dir.join("../helm/verdant/crds");
    let expected: BTreeSet<&str> = verdant_crds::manifests::all()
        .into_iter()
        .map(|(file, _)| file)
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&chart_dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", chart_dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let present: BTreeSet<&str> = present.iter().map(String::as_str).collect();
    assert_eq!(
        present, expected,
        "helm/verdant/crds/ must hold exactly the CRD manifests of crds/; run `make crds`"
    );
    for file in expected {
        let source = std::fs::read(crate_dir.join(file)).unwrap();
        let chart = std::fs::read(chart_dir.join(file)).unwrap();
        assert!(
            source == chart,
            "helm/verdant/crds/{file} differs from crds/{file}; run `make crds` and commit both"
        );
    }
}
