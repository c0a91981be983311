//! Running as a service: what the daemon does between start and stop.
//!
//! It waits for signals (SIGTERM and SIGINT stop it, SIGHUP rereads the
//! configuration), keeps systemd told how it is doing (`STATUS=`), and
//! applies a reloaded configuration to the running pipeline without
//! dropping clients. A configuration that cannot be applied is refused as a
//! whole and the running one stays.

pub mod notify;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigError};
use crate::inference::{DetectError, Detector};
use crate::models::{Manifest, ModelError};
use crate::pipeline::Pipeline;
use crate::publish::protocol::ServerMsg;
use crate::publish::{Hub, ServerInfo};
use crate::status::Status;
use notify::Notifier;

/// How often `systemctl status` is brought up to date.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Why a reload was refused. Each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("`models.manifest`: {0}")]
    Manifest(#[from] ModelError),
    #[error("`models.manifest` / `runtime`: {hint}: {source}")]
    Detector { source: DetectError, hint: String },
    #[error("`source.uri`: {0}")]
    Source(#[from] crate::capture::CaptureError),
}

/// Settings given on the command line; they win over the file, at start
/// and at every reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub source: Option<String>,
    pub socket: Option<PathBuf>,
    /// `--http ADDR:PORT`: where the HTTP server listens.
    pub http: Option<String>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(s) = &self.source {
            config.source.uri = s.clone();
        }
        if let Some(s) = &self.socket {
            config.publish.socket = s.display().to_string();
        }
        if let Some(listen) = &self.http {
            config.http.listen = listen.clone();
        }
    }
}

/// Reads the configuration file (defaults without one) with the overrides.
pub fn load_config(
    path: Option<&std::path::Path>,
    overrides: &Overrides,
) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    overrides.apply(&mut config);
    Ok(config)
}

/// Builds the detector a configuration names.
pub fn load_detector(config: &Config) -> Result<(Manifest, Box<dyn Detector>), ReloadError> {
    let manifest = Manifest::load(std::path::Path::new(&config.models.manifest))?;
    let detector = crate::inference::load(&manifest, &config.runtime, config.detector.clone())
        .map_err(|e| ReloadError::Detector {
            hint: model_hint(&manifest),
            source: e,
        })?;
    Ok((manifest, detector))
}

/// For a model that passed its checksum but does not load (not ONNX, the
/// wrong shapes): the files, their expected checksums and how to get the
/// shipped ones back.
pub fn model_hint(manifest: &Manifest) -> String {
    let files: Vec<String> = manifest
        .models
        .keys()
        .map(|role| {
            format!(
                "{} (sha256 {})",
                manifest.file_path(role).display(),
                manifest.role(role).sha256
            )
        })
        .collect();
    format!(
        "cannot load the models listed in {} ({}; run `{}` to fetch the shipped ones)",
        manifest.path.display(),
        files.join(", "),
        manifest.fetch
    )
}

/// What clients are told about a configuration and its detector.
pub fn server_info(config: &Config, manifest: &Manifest, detector: &dyn Detector) -> ServerInfo {
    ServerInfo {
        source: config.source.uri.clone(),
        model: format!("{} ({})", manifest.name, manifest.family),
        providers: detector.providers().into_iter().collect(),
    }
}

/// The signals kao handles, listened for from as early as possible: until
/// they are, SIGTERM and SIGHUP would end the process on the spot, leaving
/// its socket file behind.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Must be called inside the tokio runtime.
    pub fn listen() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// The running daemon, between start and stop.
pub struct Service {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub overrides: Overrides,
    pub hub: Hub,
    pub pipeline: Pipeline,
    pub status: Arc<Status>,
    pub notifier: Notifier,
}

impl Service {
    /// Serves until SIGTERM or SIGINT, reloading on SIGHUP. Returns the
    /// pipeline, still running, for the caller to stop.
    pub async fn run(mut self, signals: Signals) -> Pipeline {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        self.notifier.ready();
        let mut tick = tokio::time::interval(STATUS_EVERY);
        let mut last = (Instant::now(), 0u64);
        loop {
            tokio::select! {
                _ = term.recv() => { info!(signal = "SIGTERM", "signal received"); break; }
                _ = int.recv() => { info!(signal = "SIGINT", "signal received"); break; }
                _ = hup.recv() => {
                    info!(signal = "SIGHUP", "signal received, reloading the configuration");
                    self.notifier.reloading();
                    match tokio::task::block_in_place(|| self.reload()) {
                        Ok(changed) => info!(changed = ?changed, "configuration reloaded"),
                        Err(err) => error!(cause = %err, "reload refused; the running configuration stays"),
                    }
                    self.notifier.ready();
                }
                _ = tick.tick() => {
                    if self.notifier.enabled() {
                        let frames = self.status.get(&self.status.frames_processed);
                        let fps = (frames - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
                        last = (Instant::now(), frames);
                        self.notifier.status(&self.status_line(fps));
                    }
                }
            }
        }
        self.notifier.stopping();
        self.pipeline
    }

    /// One line for `systemctl status`.
    fn status_line(&self, fps: f64) -> String {
        let source = self.status.source();
        format!(
            "source {} ({}), {:.1} fps, {} frames, {} dropped, {} clients",
            source.state.name(),
            source.uri,
            fps,
            self.status.get(&self.status.frames_processed),
            self.status.frames_dropped.load(Ordering::Relaxed),
            self.hub.clients()
        )
    }

    /// Rereads the configuration file and applies what changed. Everything
    /// that can fail (parsing, models, opening the source) is done before
    /// anything is changed, so a refused reload changes nothing. Returns the
    /// sections that changed.
    pub fn reload(&mut self) -> Result<Vec<&'static str>, ReloadError> {
        let Some(path) = self.config_path.clone() else {
            info!("started without --config: nothing to reread");
            return Ok(Vec::new());
        };
        let new = load_config(Some(&path), &self.overrides)?;
        let old = &self.config;
        let mut changed = Vec::new();

        // Keys only read at start.
        for (key, same) in [
            ("publish", same_json(&old.publish, &new.publish)),
            ("log", same_json(&old.log, &new.log)),
            ("source_retry", old.source_retry == new.source_retry),
        ] {
            if !same {
                warn!(
                    key,
                    "changed, but only read at start; restart kao to apply it"
                );
            }
        }

        // Prepare: a new detector when the model or its providers change.
        let rebuild = old.models != new.models || old.runtime != new.runtime;
        let detector = if rebuild {
            Some(load_detector(&new)?)
        } else {
            None
        };
        // Commit: the source first, since opening it may still fail.
        if old.source != new.source {
            self.pipeline.switch_source(&new.source)?;
            changed.push("source");
        }
        let mut info = self.hub.info();
        info.source = new.source.uri.clone();
        if let Some((manifest, detector)) = detector {
            info = server_info(&new, &manifest, detector.as_ref());
            self.pipeline.replace_detector(detector);
            changed.push("models/runtime");
        } else if old.detector != new.detector {
            self.pipeline.set_params(new.detector.clone());
            changed.push("detector");
        }
        self.hub.set_info(info);
        if !changed.is_empty() {
            self.hub.announce(ServerMsg::Source {
                state: self.status.source_state().name().into(),
                detail: format!("configuration reloaded ({})", changed.join(", ")),
            });
        }
        self.config = new;
        Ok(changed)
    }
}

fn same_json<T: serde::Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}
