//! The inference stage: ONNX Runtime sessions and the detectors built on
//! them. A model family (its decoding) is a [`Detector`]; which family a
//! model belongs to comes from its manifest.

pub mod blazeface;
pub mod check;
pub mod facemesh;
pub mod iris;
pub mod mtcnn;
pub mod net;
pub mod nms;
pub mod resample;
pub mod runtime;

use opencv::core::Mat;
use serde::ser::SerializeMap;
use serde::Serialize;

pub use facemesh::FaceMesh;
pub use mtcnn::Mtcnn;

use crate::config::{DetectorConfig, RuntimeConfig};
use crate::models::{Manifest, ModelError};
use nms::Bbox;
use runtime::RuntimeError;

/// The five named keypoints every family provides, in this order.
pub const KEYPOINT_NAMES: [&str; 5] =
    ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"];

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("model {model}: {problem}")]
    Shape { model: String, problem: String },
    #[error("image processing failed: {0}")]
    OpenCv(#[from] opencv::Error),
    #[error("{0}")]
    Worker(String),
    #[error("frame must be 8-bit, 3-channel BGR with a non-zero size, got {0}")]
    BadFrame(String),
}

/// One detected face, in source pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// `[x1, y1, x2, y2]`.
    pub bbox: Bbox,
    pub score: f64,
    /// `(x, y)` of [`KEYPOINT_NAMES`], in that order.
    pub keypoints: [[f64; 2]; 5],
    /// Dense keypoints `(x, y, z)` from families that have them (a face
    /// mesh); empty otherwise.
    pub mesh: Vec<[f32; 3]>,
}

/// Time spent in each stage of one detection, in milliseconds, in the order
/// the stages ran. Stage names depend on the family (`pnet`, `rnet`, … for
/// MTCNN).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageTimings(Vec<(&'static str, f64)>);

impl StageTimings {
    /// Timings with these stages at zero, so every message lists them all.
    pub fn new(stages: &[&'static str]) -> StageTimings {
        StageTimings(stages.iter().map(|s| (*s, 0.0)).collect())
    }

    /// Adds time to a stage (appending it if new).
    pub fn add(&mut self, stage: &'static str, ms: f64) {
        match self.0.iter_mut().find(|(s, _)| *s == stage) {
            Some((_, t)) => *t += ms,
            None => self.0.push((stage, ms)),
        }
    }

    pub fn get(&self, stage: &str) -> f64 {
        self.0
            .iter()
            .find(|(s, _)| *s == stage)
            .map_or(0.0, |(_, t)| *t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.0.iter().copied()
    }
}

impl Serialize for StageTimings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, &((v * 1000.0).round() / 1000.0))?;
        }
        map.end()
    }
}

/// A face detector of some model family.
pub trait Detector: Send {
    /// Finds faces in one 8-bit BGR frame.
    fn detect(&mut self, bgr: &Mat) -> Result<(Vec<Face>, StageTimings), DetectError>;
    /// The provider each network runs on, e.g. `[("pnet", "cpu"), …]`.
    fn providers(&self) -> Vec<(String, String)>;
    /// Replaces the tunable parameters; sessions are kept.
    fn set_params(&mut self, params: DetectorConfig);
}

/// Builds the detector a manifest describes.
pub fn load(
    manifest: &Manifest,
    runtime: &RuntimeConfig,
    params: DetectorConfig,
) -> Result<Box<dyn Detector>, DetectError> {
    // `Manifest::load` has refused unknown families already.
    match manifest.family.as_str() {
        "blazeface" => Ok(Box::new(FaceMesh::load(manifest, runtime, params)?)),
        _ => Ok(Box::new(Mtcnn::load(manifest, runtime, params)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_timings_accumulate_in_order_and_serialise_as_a_map() {
        let mut t = StageTimings::new(&["a", "b"]);
        t.add("b", 1.5);
        t.add("b", 1.0);
        t.add("c", 0.25);
        assert_eq!(t.get("b"), 2.5);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"a":0.0,"b":2.5,"c":0.25}"#
        );
    }
}
