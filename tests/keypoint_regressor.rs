//! A plain keypoint regressor (a face crop in, N points out, as exported
//! from PyTorch) plugs into the blazeface family with a manifest and no
//! code change; `kao models check` says what of such a file does not fit.
//! The model is written by the test itself (tests/common/tiny_onnx.rs).

mod common;

use std::path::{Path, PathBuf};

use kao::inference::facemesh::Roi;
use kao::inference::FaceMesh;
use kao::models::{sha256_hex, Manifest};

/// Five points in crop units (0..1): eyes, nose, mouth corners.
const POINTS: [f32; 10] = [0.3, 0.4, 0.7, 0.4, 0.5, 0.6, 0.35, 0.8, 0.65, 0.8];
const CROP: i64 = 64;

/// Writes the tiny model and a manifest for it into `dir`; returns the
/// manifest's path. `tweak` edits the manifest text.
fn setup(dir: &Path, tweak: impl Fn(String) -> String) -> PathBuf {
    let onnx = common::tiny_onnx::keypoint_regressor(CROP, &POINTS);
    std::fs::write(dir.join("regressor.onnx"), &onnx).unwrap();
    let detector = common::repo().join("models/blazeface/face_detection_full_range.onnx");
    let shipped = Manifest::load(&common::repo().join("models/blazeface/full-range.toml")).unwrap();
    let text = format!(
        r#"family = "blazeface"
name = "tiny-regressor-test"
source = "written by tests/common/tiny_onnx.rs"
licence = "MIT"
fetch = "cargo test"

[input]
layout = "NCHW"
colour = "rgb"
mean = 127.5
scale = 0.00784313725490196

[models.detector]
file = {detector:?}
sha256 = "{det_sha}"
input = "input"
size = [192, 192]
outputs = {{ boxes = "reshaped_regressor_face_4", scores = "reshaped_classifier_face_4" }}
decoder = {{ anchors = [[4, 1]], min_score = 0.5, nms_iou = 0.3 }}

[models.landmarks]
file = "regressor.onnx"
sha256 = "{sha}"
input = "image"
size = [{CROP}, {CROP}]
pixels = {{ layout = "NCHW", colour = "rgb", mean = 0.0, scale = 0.00392156862745098 }}
outputs = {{ points = "points" }}
decoder = {{ points = 5, dims = 2, coords = "unit", roi_scale = 1.5, named = [[0], [1], [2], [3], [4]] }}
"#,
        det_sha = shipped.role("detector").sha256,
        sha = sha256_hex(&onnx),
    );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, tweak(text)).unwrap();
    path
}

#[test]
fn a_plain_regressor_loads_by_manifest_and_its_points_land_in_source_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Manifest::load(&setup(dir.path(), |t| t)).unwrap();
    let c = common::config();
    let astronaut = common::repo().join(".cache/assets/astronaut.png");
    common::require(&astronaut);
    let frame = kao::imageio::read_image(&astronaut).unwrap();

    // Through the generic loader, as `kao serve` would.
    let mut detector = kao::inference::load(&manifest, &c.runtime, c.detector.clone()).unwrap();
    let (faces, t1) = detector.detect(&frame).unwrap();
    assert_eq!(faces.len(), 1);
    assert_eq!(faces[0].mesh.len(), 5);
    // No presence output, so a lost face could not be noticed: the
    // detector runs on every frame.
    let (_, t2) = detector.detect(&frame).unwrap();
    assert!(t1.get("detector") > 0.0 && t2.get("detector") > 0.0);

    // Where the points must be: the detector's box, squared and scaled
    // 1.5×, upright (no `rotation` in the decoder), at the regressor's units.
    let mut mesh = FaceMesh::load(&manifest, &c.runtime, c.detector.clone()).unwrap();
    let (boxes, _) = mesh.detect_still(&frame).unwrap();
    let roi = Roi::around(boxes[0].bbox, 1.5, None);
    for (k, p) in POINTS.chunks_exact(2).enumerate() {
        let want = roi.to_source(f64::from(p[0]), f64::from(p[1]));
        let got = faces[0].keypoints[k];
        let d = (got[0] - want[0]).hypot(got[1] - want[1]);
        assert!(d < 1e-3, "point {k}: {got:?} vs {want:?}");
    }
    // Sanity: the eyes are inside the astronaut's face box.
    let [x1, y1, x2, y2] = boxes[0].bbox;
    let eye = faces[0].keypoints[0];
    assert!(
        eye[0] > x1 && eye[0] < x2 && eye[1] > y1 && eye[1] < y2,
        "{eye:?}"
    );
}

#[test]
fn models_check_passes_a_fitting_file_and_names_every_misfit() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = setup(dir.path(), |t| t);
    let run = |manifest: &Path| {
        std::process::Command::new(common::kao_bin())
            .current_dir(common::repo())
            .args(["models", "check"])
            .arg(dir.path().join("regressor.onnx"))
            .arg("--manifest")
            .arg(manifest)
            .output()
            .unwrap()
    };
    let out = run(&manifest);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("as [models.landmarks]") && text.contains("fits its manifest"),
        "{text}"
    );

    // The same file against a manifest that is wrong four ways.
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = setup(wrong_dir.path(), |t| {
        t.replace(&format!("size = [{CROP}, {CROP}]"), "size = [192, 192]")
            .replace("points = 5, dims = 2", "points = 468, dims = 3")
            .replace(
                "outputs = { points = \"points\" }",
                "outputs = { points = \"points\", presence = \"face_flag\" }",
            )
    });
    std::fs::copy(
        dir.path().join("regressor.onnx"),
        wrong_dir.path().join("regressor.onnx"),
    )
    .unwrap();
    let out = run(&wrong);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("input height is 64 (NCHW axis 2 of [1, 3, 64, 64]), the manifest says 192"),
        "{text}"
    );
    assert!(text.contains("input width is 64"), "{text}");
    assert!(
        text.contains("output presence = \"face_flag\" is not in the model"),
        "{text}"
    );
    assert!(
        text.contains(
            "output points holds 10 values, the decoder needs points × dims = 468 × 3 = 1404"
        ),
        "{text}"
    );
    assert!(text.contains("4 thing(s) do not fit"), "{text}");

    // And an input name that is not the model's.
    let renamed = setup(wrong_dir.path(), |t| {
        t.replace("input = \"image\"", "input = \"input_1\"")
    });
    let out = run(&renamed);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(
        text.contains("input \"input_1\" is not in the model; its inputs are [\"image\"]"),
        "{text}"
    );
}
