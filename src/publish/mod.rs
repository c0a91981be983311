//! Publishing results to clients over a Unix socket (tokio).
//!
//! The inference thread hands each result to a [`Hub`], a broadcast channel
//! with a short buffer. Every client has its own task reading from it: a
//! client that reads too slowly misses messages (and is told how many), but
//! never slows the pipeline or the other clients.

pub mod protocol;
mod server;
mod socket;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use base64::Engine;
use opencv::core::Mat;
use tokio::sync::broadcast;

pub use server::serve;
pub use socket::{bind, PublishError, SocketFile};

use crate::inference::Face;
use crate::status::Status;
use protocol::{FrameMsg, ServerMsg, StatusReport};

/// Messages buffered per client before a slow one starts missing them.
pub const CLIENT_BUFFER: usize = 16;

/// One frame's result, shared by all clients.
pub struct Published {
    /// The frame message as a JSON line, without the image.
    line: String,
    message: FrameMsg,
    /// The frame and its faces, to annotate when a client wants the JPEG.
    image: Option<(Mat, Vec<Face>)>,
    /// The annotated JPEG (base64), made once by the first client that asks.
    jpeg: OnceLock<Option<String>>,
    /// The frame as it was captured, JPEG, for browser viewers that draw
    /// the overlays themselves; made once by the first viewer that asks.
    raw_jpeg: OnceLock<Option<Arc<Vec<u8>>>>,
    quality: i32,
}

impl Published {
    pub fn new(message: FrameMsg, image: Mat, faces: Vec<Face>, quality: i32) -> Published {
        Published {
            line: ServerMsg::Frame(message.clone()).to_line(),
            message,
            image: Some((image, faces)),
            jpeg: OnceLock::new(),
            raw_jpeg: OnceLock::new(),
            quality,
        }
    }

    /// The line to send: with the annotated JPEG when asked for (and
    /// encodable), and with this client's count of missed messages.
    pub fn line(&self, jpeg: bool, missed: u64) -> String {
        let image = if jpeg {
            self.jpeg.get_or_init(|| self.encode()).clone()
        } else {
            None
        };
        if image.is_none() && missed == 0 {
            return self.line.clone();
        }
        let mut msg = self.message.clone();
        msg.missed = missed;
        msg.jpeg = image;
        ServerMsg::Frame(msg).to_line()
    }

    /// The annotated frame as base64 JPEG.
    fn encode(&self) -> Option<String> {
        let (image, faces) = self.image.as_ref()?;
        let drawn = crate::annotate::draw(image, faces).ok()?;
        let bytes = crate::annotate::jpeg(&drawn, self.quality).ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The frame without annotations, JPEG; `None` when it cannot be encoded.
    /// Blocks for the encoding (a few ms) the first time.
    pub fn raw_jpeg(&self) -> Option<Arc<Vec<u8>>> {
        self.raw_jpeg
            .get_or_init(|| {
                let (image, _) = self.image.as_ref()?;
                crate::annotate::jpeg(image, self.quality)
                    .ok()
                    .map(Arc::new)
            })
            .clone()
    }

    pub fn message(&self) -> &FrameMsg {
        &self.message
    }
}

/// What every new client is told first, and the running figures.
#[derive(Clone, Default)]
pub struct ServerInfo {
    pub source: String,
    pub model: String,
    pub providers: BTreeMap<String, String>,
}

/// The meeting point of the inference thread and the client tasks.
#[derive(Clone)]
pub struct Hub {
    frames: broadcast::Sender<Arc<Published>>,
    events: broadcast::Sender<ServerMsg>,
    /// Replaced on reload (a new source or model), so that clients that
    /// connect afterwards are greeted with what is running now.
    info: Arc<RwLock<ServerInfo>>,
    clients: Arc<AtomicUsize>,
    /// The daemon's figures, for clients that ask for them (`status`).
    status: Option<Arc<Status>>,
}

impl Hub {
    pub fn new(info: ServerInfo) -> Hub {
        Hub {
            frames: broadcast::channel(CLIENT_BUFFER).0,
            events: broadcast::channel(CLIENT_BUFFER).0,
            info: Arc::new(RwLock::new(info)),
            clients: Arc::new(AtomicUsize::new(0)),
            status: None,
        }
    }

    /// Lets clients ask for the daemon's status.
    pub fn with_status(mut self, status: Arc<Status>) -> Hub {
        self.status = Some(status);
        self
    }

    /// What is running now.
    pub fn info(&self) -> ServerInfo {
        self.info.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces what new clients are told (after a reload).
    pub fn set_info(&self, info: ServerInfo) {
        *self.info.write().unwrap_or_else(|p| p.into_inner()) = info;
    }

    /// The answer to a `status` request, from the running figures.
    pub fn status_report(&self) -> Option<StatusReport> {
        let status = self.status.as_ref()?;
        let info = self.info();
        Some(StatusReport {
            source: status.source(),
            fps: (status.fps() * 10.0).round() / 10.0,
            frames_captured: status.get(&status.frames_captured),
            frames_processed: status.get(&status.frames_processed),
            frames_dropped: status.get(&status.frames_dropped),
            frames_failed: status.get(&status.frames_failed),
            clients: self.clients(),
            model: info.model,
            providers: info.providers,
            uptime_s: (status.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        })
    }

    /// Sends a frame result to every client; never blocks.
    pub fn publish(&self, result: Published) {
        // An error only means nobody is connected.
        let _ = self.frames.send(Arc::new(result));
    }

    /// Sends a non-frame message (source state, shutdown) to every client.
    pub fn announce(&self, msg: ServerMsg) {
        let _ = self.events.send(msg);
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    pub fn subscribe(
        &self,
    ) -> (
        broadcast::Receiver<Arc<Published>>,
        broadcast::Receiver<ServerMsg>,
    ) {
        (self.frames.subscribe(), self.events.subscribe())
    }
}
