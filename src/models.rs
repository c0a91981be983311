//! Model manifests: which files make a model, how to verify them, and how
//! their tensors are laid out.
//!
//! A model *family* (its decoding) is code; a model is data. A fine-tuned
//! model of a known family loads by writing a manifest, without code changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model manifest {path}: {source}")]
    ReadManifest {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model manifest {path}: {message}")]
    ParseManifest { path: PathBuf, message: String },
    #[error(
        "model manifest {path}: family {family:?} is not one kao knows (known: {})",
        known_families()
    )]
    UnknownFamily { path: PathBuf, family: String },
    #[error("model manifest {path}: the {family} family needs a [models.{role}] entry")]
    MissingRole {
        path: PathBuf,
        family: String,
        role: &'static str,
    },
    #[error("model file {path} (sha256 {expected}) is missing; run `{fetch}` to fetch it")]
    Missing {
        path: PathBuf,
        expected: String,
        fetch: String,
    },
    #[error("model file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model manifest {path}: [models.{role}] {problem}")]
    Decoder {
        path: PathBuf,
        role: String,
        problem: String,
    },
    #[error(
        "model file {path} has sha256 {actual}, but its manifest expects {expected}; \
         run `{fetch}` to fetch the right file, or update the manifest if you replaced the model on purpose"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
        fetch: String,
    },
}

/// How pixels become the model's input tensor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Axis order, e.g. `NWHC` (MTCNN's transposed images) or `NCHW`.
    pub layout: String,
    /// `rgb` or `bgr`.
    pub colour: String,
    pub mean: f32,
    pub scale: f32,
}

/// One ONNX file of a model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// File name, relative to the manifest's folder.
    pub file: String,
    pub sha256: String,
    /// Name of the input tensor.
    pub input: String,
    /// Output tensor names by meaning (`regression`, `score`, `keypoints`).
    pub outputs: BTreeMap<String, String>,
    /// Input `[width, height]`, for families whose models take one fixed size.
    #[serde(default)]
    pub size: Option<[u32; 2]>,
    /// This model's pixel format, where it differs from the manifest's `[input]`.
    #[serde(default)]
    pub pixels: Option<InputSpec>,
    /// Decoding parameters; their keys belong to the family (docs/MODELS.md).
    #[serde(default)]
    pub decoder: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Decoder family, e.g. `mtcnn`.
    pub family: String,
    pub name: String,
    pub source: String,
    pub licence: String,
    /// Command that fetches the files, quoted in error messages.
    pub fetch: String,
    pub input: InputSpec,
    /// Files by role (`pnet`, `rnet`, `onet` for MTCNN).
    pub models: BTreeMap<String, ModelFile>,
    /// Folder the manifest was read from; file names resolve against it.
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub path: PathBuf,
}

/// The roles an MTCNN manifest must fill.
pub const MTCNN_ROLES: [&str; 3] = ["pnet", "rnet", "onet"];
/// The roles a BlazeFace manifest must fill: a face detector and a
/// keypoint model run on the face it found.
pub const BLAZEFACE_ROLES: [&str; 2] = ["detector", "landmarks"];

/// The families kao has decoders for, with the roles their manifests fill.
pub const FAMILIES: [(&str, &[&str]); 2] =
    [("mtcnn", &MTCNN_ROLES), ("blazeface", &BLAZEFACE_ROLES)];

fn known_families() -> String {
    FAMILIES.map(|(f, _)| f).join(", ")
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::ReadManifest {
            path: explain_relative(path),
            source,
        })?;
        let mut manifest: Manifest =
            toml::from_str(&text).map_err(|err| ModelError::ParseManifest {
                path: path.to_owned(),
                message: err.to_string().trim().replace('\n', " "),
            })?;
        manifest.path = path.to_owned();
        manifest.dir = path.parent().map(Path::to_owned).unwrap_or_default();
        let Some((_, roles)) = FAMILIES.iter().find(|(f, _)| *f == manifest.family) else {
            return Err(ModelError::UnknownFamily {
                path: path.to_owned(),
                family: manifest.family,
            });
        };
        for &role in *roles {
            if !manifest.models.contains_key(role) {
                return Err(ModelError::MissingRole {
                    path: path.to_owned(),
                    family: manifest.family.clone(),
                    role,
                });
            }
        }
        Ok(manifest)
    }

    /// The file of one role; `load` has checked that every role is present.
    pub fn role(&self, role: &str) -> &ModelFile {
        &self.models[role]
    }

    /// The pixel format of one role's model: its own, else the manifest's.
    pub fn pixels(&self, role: &str) -> &InputSpec {
        self.role(role).pixels.as_ref().unwrap_or(&self.input)
    }

    /// One role's decoding parameters as the family's own type, with an
    /// error naming the manifest, the role and the key that does not fit.
    pub fn decoder<T: serde::de::DeserializeOwned>(&self, role: &str) -> Result<T, ModelError> {
        toml::Value::Table(self.role(role).decoder.clone())
            .try_into()
            .map_err(|err: toml::de::Error| ModelError::Decoder {
                path: self.path.clone(),
                role: role.to_owned(),
                problem: format!("decoder: {}", err.to_string().trim().replace('\n', " ")),
            })
    }

    pub fn file_path(&self, role: &str) -> PathBuf {
        self.dir.join(&self.role(role).file)
    }

    /// Reads a model file and checks it against the manifest's checksum.
    pub fn read_verified(&self, role: &str) -> Result<Vec<u8>, ModelError> {
        let path = self.file_path(role);
        let expected = self.role(role).sha256.to_ascii_lowercase();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ModelError::Missing {
                    path,
                    expected,
                    fetch: self.fetch.clone(),
                })
            }
            Err(source) => return Err(ModelError::Read { path, source }),
        };
        let actual = sha256_hex(&bytes);
        if actual != expected {
            return Err(ModelError::Checksum {
                path,
                expected,
                actual,
                fetch: self.fetch.clone(),
            });
        }
        Ok(bytes)
    }
}

/// A relative path as the user wrote it, with the folder it was looked for
/// in: relative paths in a configuration are relative to the working
/// directory, which surprises when kao runs from elsewhere.
fn explain_relative(path: &Path) -> PathBuf {
    match std::env::current_dir() {
        Ok(cwd) if path.is_relative() => PathBuf::from(format!(
            "{} (relative to the working directory {}; give an absolute path to run from anywhere)",
            path.display(),
            cwd.display()
        )),
        _ => path.to_owned(),
    }
}

/// Lower-case hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Manifest {
        Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mtcnn/manifest.toml"))
            .unwrap()
    }

    #[test]
    fn shipped_manifest_names_all_three_networks() {
        let m = shipped();
        assert_eq!(m.family, "mtcnn");
        assert_eq!(m.licence, "MIT");
        assert_eq!(m.role("onet").outputs["keypoints"], "dense_6");
        assert_eq!(m.input.mean, 127.5);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn wrong_checksum_names_file_expected_and_fetch_command() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(shipped().path).unwrap();
        std::fs::write(dir.path().join("manifest.toml"), text).unwrap();
        std::fs::write(dir.path().join("pnet.onnx"), b"not a model").unwrap();
        let m = Manifest::load(&dir.path().join("manifest.toml")).unwrap();
        let err = m.read_verified("pnet").unwrap_err().to_string();
        assert!(err.contains("pnet.onnx"), "{err}");
        assert!(err.contains("07a69013"), "{err}");
        assert!(err.contains("scripts/fetch-assets.sh"), "{err}");
        let err = m.read_verified("rnet").unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        assert!(err.contains(&m.role("rnet").sha256), "{err}");
        assert!(err.contains("scripts/fetch-assets.sh"), "{err}");
    }

    #[test]
    fn unknown_family_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(shipped().path)
            .unwrap()
            .replace("family = \"mtcnn\"", "family = \"yolo\"");
        std::fs::write(dir.path().join("m.toml"), text).unwrap();
        let err = Manifest::load(&dir.path().join("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"yolo\""), "{err}");
    }
}
