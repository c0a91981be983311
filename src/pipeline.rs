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

use crossbeam_channel::{Receiver, Sender};

use crate::capture::{handoff, Capture, CaptureError, HandoffReceiver, Next};
use crate::config::{Config, DetectorConfig, RetryConfig, SourceConfig};
use crate::frame::unix_ms;
use crate::inference::Detector;
use crate::publish::protocol::{FaceMsg, FrameMsg, ServerMsg, Timings};
use crate::publish::{Hub, Published};
use crate::service::notify::Watchdog;
use crate::stats::Window;
use crate::status::{SourceState, Status};

/// How often the frame rate is recomputed when log summaries are off.
const FPS_WINDOW: Duration = Duration::from_secs(2);

/// How often the inference thread checks for a stop request, commands and
/// a stalled source while idle; also the finest watchdog granularity.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Changes the daemon makes to a running pipeline (on reload), carried out
/// by the inference thread between frames.
enum Command {
    /// New thresholds and sizes; the sessions are kept.
    Params(DetectorConfig),
    /// A different model or providers: the old detector is dropped.
    Detector(Box<dyn Detector>),
    /// Frames now come from this hand-off (a new source).
    Source(HandoffReceiver),
    /// Feed systemd's watchdog from now on.
    Watchdog(Watchdog),
}

/// The running capture and inference threads.
pub struct Pipeline {
    capture: Option<Capture>,
    stop: Arc<AtomicBool>,
    inference: Option<JoinHandle<Box<dyn Detector>>>,
    commands: Sender<Command>,
    retry: RetryConfig,
    status: Arc<Status>,
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
        let capture = Capture::start(&config.source, &config.source_retry, tx, status.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (commands, command_rx) = crossbeam_channel::unbounded();
        let ctx = Context {
            hub,
            status: status.clone(),
            summary_every: Duration::from_secs_f64(config.log.summary_interval_s),
            quality: config.publish.jpeg_quality,
            stall: stall_timeout(config),
        };
        let inference = std::thread::Builder::new()
            .name("kao-inference".into())
            .spawn(move || infer(detector, rx, command_rx, ctx, &flag))
            .map_err(|e| CaptureError::Camera(format!("cannot start the inference thread: {e}")))?;
        Ok(Pipeline {
            capture: Some(capture),
            stop,
            inference: Some(inference),
            commands,
            retry: config.source_retry.clone(),
            status,
        })
    }

    /// True once the inference thread has finished.
    pub fn finished(&self) -> bool {
        self.inference.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Feeds `watchdog` from the inference thread's progress.
    pub fn set_watchdog(&self, watchdog: Watchdog) {
        let _ = self.commands.send(Command::Watchdog(watchdog));
    }

    /// New detector parameters, used from the next frame on.
    pub fn set_params(&self, params: DetectorConfig) {
        let _ = self.commands.send(Command::Params(params));
    }

    /// Replaces the detector (a new model or providers) from the next frame on.
    pub fn replace_detector(&self, detector: Box<dyn Detector>) {
        let _ = self.commands.send(Command::Detector(detector));
    }

    /// Switches to another source: the new one is opened first, and only
    /// when that works does it replace the running one. Clients stay
    /// connected throughout.
    pub fn switch_source(&mut self, source: &SourceConfig) -> Result<(), CaptureError> {
        let (tx, rx) = handoff();
        let capture = Capture::start(source, &self.retry, tx, self.status.clone())?;
        self.status.set_source_uri(&source.uri);
        let _ = self.commands.send(Command::Source(rx));
        if let Some(old) = self.capture.replace(capture) {
            old.stop();
        }
        Ok(())
    }

    /// Stops both threads, waiting at most `grace` for them (a frame in
    /// the middle of inference is finished first). False when they were
    /// still busy; they end with the process.
    pub fn stop_within(self, grace: Duration) -> bool {
        let (done, finished) = crossbeam_channel::bounded(1);
        let stopper = std::thread::Builder::new()
            .name("kao-stop".into())
            .spawn(move || {
                drop(self.stop());
                let _ = done.send(());
            });
        stopper.is_ok() && finished.recv_timeout(grace).is_ok()
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

/// How long a source may deliver nothing before it counts as stalled: the
/// configured time, but never less than a few intervals of a slow image
/// replay.
fn stall_timeout(config: &Config) -> Duration {
    let slowest = 3.0 / config.source.image_fps;
    Duration::from_secs_f64(config.source_retry.stall_timeout_s.max(slowest))
}

/// What the inference thread reports to.
struct Context {
    hub: Hub,
    status: Arc<Status>,
    summary_every: Duration,
    quality: i32,
    stall: Duration,
}

/// The inference loop: take the newest frame, detect, publish; between
/// frames, carry out commands and report changes of the source's state.
fn infer(
    mut detector: Box<dyn Detector>,
    rx: HandoffReceiver,
    commands: Receiver<Command>,
    ctx: Context,
    stop: &AtomicBool,
) -> Box<dyn Detector> {
    let Context {
        hub,
        status,
        summary_every,
        quality,
        stall,
    } = ctx;
    let mut rx = Some(rx);
    let mut watchdog: Option<Watchdog> = None;
    let mut window = Window::default();
    // Drops counted by hand-offs of earlier sources.
    let mut dropped_before = 0u64;
    let mut last_frame = Instant::now();
    let mut announced = status.source_state();
    while !stop.load(Ordering::Relaxed) {
        if let Some(w) = &watchdog {
            w.beat();
        }
        // Reload commands, between frames.
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Params(p) => detector.set_params(p),
                Command::Detector(d) => {
                    detector = d;
                    info!(providers = ?detector.providers(), "detector replaced");
                }
                Command::Source(new) => {
                    if let Some(old) = rx.replace(new) {
                        dropped_before += old.dropped();
                    }
                    last_frame = Instant::now();
                }
                Command::Watchdog(w) => watchdog = Some(w),
            }
        }
        announced = announce_source_change(&hub, &status, announced);

        let Some(frames) = &rx else {
            // The source has ended; wait for a reload or a stop.
            std::thread::sleep(IDLE_POLL);
            continue;
        };
        let frame = match frames.next(IDLE_POLL) {
            Next::Frame(f) => f,
            Next::Idle => {
                if status.source_state() == SourceState::Up && last_frame.elapsed() > stall {
                    let detail = format!(
                        "no frame for {:.0} s (source_retry.stall_timeout_s)",
                        last_frame.elapsed().as_secs_f64()
                    );
                    warn!(detail, "source stalled");
                    status.set_source(SourceState::Lost, detail);
                }
                continue;
            }
            Next::Ended => {
                info!(
                    frames = status.get(&status.frames_processed),
                    dropped = dropped_before + frames.dropped(),
                    "capture finished"
                );
                rx = None;
                continue;
            }
        };
        last_frame = Instant::now();
        let dropped = dropped_before + frames.dropped();
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
            dropped,
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
        status.frames_dropped.store(dropped, Ordering::Relaxed);
        status.frame_processed(faces.len(), &message.timings_ms.0);
        hub.publish(Published::new(message, frame.image, faces, quality));

        // The rate is kept up to date for status, health and metrics even
        // when the log summaries are off.
        let every = if summary_every.is_zero() {
            FPS_WINDOW
        } else {
            summary_every
        };
        if window.elapsed() >= every {
            let s = window.take();
            status.set_fps(s.fps);
            if !summary_every.is_zero() {
                info!(
                    fps = round1(s.fps),
                    dropped,
                    p50_ms = round1(s.p50_ms),
                    p99_ms = round1(s.p99_ms),
                    faces = round1(s.faces_per_frame),
                    clients = hub.clients(),
                    "pipeline"
                );
            }
        }
    }
    detector
}

/// Tells clients when the source changed state since `announced`; returns
/// the state now announced.
fn announce_source_change(hub: &Hub, status: &Status, announced: SourceState) -> SourceState {
    let now = status.source_state();
    if now != announced {
        if now != SourceState::Up {
            // No frames: the last summary's rate no longer holds.
            status.set_fps(0.0);
        }
        let source = status.source();
        hub.announce(ServerMsg::Source {
            state: source.state.name().into(),
            detail: format!("{}: {}", source.uri, source.detail),
        });
        return source.state;
    }
    announced
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Milliseconds since `start`.
pub fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
