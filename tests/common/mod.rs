//! Shared by the integration tests: the repository's paths, the real sample
//! inputs and a detector built from the fetched models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kao::config::Config;
use kao::inference::Mtcnn;
use kao::models::Manifest;

pub const MEGAMIND: &str = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";
pub const MESSI: &str = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path from the fixtures: absolute ones as they are, others under the repo.
pub fn resolve(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_owned()
    } else {
        repo().join(p)
    }
}

/// Fails with the command to run when an input the tests need is missing:
/// these tests check real models on real data and must not pass vacuously.
pub fn require(path: &Path) {
    assert!(
        path.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh installs packages, scripts/fetch-assets.sh fetches models and samples)",
        path.display()
    );
}

/// The default configuration with paths anchored at the repository, so
/// tests work from any working directory.
pub fn config() -> Config {
    let mut c = Config::default();
    c.models.manifest = repo()
        .join("models/mtcnn/manifest.toml")
        .display()
        .to_string();
    c.runtime.ort_library = repo()
        .join(kao::inference::runtime::FETCHED_LIBRARY)
        .display()
        .to_string();
    require(Path::new(&c.runtime.ort_library));
    c
}

pub fn detector() -> Mtcnn {
    let c = config();
    let manifest = Manifest::load(Path::new(&c.models.manifest)).unwrap();
    Mtcnn::load(&manifest, &c.runtime, c.detector.clone()).unwrap()
}

/// The kao binary built for these tests.
pub fn kao_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kao"))
}
