//! Execution providers on a machine without a GPU: asking for TensorRT and
//! CUDA must fall back to the CPU, say so, and still detect the same faces.
//! Passes with and without `--features cuda,tensorrt` (the reasons differ:
//! a build without the feature, or a library without the provider).

mod common;

use std::path::Path;

use kao::inference::{Detector, Mtcnn};
use kao::models::Manifest;

#[test]
fn gpu_providers_fall_back_to_the_cpu_with_the_same_faces() {
    let image = kao::imageio::read_image(Path::new(common::MESSI)).unwrap();

    let mut config = common::config();
    let manifest = Manifest::load(Path::new(&config.models.manifest)).unwrap();
    let mut cpu = Mtcnn::load(&manifest, &config.runtime, config.detector.clone()).unwrap();
    let (want, _) = cpu.detect(&image).unwrap();
    assert!(!want.is_empty(), "messi5.jpg has faces");

    config.runtime.providers = vec!["tensorrt".into(), "cuda".into(), "cpu".into()];
    config.runtime.fp16 = true;
    config.runtime.tensorrt_cache = tempfile::tempdir().unwrap().path().display().to_string();
    let mut fallback = Mtcnn::load(&manifest, &config.runtime, config.detector.clone()).unwrap();
    for (model, provider) in fallback.providers() {
        assert_eq!(
            provider, "cpu",
            "{model} should have fallen back to the CPU"
        );
    }
    let (got, _) = fallback.detect(&image).unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_gpu_only_provider_list_still_gets_the_cpu_as_last_resort() {
    let mut config = common::config();
    config.runtime.providers = vec!["cuda".into()];
    let manifest = Manifest::load(Path::new(&config.models.manifest)).unwrap();
    let detector = Mtcnn::load(&manifest, &config.runtime, config.detector.clone()).unwrap();
    let providers = detector.providers();
    assert_eq!(providers.len(), 3);
    assert!(providers.iter().all(|(_, p)| p == "cpu"), "{providers:?}");
}
