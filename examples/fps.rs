//! Frames per second of a model family on a video, all frames decoded
//! first so that only detection is timed (a stand-in until `kao bench`).
//!
//!   cargo run --release --example fps -- MANIFEST VIDEO [WIDTHxHEIGHT] [PASSES] [THREADS]
//!
//! THREADS is `runtime.intra_threads` (0: ONNX Runtime decides).
//!
//! e.g. `cargo run --release --example fps -- models/blazeface/short-range.toml
//! /usr/share/doc/opencv-doc/examples/data/Megamind.avi 640x480`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{imgproc, videoio};

use kao::config::Config;
use kao::models::Manifest;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(manifest), Some(video)) = (args.first(), args.get(1)) else {
        bail!("usage: fps MANIFEST VIDEO [WIDTHxHEIGHT] [PASSES] [THREADS]");
    };
    let size = match args.get(2) {
        Some(s) => {
            let (w, h) = s.split_once('x').context("size is WIDTHxHEIGHT")?;
            Some(Size::new(w.parse()?, h.parse()?))
        }
        None => None,
    };
    let passes: usize = args.get(3).map(|p| p.parse()).transpose()?.unwrap_or(2);

    let mut cap = videoio::VideoCapture::from_file(video, videoio::CAP_ANY)?;
    let mut frames = Vec::new();
    loop {
        let mut m = Mat::default();
        if !cap.read(&mut m)? {
            break;
        }
        if let Some(s) = size {
            let mut r = Mat::default();
            imgproc::resize(&m, &mut r, s, 0.0, 0.0, imgproc::INTER_AREA)?;
            m = r;
        }
        frames.push(m);
    }
    if frames.is_empty() {
        bail!("{video}: no frames");
    }

    let mut config = Config::default();
    if let Some(t) = args.get(4) {
        config.runtime.intra_threads = t.parse()?;
    }
    let manifest = Manifest::load(Path::new(manifest))?;
    let mut detector = kao::inference::load(&manifest, &config.runtime, config.detector.clone())?;
    // One untimed frame: sessions allocate on their first run.
    detector.detect(&frames[0])?;

    let mut stages: Vec<(&'static str, f64)> = Vec::new();
    let mut faces = 0usize;
    let mut mesh_points = 0usize;
    let start = Instant::now();
    for _ in 0..passes {
        for f in &frames {
            let (found, t) = detector.detect(f)?;
            faces += found.len();
            mesh_points += found.iter().map(|f| f.mesh.len()).sum::<usize>();
            for (k, v) in t.iter() {
                match stages.iter_mut().find(|(s, _)| *s == k) {
                    Some((_, acc)) => *acc += v,
                    None => stages.push((k, v)),
                }
            }
        }
    }
    let n = (frames.len() * passes) as f64;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {} frames of {}x{}, {:.1} frames/s, {:.2} ms/frame, {:.2} faces/frame, {:.0} mesh points/frame",
        manifest.name,
        n,
        frames[0].cols(),
        frames[0].rows(),
        n / secs,
        secs * 1000.0 / n,
        faces as f64 / n,
        mesh_points as f64 / n
    );
    for (k, v) in stages {
        println!("  {k:<12} {:.3} ms/frame", v / n);
    }
    Ok(())
}
