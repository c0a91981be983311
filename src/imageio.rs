//! Reading images from files and bringing any pixel format to the 8-bit
//! BGR frames the pipeline works on.

use std::path::{Path, PathBuf};

use opencv::core::{Mat, Vector, CV_16U, CV_8U};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read image {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("image {path} is empty (0 bytes)")]
    Empty { path: PathBuf },
    #[error("image {path} is truncated: its {format} data ends early")]
    Truncated { path: PathBuf, format: &'static str },
    #[error("{path} is not an image OpenCV can decode (JPEG, PNG, BMP, TIFF, WebP, …)")]
    NotAnImage { path: PathBuf },
    #[error("image {path}: unsupported pixel format (depth {depth}, {channels} channels)")]
    Unsupported {
        path: PathBuf,
        depth: i32,
        channels: i32,
    },
    #[error("image {path}: {source}")]
    OpenCv {
        path: PathBuf,
        source: opencv::Error,
    },
}

/// Reads and decodes an image file into an 8-bit BGR frame. Empty,
/// truncated and undecodable files are errors, not partial images.
pub fn read_image(path: &Path) -> Result<Mat, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode_image(&bytes, path)
}

/// Decodes image bytes; `path` is only used in messages.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<Mat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty {
            path: path.to_owned(),
        });
    }
    // OpenCV decodes a cut-off JPEG or PNG into a partly grey image with
    // only a warning on stderr; check the end markers ourselves.
    if let Some(format) = truncated_format(bytes) {
        return Err(ImageError::Truncated {
            path: path.to_owned(),
            format,
        });
    }
    let cv = |source| ImageError::OpenCv {
        path: path.to_owned(),
        source,
    };
    let buf = Vector::<u8>::from_slice(bytes);
    let decoded = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_UNCHANGED).map_err(cv)?;
    if decoded.empty() || decoded.cols() < 1 || decoded.rows() < 1 {
        return Err(ImageError::NotAnImage {
            path: path.to_owned(),
        });
    }
    to_bgr8(&decoded).map_err(|e| match e {
        ToBgrError::Unsupported { depth, channels } => ImageError::Unsupported {
            path: path.to_owned(),
            depth,
            channels,
        },
        ToBgrError::OpenCv(source) => cv(source),
    })
}

/// For JPEG and PNG data, the format name when the data stops before its
/// end marker.
fn truncated_format(bytes: &[u8]) -> Option<&'static str> {
    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
    const PNG_END: &[u8] = b"IEND\xae\x42\x60\x82";
    if bytes.starts_with(&[0xff, 0xd8]) {
        // Some writers pad after the end-of-image marker; ignore padding.
        let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if !bytes[..end].ends_with(&[0xff, 0xd9]) {
            return Some("JPEG");
        }
    } else if bytes.starts_with(PNG_MAGIC)
        && !bytes
            .windows(PNG_END.len())
            .rev()
            .take(64)
            .any(|w| w == PNG_END)
    {
        return Some("PNG");
    }
    None
}

#[derive(Debug, thiserror::Error)]
pub enum ToBgrError {
    #[error("unsupported pixel format (depth {depth}, {channels} channels)")]
    Unsupported { depth: i32, channels: i32 },
    #[error(transparent)]
    OpenCv(#[from] opencv::Error),
}

/// Converts grey, BGRA and 16-bit images to 8-bit BGR; 8-bit BGR is copied
/// as is.
pub fn to_bgr8(image: &Mat) -> Result<Mat, ToBgrError> {
    let depth = image.depth();
    let channels = image.channels();
    let eight_bit = match depth {
        CV_8U => image.try_clone()?,
        CV_16U => {
            let mut m = Mat::default();
            image.convert_to(&mut m, CV_8U, 1.0 / 257.0, 0.0)?;
            m
        }
        _ => return Err(ToBgrError::Unsupported { depth, channels }),
    };
    let code = match channels {
        3 => return Ok(eight_bit),
        1 => imgproc::COLOR_GRAY2BGR,
        4 => imgproc::COLOR_BGRA2BGR,
        _ => return Err(ToBgrError::Unsupported { depth, channels }),
    };
    let mut out = Mat::default();
    imgproc::cvt_color_def(&eight_bit, &mut out, code)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_16UC1, CV_8UC4};

    fn encode(ext: &str, m: &Mat) -> Vec<u8> {
        let mut buf = Vector::<u8>::new();
        imgcodecs::imencode(ext, m, &mut buf, &Vector::new()).unwrap();
        buf.to_vec()
    }

    fn sample() -> Mat {
        Mat::new_rows_cols_with_default(
            8,
            8,
            opencv::core::CV_8UC3,
            Scalar::new(10.0, 20.0, 30.0, 0.0),
        )
        .unwrap()
    }

    #[test]
    fn jpeg_and_png_round_trip() {
        for ext in [".jpg", ".png"] {
            let m = decode_image(&encode(ext, &sample()), Path::new("x")).unwrap();
            assert_eq!((m.cols(), m.rows(), m.typ()), (8, 8, opencv::core::CV_8UC3));
        }
    }

    #[test]
    fn empty_truncated_and_garbage_are_errors() {
        let p = Path::new("bad.jpg");
        assert!(matches!(
            decode_image(&[], p),
            Err(ImageError::Empty { .. })
        ));
        let jpg = encode(".jpg", &sample());
        let cut = &jpg[..jpg.len() / 2];
        assert!(matches!(
            decode_image(cut, p),
            Err(ImageError::Truncated { format: "JPEG", .. })
        ));
        let png = encode(".png", &sample());
        let cut = &png[..png.len() - 10];
        assert!(matches!(
            decode_image(cut, p),
            Err(ImageError::Truncated { format: "PNG", .. })
        ));
        assert!(matches!(
            decode_image(b"hello, this is text", p),
            Err(ImageError::NotAnImage { .. })
        ));
    }

    #[test]
    fn grey_bgra_and_16_bit_become_bgr8() {
        let grey = Mat::new_rows_cols_with_default(4, 5, CV_16UC1, Scalar::all(65535.0)).unwrap();
        let m = to_bgr8(&grey).unwrap();
        assert_eq!((m.cols(), m.rows(), m.typ()), (5, 4, opencv::core::CV_8UC3));
        assert_eq!(m.at_2d::<opencv::core::Vec3b>(0, 0).unwrap()[2], 255);
        let bgra = Mat::new_rows_cols_with_default(2, 2, CV_8UC4, Scalar::new(1.0, 2.0, 3.0, 4.0))
            .unwrap();
        let m = to_bgr8(&bgra).unwrap();
        assert_eq!(
            *m.at_2d::<opencv::core::Vec3b>(1, 1).unwrap(),
            opencv::core::Vec3b::from([1, 2, 3])
        );
        let float = Mat::new_rows_cols_with_default(2, 2, opencv::core::CV_32FC3, Scalar::all(0.5))
            .unwrap();
        assert!(matches!(
            to_bgr8(&float),
            Err(ToBgrError::Unsupported { .. })
        ));
    }
}
