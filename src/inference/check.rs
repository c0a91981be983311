//! `kao models check`: does an ONNX file fit what its manifest says?
//!
//! Before a fine-tuned model is deployed, this opens it with ONNX Runtime
//! and compares its tensors with the manifest entry it would be loaded by:
//! checksum, input name, element type, layout and size, output names, and
//! what the family's decoder needs of the outputs. Every mismatch is
//! listed, each saying what the manifest expects and what the file has.

use std::path::Path;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use super::blazeface::{anchors, DetectorDecoder};
use super::facemesh::LandmarkDecoder;
use super::runtime::{self, RuntimeError};
use super::DetectError;
use crate::config::RuntimeConfig;
use crate::models::{sha256_hex, Manifest};

/// One thing checked, and whether the file fits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub fits: bool,
    pub what: String,
}

/// The role of a manifest that `file` is for: `role` if given, else the
/// one whose `file` has the same name.
pub fn role_for(manifest: &Manifest, file: &Path, role: Option<&str>) -> Result<String, String> {
    if let Some(r) = role {
        return if manifest.models.contains_key(r) {
            Ok(r.to_owned())
        } else {
            Err(format!(
                "manifest {} has no role {r:?} (it has: {})",
                manifest.path.display(),
                role_names(manifest)
            ))
        };
    }
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    manifest
        .models
        .iter()
        .find(|(_, m)| Path::new(&m.file).file_name().and_then(|n| n.to_str()) == Some(name))
        .map(|(r, _)| r.clone())
        .ok_or_else(|| {
            format!(
                "no role of manifest {} names a file called {name:?}; say which with --role ({})",
                manifest.path.display(),
                role_names(manifest)
            )
        })
}

/// The roles a manifest fills, for messages.
fn role_names(manifest: &Manifest) -> String {
    manifest
        .models
        .keys()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `file` against the manifest entry of `role`.
pub fn check(
    manifest: &Manifest,
    role: &str,
    file: &Path,
    runtime_config: &RuntimeConfig,
) -> Result<Vec<Finding>, DetectError> {
    let spec = manifest.role(role);
    let mut out = Vec::new();
    let mut note = |fits: bool, what: String| out.push(Finding { fits, what });

    let bytes = std::fs::read(file).map_err(|source| {
        DetectError::Model(crate::models::ModelError::Read {
            path: file.to_owned(),
            source,
        })
    })?;
    let sha = sha256_hex(&bytes);
    note(
        sha == spec.sha256.to_ascii_lowercase(),
        if sha == spec.sha256.to_ascii_lowercase() {
            format!("sha256 {sha} as the manifest says")
        } else {
            format!(
                "sha256 is {sha}, the manifest says {}; put the new value in [models.{role}] sha256 \
                 if this is the model you mean",
                spec.sha256
            )
        },
    );

    let library = runtime::resolve_library(&runtime_config.ort_library)?;
    let env = runtime::environment(&library)?;
    let session = Session::builder(env)
        .and_then(|mut b| b.commit_from_memory(&bytes))
        .map_err(|source| RuntimeError::Ort {
            what: format!("opening {} (is it an ONNX model?)", file.display()),
            source,
        })?;

    // The input: name, element type, layout and size.
    let inputs: Vec<(String, ValueType)> = session
        .inputs()
        .iter()
        .map(|i| (i.name().to_owned(), i.dtype().clone()))
        .collect();
    match inputs.iter().find(|(n, _)| *n == spec.input) {
        None => note(
            false,
            format!(
                "input {:?} is not in the model; its inputs are {:?}",
                spec.input,
                inputs.iter().map(|(n, _)| n).collect::<Vec<_>>()
            ),
        ),
        Some((name, ty)) => {
            note(true, format!("input {name:?} is there"));
            check_input(manifest, role, ty, &mut note);
        }
    }

    // The outputs the manifest names, and what the family needs of them.
    let outputs: Vec<(String, ValueType)> = session
        .outputs()
        .iter()
        .map(|o| (o.name().to_owned(), o.dtype().clone()))
        .collect();
    for (meaning, name) in &spec.outputs {
        match outputs.iter().find(|(n, _)| n == name) {
            None => note(
                false,
                format!(
                    "output {meaning} = {name:?} is not in the model; its outputs are {:?}",
                    outputs.iter().map(|(n, _)| n).collect::<Vec<_>>()
                ),
            ),
            Some((_, ty)) => {
                let shape = ty.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
                note(
                    true,
                    format!("output {meaning} = {name:?} is there, shape {shape:?}"),
                );
                check_output(manifest, role, meaning, &shape, &mut note);
            }
        }
    }
    Ok(out)
}

/// Element type, rank, channels and size of the input tensor.
fn check_input(
    manifest: &Manifest,
    role: &str,
    ty: &ValueType,
    note: &mut impl FnMut(bool, String),
) {
    let pixels = manifest.pixels(role);
    if ty.tensor_type() != Some(TensorElementType::Float32) {
        note(false, format!("input is {ty:?}; kao feeds 32-bit floats"));
        return;
    }
    let shape = ty.tensor_shape().map(|s| s.to_vec()).unwrap_or_default();
    if shape.len() != 4 {
        note(
            false,
            format!("input has shape {shape:?}; kao feeds 4-D images (N, C, H, W or N, H, W, C)"),
        );
        return;
    }
    let size = manifest.role(role).size;
    let layout = pixels.layout.to_ascii_uppercase();
    // (axis, expected) pairs; -1 in the file is a dynamic axis, which fits.
    let want: Vec<(usize, &str, Option<i64>)> = match (layout.as_str(), size) {
        ("NCHW", Some([w, h])) => vec![
            (1, "channels", Some(3)),
            (2, "height", Some(h.into())),
            (3, "width", Some(w.into())),
        ],
        ("NHWC", Some([w, h])) => vec![
            (1, "height", Some(h.into())),
            (2, "width", Some(w.into())),
            (3, "channels", Some(3)),
        ],
        ("NCHW", None) => vec![(1, "channels", Some(3))],
        ("NHWC", None) | ("NWHC", None) => vec![(3, "channels", Some(3))],
        (other, _) => {
            note(
                false,
                format!("layout {other:?} in the manifest is not NCHW or NHWC"),
            );
            return;
        }
    };
    for (axis, what, expected) in want {
        let Some(e) = expected else { continue };
        let got = shape[axis];
        if got == e || got < 0 {
            note(
                true,
                format!("input {what} {e} ({layout} axis {axis}) fits"),
            );
        } else {
            note(
                false,
                format!("input {what} is {got} ({layout} axis {axis} of {shape:?}), the manifest says {e}"),
            );
        }
    }
}

/// What a family's decoder needs of one output.
fn check_output(
    manifest: &Manifest,
    role: &str,
    meaning: &str,
    shape: &[i64],
    note: &mut impl FnMut(bool, String),
) {
    let values: Option<i64> = shape
        .iter()
        .try_fold(1i64, |acc, &d| (d >= 0).then_some(acc * d.max(1)));
    match (manifest.family.as_str(), role, meaning) {
        ("blazeface", "detector", "boxes" | "scores") => {
            let d: DetectorDecoder = match manifest.decoder(role) {
                Ok(d) => d,
                Err(e) => return note(false, e.to_string()),
            };
            let size = manifest.role(role).size.unwrap_or([0, 0]);
            let n = anchors(&d.anchors, size[0] as usize, size[1] as usize).len() as i64;
            let rows = shape.get(shape.len().wrapping_sub(2)).copied();
            if rows == Some(n) || rows.is_some_and(|r| r < 0) {
                note(
                    true,
                    format!("output {meaning} has one row per anchor ({n})"),
                );
            } else {
                note(
                    false,
                    format!("output {meaning} has shape {shape:?}, but the decoder's anchors give {n} rows"),
                );
            }
        }
        ("blazeface", "landmarks", "points") => {
            let d: LandmarkDecoder = match manifest.decoder(role) {
                Ok(d) => d,
                Err(e) => return note(false, e.to_string()),
            };
            let need = (d.points * d.dims) as i64;
            match values {
                Some(v) if v >= need => note(true, format!("output points holds {v} values (decoder needs {need})")),
                Some(v) => note(
                    false,
                    format!(
                        "output points holds {v} values, the decoder needs points × dims = {} × {} = {need}",
                        d.points, d.dims
                    ),
                ),
                None => note(true, format!("output points has dynamic shape {shape:?}; checked at run time")),
            }
        }
        _ => {}
    }
}
