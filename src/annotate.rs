//! Drawing faces onto frames, and JPEG encoding.

use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgcodecs;
use opencv::imgproc;
use opencv::prelude::*;

use crate::inference::Face;

/// Box colour (BGR): orange, visible on skin and on projectors.
const BOX_COLOUR: (f64, f64, f64) = (0.0, 155.0, 255.0);
/// Keypoint colour (BGR): green.
const KEYPOINT_COLOUR: (f64, f64, f64) = (0.0, 255.0, 0.0);
/// Face mesh colour (BGR): light cyan, distinct from keypoints and box.
const MESH_COLOUR: (f64, f64, f64) = (255.0, 230.0, 120.0);

fn colour(c: (f64, f64, f64)) -> Scalar {
    Scalar::new(c.0, c.1, c.2, 0.0)
}

/// A copy of `frame` with each face's box, score and keypoints drawn.
pub fn draw(frame: &Mat, faces: &[Face]) -> opencv::Result<Mat> {
    let mut out = frame.try_clone()?;
    // Line width grows with the frame so it stays visible on a projector.
    let thickness = (frame.cols().max(frame.rows()) / 400).max(1) + 1;
    for face in faces {
        let [x1, y1, x2, y2] = face.bbox;
        let rect = Rect::new(x1 as i32, y1 as i32, (x2 - x1) as i32, (y2 - y1) as i32);
        imgproc::rectangle(
            &mut out,
            rect,
            colour(BOX_COLOUR),
            thickness,
            imgproc::LINE_AA,
            0,
        )?;
        imgproc::put_text(
            &mut out,
            &format!("{:.2}", face.score),
            Point::new(rect.x, (rect.y - 4).max(10)),
            imgproc::FONT_HERSHEY_SIMPLEX,
            0.4 * f64::from(thickness),
            colour(BOX_COLOUR),
            1,
            imgproc::LINE_AA,
            false,
        )?;
        // The mesh as dots: 468 of them outline the face well enough, and
        // dots cost a fraction of the triangles.
        for p in &face.mesh {
            imgproc::circle(
                &mut out,
                Point::new(p[0].round() as i32, p[1].round() as i32),
                thickness / 2,
                colour(MESH_COLOUR),
                -1,
                imgproc::LINE_8,
                0,
            )?;
        }
        for [x, y] in face.keypoints {
            imgproc::circle(
                &mut out,
                Point::new(x.round() as i32, y.round() as i32),
                thickness + 1,
                colour(KEYPOINT_COLOUR),
                -1,
                imgproc::LINE_AA,
                0,
            )?;
        }
    }
    Ok(out)
}

/// Encodes an 8-bit BGR frame as JPEG.
pub fn jpeg(frame: &Mat, quality: i32) -> opencv::Result<Vec<u8>> {
    let mut buf = Vector::<u8>::new();
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
    imgcodecs::imencode(".jpg", frame, &mut buf, &params)?;
    Ok(buf.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::CV_8UC3;

    #[test]
    fn draws_box_and_keypoints_and_leaves_input_alone() {
        let frame = Mat::new_rows_cols_with_default(100, 100, CV_8UC3, Scalar::all(0.0)).unwrap();
        let face = Face {
            bbox: [20.0, 20.0, 80.0, 80.0],
            score: 0.9,
            keypoints: [
                [40.0, 40.0],
                [60.0, 40.0],
                [50.0, 50.0],
                [40.0, 65.0],
                [60.0, 65.0],
            ],
            mesh: Vec::new(),
        };
        let out = draw(&frame, &[face]).unwrap();
        assert_eq!(
            opencv::core::count_non_zero(&frame.reshape(1, 0).unwrap()).unwrap(),
            0
        );
        // The nose keypoint is green; the box edge is orange.
        assert_eq!(
            *out.at_2d::<opencv::core::Vec3b>(50, 50).unwrap(),
            opencv::core::Vec3b::from([0, 255, 0])
        );
        assert_eq!(out.at_2d::<opencv::core::Vec3b>(50, 20).unwrap()[2], 255);
        let bytes = jpeg(&out, 80).unwrap();
        assert_eq!(&bytes[..2], &[0xff, 0xd8]);
    }

    #[test]
    fn draws_each_mesh_point() {
        let frame = Mat::new_rows_cols_with_default(100, 100, CV_8UC3, Scalar::all(0.0)).unwrap();
        let face = Face {
            bbox: [20.0, 20.0, 80.0, 80.0],
            score: 0.9,
            keypoints: [[40.0, 40.0]; 5],
            mesh: vec![[30.0, 70.0, 0.0], [70.0, 30.0, -5.0]],
        };
        let out = draw(&frame, &[face]).unwrap();
        let cyan = opencv::core::Vec3b::from([255, 230, 120]);
        assert_eq!(*out.at_2d::<opencv::core::Vec3b>(70, 30).unwrap(), cyan);
        assert_eq!(*out.at_2d::<opencv::core::Vec3b>(30, 70).unwrap(), cyan);
        assert_eq!(
            *out.at_2d::<opencv::core::Vec3b>(50, 50).unwrap(),
            opencv::core::Vec3b::from([0, 0, 0])
        );
    }
}
