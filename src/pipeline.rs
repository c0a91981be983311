//! Wiring: source → hand-off → inference → hub. Start reading here.
//!
//! The capture thread and the inference thread are plain threads (OpenCV and
//! ONNX Runtime calls block); the hub hands results to the tokio side.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opencv::prelude::*;
use tracing::{debug, info, warn};

use crate::capture::{handoff, Capture, CaptureError, HandoffReceiver, Next};
use crate::config::Config;
use crate::frame::unix_ms;
use crate::inference::Detector;
use crate::publish::protocol::{FaceMsg, FrameMsg, ServerMsg, Timings};
use crate::publish::{Hub, Published};
use crate::stats::Window;
use crate::status::Status;

/// How often the inference thread checks for a stop request while idle.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// The running capture and inference threads.
pub struct Pipeline {
    capture: Option<Capture>,
    stop: Arc<AtomicBool>,
    inference: Option<JoinHandle<Box<dyn Detector>>>,
}

impl Pipeline {
    /// Opens the source and starts both threads. The detector moves to the
    /// inference thread and comes back from [`Pipeline::stop`].
    pub fn start(
        config: &Config,
        detector: Box<dyn Detector>,
        hub: Hub,
        status: Arc<Status>,
    ) -> Result<Pipeline, CaptureError> {
        let (tx, rx) = handoff();
        let capture = Capture::start(&config.source, tx, status.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let summary_every = Duration::from_secs_f64(config.log.summary_interval_s);
        let quality = config.publish.jpeg_quality;
        let source = config.source.uri.clone();
        let inference = std::thread::Builder::new()
            .name("kao-inference".into())
            .spawn(move || {
                let ctx = Context {
                    hub,
                    status,
                    summary_every,
                    quality,
                    source,
                };
                infer(detector, rx, &ctx, &flag)
            })
            .map_err(|e| CaptureError::Camera(format!("cannot start the inference thread: {e}")))?;
        Ok(Pipeline {
            capture: Some(capture),
            stop,
            inference: Some(inference),
        })
    }

    /// True once the inference thread has finished (the source ended).
    pub fn finished(&self) -> bool {
        self.inference.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops both threads and returns the detector.
    pub fn stop(mut self) -> Option<Box<dyn Detector>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.capture.take() {
            c.stop();
        }
        self.inference.take().and_then(|t| t.join().ok())
    }
}

/// What the inference thread reports to.
struct Context {
    hub: Hub,
    status: Arc<Status>,
    summary_every: Duration,
    quality: i32,
    source: String,
}

/// The inference loop: take the newest frame, detect, publish.
fn infer(
    mut detector: Box<dyn Detector>,
    rx: HandoffReceiver,
    ctx: &Context,
    stop: &AtomicBool,
) -> Box<dyn Detector> {
    let Context {
        hub,
        status,
        summary_every,
        quality,
        source,
    } = ctx;
    let (summary_every, quality, source) = (*summary_every, *quality, source.as_str());
    let mut window = Window::default();
    let mut processed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let frame = match rx.next(IDLE_POLL) {
            Next::Frame(f) => f,
            Next::Idle => continue,
            Next::Ended => {
                info!(
                    source,
                    frames = processed,
                    dropped = rx.dropped(),
                    "source ended"
                );
                hub.announce(ServerMsg::Source {
                    state: "ended".into(),
                    detail: format!("{source} ended after {processed} processed frames"),
                });
                break;
            }
        };
        let queue_ms = frame.captured.elapsed().as_secs_f64() * 1000.0;
        let (faces, stages) = match detector.detect(&frame.image) {
            Ok(r) => r,
            Err(err) => {
                warn!(seq = frame.seq, cause = %err, "inference failed, frame skipped");
                status.frames_failed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let (w, h) = (frame.image.cols(), frame.image.rows());
        let total_ms = frame.captured.elapsed().as_secs_f64() * 1000.0;
        let message = FrameMsg {
            seq: frame.seq,
            captured_at_ms: (unix_ms(frame.captured_at) * 1000.0).round() / 1000.0,
            width: w,
            height: h,
            dropped: rx.dropped(),
            missed: 0,
            timings_ms: Timings::new(
                frame.decode.as_secs_f64() * 1000.0,
                queue_ms,
                &stages,
                total_ms,
            ),
            faces: faces.iter().map(|f| FaceMsg::new(f, w, h)).collect(),
            jpeg: None,
        };
        debug!(seq = frame.seq, faces = faces.len(), total_ms, "frame");
        window.record(total_ms, faces.len());
        status.frames_dropped.store(rx.dropped(), Ordering::Relaxed);
        status.frame_processed(faces.len(), &message.timings_ms.0);
        hub.publish(Published::new(message, frame.image, faces, quality));
        processed += 1;

        if !summary_every.is_zero() && window.elapsed() >= summary_every {
            let s = window.take();
            status.set_fps(s.fps);
            info!(
                fps = round1(s.fps),
                dropped = rx.dropped(),
                p50_ms = round1(s.p50_ms),
                p99_ms = round1(s.p99_ms),
                faces = round1(s.faces_per_frame),
                clients = hub.clients(),
                "pipeline"
            );
        }
    }
    detector
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Milliseconds since `start`.
pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
