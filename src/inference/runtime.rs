//! ONNX Runtime: finding the shared library, one process-wide environment,
//! and sessions with execution providers chosen by config.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use tracing::{info, warn};

use crate::config::RuntimeConfig;

/// Providers kao knows how to ask for, in no particular order.
pub const KNOWN_PROVIDERS: [&str; 3] = ["tensorrt", "cuda", "cpu"];

/// Graph optimisation levels, from most to least.
pub const OPTIMIZATION_LEVELS: [&str; 4] = ["all", "extended", "basic", "disable"];

/// Where `scripts/fetch-assets.sh` unpacks the library, relative to the
/// working directory.
pub const FETCHED_LIBRARY: &str = ".cache/onnxruntime/libonnxruntime.so.1.32.0";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found (looked at: {looked}); run `scripts/fetch-assets.sh` \
         to unpack it from the onnxruntime wheel, or point `runtime.ort_library` or \
         ORT_DYLIB_PATH at a libonnxruntime.so"
    )]
    NotFound { looked: String },
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("ONNX Runtime was already loaded from {loaded}; cannot switch to {wanted} without a restart")]
    AlreadyLoaded { loaded: PathBuf, wanted: PathBuf },
    #[error("ONNX Runtime: {what}: {source}")]
    Ort {
        what: String,
        #[source]
        source: ort::Error,
    },
}

/// Picks the library file: the configured path, else `ORT_DYLIB_PATH`, else
/// the fetched copy.
pub fn resolve_library(configured: &str) -> Result<PathBuf, RuntimeError> {
    let mut candidates = Vec::new();
    if !configured.is_empty() {
        candidates.push(PathBuf::from(configured));
    } else {
        if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            candidates.push(PathBuf::from(p));
        }
        candidates.push(PathBuf::from(FETCHED_LIBRARY));
        // The binary under target/<profile>/ of a checkout finds the
        // checkout's copy from any working directory.
        if let Some(root) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(Path::to_owned))
        {
            candidates.push(root.join(FETCHED_LIBRARY));
        }
    }
    for c in &candidates {
        if c.is_file() {
            // ort resolves relative paths against the executable's folder;
            // make them absolute against ours.
            return Ok(std::fs::canonicalize(c).unwrap_or_else(|_| c.clone()));
        }
    }
    Err(RuntimeError::NotFound {
        looked: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

static ENVIRONMENT: OnceLock<(PathBuf, Environment)> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, loading the library on first
/// use. The library can only be loaded once per process.
pub fn environment(library: &Path) -> Result<&'static Environment, RuntimeError> {
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((loaded, env)) = ENVIRONMENT.get() {
        if loaded != library {
            return Err(RuntimeError::AlreadyLoaded {
                loaded: loaded.clone(),
                wanted: library.to_owned(),
            });
        }
        return Ok(env);
    }
    let builder = ort::init_from(library).map_err(|e| RuntimeError::Load {
        path: library.to_owned(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("kao")
        .build()
        .map_err(|source| RuntimeError::Ort {
            what: "creating the environment".into(),
            source,
        })?;
    info!(library = %library.display(), "ONNX Runtime loaded");
    Ok(&ENVIRONMENT.get_or_init(|| (library.to_owned(), env)).1)
}

/// Builds a session for one model, trying the providers in order. Returns
/// the session and the provider that was really registered.
pub fn build_session(
    env: &Environment,
    model_name: &str,
    bytes: &[u8],
    config: &RuntimeConfig,
) -> Result<(Session, &'static str), RuntimeError> {
    let ort_err = |what: String| move |source: ort::Error| RuntimeError::Ort { what, source };
    let builder_err = |what: String| {
        move |e: ort::Error<ort::session::builder::SessionBuilder>| RuntimeError::Ort {
            what,
            source: e.into(),
        }
    };
    let mut builder =
        Session::builder(env).map_err(ort_err(format!("session builder for {model_name}")))?;
    if config.intra_threads > 0 {
        builder = builder
            .with_intra_threads(config.intra_threads)
            .map_err(builder_err(format!(
                "setting intra-op threads for {model_name}"
            )))?;
    }
    builder = builder
        .with_intra_op_spinning(config.spinning)
        .map_err(builder_err(format!(
            "setting thread spinning for {model_name}"
        )))?
        .with_optimization_level(optimization_level(&config.optimization))
        .map_err(builder_err(format!(
            "setting graph optimisation for {model_name}"
        )))?;
    let providers = &config.providers;
    let mut used = "cpu";
    for provider in providers {
        match register(&mut builder, provider) {
            Ok(Some(name)) => {
                used = name;
                break;
            }
            Ok(None) => break, // "cpu": nothing to register, it is always there
            Err(reason) => warn!(
                model = model_name,
                provider = provider.as_str(),
                %reason,
                "execution provider not available, trying the next one"
            ),
        }
    }
    let session = builder
        .commit_from_memory(bytes)
        .map_err(ort_err(format!("loading model {model_name}")))?;
    info!(model = model_name, provider = used, "model ready");
    Ok((session, used))
}

/// The level a config name stands for; names are checked by
/// `Config::validate`, anything else gets the default (`all`).
fn optimization_level(name: &str) -> GraphOptimizationLevel {
    match name {
        "disable" => GraphOptimizationLevel::Disable,
        "basic" => GraphOptimizationLevel::Level1,
        "extended" => GraphOptimizationLevel::Level2,
        _ => GraphOptimizationLevel::All,
    }
}

/// Registers one provider. `Ok(None)` is the CPU provider, which needs no
/// registration; `Err` says why a provider cannot be used.
fn register(
    builder: &mut ort::session::builder::SessionBuilder,
    provider: &str,
) -> Result<Option<&'static str>, String> {
    match provider {
        "cpu" => Ok(None),
        "cuda" => register_cuda(builder),
        "tensorrt" => register_tensorrt(builder),
        other => Err(format!("unknown provider {other:?}")),
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(
    builder: &mut ort::session::builder::SessionBuilder,
) -> Result<Option<&'static str>, String> {
    use ort::ep::ExecutionProvider;
    let ep = ort::ep::CUDA::default();
    if !ort::ep::CUDA::is_available().unwrap_or(false) {
        return Err(
            "the loaded ONNX Runtime library has no CUDA provider (use the onnxruntime-gpu build)"
                .into(),
        );
    }
    ep.register(builder).map_err(|e| e.to_string())?;
    Ok(Some("cuda"))
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    _: &mut ort::session::builder::SessionBuilder,
) -> Result<Option<&'static str>, String> {
    Err("kao was built without the `cuda` feature (cargo build --features cuda)".into())
}

#[cfg(feature = "tensorrt")]
fn register_tensorrt(
    builder: &mut ort::session::builder::SessionBuilder,
) -> Result<Option<&'static str>, String> {
    use ort::ep::ExecutionProvider;
    let ep = ort::ep::TensorRT::default();
    if !ort::ep::TensorRT::is_available().unwrap_or(false) {
        return Err("the loaded ONNX Runtime library has no TensorRT provider (use the onnxruntime-gpu build)".into());
    }
    ep.register(builder).map_err(|e| e.to_string())?;
    Ok(Some("tensorrt"))
}

#[cfg(not(feature = "tensorrt"))]
fn register_tensorrt(
    _: &mut ort::session::builder::SessionBuilder,
) -> Result<Option<&'static str>, String> {
    Err("kao was built without the `tensorrt` feature (cargo build --features tensorrt)".into())
}
