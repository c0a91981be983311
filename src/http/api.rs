//! `/healthz`, `/api/v1/status` and `/api/v1/config`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use super::HttpState;
use crate::config::Config;
use crate::status::{SourceState, Status};

/// Frames are said to flow while the last one was processed at most this
/// long ago. Generous: MTCNN on a small CPU may run at a few frames/s.
const HEALTHY_WITHIN_S: f64 = 5.0;

/// What replaces a secret in the API.
const REDACTED: &str = "<redacted>";

/// Why the daemon is not healthy, or `None` while frames flow.
pub fn unhealthy(status: &Status) -> Option<String> {
    let source = status.source();
    match source.state {
        SourceState::Starting => return Some(format!("source {} is starting", source.uri)),
        SourceState::Lost => return Some(format!("source lost: {}", source.detail)),
        SourceState::Ended => return Some(format!("source ended: {}", source.detail)),
        SourceState::Up => {}
    }
    match status.since_last_frame() {
        None => Some("no frame processed yet (models loading or first frame in inference)".into()),
        Some(s) if s > HEALTHY_WITHIN_S => Some(format!(
            "no frame processed for {s:.1} s (more than {HEALTHY_WITHIN_S} s); inference is stuck or far too slow"
        )),
        Some(_) => None,
    }
}

pub async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    match unhealthy(&state.status) {
        None => (StatusCode::OK, "ok: frames are flowing\n".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

pub async fn status(State(state): State<HttpState>) -> Json<Value> {
    let s = &state.status;
    let source = s.source();
    let latency: BTreeMap<String, Value> = s
        .latencies()
        .into_iter()
        .map(|(stage, h)| {
            let mean = if h.count > 0 {
                h.sum_ms / h.count as f64
            } else {
                0.0
            };
            (
                stage,
                json!({ "mean_ms": (mean * 1000.0).round() / 1000.0, "count": h.count }),
            )
        })
        .collect();
    let reason = unhealthy(s);
    Json(json!({
        "server": format!("kao {}", env!("CARGO_PKG_VERSION")),
        "uptime_s": (s.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "healthy": reason.is_none(),
        "unhealthy_reason": reason,
        "source": {
            "uri": redact_uri(&source.uri),
            "state": source.state,
            "detail": source.detail,
            "since_unix_ms": source.since_unix_ms,
        },
        "model": { "name": state.model.name, "family": state.model.family },
        "providers": state.hub.info().providers,
        "fps": s.fps(),
        "frames": {
            "captured": s.get(&s.frames_captured),
            "processed": s.get(&s.frames_processed),
            "dropped": s.get(&s.frames_dropped),
            "failed": s.get(&s.frames_failed),
        },
        "faces_detected": s.get(&s.faces_detected),
        "clients": {
            "socket": state.hub.clients(),
            "web": state.viewers.load(Ordering::Relaxed),
            "max_web": state.max_viewers,
        },
        "latency": latency,
    }))
}

pub async fn config(State(state): State<HttpState>) -> Json<Value> {
    Json(state.config.as_ref().clone())
}

/// The configuration as JSON with the HTTP token and any password in the
/// source URI replaced.
pub fn redacted_config(config: &Config) -> Value {
    let mut v = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(token) = v.pointer_mut("/http/token") {
        if token.as_str().is_some_and(|t| !t.is_empty()) {
            *token = Value::String(REDACTED.into());
        }
    }
    if let Some(uri) = v.pointer_mut("/source/uri") {
        if let Some(u) = uri.as_str() {
            *uri = Value::String(redact_uri(u));
        }
    }
    v
}

/// `rtsp://user:secret@host/…` → `rtsp://user:<redacted>@host/…`; other
/// strings unchanged.
pub fn redact_uri(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return uri.to_string();
    };
    let user = userinfo.split(':').next().unwrap_or("");
    if !userinfo.contains(':') {
        return uri.to_string();
    }
    format!("{scheme}://{user}:{REDACTED}@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_source_uris_are_redacted() {
        assert_eq!(
            redact_uri("rtsp://cam:hunter2@10.0.0.5:554/stream"),
            "rtsp://cam:<redacted>@10.0.0.5:554/stream"
        );
        assert_eq!(redact_uri("rtsp://10.0.0.5/a@b"), "rtsp://10.0.0.5/a@b");
        assert_eq!(redact_uri("/videos/a:b@c.avi"), "/videos/a:b@c.avi");
        assert_eq!(redact_uri("camera:0"), "camera:0");
    }

    #[test]
    fn config_token_is_redacted_and_empty_token_left_empty() {
        let mut c = Config::default();
        assert_eq!(redacted_config(&c)["http"]["token"], "");
        c.http.token = "a-very-secret-token".into();
        let v = redacted_config(&c);
        assert_eq!(v["http"]["token"], REDACTED);
        assert!(!v.to_string().contains("a-very-secret-token"));
        assert_eq!(v["detector"]["min_face_size"], 20.0);
    }

    #[test]
    fn health_names_the_reason() {
        let s = Status::new("/v.avi");
        assert!(unhealthy(&s).unwrap().contains("starting"));
        s.set_source(SourceState::Up, "open");
        assert!(unhealthy(&s).unwrap().contains("no frame processed yet"));
        s.frame_processed(1, &[]);
        assert_eq!(unhealthy(&s), None);
        s.set_source(SourceState::Lost, "camera unplugged");
        assert_eq!(
            unhealthy(&s).unwrap(),
            "source lost: camera unplugged".to_string()
        );
    }
}
