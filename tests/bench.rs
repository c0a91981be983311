//! `kao bench` as a user runs it, on the sample video: the report's figures
//! and the detections it writes, checked against the reference fixture.

mod common;

use std::process::Command;

#[test]
fn bench_reports_every_stage_and_writes_the_reference_detections() {
    common::require(std::path::Path::new(common::MEGAMIND));
    let dir = tempfile::tempdir().unwrap();
    let detections = dir.path().join("faces.json");
    // MTCNN, whose reference detections are in the fixtures (the default
    // family is BlazeFace).
    let config = dir.path().join("mtcnn.toml");
    std::fs::write(
        &config,
        format!(
            "[models]\nmanifest = {:?}\n",
            common::repo().join("models/mtcnn/manifest.toml")
        ),
    )
    .unwrap();
    let out = Command::new(common::kao_bin())
        .current_dir(common::repo())
        .args(["bench", "--source", common::MEGAMIND, "--frames", "26"])
        .arg("--config")
        .arg(&config)
        .args(["--warmup", "1", "--json", "--detections"])
        .arg(&detections)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["frames"], 26);
    assert_eq!(
        (report["width"].as_i64(), report["height"].as_i64()),
        (Some(720), Some(528))
    );
    let stages: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    for want in [
        "decode",
        "preprocess",
        "pnet",
        "rnet",
        "onet",
        "postprocess",
        "publish",
        "processing",
    ] {
        assert!(stages.contains(&want), "{want} missing from {stages:?}");
    }
    for s in report["stages"].as_array().unwrap() {
        let (p50, p90, p99) = (
            s["p50"].as_f64().unwrap(),
            s["p90"].as_f64().unwrap(),
            s["p99"].as_f64().unwrap(),
        );
        assert!(p50 <= p90 && p90 <= p99, "{s}");
    }
    let ort = report["ort_percent"].as_f64().unwrap();
    assert!(ort > 0.0 && ort <= 100.0, "{ort}");
    assert!(report["fps"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 10.0);
    for p in report["providers"].as_array().unwrap() {
        assert_eq!(p[1], "cpu", "{p}");
    }

    // Frame 25 as the reference found it: two faces, the first at
    // [448.4, 183.0, 512.2, 260.5] (tests/fixtures/mtcnn_reference.json).
    let faces: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&detections).unwrap()).unwrap();
    let frames = faces["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 26);
    assert!(frames[0]["faces"].as_array().unwrap().is_empty());
    let frame25 = frames[25]["faces"].as_array().unwrap();
    assert_eq!(frame25.len(), 2);
    let want = [448.4, 183.0, 512.2, 260.5];
    assert!(
        frame25.iter().any(|f| {
            let b: Vec<f64> = f["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            b.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.1)
        }),
        "{frame25:?}"
    );
}
