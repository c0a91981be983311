//! The HTTP server of a real daemon on real video: health, metrics (checked
//! by Prometheus' own `promtool`), the JSON API, the access token, the
//! viewer's WebSocket with many and stalled viewers, and the viewer page in
//! headless Chromium.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, MEGAMIND, MESSI};
use serde_json::Value;

/// Longest any wait may take before the test fails; nothing is asserted
/// about how fast things happen.
const DEADLINE: Duration = Duration::from_secs(60);
const TOKEN: &str = "test-token-0123456789abcdef";

/// One HTTP/1.1 response.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

/// `GET path` on the daemon at `url` (`http://host:port/`), with extra
/// header lines.
fn get(url: &str, path: &str, headers: &[&str]) -> Reply {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn get_json(url: &str, path: &str, headers: &[&str]) -> Value {
    let r = get(url, path, headers);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
}

/// Waits until `/healthz` says frames flow.
fn wait_healthy(d: &Daemon, url: &str) {
    let start = Instant::now();
    loop {
        let r = get(url, "/healthz", &[]);
        if r.status == 200 {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "never healthy: {} {}\n{}",
            r.status,
            r.body,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one sample line of `/metrics`.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

/// A configuration file for the daemon, under the daemon's own temp dir.
fn config_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kao.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn need(tool: &str, path: &Path) {
    assert!(
        path.exists(),
        "{tool} is missing ({}): run `make setup` (scripts/setup.sh installs it)",
        path.display()
    );
}

#[test]
fn healthz_is_200_while_frames_flow() {
    let d = Daemon::start(MEGAMIND, &[]);
    let url = d.http_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    wait_healthy(&d, &url);
    let r = get(&url, "/healthz", &[]);
    assert!(r.body.starts_with("ok"), "{}", r.body);
}

#[test]
fn healthz_is_503_with_the_reason_once_the_source_ended() {
    let (_dir, cfg) = config_file("[source]\nloop_at_end = false\n");
    let d = Daemon::start(MESSI, &["--config", cfg.to_str().unwrap()]);
    let url = d.http_url();
    let start = Instant::now();
    let r = loop {
        let r = get(&url, "/healthz", &[]);
        if r.status == 503 && r.body.contains("ended") {
            break r;
        }
        assert!(start.elapsed() < DEADLINE, "{} {}", r.status, r.body);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(r.body.starts_with("source ended"), "{}", r.body);
    let status = get_json(&url, "/api/v1/status", &[]);
    assert_eq!(status["healthy"], false);
    assert_eq!(status["source"]["state"], "ended");
}

#[test]
fn metrics_pass_promtool_and_count_real_frames() {
    let promtool = Path::new("/usr/bin/promtool");
    need("promtool (Debian's prometheus package)", promtool);
    let d = Daemon::start(MEGAMIND, &[]);
    let url = d.http_url();
    wait_healthy(&d, &url);
    // A socket client, to be counted.
    let _client = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    let start = Instant::now();
    let metrics = loop {
        let r = get(&url, "/metrics", &[]);
        assert_eq!(r.status, 200);
        assert!(r.headers.contains("text/plain; version=0.0.4"));
        // Megamind has a face in nearly every frame; the very first may not.
        if sample(&r.body, "kao_clients{kind=\"socket\"}") == 1.0
            && sample(&r.body, "kao_faces_detected_total") >= 1.0
        {
            break r.body;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "socket client never counted, or no face detected:\n{}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let processed = sample(&metrics, "kao_frames_processed_total");
    assert!(processed >= 1.0);
    assert!(sample(&metrics, "kao_frames_captured_total") >= processed);
    assert_eq!(sample(&metrics, "kao_source_up"), 1.0);
    assert_eq!(sample(&metrics, "kao_source_state{state=\"up\"}"), 1.0);
    assert_eq!(sample(&metrics, "kao_clients{kind=\"web\"}"), 0.0);
    // Every processed frame is in the total histogram's +Inf bucket, and
    // the buckets are cumulative.
    let total = |le: &str| {
        sample(
            &metrics,
            &format!("kao_stage_latency_seconds_bucket{{stage=\"total\",le=\"{le}\"}}"),
        )
    };
    assert!(total("+Inf") >= processed);
    assert!(total("0.001") <= total("0.1") && total("0.1") <= total("+Inf"));
    // The default model family (BlazeFace + face mesh) has these stages.
    assert!(
        sample(
            &metrics,
            "kao_stage_latency_seconds_sum{stage=\"landmarks\"}"
        ) > 0.0
    );
    assert!(metrics.contains("family=\"blazeface\""), "{metrics}");
    assert!(metrics.contains("network=\"landmarks\",provider=\"cpu\"} 1"));
    assert!(metrics.contains(&format!(
        "kao_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
}

#[test]
fn status_and_config_api_describe_the_running_daemon() {
    let d = Daemon::start(MEGAMIND, &[]);
    let url = d.http_url();
    wait_healthy(&d, &url);
    let s = get_json(&url, "/api/v1/status", &[]);
    assert_eq!(s["healthy"], true);
    assert_eq!(s["source"]["uri"], MEGAMIND);
    assert_eq!(s["source"]["state"], "up");
    assert_eq!(s["model"]["family"], "blazeface");
    assert_eq!(s["providers"]["landmarks"], "cpu");
    assert!(s["frames"]["processed"].as_u64().unwrap() >= 1);
    assert!(s["latency"]["total"]["mean_ms"].as_f64().unwrap() > 0.0);
    assert!(s["uptime_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(s["clients"]["web"], 0);

    let c = get_json(&url, "/api/v1/config", &[]);
    assert_eq!(c["source"]["uri"], MEGAMIND);
    assert_eq!(c["http"]["listen"], "127.0.0.1:0");
    assert_eq!(c["http"]["token"], "");
    assert_eq!(c["detector"]["thresholds"][2], 0.7);

    let r = get(&url, "/nothing-here", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn beyond_loopback_the_token_is_required_and_never_shown() {
    let (_dir, cfg) = config_file(&format!(
        "[http]\nlisten = \"0.0.0.0:0\"\nallow_remote = true\ntoken = \"{TOKEN}\"\n"
    ));
    let d = Daemon::start(MEGAMIND, &["--config", cfg.to_str().unwrap()]);
    // Listening on all addresses; this test only talks to loopback.
    let url = d.http_url();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let bearer = format!("Authorization: Bearer {TOKEN}");
    let with_query = |path: &str| format!("{path}?token={TOKEN}");

    for path in ["/", "/ws", "/metrics", "/api/v1/status", "/api/v1/config"] {
        let r = get(&url, path, &[]);
        assert_eq!(r.status, 401, "{path} without a token: {}", r.body);
        assert!(r.body.contains("token"), "{}", r.body);
        assert!(r.headers.contains("www-authenticate: bearer"));
        let r = get(
            &url,
            path,
            &["Authorization: Bearer wrong-token-0123456789"],
        );
        assert_eq!(r.status, 401, "{path} with a wrong token");
        let r = get(&url, &format!("{path}?token=wrong"), &[]);
        assert_eq!(r.status, 401, "{path} with a wrong ?token");
    }
    let r = get(&url, &with_query("/"), &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("kaoViewer"));
    assert_eq!(get(&url, "/metrics", &[&bearer]).status, 200);
    assert_eq!(get(&url, &with_query("/metrics"), &[]).status, 200);
    // Health probes need no token.
    assert_ne!(get(&url, "/healthz", &[]).status, 401);

    // The WebSocket: refused without, served with the token.
    let ws = |u: &str| tungstenite::client::IntoClientRequest::into_client_request(u).unwrap();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let refused = tungstenite::client(
        ws(&format!("ws://{host}/ws")),
        TcpStream::connect(host).unwrap(),
    );
    match refused {
        Err(tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 401)
        }
        other => panic!("WebSocket without a token was not refused: {other:?}"),
    }
    let (mut socket, _) = tungstenite::client(
        ws(&format!("ws://{host}/ws?token={TOKEN}")),
        TcpStream::connect(host).unwrap(),
    )
    .expect("WebSocket with the token");
    let hello = socket.read().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""), "{hello}");

    // The token is redacted in the API and absent from the log.
    let c = get(&url, "/api/v1/config", &[&bearer]);
    assert!(c.body.contains("<redacted>"), "{}", c.body);
    assert!(!c.body.contains(TOKEN));
    drop(socket);
    assert!(!d.log().contains(TOKEN), "the token was logged");
}

#[test]
fn beyond_loopback_without_token_or_permission_kao_refuses_to_start() {
    let run = |args: &[&str]| {
        Command::new(common::kao_bin())
            .current_dir(common::repo())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "serve",
        "--http",
        "0.0.0.0:0",
        "--socket",
        "/tmp/kao-http-refused.sock",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.allow_remote") && err.contains("0.0.0.0"),
        "{err}"
    );

    let (_dir, cfg) = config_file("[http]\nlisten = \"[::]:0\"\nallow_remote = true\n");
    let out = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.token") && err.contains("must be set"),
        "{err}"
    );
}

/// A viewer that reads and acknowledges frames as the page does.
fn acking_viewer(host: &str, frames: usize) -> (usize, usize) {
    let req =
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{host}/ws"))
            .unwrap();
    let tcp = TcpStream::connect(host).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut ws, _) = tungstenite::client(req, tcp).unwrap();
    let (mut jpegs, mut faces) = (0, 0);
    while jpegs < frames {
        match ws.read().unwrap() {
            tungstenite::Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "frame" && !v["faces"].as_array().unwrap().is_empty() {
                    faces += 1;
                }
            }
            tungstenite::Message::Binary(b) => {
                // A JPEG: starts with SOI.
                assert_eq!(&b[..2], &[0xff, 0xd8]);
                jpegs += 1;
                ws.send(tungstenite::Message::text("{\"type\":\"ack\"}"))
                    .unwrap();
            }
            _ => {}
        }
    }
    (jpegs, faces)
}

#[test]
fn many_and_stalled_viewers_lose_frames_but_never_slow_the_pipeline() {
    const VIEWERS: usize = 6;
    const STALLED: usize = 3;
    const FRAMES: usize = 15;
    let d = Daemon::start(MEGAMIND, &[]);
    let url = d.http_url();
    wait_healthy(&d, &url);
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let processed = || {
        get_json(&url, "/api/v1/status", &[])["frames"]["processed"]
            .as_u64()
            .unwrap()
    };

    // The pipeline's rate with no viewer, for comparison (reported only).
    let (t0, p0) = (Instant::now(), processed());
    std::thread::sleep(Duration::from_secs(5));
    let alone = (processed() - p0) as f64 / t0.elapsed().as_secs_f64();

    // Stalled viewers: they complete the handshake and then read nothing.
    let stalled: Vec<TcpStream> = (0..STALLED)
        .map(|i| {
            use base64::Engine;
            let key = base64::engine::general_purpose::STANDARD.encode(format!("stalled-viewer-{i}"));
            let mut s = TcpStream::connect(&host).unwrap();
            write!(
                s,
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    let before = processed();
    let t = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..VIEWERS)
            .map(|_| scope.spawn(|| acking_viewer(&host, FRAMES)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let during = processed() - before;
    let status = get_json(&url, "/api/v1/status", &[]);
    eprintln!(
        "pipeline alone {alone:.1} frames/s; with {VIEWERS} viewers + {STALLED} stalled: {:.1} frames/s while each viewer received {FRAMES} frames in {secs:.1} s ({:.1} frames/s per viewer)",
        during as f64 / secs,
        FRAMES as f64 / secs
    );
    for (jpegs, faces) in &results {
        assert_eq!(*jpegs, FRAMES);
        assert!(
            *faces >= FRAMES - 2,
            "only {faces}/{FRAMES} frames had faces"
        );
    }
    // The stalled viewers are still connected, and the pipeline went on.
    assert!(status["clients"]["web"].as_u64().unwrap() >= STALLED as u64);
    assert!(
        during >= FRAMES as u64,
        "pipeline processed {during} frames"
    );
    // A socket client is still served promptly alongside them.
    let mut out = Vec::new();
    assert_eq!(
        kao::watch::watch(&d.socket, Some(5), true, &mut out).unwrap(),
        5
    );
    drop(stalled);
}

#[test]
fn viewer_in_headless_chromium_draws_faces_and_reconnects() {
    let browser_dir = common::repo().join("tests/browser");
    need(
        "chromium (Debian's package)",
        Path::new("/usr/bin/chromium"),
    );
    need(
        "playwright-core (npm, tests/browser/package-lock.json)",
        &browser_dir.join("node_modules/playwright-core"),
    );
    let artefacts = common::repo().join("target/artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("viewer.png");
    let _ = std::fs::remove_file(&screenshot);

    let mut d = Daemon::start(MEGAMIND, &[]);
    let url = d.http_url();
    let mut node = Command::new("node")
        .arg(browser_dir.join("viewer.mjs"))
        .arg(&url)
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (Debian's nodejs package) runs the browser test");
    let mut to_node = node.stdin.take().unwrap();
    let mut from_node = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut phase = |name: &str| -> Value {
        let line = from_node
            .next()
            .unwrap_or_else(|| panic!("the browser script ended before phase {name}"))
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v.get("error").is_none(), "browser script: {}", v["error"]);
        assert_eq!(v["phase"], name, "{v}");
        v
    };

    // 1. Live frames with the faces drawn.
    let shown = phase("shown");
    eprintln!(
        "viewer: {} (screenshot {})",
        shown["stats"],
        screenshot.display()
    );
    assert_eq!(shown["errors"], serde_json::json!([]), "page errors");
    assert_eq!(
        shown["foreign"],
        serde_json::json!([]),
        "requests beyond kao"
    );
    let canvas = &shown["canvas"];
    assert_eq!(
        (canvas["width"].as_i64(), canvas["height"].as_i64()),
        (Some(720), Some(528))
    );
    let faces = canvas["faces"].as_array().unwrap();
    assert!(!faces.is_empty(), "{canvas}");
    for f in faces {
        let (edge, on) = (
            f["edgePoints"].as_u64().unwrap(),
            f["edgeInBoxColour"].as_u64().unwrap(),
        );
        assert!(on * 10 >= edge * 9, "box not drawn on the canvas: {f}");
        assert!(
            f["keypointsInColour"].as_u64().unwrap() >= 4,
            "keypoints not drawn: {f}"
        );
    }
    assert_eq!(
        shown["paused_frames_held"], true,
        "pause did not hold the picture"
    );
    assert_eq!(shown["boxes_toggle_hides_boxes"], true, "{shown}");
    assert_eq!(shown["mesh_points_drawn"], 2, "{shown}");
    assert!(shown["stats"]["latency_p50_ms"].as_f64().unwrap() > 0.0);
    assert!(screenshot.exists());

    // 2. The daemon stops: the page says so.
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    d.signal(15);
    assert!(d.wait(20).is_some_and(|s| s.success()), "{}", d.log());
    writeln!(to_node, "stopped").unwrap();
    let stopped = phase("stopped");
    assert!(
        stopped["banner"].as_str().unwrap().contains("kao"),
        "{stopped}"
    );

    // 3. It comes back on the same port: the page reconnects by itself.
    let _d2 = Daemon::start(MEGAMIND, &["--http", &format!("127.0.0.1:{port}")]);
    writeln!(to_node, "restarted").unwrap();
    let back = phase("restarted");
    assert_eq!(back["errors"], serde_json::json!([]));
    drop(to_node);
    assert!(node.wait().unwrap().success());
    println!("viewer screenshot: {}", screenshot.display());
}

#[test]
fn viewers_beyond_max_viewers_are_refused_with_the_reason() {
    let (_dir, cfg) = config_file("[http]\nmax_viewers = 1\n");
    let d = Daemon::start(MEGAMIND, &["--config", cfg.to_str().unwrap()]);
    let url = d.http_url();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let ws = || {
        tungstenite::client::IntoClientRequest::into_client_request(format!("ws://{host}/ws"))
            .unwrap()
    };
    let (mut first, _) = tungstenite::client(ws(), TcpStream::connect(host).unwrap()).unwrap();
    assert!(first.read().unwrap().to_text().unwrap().contains("hello"));
    match tungstenite::client(ws(), TcpStream::connect(host).unwrap()) {
        Err(tungstenite::handshake::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
            assert_eq!(r.status(), 503);
            let body =
                String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned();
            assert!(body.contains("max_viewers = 1"), "{body}");
        }
        other => panic!("a second viewer was not refused: {other:?}"),
    }
    // Once the first leaves, its place is free again.
    drop(first);
    let start = Instant::now();
    loop {
        if let Ok((mut again, _)) = tungstenite::client(ws(), TcpStream::connect(host).unwrap()) {
            assert!(again.read().unwrap().to_text().unwrap().contains("hello"));
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the viewer slot was never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
