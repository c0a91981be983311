//! Sharing a frame's work over worker threads must not change the faces:
//! the same detections with one, two or three workers, on a real photo and
//! a real video frame.

mod common;

use std::path::Path;

use opencv::prelude::*;
use opencv::videoio;

use kao::inference::{Detector, Mtcnn};
use kao::models::Manifest;

fn detector(workers: usize) -> Mtcnn {
    let mut config = common::config();
    config.runtime.workers = workers;
    let manifest = Manifest::load(Path::new(&config.models.manifest)).unwrap();
    Mtcnn::load(&manifest, &config.runtime, config.detector.clone()).unwrap()
}

#[test]
fn faces_do_not_depend_on_the_number_of_workers() {
    common::require(Path::new(common::MEGAMIND));
    let messi = kao::imageio::read_image(Path::new(common::MESSI)).unwrap();
    let mut video = videoio::VideoCapture::from_file(common::MEGAMIND, videoio::CAP_ANY).unwrap();
    let mut frame = opencv::core::Mat::default();
    for _ in 0..=50 {
        assert!(video.read(&mut frame).unwrap(), "Megamind.avi ended early");
    }

    let mut one = detector(1);
    assert_eq!(one.workers(), 1);
    let want: Vec<_> = [&messi, &frame]
        .iter()
        .map(|image| one.detect(image).unwrap().0)
        .collect();
    assert_eq!(want[0].len(), 1, "Messi");
    assert_eq!(want[1].len(), 2, "frame 50 of Megamind.avi");
    for workers in [2, 3] {
        let mut many = detector(workers);
        assert_eq!(many.workers(), workers);
        for (image, want) in [&messi, &frame].iter().zip(&want) {
            let (got, timings) = many.detect(image).unwrap();
            assert_eq!(&got, want, "{workers} workers");
            // The stages still add up to a positive time for each model.
            for stage in ["pnet", "rnet", "onet"] {
                assert!(timings.get(stage) > 0.0, "{stage} with {workers} workers");
            }
        }
    }
}
