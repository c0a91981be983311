//! One ONNX model of a manifest role, with its tensors named by meaning and
//! its pixel format: what the families that run single fixed-size models
//! share (the face detector and keypoint models of `blazeface`).

use ndarray::Array4;
use opencv::core::Mat;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::runtime::{self, RuntimeError};
use super::DetectError;
use crate::config::RuntimeConfig;
use crate::models::Manifest;

/// Intra-op threads of these models when the configuration leaves it to kao.
const SMALL_MODEL_THREADS: usize = 1;

/// How an 8-bit BGR crop becomes the model's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixels {
    pub width: usize,
    pub height: usize,
    /// `NCHW` when true, `NHWC` otherwise.
    pub planar: bool,
    /// Channels in RGB order (OpenCV's frames are BGR).
    pub rgb: bool,
    pub mean: f32,
    pub scale: f32,
}

impl Pixels {
    /// The pixel format of one role of a manifest, which must give `size`.
    pub fn of(manifest: &Manifest, role: &str) -> Result<Pixels, DetectError> {
        let spec = manifest.pixels(role);
        let problem = |problem: String| DetectError::Shape {
            model: role.to_owned(),
            problem: format!("manifest {}: {problem}", manifest.path.display()),
        };
        let [width, height] = manifest
            .role(role)
            .size
            .ok_or_else(|| problem(format!("[models.{role}] needs `size = [width, height]`")))?;
        if width == 0 || height == 0 || width > 4096 || height > 4096 {
            return Err(problem(format!(
                "[models.{role}] size {width}×{height} is outside 1..=4096"
            )));
        }
        let planar = match spec.layout.to_ascii_uppercase().as_str() {
            "NCHW" => true,
            "NHWC" => false,
            other => {
                return Err(problem(format!(
                    "layout {other:?} is not one this family reads (NCHW or NHWC)"
                )))
            }
        };
        let rgb = match spec.colour.to_ascii_lowercase().as_str() {
            "rgb" => true,
            "bgr" => false,
            other => return Err(problem(format!("colour {other:?} is not rgb or bgr"))),
        };
        Ok(Pixels {
            width: width as usize,
            height: height as usize,
            planar,
            rgb,
            mean: spec.mean,
            scale: spec.scale,
        })
    }

    /// The input value a pixel of 0 (the black border outside a frame) gets.
    pub fn black(&self) -> f32 {
        -self.mean * self.scale
    }

    /// A continuous `width`×`height` BGR crop as a `1×…` tensor.
    pub fn tensor(&self, bgr: &Mat) -> Result<Array4<f32>, DetectError> {
        let (w, h) = (self.width, self.height);
        if bgr.cols() as usize != w || bgr.rows() as usize != h || !bgr.is_continuous() {
            return Err(DetectError::BadFrame(format!(
                "crop of {}x{} where the model takes {w}x{h}",
                bgr.cols(),
                bgr.rows()
            )));
        }
        let data = bgr.data_bytes()?;
        let order: [usize; 3] = if self.rgb { [2, 1, 0] } else { [0, 1, 2] };
        let shape = if self.planar {
            (1, 3, h, w)
        } else {
            (1, h, w, 3)
        };
        let mut out = Array4::<f32>::zeros(shape);
        let dst = out.as_slice_mut().expect("fresh array is contiguous");
        let plane = w * h;
        // One pass per layout with the channel order fixed outside the
        // loop: this runs on every crop, every frame.
        let norm = |v: u8| (f32::from(v) - self.mean) * self.scale;
        if self.planar {
            let (r, rest) = dst.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (i, px) in data.chunks_exact(3).enumerate() {
                r[i] = norm(px[order[0]]);
                g[i] = norm(px[order[1]]);
                b[i] = norm(px[order[2]]);
            }
        } else {
            for (d, px) in dst.chunks_exact_mut(3).zip(data.chunks_exact(3)) {
                d[0] = norm(px[order[0]]);
                d[1] = norm(px[order[1]]);
                d[2] = norm(px[order[2]]);
            }
        }
        Ok(out)
    }
}

/// One output of a run: its shape and its values.
pub type Output = (Vec<i64>, Vec<f32>);

/// A model's session and the names of its tensors.
pub struct Net {
    pub role: &'static str,
    session: Session,
    input: String,
    /// Output tensor names, in the order `run` returns them.
    outputs: Vec<String>,
    pub provider: &'static str,
}

impl Net {
    /// Builds the session of one role. `required` outputs must be named in
    /// the manifest; `optional` ones may be missing (their slot in
    /// [`Net::run`]'s result is then `None`).
    pub fn load(
        manifest: &Manifest,
        role: &'static str,
        runtime_config: &RuntimeConfig,
        required: &[&str],
        optional: &[&str],
    ) -> Result<(Net, Vec<bool>), DetectError> {
        let library = runtime::resolve_library(&runtime_config.ort_library)?;
        let env = runtime::environment(&library)?;
        let spec = manifest.role(role);
        let bytes = manifest.read_verified(role)?;
        // These models take a few milliseconds: splitting one run over
        // threads costs more than it gains (on two cores, busy with other
        // work, one thread ran the face mesh 3-4× faster than two), and it
        // leaves the other core to capture and decoding.
        let mut session_config = runtime_config.clone();
        if session_config.intra_threads == 0 {
            session_config.intra_threads = SMALL_MODEL_THREADS;
        }
        let (session, provider) = runtime::build_session(env, role, &bytes, &session_config)?;
        let problem = |problem: String| DetectError::Shape {
            model: role.to_owned(),
            problem: format!("manifest {}: {problem}", manifest.path.display()),
        };
        let model_inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if !model_inputs.contains(&spec.input.as_str()) {
            return Err(problem(format!(
                "names input {:?}, but the model's inputs are {model_inputs:?}",
                spec.input
            )));
        }
        let model_outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        let mut outputs = Vec::new();
        let mut present = Vec::new();
        for (meaning, needed) in required
            .iter()
            .map(|m| (m, true))
            .chain(optional.iter().map(|m| (m, false)))
        {
            match spec.outputs.get(*meaning) {
                Some(name) if model_outputs.contains(&name.as_str()) => {
                    outputs.push(name.clone());
                    present.push(true);
                }
                Some(name) => {
                    return Err(problem(format!(
                        "names output {meaning} = {name:?}, but the model's outputs are {model_outputs:?}"
                    )))
                }
                None if needed => {
                    return Err(problem(format!(
                        "[models.{role}] outputs has no `{meaning}` (the model's outputs are {model_outputs:?})"
                    )))
                }
                None => present.push(false),
            }
        }
        let net = Net {
            role,
            session,
            input: spec.input.clone(),
            outputs,
            provider,
        };
        Ok((net, present))
    }

    /// Runs the model; returns each named output's shape and values.
    pub fn run(&mut self, input: &Array4<f32>) -> Result<Vec<Output>, DetectError> {
        let role = self.role;
        let err = move |source: ort::Error| {
            DetectError::Runtime(RuntimeError::Ort {
                what: format!("running {role}"),
                source,
            })
        };
        let tensor = TensorRef::from_array_view(input).map_err(err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(err)?;
        self.outputs
            .iter()
            .map(|name| {
                let (shape, data) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(err)?;
                Ok((shape.to_vec(), data.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::{Scalar, CV_8UC3};

    #[test]
    fn planar_rgb_tensor_swaps_channels_and_normalises() {
        let p = Pixels {
            width: 2,
            height: 1,
            planar: true,
            rgb: true,
            mean: 127.5,
            scale: 1.0 / 127.5,
        };
        // BGR (0, 128, 255) in both pixels.
        let m = Mat::new_rows_cols_with_default(1, 2, CV_8UC3, Scalar::new(0.0, 128.0, 255.0, 0.0))
            .unwrap();
        let t = p.tensor(&m).unwrap();
        assert_eq!(t.shape(), &[1, 3, 1, 2]);
        assert_eq!(t[[0, 0, 0, 1]], 1.0); // R plane first
        assert_eq!(t[[0, 2, 0, 0]], -1.0); // B plane last
        assert!((t[[0, 1, 0, 0]] - 0.5 / 127.5).abs() < 1e-7);
        assert_eq!(p.black(), -1.0);
    }

    #[test]
    fn crop_of_the_wrong_size_is_an_error_not_a_panic() {
        let p = Pixels {
            width: 4,
            height: 4,
            planar: false,
            rgb: false,
            mean: 0.0,
            scale: 1.0,
        };
        let m = Mat::new_rows_cols_with_default(3, 4, CV_8UC3, Scalar::all(0.0)).unwrap();
        assert!(p.tensor(&m).is_err());
    }
}
