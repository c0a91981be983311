//! Webcams through `nokhwa` (V4L2 on Linux).

use std::time::Duration;

use opencv::core::Mat;

use super::{CaptureError, Source};

#[cfg(feature = "camera")]
pub use real::CameraSource;

#[cfg(feature = "camera")]
mod real {
    use super::*;
    use nokhwa::pixel_format::RgbFormat;
    use nokhwa::utils::{
        ApiBackend, CameraIndex, RequestedFormat, RequestedFormatType, Resolution,
    };
    use nokhwa::Camera;
    use opencv::core::CV_8UC3;
    use opencv::imgproc;
    use opencv::prelude::*;

    pub struct CameraSource {
        index: u32,
        camera: Camera,
    }

    /// The cameras the system reports, for error messages.
    fn cameras_found() -> String {
        match nokhwa::query(ApiBackend::Auto) {
            Ok(list) if list.is_empty() => "none".into(),
            Ok(list) => list
                .iter()
                .map(|c| format!("camera:{} ({})", c.index(), c.human_name()))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("none (listing cameras failed: {e})"),
        }
    }

    impl CameraSource {
        pub fn open(index: u32, width: u32, height: u32) -> Result<CameraSource, CaptureError> {
            let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::HighestResolution(
                Resolution::new(width, height),
            ));
            let fail = |e: String| {
                CaptureError::Camera(format!(
                    "cannot open camera:{index} (/dev/video{index}): {e}; cameras found: {}. \
                     Check that it is plugged in and that this user is in the `video` group",
                    cameras_found()
                ))
            };
            let mut camera =
                Camera::new(CameraIndex::Index(index), format).map_err(|e| fail(e.to_string()))?;
            camera.open_stream().map_err(|e| fail(e.to_string()))?;
            Ok(CameraSource { index, camera })
        }
    }

    impl Source for CameraSource {
        fn describe(&self) -> String {
            format!("camera:{}", self.index)
        }

        fn read(&mut self) -> Result<Option<Mat>, CaptureError> {
            let read_err = |e: String| CaptureError::Read {
                uri: format!("camera:{}", self.index),
                reason: e,
            };
            let buffer = self.camera.frame().map_err(|e| read_err(e.to_string()))?;
            let rgb = buffer
                .decode_image::<RgbFormat>()
                .map_err(|e| read_err(e.to_string()))?;
            let (w, h) = (rgb.width() as i32, rgb.height() as i32);
            let data = rgb.into_raw();
            let wrapped = Mat::new_rows_cols_with_data(h, w * 3, &data)
                .and_then(|m| m.reshape(3, h).map(|m| m.try_clone()))
                .and_then(|m| m)
                .map_err(|e| read_err(e.to_string()))?;
            debug_assert_eq!(wrapped.typ(), CV_8UC3);
            let mut bgr = Mat::default();
            imgproc::cvt_color_def(&wrapped, &mut bgr, imgproc::COLOR_RGB2BGR)
                .map_err(|e| read_err(e.to_string()))?;
            Ok(Some(bgr))
        }

        fn interval(&self) -> Option<Duration> {
            None
        }

        fn rewind(&mut self) -> bool {
            false
        }
    }
}

/// Stand-in when kao is built without the `camera` feature.
#[cfg(not(feature = "camera"))]
pub struct CameraSource;

#[cfg(not(feature = "camera"))]
impl CameraSource {
    pub fn open(index: u32, _width: u32, _height: u32) -> Result<CameraSource, CaptureError> {
        Err(CaptureError::Camera(format!(
            "camera:{index} asked for, but this kao was built without the `camera` feature; rebuild with `cargo build --release --features camera`"
        )))
    }
}

#[cfg(not(feature = "camera"))]
impl Source for CameraSource {
    fn describe(&self) -> String {
        "camera".into()
    }
    fn read(&mut self) -> Result<Option<Mat>, CaptureError> {
        Ok(None)
    }
    fn interval(&self) -> Option<Duration> {
        None
    }
    fn rewind(&mut self) -> bool {
        false
    }
}
