//! `kao.toml`: every setting, its default, and strict parsing.
//!
//! Unknown keys and wrong types are errors that name the key and the line,
//! so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or validating a configuration file.
/// Upper bounds that keep a typo from exhausting memory or descriptors.
pub const MAX_WORKERS: usize = 64;
pub const MAX_CLIENTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: `{key}` {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub source_retry: RetryConfig,
    pub runtime: RuntimeConfig,
    pub models: ModelsConfig,
    pub detector: DetectorConfig,
    pub publish: PublishConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// What to read: a video file, a folder of images, an image, a stream URL
    /// or `camera:N`.
    pub uri: String,
    /// Frame rate at which still images and folders are replayed.
    pub image_fps: f64,
    /// Play files at their own frame rate (as a camera would deliver them)
    /// rather than as fast as they decode.
    pub realtime: bool,
    /// Start again from the beginning when a file or folder ends.
    pub loop_at_end: bool,
    /// Camera resolution asked for (the camera may choose another).
    pub camera_width: u32,
    pub camera_height: u32,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            uri: "/usr/share/doc/opencv-doc/examples/data/Megamind.avi".into(),
            image_fps: 10.0,
            realtime: true,
            loop_at_end: true,
            camera_width: 640,
            camera_height: 480,
        }
    }
}

/// What kao does when the source fails, vanishes or stalls: it reports the
/// source as lost and opens it again, waiting `initial_s` before the first
/// try and doubling the wait up to `max_s`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub initial_s: f64,
    pub max_s: f64,
    /// A live source that delivers no frame for this long is reported lost.
    pub stall_timeout_s: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_s: 1.0,
            max_s: 30.0,
            stall_timeout_s: 10.0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Path of `libonnxruntime.so`. Empty: `ORT_DYLIB_PATH`, then the copy
    /// that `scripts/fetch-assets.sh` unpacks under `.cache/onnxruntime/`.
    pub ort_library: String,
    /// Execution providers in order of preference; `cpu` is always the last
    /// resort. Known: `tensorrt`, `cuda`, `cpu`.
    pub providers: Vec<String>,
    /// Threads that share one frame's work (pyramid scales, crops), each
    /// with its own sessions; 0: one per core.
    pub workers: usize,
    /// Threads ONNX Runtime uses inside one model run; 0: the cores left
    /// to each worker (at least one).
    pub intra_threads: usize,
    /// Let ONNX Runtime's worker threads busy-wait between runs. It saves a
    /// wake-up per run but burns the cores that preprocessing and the other
    /// models need; off pays on small machines.
    pub spinning: bool,
    /// Graph optimisation level: `all`, `extended`, `basic` or `disable`.
    pub optimization: String,
    /// GPU used by the `cuda` and `tensorrt` providers.
    pub device_id: i32,
    /// Let TensorRT build half-precision engines (faster on most GPUs;
    /// scores and boxes may differ slightly from the CPU's).
    pub fp16: bool,
    /// Folder for TensorRT's engine and timing caches. Empty: `tensorrt/`
    /// in the state directory (`$STATE_DIRECTORY`, else
    /// `$XDG_STATE_HOME/kao`, else `~/.local/state/kao`).
    pub tensorrt_cache: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            ort_library: String::new(),
            providers: vec!["cpu".into()],
            workers: 0,
            intra_threads: 0,
            spinning: false,
            optimization: "all".into(),
            device_id: 0,
            fp16: false,
            tensorrt_cache: String::new(),
        }
    }
}

impl RuntimeConfig {
    /// `workers` with 0 resolved to the number of cores.
    pub fn effective_workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            cores()
        }
    }

    /// `intra_threads` with 0 resolved to the cores per worker.
    pub fn effective_intra_threads(&self) -> usize {
        if self.intra_threads > 0 {
            self.intra_threads
        } else {
            (cores() / self.effective_workers()).max(1)
        }
    }
}

/// Cores this process may use (1 when that cannot be told).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Manifest of the detector model; its files are found beside it.
    pub manifest: String,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            manifest: "models/blazeface/full-range.toml".into(),
        }
    }
}

/// Detector parameters. The first three are MTCNN's, with the reference
/// implementation's defaults; `redetect_every` is for families that track.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Smallest face side, in source pixels, that the image pyramid covers.
    pub min_face_size: f64,
    /// Ratio between successive pyramid scales.
    pub scale_factor: f64,
    /// Score thresholds of P-Net, R-Net and O-Net.
    pub thresholds: [f64; 3],
    /// Families that track faces from their keypoints (blazeface) run the
    /// face detector only when a face is lost or after this many frames,
    /// to find faces that came in. 1 detects on every frame.
    pub redetect_every: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            min_face_size: 20.0,
            scale_factor: 0.709,
            thresholds: [0.6, 0.7, 0.7],
            redetect_every: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Unix socket path. Empty: `$XDG_RUNTIME_DIR/kao/kao.sock`, else
    /// `/run/kao/kao.sock`.
    pub socket: String,
    /// Clients served at once; further connections are told so and closed.
    pub max_clients: usize,
    /// JPEG quality of annotated frames (1–100).
    pub jpeg_quality: i32,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            socket: String::new(),
            max_clients: 64,
            jpeg_quality: 80,
        }
    }
}

/// The HTTP server: browser viewer, `/metrics`, `/healthz`, `/api/v1/…`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Address and port to listen on; port 0 picks a free one (logged).
    pub listen: String,
    /// Must be true to listen on an address other than loopback, which
    /// then also needs `token`.
    pub allow_remote: bool,
    /// Access token for the page, the stream, the API and `/metrics`;
    /// empty means none (loopback only). Never logged; redacted in the API.
    pub token: String,
    /// Browser viewers served at once; more are refused with 503.
    pub max_viewers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: "127.0.0.1:8470".into(),
            allow_remote: false,
            token: String::new(),
            max_viewers: 32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Seconds between the periodic `pipeline` summaries (fps, drops,
    /// latency); 0 turns them off.
    pub summary_interval_s: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            summary_interval_s: 5.0,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            // toml's message already says "at line N, column M" and quotes
            // the offending key; keep it on one line for logs.
            message: err.to_string().trim().replace('\n', " "),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the ranges that the types cannot express.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem,
        };
        let d = &self.detector;
        if !(d.min_face_size >= 12.0 && d.min_face_size.is_finite()) {
            return Err(invalid(
                "detector.min_face_size",
                format!(
                    "must be at least 12 (P-Net's window), got {}",
                    d.min_face_size
                ),
            ));
        }
        if !(d.scale_factor > 0.1 && d.scale_factor < 0.95) {
            return Err(invalid(
                "detector.scale_factor",
                format!("must be between 0.1 and 0.95, got {}", d.scale_factor),
            ));
        }
        if let Some(t) = d.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return Err(invalid(
                "detector.thresholds",
                format!("scores are probabilities in [0, 1], got {t}"),
            ));
        }
        if d.redetect_every == 0 {
            return Err(invalid(
                "detector.redetect_every",
                "must be at least 1 (1 runs the face detector on every frame)".into(),
            ));
        }
        if !(self.source.image_fps > 0.0 && self.source.image_fps <= 1000.0) {
            return Err(invalid(
                "source.image_fps",
                format!("must be in (0, 1000], got {}", self.source.image_fps),
            ));
        }
        let r = &self.source_retry;
        for (key, v) in [
            ("source_retry.initial_s", r.initial_s),
            ("source_retry.max_s", r.max_s),
            ("source_retry.stall_timeout_s", r.stall_timeout_s),
        ] {
            if !(v > 0.0 && v <= 3600.0) {
                return Err(invalid(
                    key,
                    format!("must be in (0, 3600] seconds, got {v}"),
                ));
            }
        }
        if r.max_s < r.initial_s {
            return Err(invalid(
                "source_retry.max_s",
                format!(
                    "must be at least initial_s ({}), got {}",
                    r.initial_s, r.max_s
                ),
            ));
        }
        if self.runtime.workers > MAX_WORKERS {
            return Err(invalid(
                "runtime.workers",
                format!(
                    "at most {MAX_WORKERS} (each worker holds its own model sessions), got {}",
                    self.runtime.workers
                ),
            ));
        }
        if self.publish.max_clients > MAX_CLIENTS {
            return Err(invalid(
                "publish.max_clients",
                format!("at most {MAX_CLIENTS}, got {}", self.publish.max_clients),
            ));
        }
        if self.publish.max_clients == 0 {
            return Err(invalid("publish.max_clients", "must be at least 1".into()));
        }
        if !(1..=100).contains(&self.publish.jpeg_quality) {
            return Err(invalid(
                "publish.jpeg_quality",
                format!("must be in 1..=100, got {}", self.publish.jpeg_quality),
            ));
        }
        if !(self.log.summary_interval_s >= 0.0 && self.log.summary_interval_s.is_finite()) {
            return Err(invalid(
                "log.summary_interval_s",
                format!(
                    "must be a non-negative number, got {}",
                    self.log.summary_interval_s
                ),
            ));
        }
        self.http
            .validate()
            .map_err(|(key, problem)| invalid(key, problem))?;
        if !crate::inference::runtime::OPTIMIZATION_LEVELS
            .contains(&self.runtime.optimization.as_str())
        {
            return Err(invalid(
                "runtime.optimization",
                format!(
                    "must be one of {}, got {:?}",
                    crate::inference::runtime::OPTIMIZATION_LEVELS.join(", "),
                    self.runtime.optimization
                ),
            ));
        }
        for p in &self.runtime.providers {
            if !crate::inference::runtime::KNOWN_PROVIDERS.contains(&p.as_str()) {
                return Err(invalid(
                    "runtime.providers",
                    format!(
                        "names an unknown provider {p:?}; known: {}",
                        crate::inference::runtime::KNOWN_PROVIDERS.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The socket path in effect: the configured one, or the default.
    pub fn socket_path(&self) -> PathBuf {
        if !self.publish.socket.is_empty() {
            return PathBuf::from(&self.publish.socket);
        }
        default_socket_path()
    }
}

impl HttpConfig {
    /// The listening address, and whether it is beyond loopback: then
    /// `allow_remote` and a token are required.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled {
            return Ok(());
        }
        let addr = self.listen_addr().map_err(|e| ("http.listen", e))?;
        if self.max_viewers == 0 {
            return Err(("http.max_viewers", "must be at least 1".into()));
        }
        if addr.ip().is_loopback() {
            return Ok(());
        }
        if !self.allow_remote {
            return Err((
                "http.listen",
                format!(
                    "is {addr}, beyond loopback; set http.allow_remote = true and an http.token to serve other machines, or listen on 127.0.0.1"
                ),
            ));
        }
        if self.token.len() < crate::http::MIN_TOKEN_LEN {
            return Err((
                "http.token",
                format!(
                    "must be set (at least {} characters) when listening on {addr}, beyond loopback; e.g. `head -c 24 /dev/urandom | base64`",
                    crate::http::MIN_TOKEN_LEN
                ),
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "must be an address and port such as \"127.0.0.1:8470\" or \"[::1]:8470\", got {:?}",
                self.listen
            )
        })
    }
}

/// `$XDG_RUNTIME_DIR/kao/kao.sock` for a user session, else the service's
/// `/run/kao/kao.sock`.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("kao").join("kao.sock"),
        _ => PathBuf::from("/run/kao/kao.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_reference_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.detector.min_face_size, 20.0);
        assert_eq!(c.detector.scale_factor, 0.709);
        assert_eq!(c.detector.thresholds, [0.6, 0.7, 0.7]);
        assert_eq!(c.runtime.providers, vec!["cpu".to_string()]);
    }

    #[test]
    fn shipped_config_parses_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kao.toml");
        let c = Config::load(&path).unwrap();
        let d = Config::default();
        assert_eq!(c.detector, d.detector);
        assert_eq!(c.source.uri, d.source.uri);
        assert_eq!(c.publish.max_clients, d.publish.max_clients);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[detector]\nmin_face_size = 30\nthreshold = 0.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("threshold"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let err = parse("[publish]\n\nmax_clients = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(
            err.contains("max_clients") || err.contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn http_beyond_loopback_needs_permission_and_token() {
        assert_eq!(parse("").unwrap().http.listen, "127.0.0.1:8470");
        parse("[http]\nlisten = \"[::1]:0\"\n").unwrap();
        let err = parse("[http]\nlisten = \"0.0.0.0:8470\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.allow_remote"), "{err}");
        let err = parse("[http]\nlisten = \"0.0.0.0:8470\"\nallow_remote = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.token"), "{err}");
        let c = parse(
            "[http]\nlisten = \"0.0.0.0:8470\"\nallow_remote = true\ntoken = \"s3cret-s3cret-s3cret\"\n",
        )
        .unwrap();
        assert!(c.http.allow_remote);
        let err = parse("[http]\nlisten = \"localhost\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http.listen"), "{err}");
        // Turned off, nothing about it is checked.
        parse("[http]\nenabled = false\nlisten = \"0.0.0.0:1\"\n").unwrap();
    }

    #[test]
    fn absurd_worker_and_client_counts_are_refused() {
        let err = parse("[runtime]\nworkers = 100000\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime.workers"), "{err}");
        let err = parse("[publish]\nmax_clients = 100000000000\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("publish.max_clients"), "{err}");
        assert!(parse("[runtime]\nworkers = 4\n").is_ok());
    }

    #[test]
    fn out_of_range_values_are_rejected_by_key() {
        let err = parse("[detector]\nscale_factor = 1.5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("detector.scale_factor"), "{err}");
        let err = parse("[detector]\nthresholds = [0.6, 0.7, 7.0]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("detector.thresholds"), "{err}");
        let err = parse("[runtime]\nproviders = [\"cuda\", \"gpu\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"gpu\""), "{err}");
        let err = parse("[detector]\nredetect_every = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("detector.redetect_every"), "{err}");
    }
}
