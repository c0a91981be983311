//! The iris stage of the `blazeface` family (optional role `iris`):
//! MediaPipe's iris model on a crop around each eye, placed by two mesh
//! points (the eye's corners). The second eye's crop is mirrored, so the
//! model always sees an eye of the same side. Its iris points (centre, then
//! four on the rim) are appended to the face's mesh: 468 + 2 × 5 = 478
//! points, the layout of MediaPipe's refined face mesh.

use std::time::Instant;

use opencv::core::{self, Mat};
use serde::Deserialize;

use super::facemesh::{warp, Coords, Roi};
use super::net::{Net, Pixels};
use super::resample;
use super::{DetectError, StageTimings};
use crate::config::RuntimeConfig;
use crate::models::{Manifest, ModelError};

/// Decoding parameters of the iris model, from its manifest's `decoder`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IrisDecoder {
    /// Per eye, the two mesh points its crop is built on and levelled by
    /// (the corner nearer the image's left first). The second eye's crop
    /// is mirrored.
    pub eyes: [[usize; 2]; 2],
    /// The crop's side relative to the distance between the two points.
    pub roi_scale: f64,
    /// Points of the `iris` output (x, y, z each).
    pub points: usize,
    pub coords: Coords,
}

/// The iris model of a manifest's `iris` role.
pub struct Iris {
    pub net: Net,
    pixels: Pixels,
    decoder: IrisDecoder,
}

impl Iris {
    /// The iris stage, when the manifest has an `iris` role.
    pub fn load(
        manifest: &Manifest,
        runtime_config: &RuntimeConfig,
    ) -> Result<Option<Iris>, DetectError> {
        if !manifest.models.contains_key("iris") {
            return Ok(None);
        }
        let pixels = Pixels::of(manifest, "iris")?;
        let decoder: IrisDecoder = manifest.decoder("iris")?;
        if pixels.width != pixels.height {
            return Err(DetectError::Model(ModelError::Decoder {
                path: manifest.path.clone(),
                role: "iris".into(),
                problem: "the iris model's input must be square".into(),
            }));
        }
        let (net, _) = Net::load(manifest, "iris", runtime_config, &["iris"], &[])?;
        Ok(Some(Iris {
            net,
            pixels,
            decoder,
        }))
    }

    /// The highest mesh point index the stage reads.
    pub fn needs_points(&self) -> usize {
        self.decoder
            .eyes
            .iter()
            .flatten()
            .copied()
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Both eyes' iris points in source pixels, for a face whose mesh is
    /// `mesh`; empty when the mesh is too short.
    pub fn points(
        &mut self,
        bgr: &Mat,
        mesh: &[[f32; 3]],
        t: &mut StageTimings,
    ) -> Result<Vec<[f32; 3]>, DetectError> {
        if mesh.len() < self.needs_points() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for (eye, [a, b]) in self.decoder.eyes.into_iter().enumerate() {
            let start = Instant::now();
            let p = |i: usize| [f64::from(mesh[i][0]), f64::from(mesh[i][1])];
            let (pa, pb) = (p(a), p(b));
            let bbox = [
                pa[0].min(pb[0]),
                pa[1].min(pb[1]),
                pa[0].max(pb[0]),
                pa[1].max(pb[1]),
            ];
            let roi = Roi::around(bbox, self.decoder.roi_scale, Some((pa, pb)));
            // As the reference: the crop at the ROI's own (whole) pixel size,
            // then shrunk or grown with the antialiased filter.
            let side = (roi.width as usize).max(1);
            let crop = warp(bgr, &roi, side, side)?;
            let (mut input, _) = resample::letterbox(&crop, self.pixels.width)?;
            let mirrored = eye == 1;
            if mirrored {
                let mut flipped = Mat::default();
                core::flip(&input, &mut flipped, 1)?;
                input = flipped;
            }
            let tensor = self.pixels.tensor(&input)?;
            t.add("preprocess", ms_since(start));

            let start = Instant::now();
            let outputs = self.net.run(&tensor)?;
            t.add("iris", ms_since(start));

            let (shape, raw) = &outputs[0];
            let n = self.decoder.points;
            if raw.len() < n * 3 {
                return Err(DetectError::Shape {
                    model: "iris".into(),
                    problem: format!(
                        "output `iris` has shape {shape:?}, the decoder needs {n} points × 3 values"
                    ),
                });
            }
            let size = self.pixels.width as f64;
            let unit = |v: f32| match self.decoder.coords {
                Coords::Pixels => f64::from(v) / size,
                Coords::Unit => f64::from(v),
                Coords::Signed => (f64::from(v) + 1.0) / 2.0,
            };
            for q in raw.chunks_exact(3).take(n) {
                let u = if mirrored {
                    1.0 - unit(q[0])
                } else {
                    unit(q[0])
                };
                let [x, y] = roi.to_source(u, unit(q[1]));
                let centre = if self.decoder.coords == Coords::Signed {
                    0.5
                } else {
                    0.0
                };
                let z = (unit(q[2]) - centre) * roi.width;
                out.push([x as f32, y as f32, z as f32]);
            }
        }
        Ok(out)
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
