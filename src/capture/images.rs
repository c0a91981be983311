//! A still image or a folder of images, replayed at a set rate.

use std::path::PathBuf;
use std::time::Duration;

use opencv::core::Mat;
use tracing::warn;

use super::{is_image_path, CaptureError, Source};
use crate::imageio::read_image;

pub struct ImageSource {
    uri: String,
    files: Vec<PathBuf>,
    next: usize,
    interval: Duration,
}

impl ImageSource {
    pub fn single(path: &str, interval: Duration) -> Result<ImageSource, CaptureError> {
        // Decode once now so that a bad file is refused at start.
        read_image(path.as_ref()).map_err(|e| CaptureError::Open {
            what: "image",
            uri: path.into(),
            reason: e.to_string(),
        })?;
        Ok(ImageSource {
            uri: path.into(),
            files: vec![PathBuf::from(path)],
            next: 0,
            interval,
        })
    }

    pub fn folder(dir: &str, interval: Duration) -> Result<ImageSource, CaptureError> {
        let entries = std::fs::read_dir(dir).map_err(|e| CaptureError::Open {
            what: "folder",
            uri: dir.into(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_image_path(p))
            .collect();
        if files.is_empty() {
            return Err(CaptureError::NoImages { uri: dir.into() });
        }
        files.sort();
        Ok(ImageSource {
            uri: dir.into(),
            files,
            next: 0,
            interval,
        })
    }
}

impl Source for ImageSource {
    fn describe(&self) -> String {
        self.uri.clone()
    }

    fn read(&mut self) -> Result<Option<Mat>, CaptureError> {
        // A bad file in a folder is skipped with a warning, not the end of
        // the show.
        while let Some(path) = self.files.get(self.next) {
            self.next += 1;
            match read_image(path) {
                Ok(image) => return Ok(Some(image)),
                Err(err) => warn!(cause = %err, "skipping image"),
            }
        }
        Ok(None)
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn rewind(&mut self) -> bool {
        self.next = 0;
        true
    }
}
