//! `kao watch`: a client that prints what the daemon publishes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::publish::protocol::{ClientMsg, FrameMsg, ServerMsg, StatusReport};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot connect to {path}: {source}; is `kao serve` running with this socket? (see --socket)")]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("connection to the daemon failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon sent something that is not a protocol message: {0}")]
    Protocol(String),
    #[error("the daemon refused us: {0}")]
    Refused(String),
    #[error("the daemon closed the connection after {0} frames")]
    Closed(u64),
}

/// Connects, prints one line per message, and returns after `frames` frame
/// messages (or never, when `frames` is `None`).
pub fn watch(
    socket: &Path,
    frames: Option<u64>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u64, WatchError> {
    let stream = UnixStream::connect(socket).map_err(|source| WatchError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    let mut writer = stream.try_clone()?;
    let subscribe =
        serde_json::to_string(&ClientMsg::Subscribe { jpeg: false }).expect("serialisable");
    writeln!(writer, "{subscribe}")?;

    let mut seen = 0u64;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let msg: ServerMsg = serde_json::from_str(&line)
            .map_err(|e| WatchError::Protocol(format!("{e}: {line:.200}")))?;
        if json {
            writeln!(out, "{line}")?;
        } else if let Some(text) = describe(&msg) {
            writeln!(out, "{text}")?;
        }
        match msg {
            ServerMsg::Frame(_) => seen += 1,
            ServerMsg::Error { message } => return Err(WatchError::Refused(message)),
            ServerMsg::Bye { .. } => return Err(WatchError::Closed(seen)),
            _ => {}
        }
        if frames.is_some_and(|n| seen >= n) {
            return Ok(seen);
        }
    }
    Err(WatchError::Closed(seen))
}

/// How long `kao status` waits for the daemon's answer.
pub const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks a running daemon for its status (`kao status`).
pub fn query_status(socket: &Path) -> Result<StatusReport, WatchError> {
    let stream = UnixStream::connect(socket).map_err(|source| WatchError::Connect {
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(STATUS_TIMEOUT))?;
    stream.set_write_timeout(Some(STATUS_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let request = serde_json::to_string(&ClientMsg::Status).expect("serialisable");
    // A daemon with no room left answers "too many clients" and closes at
    // once, so the request may not get through; its answer still explains.
    let sent = writeln!(writer, "{request}");
    // Frames and events may come first; the answer follows soon after.
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let msg: ServerMsg = serde_json::from_str(&line)
            .map_err(|e| WatchError::Protocol(format!("{e}: {line:.200}")))?;
        match msg {
            ServerMsg::Status(report) => return Ok(*report),
            ServerMsg::Error { message } => return Err(WatchError::Refused(message)),
            ServerMsg::Bye { .. } => return Err(WatchError::Closed(0)),
            _ => {}
        }
    }
    sent?;
    Err(WatchError::Closed(0))
}

/// The status report as lines for people.
pub fn describe_status(r: &StatusReport) -> String {
    let providers: Vec<String> = r
        .providers
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "source:    {} ({}) {}\nfps:       {:.1}\nframes:    {} processed, {} captured, {} dropped, {} failed\nclients:   {}\nmodel:     {}\nproviders: {}\nuptime:    {:.0} s",
        r.source.state.name(),
        r.source.uri,
        r.source.detail,
        r.fps,
        r.frames_processed,
        r.frames_captured,
        r.frames_dropped,
        r.frames_failed,
        r.clients,
        r.model,
        providers.join(" "),
        r.uptime_s
    )
}

/// A human-readable line for a message.
pub fn describe(msg: &ServerMsg) -> Option<String> {
    Some(match msg {
        ServerMsg::Hello {
            protocol,
            server,
            source,
            model,
            providers,
        } => {
            let providers: Vec<String> =
                providers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("connected to {server} (protocol {protocol}): source {source}, model {model}, providers {}", providers.join(" "))
        }
        ServerMsg::Frame(f) => describe_frame(f),
        ServerMsg::Source { state, detail } => format!("source {state}: {detail}"),
        ServerMsg::Pong => return None,
        ServerMsg::Status(report) => describe_status(report),
        ServerMsg::Error { message } => format!("error from daemon: {message}"),
        ServerMsg::Bye { reason } => format!("daemon says goodbye: {reason}"),
    })
}

fn describe_frame(f: &FrameMsg) -> String {
    let mut s = format!(
        "frame {:>6}  {}x{}  {} face{}  {:>6.1} ms",
        f.seq,
        f.width,
        f.height,
        f.faces.len(),
        if f.faces.len() == 1 { " " } else { "s" },
        f.timings_ms.get("total")
    );
    if f.dropped > 0 || f.missed > 0 {
        s.push_str(&format!("  (dropped {}, missed {})", f.dropped, f.missed));
    }
    // One line per message, faces separated by `|`, so the output greps
    // and pipes well.
    for face in &f.faces {
        let b = &face.bbox;
        let k = &face.keypoints;
        let p = |v: [f64; 2]| format!("{:.0},{:.0}", v[0], v[1]);
        s.push_str(&format!(
            "  | {:.3} box {:.0},{:.0} {:.0}x{:.0} left_eye {} right_eye {} nose {} mouth_left {} mouth_right {}",
            face.score,
            b.x,
            b.y,
            b.w,
            b.h,
            p(k.left_eye),
            p(k.right_eye),
            p(k.nose),
            p(k.mouth_left),
            p(k.mouth_right)
        ));
        if !face.mesh.is_empty() {
            s.push_str(&format!(" mesh {} points", face.mesh.len()));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::protocol::{BoxMsg, FaceMsg, Keypoints, Timings};

    #[test]
    fn a_frame_is_one_readable_line() {
        let face = FaceMsg {
            bbox: BoxMsg {
                x: 10.0,
                y: 20.0,
                w: 30.0,
                h: 40.0,
            },
            score: 0.99,
            keypoints: Keypoints {
                left_eye: [15.0, 30.0],
                right_eye: [25.0, 30.0],
                nose: [20.0, 40.0],
                mouth_left: [16.0, 50.0],
                mouth_right: [24.0, 50.0],
            },
            mesh: Vec::new(),
        };
        let f = FrameMsg {
            seq: 5,
            captured_at_ms: 0.0,
            width: 640,
            height: 480,
            dropped: 1,
            missed: 0,
            timings_ms: Timings(vec![("total".into(), 12.5)]),
            faces: vec![face.clone(), face],
            jpeg: None,
        };
        let line = describe(&ServerMsg::Frame(f)).unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("2 faces") && line.contains("12.5 ms"),
            "{line}"
        );
        assert_eq!(line.matches("left_eye 15,30").count(), 2, "{line}");
    }
}
