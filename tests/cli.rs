//! The `kao` command as a user runs it: real photos, bad files, bad
//! configs, missing models.

mod common;

use std::process::{Command, Output};

fn kao(args: &[&str]) -> Output {
    Command::new(common::kao_bin())
        .current_dir(common::repo())
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn detect_json_gives_one_object_per_image_with_named_keypoints() {
    let astronaut = common::repo().join(".cache/assets/astronaut.png");
    common::require(&astronaut);
    let out = kao(&[
        "detect",
        "--json",
        common::MESSI,
        astronaut.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["width"], 548);
    let faces = lines[0]["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 1);
    // Messi's face, as the reference places it (the box around the
    // reference's face mesh, tests/fixtures/blazeface_reference.json).
    let b = &faces[0]["box"];
    assert!((b["x"].as_f64().unwrap() - 226.55).abs() < 1.0, "{b}");
    assert!((b["y"].as_f64().unwrap() - 97.88).abs() < 1.0, "{b}");
    assert_eq!(faces[0]["mesh"].as_array().unwrap().len(), 468);
    for name in kao::inference::KEYPOINT_NAMES {
        assert_eq!(
            faces[0]["keypoints"][name].as_array().unwrap().len(),
            2,
            "{name}"
        );
    }
    assert_eq!(lines[1]["faces"].as_array().unwrap().len(), 1);
}

#[test]
fn detect_annotate_writes_jpegs() {
    let dir = tempfile::tempdir().unwrap();
    let out = kao(&[
        "detect",
        common::MESSI,
        "--annotate",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("1 face"), "{text}");
    let jpg = std::fs::read(dir.path().join("messi5.jpg")).unwrap();
    assert_eq!(&jpg[..2], &[0xff, 0xd8]);
}

#[test]
fn detect_on_bad_files_fails_cleanly_and_keeps_going() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.path().join("truncated.jpg");
    let messi = std::fs::read(common::MESSI).unwrap();
    std::fs::write(&truncated, &messi[..messi.len() / 3]).unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, b"these are my lecture notes, not a picture").unwrap();
    let missing = dir.path().join("missing.jpg");

    let args = [
        "detect",
        empty.to_str().unwrap(),
        truncated.to_str().unwrap(),
        text.to_str().unwrap(),
        missing.to_str().unwrap(),
        common::MESSI,
    ];
    let out = kao(&args);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("empty.jpg is empty"), "{err}");
    assert!(err.contains("truncated.jpg is truncated"), "{err}");
    assert!(err.contains("notes.png is not an image"), "{err}");
    assert!(err.contains("missing.jpg"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // The good image after the bad ones is still processed.
    assert!(String::from_utf8_lossy(&out.stdout).contains("messi5.jpg: 1 face"));
}

#[test]
fn bad_config_exits_2_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kao.toml");
    std::fs::write(&cfg, "[detector]\nmin_face_size = 20\nscale = 0.5\n").unwrap();
    let out = kao(&["serve", "--config", cfg.to_str().unwrap(), "--check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("scale") && err.contains("line 3"), "{err}");
}

#[test]
fn missing_model_exits_3_with_the_fetch_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::repo().join("models/mtcnn/manifest.toml"),
        dir.path().join("manifest.toml"),
    )
    .unwrap();
    let cfg = dir.path().join("kao.toml");
    std::fs::write(
        &cfg,
        format!(
            "[models]\nmanifest = {:?}\n",
            dir.path().join("manifest.toml")
        ),
    )
    .unwrap();
    let out = kao(&["detect", "--config", cfg.to_str().unwrap(), common::MESSI]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("pnet.onnx") && err.contains("scripts/fetch-assets.sh"),
        "{err}"
    );
}

#[test]
fn missing_onnx_runtime_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kao.toml");
    std::fs::write(
        &cfg,
        "[runtime]\nort_library = \"/nonexistent/libonnxruntime.so\"\n",
    )
    .unwrap();
    let out = kao(&["detect", "--config", cfg.to_str().unwrap(), common::MESSI]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("scripts/fetch-assets.sh"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unavailable_provider_falls_back_to_cpu_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kao.toml");
    std::fs::write(
        &cfg,
        "[runtime]\nproviders = [\"tensorrt\", \"cuda\", \"cpu\"]\n",
    )
    .unwrap();
    let out = kao(&["models", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("provider=\"tensorrt\"") && err.contains("provider=\"cuda\""),
        "{err}"
    );
    assert!(err.contains("not available"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("landmarks runs on cpu"), "{text}");
}

#[test]
fn camera_that_does_not_exist_is_named_in_the_error() {
    let out = kao(&[
        "serve",
        "--source",
        "camera:7",
        "--socket",
        "/tmp/kao-test-camera.sock",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("camera:7") && err.contains("cameras found"),
        "{err}"
    );
}

#[test]
fn missing_source_file_is_named() {
    let out = kao(&[
        "serve",
        "--source",
        "/nonexistent/lecture.mp4",
        "--socket",
        "/tmp/kao-test-missing.sock",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/lecture.mp4"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn watch_without_daemon_says_how_to_start_one() {
    let out = kao(&[
        "watch",
        "--socket",
        "/nonexistent/kao.sock",
        "--frames",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("kao serve"), "{}", stderr(&out));
}

#[test]
fn serve_check_opens_the_source_and_refuses_one_that_cannot_play() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("lecture.avi");
    std::fs::write(&fake, b"this is not a video").unwrap();
    let out = kao(&["serve", "--check", "--source", fake.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("lecture.avi"), "{}", stderr(&out));
    let out = kao(&["serve", "--check", "--source", common::MEGAMIND]);
    assert!(out.status.success(), "{}", stderr(&out));
}
