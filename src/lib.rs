//! kao (顔, "face"): a real-time face detection and keypoint daemon.
//!
//! Frames flow from a [`capture`] source through a latest-frame-wins hand-off
//! to the [`inference`] stage (ONNX Runtime), and the results are published to
//! clients by [`publish`]. [`pipeline`] wires the three together; start
//! reading there.

pub mod annotate;
pub mod bench;
pub mod capture;
pub mod config;
pub mod frame;
pub mod http;
pub mod imageio;
pub mod inference;
pub mod models;
pub mod pipeline;
pub mod publish;
pub mod service;
pub mod stats;
pub mod status;
pub mod watch;
