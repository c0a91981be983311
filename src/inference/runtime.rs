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
/// the session and where it really runs: a provider's name when every node
/// of the model runs on it, `"<provider>+cpu"` when ONNX Runtime had to put
/// some nodes on the CPU, `"cpu"` when no other provider could be used.
pub fn build_session(
    env: &Environment,
    model_name: &str,
    bytes: &[u8],
    config: &RuntimeConfig,
) -> Result<(Session, &'static str), RuntimeError> {
    for provider in &config.providers {
        if provider == "cpu" {
            break;
        }
        // First with the CPU fallback off: a session that commits then runs
        // every node on the provider, which is what the log should say.
        let strict = match attempt(env, model_name, bytes, config, provider, true)? {
            Attempt::Ready(session, name) => {
                info!(
                    model = model_name,
                    provider = name,
                    nodes = "all",
                    "model ready"
                );
                return Ok((session, name));
            }
            Attempt::Unavailable(reason) => reason,
        };
        match attempt(env, model_name, bytes, config, provider, false)? {
            Attempt::Ready(session, name) => {
                let shared = shared_name(name);
                warn!(
                    model = model_name,
                    provider = name,
                    nodes = "some on cpu",
                    reason = %strict,
                    "model ready, but not every node can run on the provider; the others run on the CPU"
                );
                return Ok((session, shared));
            }
            Attempt::Unavailable(reason) => warn!(
                model = model_name,
                provider = provider.as_str(),
                %reason,
                "execution provider not available, trying the next one"
            ),
        }
    }
    match attempt(env, model_name, bytes, config, "cpu", false)? {
        Attempt::Ready(session, name) => {
            info!(model = model_name, provider = name, "model ready");
            Ok((session, name))
        }
        Attempt::Unavailable(reason) => Err(RuntimeError::Ort {
            what: format!("loading model {model_name} on the CPU"),
            source: ort::Error::new(reason),
        }),
    }
}

/// What one try at building a session on a provider gave.
enum Attempt {
    Ready(Session, &'static str),
    Unavailable(String),
}

/// Builds a session on one provider; `all_nodes` refuses a session where
/// some nodes would fall back to the CPU.
fn attempt(
    env: &Environment,
    model_name: &str,
    bytes: &[u8],
    config: &RuntimeConfig,
    provider: &str,
    all_nodes: bool,
) -> Result<Attempt, RuntimeError> {
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
    if all_nodes {
        builder = builder
            .with_disable_cpu_fallback()
            .map_err(builder_err(format!(
                "disabling CPU fallback for {model_name}"
            )))?;
    }
    let name = match register(&mut builder, provider, config) {
        Ok(name) => name,
        Err(reason) => return Ok(Attempt::Unavailable(reason)),
    };
    match builder.commit_from_memory(bytes) {
        Ok(session) => Ok(Attempt::Ready(session, name)),
        Err(e) if name != "cpu" => Ok(Attempt::Unavailable(e.to_string())),
        Err(source) => Err(RuntimeError::Ort {
            what: format!("loading model {model_name}"),
            source,
        }),
    }
}

/// The name for a model that runs on a provider and partly on the CPU.
fn shared_name(provider: &'static str) -> &'static str {
    match provider {
        "cuda" => "cuda+cpu",
        "tensorrt" => "tensorrt+cpu",
        other => other,
    }
}

/// Where kao keeps state that survives restarts (TensorRT engines):
/// systemd's `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/kao`, else
/// `~/.local/state/kao`.
pub fn state_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        // systemd lists several directories separated by colons.
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if let Some(state) = var("XDG_STATE_HOME") {
        return PathBuf::from(state).join("kao");
    }
    match var("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/kao"),
        None => PathBuf::from("/var/lib/kao"),
    }
}

/// The folder TensorRT engines are cached in: the configured one, else
/// `tensorrt/` in the state directory; one sub-folder per precision, so
/// that switching `fp16` never loads an engine built for the other.
pub fn tensorrt_cache_dir(config: &RuntimeConfig) -> PathBuf {
    let base = if config.tensorrt_cache.is_empty() {
        state_dir().join("tensorrt")
    } else {
        PathBuf::from(&config.tensorrt_cache)
    };
    base.join(if config.fp16 { "fp16" } else { "fp32" })
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

/// Registers one provider and returns its name; the CPU provider needs no
/// registration. `Err` says why a provider cannot be used.
fn register(
    builder: &mut ort::session::builder::SessionBuilder,
    provider: &str,
    config: &RuntimeConfig,
) -> Result<&'static str, String> {
    match provider {
        "cpu" => Ok("cpu"),
        "cuda" => register_cuda(builder, config),
        "tensorrt" => register_tensorrt(builder, config),
        other => Err(format!("unknown provider {other:?}")),
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(
    builder: &mut ort::session::builder::SessionBuilder,
    config: &RuntimeConfig,
) -> Result<&'static str, String> {
    use ort::ep::ExecutionProvider;
    if !ort::ep::CUDA::is_available().unwrap_or(false) {
        return Err(
            "the loaded ONNX Runtime library has no CUDA provider (use the onnxruntime-gpu build, see docs/PERFORMANCE.md)"
                .into(),
        );
    }
    let ep = ort::ep::CUDA::default().with_device_id(config.device_id);
    ep.register(builder).map_err(|e| e.to_string())?;
    Ok("cuda")
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(
    _: &mut ort::session::builder::SessionBuilder,
    _: &RuntimeConfig,
) -> Result<&'static str, String> {
    Err("kao was built without the `cuda` feature (cargo build --release --features cuda)".into())
}

#[cfg(feature = "tensorrt")]
fn register_tensorrt(
    builder: &mut ort::session::builder::SessionBuilder,
    config: &RuntimeConfig,
) -> Result<&'static str, String> {
    use ort::ep::ExecutionProvider;
    if !ort::ep::TensorRT::is_available().unwrap_or(false) {
        return Err("the loaded ONNX Runtime library has no TensorRT provider (use the onnxruntime-gpu build with TensorRT's libraries, see docs/PERFORMANCE.md)".into());
    }
    let cache = tensorrt_cache_dir(config);
    std::fs::create_dir_all(&cache).map_err(|e| {
        format!(
            "cannot create the TensorRT engine cache {} ({e}); set runtime.tensorrt_cache to a writable folder",
            cache.display()
        )
    })?;
    let ep = ort::ep::TensorRT::default()
        .with_device_id(config.device_id)
        .with_fp16(config.fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(cache.display())
        .with_timing_cache(true)
        .with_timing_cache_path(cache.display());
    ep.register(builder).map_err(|e| e.to_string())?;
    Ok("tensorrt")
}

#[cfg(not(feature = "tensorrt"))]
fn register_tensorrt(
    _: &mut ort::session::builder::SessionBuilder,
    _: &RuntimeConfig,
) -> Result<&'static str, String> {
    Err(
        "kao was built without the `tensorrt` feature (cargo build --release --features tensorrt)"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensorrt_engines_are_kept_apart_by_precision() {
        let mut config = RuntimeConfig {
            tensorrt_cache: "/srv/kao/trt".into(),
            ..RuntimeConfig::default()
        };
        assert_eq!(
            tensorrt_cache_dir(&config),
            PathBuf::from("/srv/kao/trt/fp32")
        );
        config.fp16 = true;
        assert_eq!(
            tensorrt_cache_dir(&config),
            PathBuf::from("/srv/kao/trt/fp16")
        );
    }

    #[test]
    fn partial_placement_is_named_after_both_providers() {
        assert_eq!(shared_name("cuda"), "cuda+cpu");
        assert_eq!(shared_name("tensorrt"), "tensorrt+cpu");
        assert_eq!(shared_name("cpu"), "cpu");
    }

    #[test]
    fn every_optimisation_level_name_is_known() {
        assert_eq!(optimization_level("all"), GraphOptimizationLevel::All);
        assert_eq!(optimization_level("basic"), GraphOptimizationLevel::Level1);
        assert_eq!(
            optimization_level("extended"),
            GraphOptimizationLevel::Level2
        );
        assert_eq!(
            optimization_level("disable"),
            GraphOptimizationLevel::Disable
        );
    }
}
