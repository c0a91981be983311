//! The browser viewer: one page with its script and style embedded in the
//! binary, and its WebSocket stream.
//!
//! The stream sends each frame as two messages: the frame's JSON (the
//! socket protocol's `frame` message, `docs/PROTOCOL.md`), then the frame
//! itself as a binary JPEG without annotations; the page draws boxes,
//! scores and keypoints from the JSON. The page acknowledges each frame it
//! has shown (`{"type":"ack"}`), and at most [`IN_FLIGHT`] frames go
//! unacknowledged: a slow viewer is sent the newest frame when it is ready
//! rather than a queue of old ones, so its latency stays low and nothing
//! piles up in the server or in the network buffers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tracing::{debug, info};

use super::HttpState;
use crate::publish::protocol::{ServerMsg, PROTOCOL_VERSION};
use crate::publish::Published;

/// Frames sent and not yet acknowledged, at most. Two keep the link busy
/// (one being shown, one on the way) without queueing stale frames.
const IN_FLIGHT: usize = 2;
/// A send that makes no progress for this long means the viewer is gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The page: HTML, style and script in one response, so a page opened with
/// `?token=` needs no further authenticated asset requests.
const PAGE: &str = concat!(
    include_str!("assets/viewer.html"),
    "<style>\n",
    include_str!("assets/viewer.css"),
    "</style>\n<script>\n",
    include_str!("assets/viewer.js"),
    "</script>\n</body>\n</html>\n"
);

pub async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
}

pub async fn stream(State(state): State<HttpState>, ws: WebSocketUpgrade) -> Response {
    let Ok(slot) = state.viewer_slots.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "kao: too many viewers (http.max_viewers = {}); try again later\n",
                state.max_viewers
            ),
        )
            .into_response();
    };
    ws.on_upgrade(move |socket| viewer(socket, state, slot))
}

/// What a viewer may send.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ViewerMsg {
    /// A frame was shown.
    Ack,
}

/// Serves one viewer until it leaves or the daemon stops.
async fn viewer(mut socket: WebSocket, state: HttpState, _slot: OwnedSemaphorePermit) {
    let n = state.viewers.fetch_add(1, Ordering::Relaxed) + 1;
    info!(viewers = n, "viewer connected");
    let (mut frames, mut events) = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let info = state.hub.info();
    let hello = ServerMsg::Hello {
        protocol: PROTOCOL_VERSION,
        server: format!("kao {}", env!("CARGO_PKG_VERSION")),
        source: super::api::redact_uri(&info.source),
        model: info.model.clone(),
        providers: info.providers.clone(),
    };
    let mut in_flight = 0usize;
    let mut missed = 0u64;
    // The newest frame not yet sent, waiting for an acknowledgement.
    let mut pending: Option<Arc<Published>> = None;
    let mut ok = send(&mut socket, Message::Text(hello.to_line().into())).await;
    let reason = loop {
        if !ok {
            break "send failed or timed out";
        }
        tokio::select! {
            _ = shutdown.changed() => {
                let bye = ServerMsg::Bye { reason: "kao is shutting down".into() };
                let _ = send(&mut socket, Message::Text(bye.to_line().into())).await;
                let _ = send(&mut socket, Message::Close(None)).await;
                break "server shutdown";
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<ViewerMsg>(text.as_str()) {
                    Ok(ViewerMsg::Ack) => {
                        in_flight = in_flight.saturating_sub(1);
                        if let Some(p) = pending.take() {
                            ok = send_frame(&mut socket, &p, &mut missed, &mut in_flight).await;
                        }
                    }
                    Err(err) => debug!(cause = %err, "viewer sent an unknown message; ignored"),
                },
                Some(Ok(Message::Close(_))) | None => break "viewer closed the connection",
                Some(Ok(_)) => {} // pings are answered by the library
                Some(Err(_)) => break "connection failed",
            },
            frame = frames.recv() => match frame {
                Ok(p) => {
                    if pending.replace(p).is_some() {
                        missed += 1;
                    }
                    if in_flight < IN_FLIGHT {
                        if let Some(p) = pending.take() {
                            ok = send_frame(&mut socket, &p, &mut missed, &mut in_flight).await;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => missed += n,
                Err(broadcast::error::RecvError::Closed) => break "publisher closed",
            },
            event = events.recv() => match event {
                Ok(msg) => ok = send(&mut socket, Message::Text(msg.to_line().into())).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break "publisher closed",
            },
        }
    };
    let n = state.viewers.fetch_sub(1, Ordering::Relaxed) - 1;
    info!(viewers = n, reason, "viewer disconnected");
}

/// Sends a frame's JSON, then its JPEG (encoded off the async threads, once
/// per frame for all viewers). False when the viewer is gone.
async fn send_frame(
    socket: &mut WebSocket,
    frame: &Arc<Published>,
    missed: &mut u64,
    in_flight: &mut usize,
) -> bool {
    let encode = frame.clone();
    let jpeg = tokio::task::spawn_blocking(move || encode.raw_jpeg())
        .await
        .ok()
        .flatten();
    let Some(jpeg) = jpeg else {
        // Nothing to show; the frame counts as missed.
        *missed += 1;
        return true;
    };
    let line = frame.line(false, *missed);
    *missed = 0;
    *in_flight += 1;
    send(socket, Message::Text(line.into())).await
        && send(socket, Message::Binary(Bytes::from(jpeg.as_ref().clone()))).await
}

async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await,
        Ok(Ok(()))
    )
}
