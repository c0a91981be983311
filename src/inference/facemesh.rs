//! The `blazeface` family: a face detector, then a keypoint model on a crop
//! around each face (MediaPipe's 468-point face mesh, or any regressor that
//! maps a face crop to N points), with faces followed from frame to frame.
//!
//! The crop is a square around the face, scaled up (1.5× for the mesh) and
//! rotated so the eyes are level; the model's points are mapped back through
//! the same rotation to source pixels. On the next frame the crop comes from
//! this frame's points, so the detector runs only when a face is lost or
//! every `detector.redetect_every` frames, to find new faces. That keeps a
//! mesh at camera rate: the keypoint model is the only model on most frames.

use std::time::Instant;

use opencv::core::{self, Mat, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Deserialize;

use super::blazeface::{FaceBox, FaceDetector};
use super::iris::Iris;
use super::net::{Net, Pixels};
use super::nms::{iou, Bbox};
use super::{DetectError, Detector, Face, StageTimings};
use crate::config::{DetectorConfig, RuntimeConfig};
use crate::models::{Manifest, ModelError};

/// Faces whose boxes overlap more than this are one face seen twice (a
/// tracked face and its new detection); the better one is kept.
const SAME_FACE_IOU: f64 = 0.5;

/// Most faces followed at once: each costs one keypoint model run a frame.
const MAX_FACES: usize = 8;

/// The stages of one frame, as published in `timings_ms`.
const STAGES: [&str; 4] = ["preprocess", "detector", "landmarks", "postprocess"];
const STAGES_WITH_IRIS: [&str; 5] = ["preprocess", "detector", "landmarks", "iris", "postprocess"];

/// How a keypoint model states its coordinates across its input crop.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Coords {
    /// Input pixels: 0 to the crop's width and height.
    Pixels,
    /// 0 to 1.
    Unit,
    /// -1 to 1, 0 at the centre.
    Signed,
}

/// Decoding parameters of a keypoint model, from its manifest's `decoder`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LandmarkDecoder {
    /// Number of points.
    pub points: usize,
    /// Values per point: 2 (x, y) or 3 (x, y, z).
    pub dims: usize,
    pub coords: Coords,
    /// Smallest face-presence probability that keeps a face; used only
    /// when the model has a `presence` output.
    #[serde(default = "half")]
    pub min_presence: f64,
    /// The crop's side relative to the face's longer side.
    pub roi_scale: f64,
    /// The five named keypoints, each the mean of these points.
    pub named: [Vec<usize>; 5],
    /// Two points (the outer eye corners for the mesh) whose line the crop
    /// makes level. Without it the crop is never rotated.
    #[serde(default)]
    pub rotation: Option<[usize; 2]>,
}

fn half() -> f64 {
    0.5
}

/// A rotated rectangle around a face, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    pub cx: f64,
    pub cy: f64,
    pub width: f64,
    pub height: f64,
    /// Radians, clockwise on screen (y points down).
    pub rotation: f64,
}

impl Roi {
    /// A square of `scale` times the longer side of `bbox`, turned by the
    /// line from `a` to `b` (level when `a` is left of `b` at equal height).
    pub fn around(bbox: Bbox, scale: f64, eyes: Option<([f64; 2], [f64; 2])>) -> Roi {
        let side = (bbox[2] - bbox[0]).max(bbox[3] - bbox[1]) * scale;
        Roi {
            cx: (bbox[0] + bbox[2]) / 2.0,
            cy: (bbox[1] + bbox[3]) / 2.0,
            width: side,
            height: side,
            rotation: eyes.map_or(0.0, |(a, b)| level_angle(a, b)),
        }
    }

    /// The source point at `(u, v)` across the ROI (0..1 each way).
    pub fn to_source(&self, u: f64, v: f64) -> [f64; 2] {
        let (s, c) = self.rotation.sin_cos();
        let (x, y) = ((u - 0.5) * self.width, (v - 0.5) * self.height);
        [self.cx + c * x - s * y, self.cy + s * x + c * y]
    }
}

/// The ROI as a `width`×`height` image: an affine warp that samples the
/// source at each crop pixel's centre (bilinear), black outside the frame.
pub fn warp(bgr: &Mat, roi: &Roi, width: usize, height: usize) -> Result<Mat, DetectError> {
    let (w, h) = (width as f64, height as f64);
    let (s, c) = roi.rotation.sin_cos();
    let (ax, ay) = (roi.width / w, roi.height / h);
    // Source pixel (centre-based) of crop pixel (0, 0).
    let [x0, y0] = roi.to_source(0.5 / w, 0.5 / h);
    let m = Mat::from_slice_2d(&[[c * ax, -s * ay, x0 - 0.5], [s * ax, c * ay, y0 - 0.5]])?;
    let mut out = Mat::default();
    imgproc::warp_affine(
        bgr,
        &mut out,
        &m,
        Size::new(w as i32, h as i32),
        imgproc::INTER_LINEAR | imgproc::WARP_INVERSE_MAP,
        core::BORDER_CONSTANT,
        Scalar::all(0.0),
    )?;
    Ok(out)
}

/// The angle that turns the line from `a` to `b` level, in `[-π, π)`.
fn level_angle(a: [f64; 2], b: [f64; 2]) -> f64 {
    use std::f64::consts::{PI, TAU};
    let angle = -(a[1] - b[1]).atan2(b[0] - a[0]);
    angle - TAU * ((angle + PI) / TAU).floor()
}

/// One face's result from the keypoint model.
#[derive(Debug, Clone, PartialEq)]
pub struct Mesh {
    /// Points in source pixels; z in the same scale as x.
    pub points: Vec<[f32; 3]>,
    /// Face-presence probability; 1 for models without that output.
    pub presence: f64,
}

/// The keypoint model of a manifest's `landmarks` role.
pub struct Landmarks {
    pub net: Net,
    pixels: Pixels,
    pub decoder: LandmarkDecoder,
    /// The model has a face-presence output, so a lost face is noticed.
    has_presence: bool,
}

impl Landmarks {
    pub fn load(
        manifest: &Manifest,
        runtime_config: &RuntimeConfig,
    ) -> Result<Landmarks, DetectError> {
        let pixels = Pixels::of(manifest, "landmarks")?;
        let decoder: LandmarkDecoder = manifest.decoder("landmarks")?;
        let bad = |problem: String| {
            DetectError::Model(ModelError::Decoder {
                path: manifest.path.clone(),
                role: "landmarks".into(),
                problem,
            })
        };
        if !(decoder.dims == 2 || decoder.dims == 3) || decoder.points == 0 {
            return Err(bad(format!(
                "decoder: needs points ≥ 1 and dims 2 or 3, got points = {} and dims = {}",
                decoder.points, decoder.dims
            )));
        }
        let indices = decoder
            .named
            .iter()
            .flatten()
            .chain(decoder.rotation.iter().flatten());
        if let Some(i) = indices.clone().find(|&&i| i >= decoder.points) {
            return Err(bad(format!(
                "decoder: point {i} in `named` or `rotation` is beyond the model's {} points",
                decoder.points
            )));
        }
        if decoder.named.iter().any(Vec::is_empty) {
            return Err(bad(
                "decoder: each of the five `named` keypoints needs at least one point".into(),
            ));
        }
        if !(decoder.roi_scale > 0.0 && decoder.roi_scale.is_finite()) {
            return Err(bad(format!(
                "decoder: roi_scale must be positive, got {}",
                decoder.roi_scale
            )));
        }
        let (net, present) = Net::load(
            manifest,
            "landmarks",
            runtime_config,
            &["points"],
            &["presence"],
        )?;
        Ok(Landmarks {
            net,
            pixels,
            decoder,
            has_presence: present[1],
        })
    }

    /// The ROI as the model's input image.
    pub fn crop(&self, bgr: &Mat, roi: &Roi) -> Result<Mat, DetectError> {
        warp(bgr, roi, self.pixels.width, self.pixels.height)
    }

    /// Runs the model on the ROI; `None` when it says there is no face.
    pub fn mesh(
        &mut self,
        bgr: &Mat,
        roi: &Roi,
        t: &mut StageTimings,
    ) -> Result<Option<Mesh>, DetectError> {
        let start = Instant::now();
        let crop = self.crop(bgr, roi)?;
        let tensor = self.pixels.tensor(&crop)?;
        t.add("preprocess", ms_since(start));

        let start = Instant::now();
        let outputs = self.net.run(&tensor)?;
        t.add("landmarks", ms_since(start));

        let start = Instant::now();
        let d = &self.decoder;
        let (shape, raw) = &outputs[0];
        if raw.len() < d.points * d.dims {
            return Err(DetectError::Shape {
                model: "landmarks".into(),
                problem: format!(
                    "output `points` has shape {shape:?} ({} values), the manifest's decoder \
                     needs points × dims = {} × {}",
                    raw.len(),
                    d.points,
                    d.dims
                ),
            });
        }
        let presence = match outputs.get(1) {
            Some((_, p)) if self.has_presence => {
                let logit = p.last().copied().unwrap_or(f32::NEG_INFINITY);
                1.0 / (1.0 + (-f64::from(logit.clamp(-80.0, 80.0))).exp())
            }
            _ => 1.0,
        };
        if presence <= d.min_presence && self.has_presence {
            t.add("postprocess", ms_since(start));
            return Ok(None);
        }
        let (w, h) = (self.pixels.width as f64, self.pixels.height as f64);
        let unit = |v: f32, side: f64| match d.coords {
            Coords::Pixels => f64::from(v) / side,
            Coords::Unit => f64::from(v),
            Coords::Signed => (f64::from(v) + 1.0) / 2.0,
        };
        let points = raw
            .chunks_exact(d.dims)
            .take(d.points)
            .map(|p| {
                let [x, y] = roi.to_source(unit(p[0], w), unit(p[1], h));
                let z = if d.dims == 3 {
                    // z runs along the crop's x scale; centred, so no offset.
                    (unit(p[2], w) - if d.coords == Coords::Signed { 0.5 } else { 0.0 }) * roi.width
                } else {
                    0.0
                };
                [x as f32, y as f32, z as f32]
            })
            .collect();
        t.add("postprocess", ms_since(start));
        Ok(Some(Mesh { points, presence }))
    }

    /// The face a mesh describes: box around the points, named keypoints.
    pub fn face(&self, mesh: Mesh) -> Face {
        let mut bbox = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for p in &mesh.points {
            let (x, y) = (f64::from(p[0]), f64::from(p[1]));
            bbox = [
                bbox[0].min(x),
                bbox[1].min(y),
                bbox[2].max(x),
                bbox[3].max(y),
            ];
        }
        let keypoints = std::array::from_fn(|k| {
            let idx = &self.decoder.named[k];
            let n = idx.len() as f64;
            let sum = idx.iter().fold([0.0, 0.0], |acc, &i| {
                [
                    acc[0] + f64::from(mesh.points[i][0]),
                    acc[1] + f64::from(mesh.points[i][1]),
                ]
            });
            [sum[0] / n, sum[1] / n]
        });
        Face {
            bbox,
            score: mesh.presence,
            keypoints,
            mesh: mesh.points,
        }
    }

    /// The ROI for the next frame, from this frame's face.
    pub fn next_roi(&self, face: &Face) -> Roi {
        let eyes = self.decoder.rotation.map(|[a, b]| {
            let p = |i: usize| [f64::from(face.mesh[i][0]), f64::from(face.mesh[i][1])];
            (p(a), p(b))
        });
        Roi::around(face.bbox, self.decoder.roi_scale, eyes)
    }

    /// The ROI for a face the detector found. Its first two keypoints are
    /// the eyes.
    pub fn detected_roi(&self, face: &FaceBox) -> Roi {
        let eyes = match (self.decoder.rotation, face.keypoints.as_slice()) {
            (Some(_), [a, b, ..]) => Some((*a, *b)),
            _ => None,
        };
        Roi::around(face.bbox, self.decoder.roi_scale, eyes)
    }
}

/// Detector, keypoint model and the faces followed between frames.
pub struct FaceMesh {
    pub detector: FaceDetector,
    pub landmarks: Landmarks,
    /// Iris points appended to each mesh, when the manifest has the role.
    pub iris: Option<Iris>,
    params: DetectorConfig,
    /// ROIs for the next frame, from this frame's faces.
    tracks: Vec<Roi>,
    /// Frames since the detector last ran.
    since_detection: u32,
}

impl FaceMesh {
    pub fn load(
        manifest: &Manifest,
        runtime_config: &RuntimeConfig,
        params: DetectorConfig,
    ) -> Result<FaceMesh, DetectError> {
        let landmarks = Landmarks::load(manifest, runtime_config)?;
        let iris = Iris::load(manifest, runtime_config)?;
        if let Some(i) = &iris {
            if i.needs_points() > landmarks.decoder.points {
                return Err(DetectError::Model(ModelError::Decoder {
                    path: manifest.path.clone(),
                    role: "iris".into(),
                    problem: format!(
                        "decoder: eyes name point {}, but the landmarks model has {} points",
                        i.needs_points() - 1,
                        landmarks.decoder.points
                    ),
                }));
            }
        }
        Ok(FaceMesh {
            detector: FaceDetector::load(manifest, runtime_config)?,
            landmarks,
            iris,
            params,
            tracks: Vec::new(),
            since_detection: 0,
        })
    }

    /// Detector then keypoint model on every face, with no memory of earlier
    /// frames: what a still image gets, and what the parity tests compare.
    pub fn detect_still(
        &mut self,
        bgr: &Mat,
    ) -> Result<(Vec<FaceBox>, Vec<Option<Face>>), DetectError> {
        check_frame(bgr)?;
        let boxes = self.detector.detect(bgr)?;
        let mut t = self.timings();
        let mut faces = Vec::new();
        for b in &boxes {
            let roi = self.landmarks.detected_roi(b);
            let face = match self.landmarks.mesh(bgr, &roi, &mut t)? {
                Some(mesh) => Some(self.finish(bgr, mesh, &mut t)?),
                None => None,
            };
            faces.push(face);
        }
        Ok((boxes, faces))
    }

    fn timings(&self) -> StageTimings {
        StageTimings::new(if self.iris.is_some() {
            &STAGES_WITH_IRIS
        } else {
            &STAGES
        })
    }

    /// The face of a mesh, with its iris points when there is an iris model.
    fn finish(&mut self, bgr: &Mat, mesh: Mesh, t: &mut StageTimings) -> Result<Face, DetectError> {
        let mut face = self.landmarks.face(mesh);
        if let Some(iris) = self.iris.as_mut() {
            let points = iris.points(bgr, &face.mesh, t)?;
            face.mesh.extend(points);
        }
        Ok(face)
    }

    /// Forgets the faces being followed; the next frame runs the detector.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    fn track(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError> {
        check_frame(bgr)?;
        let mut t = self.timings();
        self.since_detection = self.since_detection.saturating_add(1);

        // The faces followed from the last frame.
        let rois = std::mem::take(&mut self.tracks);
        let mut faces = Vec::new();
        for roi in &rois {
            if let Some(mesh) = self.landmarks.mesh(bgr, roi, &mut t)? {
                faces.push(self.finish(bgr, mesh, &mut t)?);
            }
        }

        // The detector looks when there is nothing to follow, when a face
        // was lost (at once, so a cut or a new still image loses no frame),
        // and at the interval, for faces that came in. Without a presence
        // output a lost face cannot be noticed, so it looks every frame.
        let lost = faces.len() < rois.len();
        if rois.is_empty()
            || lost
            || self.since_detection >= self.params.redetect_every
            || !self.landmarks.has_presence
        {
            let start = Instant::now();
            let found = self.detector.detect(bgr)?;
            t.add("detector", ms_since(start));
            self.since_detection = 0;
            // A face already followed keeps its ROI (steadier than a fresh
            // detection's); only new faces are added.
            let followed: Vec<Bbox> = faces
                .iter()
                .map(|f| roi_box(&self.landmarks.next_roi(f)))
                .collect();
            for b in &found {
                let roi = self.landmarks.detected_roi(b);
                let known = followed
                    .iter()
                    .any(|f| iou(f, &roi_box(&roi)) > SAME_FACE_IOU);
                if !known && faces.len() < MAX_FACES {
                    if let Some(mesh) = self.landmarks.mesh(bgr, &roi, &mut t)? {
                        faces.push(self.finish(bgr, mesh, &mut t)?);
                    }
                }
            }
        }

        let start = Instant::now();
        // Two ROIs that drifted onto one face: keep the more certain.
        faces.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Face> = Vec::new();
        for f in faces {
            if kept.iter().all(|k| iou(&k.bbox, &f.bbox) <= SAME_FACE_IOU) {
                kept.push(f);
            }
        }
        self.tracks = kept.iter().map(|f| self.landmarks.next_roi(f)).collect();
        t.add("postprocess", ms_since(start));
        Ok((kept, t))
    }
}

/// The axis-aligned box of a ROI, ignoring its rotation.
fn roi_box(r: &Roi) -> Bbox {
    [
        r.cx - r.width / 2.0,
        r.cy - r.height / 2.0,
        r.cx + r.width / 2.0,
        r.cy + r.height / 2.0,
    ]
}

fn check_frame(bgr: &Mat) -> Result<(), DetectError> {
    if bgr.typ() != core::CV_8UC3 || bgr.rows() < 1 || bgr.cols() < 1 {
        return Err(DetectError::BadFrame(format!(
            "{}x{} of type {}",
            bgr.cols(),
            bgr.rows(),
            bgr.typ()
        )));
    }
    Ok(())
}

impl Detector for FaceMesh {
    fn detect(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError> {
        self.track(bgr)
    }

    fn providers(&self) -> Vec<(String, String)> {
        [&self.detector.net, &self.landmarks.net]
            .into_iter()
            .chain(self.iris.as_ref().map(|i| &i.net))
            .map(|n| (n.role.to_string(), n.provider.to_string()))
            .collect()
    }

    fn set_params(&mut self, params: DetectorConfig) {
        self.params = params;
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::FRAC_PI_2;

    #[test]
    fn level_eyes_give_no_rotation_and_a_tilted_face_turns_the_crop() {
        assert_eq!(level_angle([0.0, 10.0], [10.0, 10.0]), 0.0);
        // Right eye lower on screen (y down): the head leans clockwise.
        let a = level_angle([0.0, 0.0], [10.0, 10.0]);
        assert!((a - std::f64::consts::FRAC_PI_4).abs() < 1e-12, "{a}");
        // Upside down wraps to -π, not π.
        assert!((level_angle([10.0, 0.0], [0.0, 0.0]) + std::f64::consts::PI).abs() < 1e-12);
    }

    #[test]
    fn roi_maps_its_corners_through_the_rotation() {
        let roi = Roi {
            cx: 100.0,
            cy: 50.0,
            width: 20.0,
            height: 20.0,
            rotation: FRAC_PI_2,
        };
        let c = roi.to_source(0.5, 0.5);
        assert_eq!(c, [100.0, 50.0]);
        // The crop's right edge points down on screen after a quarter turn.
        let r = roi.to_source(1.0, 0.5);
        assert!(
            (r[0] - 100.0).abs() < 1e-9 && (r[1] - 60.0).abs() < 1e-9,
            "{r:?}"
        );
    }

    #[test]
    fn roi_around_a_box_is_a_scaled_square_on_its_centre() {
        let r = Roi::around([10.0, 20.0, 30.0, 60.0], 1.5, None);
        assert_eq!(
            (r.cx, r.cy, r.width, r.height, r.rotation),
            (20.0, 40.0, 60.0, 60.0, 0.0)
        );
    }
}
