//! The HTTP server: the browser viewer, its WebSocket stream, `/metrics`,
//! `/healthz` and the JSON API (`docs/HTTP.md`).
//!
//! It runs on the same tokio runtime as the socket publisher and reads the
//! same [`Hub`] and [`Status`]: viewers are clients like any other, and a
//! slow one loses frames without slowing the pipeline.

mod api;
mod auth;
mod listener;
mod metrics;
mod viewer;

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::config::Config;
use crate::publish::Hub;
use crate::status::Status;

/// Shortest access token accepted: a guessable one protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr}: {source}; another program (or kao) may be using it: choose another http.listen (or `--http 127.0.0.1:0` for any free port), or set http.enabled = false")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// What the daemon runs, as the API and `/metrics` describe it.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    pub name: String,
    pub family: String,
}

/// Everything a request handler may read. Cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    hub: Hub,
    status: Arc<Status>,
    model: Arc<ModelInfo>,
    /// The effective configuration, secrets already redacted.
    config: Arc<serde_json::Value>,
    token: auth::Token,
    /// Viewer connections may take one each (`http.max_viewers`).
    viewer_slots: Arc<Semaphore>,
    max_viewers: usize,
    /// Viewers connected now.
    viewers: Arc<AtomicUsize>,
    shutdown: watch::Receiver<bool>,
}

impl HttpState {
    pub fn new(
        config: &Config,
        hub: Hub,
        status: Arc<Status>,
        model: ModelInfo,
        shutdown: watch::Receiver<bool>,
    ) -> HttpState {
        HttpState {
            hub,
            status,
            model: Arc::new(model),
            config: Arc::new(api::redacted_config(config)),
            token: auth::Token::new(&config.http.token),
            viewer_slots: Arc::new(Semaphore::new(config.http.max_viewers)),
            max_viewers: config.http.max_viewers,
            viewers: Arc::new(AtomicUsize::new(0)),
            shutdown,
        }
    }
}

/// Binds the configured address (validated beforehand by the config).
pub async fn bind(listen: &str) -> Result<TcpListener, HttpError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| HttpError::Bind {
            addr: listen.to_string(),
            source,
        })
}

/// The address to give people for `local`: an unspecified address
/// (`0.0.0.0`, `::`) is reached through loopback from this machine.
pub fn viewer_url(local: SocketAddr) -> String {
    let host = match local {
        SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_string(),
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    format!("http://{host}:{}/", local.port())
}

pub fn router(state: HttpState) -> Router {
    let protected = Router::new()
        .route("/", get(viewer::page))
        .route("/ws", get(viewer::stream))
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/config", get(api::config))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require,
        ));
    // Health probes rarely carry credentials, and the answer reveals only
    // whether frames flow.
    Router::new()
        .route("/healthz", get(api::healthz))
        .merge(protected)
        .with_state(state)
}

/// Says where the viewer is (log and stdout, never the token itself) and
/// serves on a task of its own until shutdown.
pub fn start(listener: TcpListener, state: HttpState, token: bool) -> JoinHandle<()> {
    let url = match listener.local_addr() {
        Ok(local) => viewer_url(local),
        Err(_) => "(address unknown)".into(),
    };
    let token = if token { "?token=<http.token>" } else { "" };
    info!(url = %url, "viewer");
    println!("kao: viewer at {url}{token}");
    tokio::spawn(serve(listener, state))
}

/// Serves until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: HttpState) {
    let mut shutdown = state.shutdown.clone();
    let app = router(state);
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(err) = axum::serve(listener::Limited::new(listener), app)
        .with_graceful_shutdown(stopped)
        .await
    {
        error!(cause = %err, "http server stopped");
    }
}
