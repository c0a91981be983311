//! The `kao` command: argument parsing, error reporting and exit codes. The
//! work is done by the library; start reading at `pipeline.rs`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tracing::info;

use kao::config::Config;
use kao::inference::Detector;
use kao::models::Manifest;
use kao::publish::protocol::FaceMsg;
use kao::publish::Hub;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure while working (a source, the socket, the daemon connection, a bad image)
  2  bad usage or configuration (unknown option, bad config key or value)
  3  ONNX Runtime or model files missing or wrong (run scripts/fetch-assets.sh)

Logging: set KAO_LOG (e.g. KAO_LOG=debug) to change the level; logs go to stderr.";

/// How long a stop waits for a frame in the middle of inference.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// kao (顔): real-time face detection and keypoints, served over a local socket.
#[derive(Parser)]
#[command(version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: read a source, detect faces, publish results.
    Serve {
        /// Configuration file (see config/kao.toml for every key).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides source.uri: a video file, an image, a folder of images,
        /// a stream URL or camera:N.
        #[arg(long)]
        source: Option<String>,
        /// Overrides publish.socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Overrides http.listen, e.g. 127.0.0.1:0 for any free port.
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<String>,
        /// Validate the configuration, models and source, then exit.
        #[arg(long)]
        check: bool,
    },
    /// Check a configuration file (keys, values, models, source) without starting.
    CheckConfig {
        /// The file to check, e.g. /etc/kao/kao.toml.
        file: PathBuf,
    },
    /// Ask the running daemon how it is doing: source, fps, frames, clients.
    Status {
        /// Socket of the daemon (default as for `serve`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Print the raw JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// Connect to a running daemon and print what it publishes.
    Watch {
        /// Socket of the daemon (default as for `serve`).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Exit after this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Print the raw JSON messages instead of readable lines.
        #[arg(long)]
        json: bool,
    },
    /// Detect faces in images once, without a daemon.
    Detect {
        /// Images to read.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// One JSON object per image on stdout (same face schema as the socket).
        #[arg(long)]
        json: bool,
        /// Write each image with its faces drawn into this folder.
        #[arg(long)]
        annotate: Option<PathBuf>,
        /// Configuration file (model, thresholds, runtime); defaults otherwise.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Time the pipeline on a source without clients: frames/s, per-stage
    /// p50/p90/p99, share of time inside ONNX Runtime, peak memory.
    Bench(BenchArgs),
    /// List the models, their checksums and the providers they run on.
    Models {
        #[command(subcommand)]
        action: Option<ModelsAction>,
        /// Configuration file naming the model manifest and runtime.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Check an ONNX file against its manifest: checksum, input name, type,
    /// layout and size, output names, and what the family's decoder needs.
    /// Lists every mismatch; exits 3 if there is one.
    Check {
        /// The .onnx file.
        file: PathBuf,
        /// The manifest that would load it.
        #[arg(long)]
        manifest: PathBuf,
        /// The manifest role it is for; by default the role whose file has
        /// the same name.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Source to read (default: the configured one).
    #[arg(long)]
    source: Option<String>,
    /// Frames to measure (the source is replayed when shorter).
    #[arg(long, default_value_t = 100)]
    frames: usize,
    /// Untimed runs on the first frame before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write every frame's faces to this file (JSON), to compare them with
    /// another detector's (scripts/compare-reference.sh does).
    #[arg(long)]
    detections: Option<PathBuf>,
    /// Configuration file (runtime and detector settings; see config/kao.toml).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// An error and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        Failure {
            code: classify(&error),
            error,
        }
    }
}

/// Exit code for an error, from its root cause.
fn classify(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if cause.is::<kao::config::ConfigError>() {
            return 2;
        }
        if cause.is::<kao::models::ModelError>()
            || cause.is::<kao::inference::runtime::RuntimeError>()
        {
            return 3;
        }
        if let Some(
            kao::inference::DetectError::Model(_)
            | kao::inference::DetectError::Runtime(_)
            | kao::inference::DetectError::Shape { .. },
        ) = cause.downcast_ref()
        {
            return 3;
        }
    }
    1
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    if !matches!(cli.command, Command::Serve { .. }) {
        // A command whose output goes to `| head` should end quietly when
        // the pipe closes, as other command-line tools do, not panic in
        // `println!`. The daemon keeps Rust's default (SIGPIPE ignored) so a
        // client hanging up never kills it.
        restore_default_sigpipe();
    }
    let result = match cli.command {
        Command::Serve {
            config,
            source,
            socket,
            http,
            check,
        } => serve(config, source, socket, http, check),
        Command::Watch {
            socket,
            frames,
            json,
        } => watch(socket, frames, json),
        Command::Detect {
            images,
            json,
            annotate,
            config,
        } => detect(&images, json, annotate, config),
        Command::Models {
            action:
                Some(ModelsAction::Check {
                    file,
                    manifest,
                    role,
                    config,
                }),
            ..
        } => check_model(&file, &manifest, role.as_deref(), config),
        Command::Models { config, .. } => models(config),
        Command::CheckConfig { file } => check_config(&file),
        Command::Status { socket, json } => status(socket, json),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("kao: {}", describe_error(&f.error));
            ExitCode::from(f.code)
        }
    }
}

/// An error and its causes on one line, leaving out a cause whose text the
/// message already quotes (many messages name their cause themselves).
fn describe_error(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn restore_default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default is
    // async-signal-safe and done before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The configuration file (defaults without one), as `serve` reads it but
/// with no command-line overrides.
fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    Ok(kao::service::load_config(
        path,
        &kao::service::Overrides::default(),
    )?)
}

fn load_detector(config: &Config) -> Result<(Manifest, Box<dyn Detector>), Failure> {
    let manifest = Manifest::load(Path::new(&config.models.manifest))?;
    let detector = kao::inference::load(&manifest, &config.runtime, config.detector.clone())
        .with_context(|| kao::service::model_hint(&manifest))?;
    Ok((manifest, detector))
}

fn serve(
    config_path: Option<PathBuf>,
    source: Option<String>,
    socket: Option<PathBuf>,
    http: Option<String>,
    check: bool,
) -> Result<u8, Failure> {
    use kao::service::{notify, Overrides, Service};
    let overrides = Overrides {
        source,
        socket,
        http,
    };
    let config = kao::service::load_config(config_path.as_deref(), &overrides)?;
    config
        .http
        .validate()
        .map_err(|(key, problem)| kao::config::ConfigError::Invalid {
            path: config_path.clone().unwrap_or_else(|| "--http".into()),
            key,
            problem,
        })?;
    let (manifest, detector) = load_detector(&config)?;
    if check {
        check_source(&config.source)?;
        println!("configuration, models and source look fine");
        return Ok(0);
    }
    let socket_path = config.socket_path();
    let info = kao::service::server_info(&config, &manifest, detector.as_ref());
    let model = kao::http::ModelInfo {
        name: manifest.name.clone(),
        family: manifest.family.to_string(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("kao-publish")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let signals = kao::service::Signals::listen().context("cannot listen for signals")?;
        let (listener, socket_file) = kao::publish::bind(&socket_path)?;
        let status = std::sync::Arc::new(kao::status::Status::new(&config.source.uri));
        let hub = Hub::new(info).with_status(status.clone());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(kao::publish::serve(
            listener,
            hub.clone(),
            config.publish.max_clients,
            stop_rx.clone(),
        ));
        // The HTTP port is taken before the pipeline starts, so a busy port
        // stops start-up cleanly.
        let http = if config.http.enabled {
            Some(kao::http::bind(&config.http.listen).await?)
        } else {
            None
        };
        let pipeline =
            kao::pipeline::Pipeline::start(&config, detector, hub.clone(), status.clone())?;
        if let Some(watchdog) = notify::Watchdog::from_env() {
            info!(
                interval_s = watchdog.interval().as_secs_f64(),
                "systemd watchdog on"
            );
            pipeline.set_watchdog(watchdog);
        }
        info!(socket = %socket_file.path().display(), source = %config.source.uri, "serving");
        println!(
            "kao: serving {} on {}",
            config.source.uri,
            socket_file.path().display()
        );
        println!(
            "kao: watch with `kao watch --socket {}`",
            socket_file.path().display()
        );
        let http = http.map(|listener| {
            let state = kao::http::HttpState::new(
                &config,
                hub.clone(),
                status.clone(),
                model,
                stop_rx.clone(),
            );
            kao::http::start(listener, state, !config.http.token.is_empty())
        });

        let service = Service {
            config,
            config_path,
            overrides,
            hub,
            pipeline,
            status,
            notifier: notify::Notifier::from_env(),
        };
        let pipeline = service.run(signals).await;
        info!("shutting down");
        // Clients are told and the socket goes first; then the threads,
        // which may be in the middle of a frame.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_millis(600), server).await;
        if let Some(http) = http {
            let _ = tokio::time::timeout(Duration::from_millis(600), http).await;
        }
        drop(socket_file);
        if !tokio::task::block_in_place(|| pipeline.stop_within(STOP_GRACE)) {
            tracing::warn!(
                grace_s = STOP_GRACE.as_secs_f64(),
                "inference still busy; exiting without it"
            );
        }
        info!("stopped");
        Ok::<u8, Failure>(0)
    })
}

/// Opens the source and reads one frame from it, as `serve` would.
fn check_source(source: &kao::config::SourceConfig) -> Result<(), Failure> {
    let mut opened = kao::capture::open(source)?;
    match opened.read()? {
        Some(_) => Ok(()),
        None => Err(anyhow::anyhow!(
            "source {:?} opened but gave no frame (an empty or unreadable file?)",
            source.uri
        )
        .into()),
    }
}

/// `kao check-config FILE`: everything `serve` checks before it starts.
fn check_config(file: &Path) -> Result<u8, Failure> {
    let config = Config::load(file)?;
    let (manifest, detector) = load_detector(&config)?;
    check_source(&config.source)?;
    let providers: Vec<String> = detector
        .providers()
        .iter()
        .map(|(m, p)| format!("{m}={p}"))
        .collect();
    println!(
        "{}: fine (source {}, model {}, providers {})",
        file.display(),
        config.source.uri,
        manifest.name,
        providers.join(" ")
    );
    Ok(0)
}

/// `kao status`: asks the running daemon.
fn status(socket: Option<PathBuf>, json: bool) -> Result<u8, Failure> {
    let socket = socket.unwrap_or_else(kao::config::default_socket_path);
    let report = kao::watch::query_status(&socket)?;
    if json {
        let text = serde_json::to_string(&report).context("encoding the status")?;
        println!("{text}");
    } else {
        println!("{}", kao::watch::describe_status(&report));
    }
    Ok(0)
}

fn watch(socket: Option<PathBuf>, frames: Option<u64>, json: bool) -> Result<u8, Failure> {
    let socket = socket.unwrap_or_else(kao::config::default_socket_path);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match kao::watch::watch(&socket, frames, json, &mut out) {
        Ok(_) => Ok(0),
        // A closed pipe (e.g. `| head`) is a normal way to stop.
        Err(kao::watch::WatchError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn detect(
    images: &[PathBuf],
    json: bool,
    annotate: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<u8, Failure> {
    let config = load_config(config.as_deref())?;
    let (_, mut detector) = load_detector(&config)?;
    if let Some(dir) = &annotate {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create folder {}", dir.display()))?;
    }
    let mut failed = 0;
    for path in images {
        match detect_one(detector.as_mut(), path, json, annotate.as_deref()) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("kao: {}", describe_error(&e));
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn detect_one(
    detector: &mut dyn Detector,
    path: &Path,
    json: bool,
    annotate: Option<&Path>,
) -> Result<()> {
    use opencv::prelude::*;
    let image = kao::imageio::read_image(path)?;
    let (faces, timings) = detector
        .detect(&image)
        .with_context(|| format!("detecting faces in {}", path.display()))?;
    let (w, h) = (image.cols(), image.rows());
    let msgs: Vec<FaceMsg> = faces.iter().map(|f| FaceMsg::new(f, w, h)).collect();
    if json {
        let obj = serde_json::json!({
            "image": path.display().to_string(),
            "width": w,
            "height": h,
            "faces": msgs,
            "timings_ms": timings,
        });
        println!("{obj}");
    } else {
        println!(
            "{}: {} face{} ({}x{})",
            path.display(),
            faces.len(),
            if faces.len() == 1 { "" } else { "s" },
            w,
            h
        );
        for f in &msgs {
            let k = &f.keypoints;
            println!(
                "  {:.3} box {:.0},{:.0} {:.0}x{:.0}  left_eye {:.0},{:.0} right_eye {:.0},{:.0} nose {:.0},{:.0} mouth_left {:.0},{:.0} mouth_right {:.0},{:.0}",
                f.score, f.bbox.x, f.bbox.y, f.bbox.w, f.bbox.h,
                k.left_eye[0], k.left_eye[1], k.right_eye[0], k.right_eye[1], k.nose[0], k.nose[1],
                k.mouth_left[0], k.mouth_left[1], k.mouth_right[0], k.mouth_right[1]
            );
        }
    }
    if let Some(dir) = annotate {
        let drawn = kao::annotate::draw(&image, &faces)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        let out = dir.join(format!("{stem}.jpg"));
        std::fs::write(&out, kao::annotate::jpeg(&drawn, 90)?)
            .with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(())
}

fn check_model(
    file: &Path,
    manifest: &Path,
    role: Option<&str>,
    config: Option<PathBuf>,
) -> Result<u8, Failure> {
    let config = load_config(config.as_deref())?;
    let manifest = Manifest::load(manifest)?;
    let role =
        kao::inference::check::role_for(&manifest, file, role).map_err(|message| Failure {
            code: 2,
            error: anyhow::anyhow!(message),
        })?;
    let findings = kao::inference::check::check(&manifest, &role, file, &config.runtime)?;
    println!(
        "{} as [models.{role}] of {} (family {}):",
        file.display(),
        manifest.path.display(),
        manifest.family
    );
    for f in &findings {
        println!("  {} {}", if f.fits { "ok  " } else { "FAIL" }, f.what);
    }
    let failed = findings.iter().filter(|f| !f.fits).count();
    if failed > 0 {
        println!("{failed} thing(s) do not fit");
        return Ok(3);
    }
    println!("the file fits its manifest");
    Ok(0)
}

fn models(config: Option<PathBuf>) -> Result<u8, Failure> {
    let config = load_config(config.as_deref())?;
    let manifest = Manifest::load(Path::new(&config.models.manifest))?;
    println!(
        "{} (family {}, licence {})",
        manifest.name, manifest.family, manifest.licence
    );
    println!("  source: {}", manifest.source);
    println!("  manifest: {}", manifest.path.display());
    let mut bad = false;
    for (role, file) in &manifest.models {
        let path = manifest.file_path(role);
        let status = match kao::models::sha256_file(&path) {
            Ok(actual) if actual == file.sha256 => "ok".to_string(),
            Ok(actual) => {
                bad = true;
                format!("CHECKSUM MISMATCH (got {actual})")
            }
            Err(e) => {
                bad = true;
                format!("MISSING ({e}); run {}", manifest.fetch)
            }
        };
        println!(
            "  {role}: {} sha256 {} {status}",
            path.display(),
            file.sha256
        );
    }
    if bad {
        return Ok(3);
    }
    let library = kao::inference::runtime::resolve_library(&config.runtime.ort_library)?;
    println!("  ONNX Runtime: {}", library.display());
    let detector = kao::inference::load(&manifest, &config.runtime, config.detector.clone())?;
    for (model, provider) in detector.providers() {
        println!(
            "  {model} runs on {provider} (asked: {})",
            config.runtime.providers.join(", ")
        );
    }
    Ok(0)
}

fn bench(args: BenchArgs) -> Result<u8, Failure> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(s) = args.source {
        config.source.uri = s;
    }
    let (_, mut detector) = load_detector(&config)?;
    let options = kao::bench::BenchOptions {
        frames: args.frames.max(1),
        warmup: args.warmup,
        keep_faces: args.detections.is_some(),
    };
    let report = kao::bench::run(&config.source, detector.as_mut(), &options)?;
    if let Some(path) = &args.detections {
        let text = serde_json::to_string(&report.detections_json())
            .context("cannot serialise the detections")?;
        std::fs::write(path, text)
            .with_context(|| format!("cannot write detections to {}", path.display()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot serialise the report")?
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(0)
}
