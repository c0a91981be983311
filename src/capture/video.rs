//! Video files and network streams through OpenCV's `VideoCapture`.

use std::time::Duration;

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};

use super::{CaptureError, Source};
use crate::imageio::to_bgr8;

/// Frame rate assumed when a file does not state a usable one.
const FALLBACK_FPS: f64 = 25.0;

pub struct VideoSource {
    uri: String,
    capture: VideoCapture,
    /// Files can be rewound and replayed at their rate; streams cannot.
    is_file: bool,
    fps: f64,
}

impl VideoSource {
    pub fn open(uri: &str, is_file: bool) -> Result<VideoSource, CaptureError> {
        let what = if is_file { "video file" } else { "stream" };
        let fail = |reason: String| CaptureError::Open {
            what,
            uri: uri.into(),
            reason,
        };
        let capture =
            VideoCapture::from_file(uri, videoio::CAP_ANY).map_err(|e| fail(e.to_string()))?;
        if !capture.is_opened().unwrap_or(false) {
            return Err(fail(
                "OpenCV could not open it (not a video, an unsupported codec, or an unreachable stream)".into(),
            ));
        }
        let fps = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
        let fps = if fps.is_finite() && fps > 0.5 && fps < 1000.0 {
            fps
        } else {
            FALLBACK_FPS
        };
        Ok(VideoSource {
            uri: uri.into(),
            capture,
            is_file,
            fps,
        })
    }
}

impl Source for VideoSource {
    fn describe(&self) -> String {
        self.uri.clone()
    }

    fn read(&mut self) -> Result<Option<Mat>, CaptureError> {
        let mut frame = Mat::default();
        let got = self
            .capture
            .read(&mut frame)
            .map_err(|e| CaptureError::Read {
                uri: self.uri.clone(),
                reason: e.to_string(),
            })?;
        if !got || frame.empty() {
            return Ok(None);
        }
        to_bgr8(&frame).map(Some).map_err(|e| CaptureError::Read {
            uri: self.uri.clone(),
            reason: e.to_string(),
        })
    }

    fn interval(&self) -> Option<Duration> {
        self.is_file
            .then(|| Duration::from_secs_f64(1.0 / self.fps))
    }

    /// Files are opened again rather than seeked: a file deleted or
    /// replaced while it played is noticed here, not read from a stale
    /// handle forever.
    fn rewind(&mut self) -> bool {
        if !self.is_file {
            return false;
        }
        match VideoSource::open(&self.uri, true) {
            Ok(again) => {
                *self = again;
                true
            }
            Err(err) => {
                tracing::warn!(cause = %err, "cannot open the video again");
                false
            }
        }
    }
}
