//! The inference stage: ONNX Runtime sessions and the detectors built on
//! them.

pub mod mtcnn;
pub mod nms;
pub mod runtime;

pub use mtcnn::{DetectError, Face, Mtcnn, StageTimings, KEYPOINT_NAMES};
