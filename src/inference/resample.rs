//! Letterboxing with an antialiased bilinear (triangle filter) resize.
//!
//! BlazeFace's reference pipeline pads the frame to a square with black and
//! shrinks it with Pillow's bilinear filter, whose support grows with the
//! shrink factor (every source pixel counts). OpenCV has no such filter:
//! `INTER_LINEAR` samples only 2×2 pixels and `INTER_AREA` is a box filter,
//! and both move the detector's keypoints by 2–3 px on a 720-pixel frame.
//! This is the triangle filter, in two separable passes with 8-bit results
//! between them and 22-bit fixed-point weights, so its output matches the
//! reference's input to within a grey level.

use opencv::core::{Mat, CV_8UC3};
use opencv::prelude::*;

/// Fractional bits of the fixed-point weights.
const PRECISION_BITS: u32 = 22;

/// Where the frame went in the letterboxed square.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Padding {
    /// Black columns left of the frame and rows above it, before scaling.
    pub left: usize,
    pub top: usize,
    /// Side of the padded square, before scaling.
    pub side: usize,
    /// The padding on each side as a fraction of the square, along x and y:
    /// what maps the square's coordinates back to the frame's.
    pub fraction: [f64; 2],
}

/// Per output pixel: first source index and fixed-point weights.
struct Taps {
    start: Vec<usize>,
    weights: Vec<Vec<i64>>,
}

/// Triangle-filter taps from `in_size` to `out_size` samples.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle's support is 1 at scale 1
    let mut start = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for i in 0..out_size {
        let centre = (i as f64 + 0.5) * scale;
        let lo = ((centre - support + 0.5).floor().max(0.0)) as usize;
        let hi = ((centre + support + 0.5).floor() as usize).min(in_size);
        let w: Vec<f64> = (lo..hi)
            .map(|x| {
                let d = ((x as f64 - centre + 0.5) / filter_scale).abs();
                (1.0 - d).max(0.0)
            })
            .collect();
        let total: f64 = w.iter().sum();
        let one = f64::from(1u32 << PRECISION_BITS);
        let fixed = w
            .iter()
            .map(|v| {
                let v = if total > 0.0 { v / total } else { 0.0 };
                (v * one).round() as i64
            })
            .collect();
        start.push(lo);
        weights.push(fixed);
    }
    Taps { start, weights }
}

fn to_u8(acc: i64) -> u8 {
    ((acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Pads an 8-bit BGR frame to a centred black square and shrinks it to
/// `out`×`out`. Returns the `out`×`out` BGR image and where the frame went.
pub fn letterbox(bgr: &Mat, out: usize) -> opencv::Result<(Mat, Padding)> {
    let (w, h) = (bgr.cols() as usize, bgr.rows() as usize);
    let side = w.max(h);
    // The reference computes the padding as a fraction and truncates its
    // pixels; the same arithmetic puts the frame on the same rows.
    let fraction = if w > h {
        [0.0, (1.0 - h as f64 / w as f64) / 2.0]
    } else {
        [(1.0 - w as f64 / h as f64) / 2.0, 0.0]
    };
    let pad = Padding {
        left: (fraction[0] * side as f64) as usize,
        top: (fraction[1] * side as f64) as usize,
        side,
        fraction,
    };
    let continuous;
    let src = if bgr.is_continuous() {
        bgr
    } else {
        continuous = bgr.try_clone()?;
        &continuous
    };
    let data = src.data_bytes()?;

    // Horizontal pass over the frame's rows only: padding rows are black
    // and stay black. Columns outside the frame contribute zero.
    let tx = taps(side, out);
    let mut rows = vec![0u8; h * out * 3];
    for y in 0..h {
        let row = &data[y * w * 3..(y + 1) * w * 3];
        for (i, (&lo, ws)) in tx.start.iter().zip(&tx.weights).enumerate() {
            let mut acc = [0i64; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let Some(x) = (lo + k).checked_sub(pad.left).filter(|&x| x < w) else {
                    continue;
                };
                for c in 0..3 {
                    acc[c] += i64::from(row[x * 3 + c]) * wt;
                }
            }
            for c in 0..3 {
                rows[(y * out + i) * 3 + c] = to_u8(acc[c]);
            }
        }
    }

    // Vertical pass.
    let ty = taps(side, out);
    let mut result = Mat::new_rows_cols_with_default(
        out as i32,
        out as i32,
        CV_8UC3,
        opencv::core::Scalar::all(0.0),
    )?;
    let dst = result.data_bytes_mut()?;
    for (j, (&lo, ws)) in ty.start.iter().zip(&ty.weights).enumerate() {
        for i in 0..out {
            let mut acc = [0i64; 3];
            for (k, &wt) in ws.iter().enumerate() {
                let Some(y) = (lo + k).checked_sub(pad.top).filter(|&y| y < h) else {
                    continue;
                };
                for c in 0..3 {
                    acc[c] += i64::from(rows[(y * out + i) * 3 + c]) * wt;
                }
            }
            for c in 0..3 {
                dst[(j * out + i) * 3 + c] = to_u8(acc[c]);
            }
        }
    }
    Ok((result, pad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, Vec3b};

    #[test]
    fn taps_are_normalised_and_cover_the_shrink_factor() {
        let t = taps(720, 128);
        let one = 1i64 << PRECISION_BITS;
        for ws in &t.weights {
            let sum: i64 = ws.iter().sum();
            assert!((sum - one).abs() <= ws.len() as i64, "{sum}");
        }
        // Support is ±5.625 source pixels around each centre: 11 or 12 taps
        // inside the frame, fewer where the edge cuts them.
        assert!(t.weights[1..127]
            .iter()
            .all(|w| (11..=12).contains(&w.len())));
        assert!(t.weights[0].len() < 11);
        // Output pixel 0 is centred at 2.8125.
        assert_eq!(t.start[0], 0);
    }

    #[test]
    fn a_flat_frame_stays_flat_and_the_padding_is_black() {
        // 40×20 grey frame: padded to 40×40 with 10 black rows above and below.
        let frame =
            Mat::new_rows_cols_with_default(20, 40, CV_8UC3, Scalar::new(10.0, 100.0, 200.0, 0.0))
                .unwrap();
        let (out, pad) = letterbox(&frame, 8).unwrap();
        assert_eq!((pad.left, pad.top, pad.side), (0, 10, 40));
        assert_eq!(pad.fraction, [0.0, 0.25]);
        assert_eq!(
            *out.at_2d::<Vec3b>(4, 4).unwrap(),
            Vec3b::from([10, 100, 200])
        );
        assert_eq!(*out.at_2d::<Vec3b>(0, 4).unwrap(), Vec3b::from([0, 0, 0]));
        assert_eq!(*out.at_2d::<Vec3b>(7, 7).unwrap(), Vec3b::from([0, 0, 0]));
    }
}
