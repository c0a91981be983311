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
    /// A folder is listed again at each rewind, so files added, removed or
    /// put back while kao runs are seen.
    is_folder: bool,
    /// Whether this pass over the files has produced a frame; a pass with
    /// none means the images are gone or all unreadable.
    read_one: bool,
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
            is_folder: false,
            read_one: false,
        })
    }

    pub fn folder(dir: &str, interval: Duration) -> Result<ImageSource, CaptureError> {
        Ok(ImageSource {
            uri: dir.into(),
            files: list_images(dir)?,
            next: 0,
            interval,
            is_folder: true,
            read_one: false,
        })
    }
}

/// The image files in a folder, sorted by name.
fn list_images(dir: &str) -> Result<Vec<PathBuf>, CaptureError> {
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
    Ok(files)
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
                Ok(image) => {
                    self.read_one = true;
                    return Ok(Some(image));
                }
                Err(err) => warn!(cause = %err, "skipping image"),
            }
        }
        if !self.read_one {
            return Err(CaptureError::Read {
                uri: self.uri.clone(),
                reason: "no readable image left (deleted, moved or unreadable)".into(),
            });
        }
        Ok(None)
    }

    fn interval(&self) -> Option<Duration> {
        Some(self.interval)
    }

    fn rewind(&mut self) -> bool {
        if self.is_folder {
            match list_images(&self.uri) {
                Ok(files) => self.files = files,
                Err(err) => {
                    warn!(cause = %err, "cannot list the folder again");
                    return false;
                }
            }
        }
        self.next = 0;
        self.read_one = false;
        true
    }
}
