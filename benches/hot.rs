//! Micro-benchmarks of kao's hot functions on a real frame: the pyramid's
//! resize and normalisation, the refinement crops, P-Net decoding and NMS.
//!
//! `cargo bench --bench hot` (the bench profile is the release profile) (needs `make setup` for the video).

use divan::{black_box, Bencher};
use opencv::core::Mat;
use opencv::imgproc;
use opencv::prelude::*;
use opencv::videoio::{VideoCapture, CAP_ANY};

use kao::inference::mtcnn::{
    crops, pnet_candidates, pnet_input, pyramid_scales, transpose_normalise, Normalise,
};
use kao::inference::nms::{nms, Bbox, Overlap};

const MEGAMIND: &str = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";
const NORM: Normalise = Normalise {
    mean: 127.5,
    scale: 0.0078125,
};

fn main() {
    divan::main();
}

/// The first frame of the sample video, as RGB.
fn frame() -> Mat {
    let mut capture = VideoCapture::from_file(MEGAMIND, CAP_ANY)
        .unwrap_or_else(|e| panic!("cannot open {MEGAMIND} ({e}); run `make setup`"));
    let mut bgr = Mat::default();
    let got = capture.read(&mut bgr).unwrap_or(false);
    assert!(got, "{MEGAMIND} gave no frame; run `make setup`");
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&bgr, &mut rgb, imgproc::COLOR_BGR2RGB).expect("BGR to RGB");
    rgb
}

/// A fixed pseudo-random sequence (no dependency, same every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` square boxes of 20 to 300 pixels over a `w`×`h` frame, some
/// crossing its border, as P-Net hands them to R-Net.
fn boxes(n: usize, w: f64, h: f64) -> (Vec<Bbox>, Vec<f64>) {
    let mut r = Lcg(7);
    (0..n)
        .map(|_| {
            let side = (20.0 + 280.0 * r.next() * r.next()).trunc();
            let x = (r.next() * w - side / 4.0).trunc();
            let y = (r.next() * h - side / 4.0).trunc();
            ([x, y, x + side, y + side], r.next())
        })
        .unzip()
}

/// Every pyramid scale of one frame: area resize and normalisation.
#[divan::bench]
fn pyramid_resize_and_normalise(bencher: Bencher) {
    let image = frame();
    let scales = pyramid_scales(image.cols().min(image.rows()), 20.0, 0.709);
    let mut resized = Mat::default();
    let mut out = Vec::new();
    bencher.bench_local(|| {
        for &s in &scales {
            black_box(pnet_input(&image, s, NORM, &mut resized, &mut out).expect("resize"));
        }
    });
}

/// Normalisation and transposition of the largest pyramid scale alone.
#[divan::bench]
fn normalise_largest_scale(bencher: Bencher) {
    let image = frame();
    let (w, h) = (432, 317);
    let mut resized = Mat::default();
    imgproc::resize(
        &image,
        &mut resized,
        opencv::core::Size::new(w, h),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .expect("resize");
    let src = resized.data_bytes().expect("continuous").to_vec();
    let mut out = vec![0.0f32; src.len()];
    bencher.bench_local(|| {
        transpose_normalise(black_box(&src), w as usize, h as usize, NORM, &mut out);
    });
}

/// 150 R-Net crops (24×24) from one frame, the typical count on the video.
#[divan::bench]
fn rnet_crops_150(bencher: Bencher) {
    let image = frame();
    let mut float = Mat::default();
    image
        .convert_to_def(&mut float, opencv::core::CV_32F)
        .expect("to float");
    let (b, _) = boxes(150, f64::from(image.cols()), f64::from(image.rows()));
    let mut resized = Mat::default();
    let mut out = Vec::new();
    bencher.bench_local(|| {
        crops(&float, black_box(&b), 24, NORM, &mut resized, &mut out).expect("crops");
    });
}

/// Decoding P-Net's maps at the largest scale of the video (211×153 cells).
#[divan::bench]
fn pnet_decoding(bencher: Bencher) {
    let (wp, hp) = (211, 153);
    let mut r = Lcg(11);
    // About 1 % of the cells pass the 0.6 threshold, as on real frames.
    let score: Vec<f32> = (0..wp * hp * 2)
        .map(|_| (0.606 * r.next()) as f32)
        .collect();
    let reg: Vec<f32> = (0..wp * hp * 4)
        .map(|_| (r.next() - 0.5) as f32 * 0.2)
        .collect();
    bencher.bench_local(|| black_box(pnet_candidates(&score, &reg, wp, hp, 0.6, 0.6)));
}

/// Non-maximum suppression of 1000 candidates, as across the pyramid.
#[divan::bench(args = [100, 1000])]
fn nms_union(bencher: Bencher, n: usize) {
    let (b, s) = boxes(n, 720.0, 528.0);
    bencher.bench_local(|| black_box(nms(&b, &s, 0.7, Overlap::Union)));
}
