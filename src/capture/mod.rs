//! Sources of frames and the capture thread that feeds the pipeline.
//!
//! Every source runs on its own thread and hands frames to inference through
//! [`Handoff`], a one-slot channel where the newest frame wins: when
//! inference is slower than the source, older frames are dropped and
//! counted, so latency never grows with a queue.

mod camera;
mod handoff;
mod images;
mod video;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opencv::core::Mat;
use tracing::{debug, info, warn};

pub use handoff::{handoff, Handoff, HandoffReceiver, Next};

use crate::config::{RetryConfig, SourceConfig};
use crate::frame::Frame;
use crate::status::{SourceState, Status};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("source {uri:?} does not exist; give a video file, an image, a folder of images, a URL or camera:N")]
    NotFound { uri: String },
    #[error("cannot open {what} {uri:?}: {reason}")]
    Open {
        what: &'static str,
        uri: String,
        reason: String,
    },
    #[error(
        "folder {uri:?} has no images (looked for .jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp)"
    )]
    NoImages { uri: String },
    #[error("{0}")]
    Camera(String),
    #[error("reading from {uri:?} failed: {reason}")]
    Read { uri: String, reason: String },
}

/// Something that produces frames. Sources are opened and used on the
/// capture thread (a camera handle may not move between threads).
pub trait Source {
    /// What is being read, for logs and status.
    fn describe(&self) -> String;
    /// The next frame as 8-bit BGR, or `None` at the end of the stream.
    fn read(&mut self) -> Result<Option<Mat>, CaptureError>;
    /// Interval between frames when replaying at the source's own rate
    /// (files); `None` for live sources, which pace themselves.
    fn interval(&self) -> Option<Duration>;
    /// Starts again from the beginning; false when the source cannot.
    fn rewind(&mut self) -> bool;
}

/// What `uri` names.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    Camera(u32),
    Url(String),
    Folder(String),
    Image(String),
    Video(String),
}

const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Works out what kind of source a URI is without opening it.
pub fn classify(uri: &str) -> Result<SourceKind, CaptureError> {
    if let Some(n) = uri.strip_prefix("camera:") {
        return n
            .parse()
            .map(SourceKind::Camera)
            .map_err(|_| CaptureError::Open {
                what: "camera",
                uri: uri.into(),
                reason: "expected camera:N with N the number of /dev/videoN".into(),
            });
    }
    if uri.contains("://") {
        return Ok(SourceKind::Url(uri.into()));
    }
    let path = Path::new(uri);
    if path.is_dir() {
        Ok(SourceKind::Folder(uri.into()))
    } else if !path.exists() {
        Err(CaptureError::NotFound { uri: uri.into() })
    } else if is_image_path(path) {
        Ok(SourceKind::Image(uri.into()))
    } else {
        Ok(SourceKind::Video(uri.into()))
    }
}

/// Opens the source a configuration names.
pub fn open(config: &SourceConfig) -> Result<Box<dyn Source>, CaptureError> {
    let interval = Duration::from_secs_f64(1.0 / config.image_fps);
    Ok(match classify(&config.uri)? {
        SourceKind::Camera(index) => Box::new(camera::CameraSource::open(
            index,
            config.camera_width,
            config.camera_height,
        )?),
        SourceKind::Url(url) => Box::new(video::VideoSource::open(&url, false)?),
        SourceKind::Video(path) => Box::new(video::VideoSource::open(&path, true)?),
        SourceKind::Folder(dir) => Box::new(images::ImageSource::folder(&dir, interval)?),
        SourceKind::Image(path) => Box::new(images::ImageSource::single(&path, interval)?),
    })
}

/// A running capture thread.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Capture {
    /// Opens the configured source on a thread of its own and starts
    /// handing frames to `out`. Fails, with the thread gone, when the
    /// source cannot be opened at all; once it has been opened, a failing
    /// source is reported lost and opened again with backoff (`retry`).
    pub fn start(
        config: &SourceConfig,
        retry: &RetryConfig,
        out: Handoff,
        status: Arc<Status>,
    ) -> Result<Capture, CaptureError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let config = config.clone();
        let retry = retry.clone();
        let (opened_tx, opened_rx) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("kao-capture".into())
            .spawn(move || {
                let source = match open(&config) {
                    Ok(source) => {
                        status.set_source(SourceState::Up, "open");
                        let _ = opened_tx.send(Ok(()));
                        source
                    }
                    Err(err) => {
                        status.set_source(SourceState::Lost, err.to_string());
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                supervise(source, &config, &retry, out, &flag, &status)
            })
            .map_err(|e| CaptureError::Camera(format!("cannot start the capture thread: {e}")))?;
        match opened_rx.recv() {
            Ok(Ok(())) => Ok(Capture {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => {
                let _ = thread.join();
                Err(CaptureError::Camera(
                    "the capture thread ended while opening the source".into(),
                ))
            }
        }
    }

    /// Asks the thread to stop and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How one spell of reading a source finished.
enum Outcome {
    /// Asked to stop.
    Stopped,
    /// A file or folder reached its end and is not looped.
    Ended,
    /// The source failed or vanished; it may come back.
    Lost { reason: String, frames: u64 },
}

/// Reads the source, and whenever it is lost opens it again, waiting longer
/// after each failed try (up to `retry.max_s`), until stopped or ended.
/// Dropping `out` at the end tells inference that the source has ended.
fn supervise(
    first: Box<dyn Source>,
    config: &SourceConfig,
    retry: &RetryConfig,
    out: Handoff,
    stop: &AtomicBool,
    status: &Status,
) {
    let initial = Duration::from_secs_f64(retry.initial_s);
    let max = Duration::from_secs_f64(retry.max_s);
    let mut wait = initial;
    let mut source = Some(first);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut current = match source.take() {
            Some(s) => s,
            None => match open(config) {
                Ok(s) => {
                    info!(source = %config.uri, "source is back");
                    status.set_source(SourceState::Up, "open again");
                    s
                }
                Err(err) => {
                    warn!(source = %config.uri, cause = %err, retry_in_s = wait.as_secs_f64(), "source still lost");
                    status.set_source(SourceState::Lost, err.to_string());
                    sleep_unless_stopped(wait, stop);
                    wait = (wait * 2).min(max);
                    continue;
                }
            },
        };
        match run(current.as_mut(), config, &out, stop, status, &mut seq) {
            Outcome::Stopped => break,
            Outcome::Ended => {
                status.set_source(SourceState::Ended, format!("ended after {seq} frames"));
                break;
            }
            Outcome::Lost { reason, frames } => {
                // A source that delivered frames before failing starts the
                // backoff afresh; one that fails at once keeps backing off.
                if frames > 0 {
                    wait = initial;
                }
                warn!(source = %config.uri, cause = %reason, retry_in_s = wait.as_secs_f64(), "source lost");
                status.set_source(SourceState::Lost, reason);
                drop(current);
                sleep_unless_stopped(wait, stop);
                wait = (wait * 2).min(max);
            }
        }
    }
    drop(out);
    info!(source = %config.uri, "capture stopped");
}

/// The capture loop: read, stamp, hand off, pace.
fn run(
    source: &mut dyn Source,
    config: &SourceConfig,
    out: &Handoff,
    stop: &AtomicBool,
    status: &Status,
    seq: &mut u64,
) -> Outcome {
    let name = source.describe();
    info!(source = %name, "capture started");
    // Files and folders have an interval; live sources (cameras, streams)
    // pace themselves and never end on purpose.
    let live = source.interval().is_none();
    let interval = if config.realtime {
        source.interval()
    } else {
        None
    };
    let mut frames = 0u64;
    let mut since_rewind = 0u64;
    let mut next_due = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let image = match source.read() {
            Ok(Some(image)) => image,
            Ok(None) if live => {
                return Outcome::Lost {
                    reason: format!("{name} stopped delivering frames"),
                    frames,
                }
            }
            Ok(None) if !config.loop_at_end => {
                info!(source = %name, frames, "end of source");
                return Outcome::Ended;
            }
            Ok(None) if since_rewind == 0 => {
                return Outcome::Lost {
                    reason: format!("{name} has no frames"),
                    frames,
                }
            }
            Ok(None) => {
                if !source.rewind() {
                    return Outcome::Lost {
                        reason: format!(
                            "{name} cannot be read again from the start (deleted or moved?)"
                        ),
                        frames,
                    };
                }
                debug!(source = %name, "end of source, starting again");
                since_rewind = 0;
                continue;
            }
            Err(err) => {
                return Outcome::Lost {
                    reason: err.to_string(),
                    frames,
                }
            }
        };
        let frame = Frame {
            seq: *seq,
            captured_at: SystemTime::now(),
            captured: Instant::now(),
            decode: started.elapsed(),
            image,
        };
        *seq += 1;
        frames += 1;
        since_rewind += 1;
        status.frames_captured.fetch_add(1, Ordering::Relaxed);
        // A stall noticed by inference, or an earlier loss, is over.
        if status.source_state() != SourceState::Up {
            status.set_source(SourceState::Up, "delivering frames");
        }
        out.push(frame);
        // Files are replayed at their own rate, like a camera would deliver them.
        if let Some(interval) = interval {
            next_due += interval;
            let now = Instant::now();
            if next_due > now {
                sleep_unless_stopped(next_due - now, stop);
            } else {
                next_due = now;
            }
        }
    }
    Outcome::Stopped
}

/// Sleeps in short steps so that a stop request is seen quickly.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    const STEP: Duration = Duration::from_millis(50);
    let end = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(STEP));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_each_kind() {
        assert_eq!(classify("camera:0").unwrap(), SourceKind::Camera(0));
        assert!(classify("camera:front").is_err());
        assert_eq!(
            classify("rtsp://127.0.0.1/x").unwrap(),
            SourceKind::Url("rtsp://127.0.0.1/x".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(classify(d).unwrap(), SourceKind::Folder(d.into()));
        let img = dir.path().join("a.PNG");
        std::fs::write(&img, b"x").unwrap();
        assert!(matches!(
            classify(img.to_str().unwrap()).unwrap(),
            SourceKind::Image(_)
        ));
        let err = classify("/nonexistent/video.avi").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/video.avi"), "{err}");
    }
}
