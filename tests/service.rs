//! kao as a service, run as a real child process: systemd notifications,
//! signals, reloading with clients connected, a source that fails and comes
//! back, bad input of every kind, and memory over a long run.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Daemon, MEGAMIND, MESSI};
use kao::publish::protocol::{FrameMsg, ServerMsg};

fn astronaut() -> PathBuf {
    let p = common::repo().join(".cache/assets/astronaut.png");
    common::require(&p);
    p
}

struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(socket: &Path) -> Client {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn next(&mut self) -> ServerMsg {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the daemon closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn frame(&mut self) -> FrameMsg {
        loop {
            if let ServerMsg::Frame(f) = self.next() {
                return f;
            }
        }
    }

    /// Reads until a message satisfies `want`, at most `limit` messages.
    fn until(&mut self, limit: usize, want: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        for _ in 0..limit {
            let m = self.next();
            if want(&m) {
                return m;
            }
        }
        panic!("no such message among {limit}");
    }
}

/// A config file in `dir` with `body` after settings that keep tests quick.
fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("kao.toml");
    let text = format!(
        "[models]\nmanifest = \"{}\"\n{body}",
        common::repo().join("models/mtcnn/manifest.toml").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn folder_with(images: &[(&str, &Path)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, from) in images {
        std::fs::copy(from, dir.path().join(name)).unwrap();
    }
    dir
}

fn source_state(m: &ServerMsg) -> Option<&str> {
    match m {
        ServerMsg::Source { state, .. } => Some(state),
        _ => None,
    }
}

#[test]
fn systemd_is_told_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let run = tempfile::tempdir().unwrap();
    let mut d = Daemon::start_env(
        MEGAMIND,
        &run.path().join("kao.sock"),
        run,
        &[],
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            // A ping every half second when the pipeline makes progress.
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < Duration::from_secs(6) {
        let n = notify.recv(&mut buf).unwrap();
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got.contains(&"READY=1".to_string()), "{got:?}");
    let status = got
        .iter()
        .rfind(|m| m.starts_with("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS in {got:?}"));
    assert!(
        status.contains("source up") && status.contains("fps"),
        "{status}"
    );
    let pings = got.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 4, "only {pings} watchdog pings in 6 s: {got:?}");

    d.signal(15);
    let stopping = (0..50)
        .map(|_| {
            let n = notify.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .find(|m| m == "STOPPING=1");
    assert!(stopping.is_some());
    assert!(d.wait(10).expect("exit after SIGTERM").success());
}

/// A detector that never returns from its first frame: the watchdog must
/// go quiet, because pings come from progress, not from a timer.
#[test]
fn watchdog_goes_quiet_when_inference_is_stuck() {
    use kao::inference::{DetectError, Detector, Face, StageTimings};
    use kao::service::notify::{Notifier, Watchdog};
    use std::sync::{Arc, Mutex};

    /// Answers the first frame at once, then never again.
    struct Stuck(Arc<Mutex<bool>>, u32);
    impl Detector for Stuck {
        fn detect(
            &mut self,
            _: &opencv::core::Mat,
        ) -> Result<(Vec<Face>, StageTimings), DetectError> {
            self.1 += 1;
            if self.1 == 1 {
                return Ok((Vec::new(), StageTimings::default()));
            }
            *self.0.lock().unwrap() = true;
            std::thread::sleep(Duration::from_secs(3600));
            unreachable!()
        }
        fn providers(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn set_params(&mut self, _: kao::config::DetectorConfig) {}
    }

    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let images = folder_with(&[("a.jpg", Path::new(MESSI))]);
    let mut config = common::config();
    config.source.uri = images.path().display().to_string();
    // One frame every 2 s: between the first (answered) and the second
    // (never answered) the loop idles, and pings.
    config.source.image_fps = 0.5;
    let status = Arc::new(kao::status::Status::new(&config.source.uri));
    let hub = kao::publish::Hub::new(Default::default());
    let stuck = Arc::new(Mutex::new(false));
    // Kept alive, never stopped: its inference thread is stuck for good.
    let pipeline =
        kao::pipeline::Pipeline::start(&config, Box::new(Stuck(stuck.clone(), 0)), hub, status)
            .unwrap();
    pipeline.set_watchdog(Watchdog::new(
        Notifier::to_path(&notify_path).unwrap(),
        Duration::from_millis(200),
    ));
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .expect("a ping while the pipeline runs");
    assert_eq!(&buf[..n], b"WATCHDOG=1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !*stuck.lock().unwrap() {
        assert!(Instant::now() < deadline, "the detector never got a frame");
        let _ = notify.recv(&mut buf);
    }
    // Drain a ping that may have been on its way, then silence.
    while notify.recv(&mut buf).is_ok() {}
    assert!(
        notify.recv(&mut buf).is_err(),
        "watchdog pinged while inference was stuck"
    );
    std::mem::forget(pipeline);
}

#[test]
fn sigterm_and_sigint_stop_within_a_second_telling_clients() {
    for sig in [15, 2] {
        let mut d = Daemon::start(MEGAMIND, &[]);
        let mut c = Client::connect(&d.socket);
        c.frame();
        let pid = d.child.id();
        let start = Instant::now();
        d.signal(sig);
        let bye = c.until(100, |m| matches!(m, ServerMsg::Bye { .. }));
        assert!(matches!(bye, ServerMsg::Bye { .. }));
        let status = d.wait(10).expect("kao did not exit");
        let took = start.elapsed();
        eprintln!(
            "signal {sig}: exited after {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
        assert!(status.success(), "{status}");
        // Well under a second on an idle machine (a frame in inference is
        // finished first); the margin is for a loaded CI machine, and is
        // the unit's TimeoutStopSec.
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(!d.socket.exists(), "socket file left behind");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process still there"
        );
    }
}

/// `kao serve --config FILE` (no --source: the file decides, at reload too).
fn serve_config(cfg: &Path) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kao.sock");
    Daemon::spawn(&["--config", cfg.to_str().unwrap()], &socket, dir, &[])
}

/// Waits until the daemon's log contains `text`.
fn log_shows(d: &Daemon, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "log never showed {text:?}:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads frames until one has this size; returns the next few of that size.
fn frames_of_size(c: &mut Client, size: (i32, i32), then: usize) -> Vec<FrameMsg> {
    let mut n = 0;
    while {
        let f = c.frame();
        (f.width, f.height) != size
    } {
        n += 1;
        assert!(n < 200, "no {size:?} frame in 200");
    }
    (0..then).map(|_| c.frame()).collect()
}

#[test]
fn sighup_reloads_with_clients_connected_and_refuses_bad_configs() {
    let messi = folder_with(&[("a.jpg", Path::new(MESSI))]);
    let astro = astronaut();
    let space = folder_with(&[("a.png", &astro)]);
    let dir = tempfile::tempdir().unwrap();
    let source = |folder: &tempfile::TempDir| {
        format!(
            "[source]\nuri = \"{}\"\nimage_fps = 5.0\n",
            folder.path().display()
        )
    };
    let cfg = write_config(dir.path(), &source(&messi));
    let d = serve_config(&cfg);
    let mut c = Client::connect(&d.socket);
    let f = c.frame();
    assert_eq!((f.width, f.height), (548, 342));
    assert_eq!(f.faces.len(), 1);

    // A new source and a smallest face larger than the image: the same
    // connection sees the new frames, without faces.
    write_config(
        dir.path(),
        &format!("{}[detector]\nmin_face_size = 600.0\n", source(&space)),
    );
    d.signal(1);
    for f in frames_of_size(&mut c, (512, 512), 3) {
        assert_eq!((f.width, f.height), (512, 512));
        assert!(f.faces.is_empty(), "min_face_size not applied: {f:?}");
    }
    log_shows(&d, "configuration reloaded");

    // Bad configs are refused by key, and the running one stays.
    let bad = [
        ("[detector]\nmin_face_sise = 30.0\n", "min_face_sise"),
        (
            "[detector]\nthresholds = [0.6, 0.7, 9.0]\n",
            "detector.thresholds",
        ),
        (
            "[source]\nuri = \"/nonexistent/lecture.mp4\"\n",
            "source.uri",
        ),
        (
            "[models]\nmanifest = \"/nonexistent/manifest.toml\"\n",
            "models.manifest",
        ),
        ("this is = = not toml", "line 1"),
    ];
    for (n, (body, key)) in bad.iter().enumerate() {
        // Each bad file is written whole; only the bad manifest needs the
        // source with it (so that the manifest is the one thing wrong).
        let text = if body.starts_with("[models]") {
            format!("{}{body}", source(&space))
        } else {
            body.to_string()
        };
        std::fs::write(dir.path().join("kao.toml"), text).unwrap();
        d.signal(1);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let refusals: Vec<String> = d
                .log()
                .lines()
                .filter(|l| l.contains("reload refused"))
                .map(String::from)
                .collect();
            if refusals.len() > n {
                assert!(
                    refusals[n].contains(key),
                    "{key} not named: {}",
                    refusals[n]
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no refusal for {body:?}:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let f = c.frame();
        assert_eq!((f.width, f.height), (512, 512));
        assert!(f.faces.is_empty());
    }

    // Providers and threads: the detector is rebuilt, clients stay.
    write_config(
        dir.path(),
        &format!("{}[runtime]\nintra_threads = 1\n", source(&space)),
    );
    d.signal(1);
    log_shows(&d, "detector replaced");
    let faces = (0..20)
        .map(|_| c.frame())
        .filter(|f| f.faces.len() == 1)
        .count();
    assert!(
        faces > 0,
        "the rebuilt detector finds no face on the astronaut"
    );
    let status = kao::watch::query_status(&d.socket).unwrap();
    assert!(status.clients >= 2, "{status:?}");
    assert!(status.source.uri.contains(&*space.path().to_string_lossy()));
}

#[test]
fn lost_source_is_reported_retried_and_resumed_while_clients_stay() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("images");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(MESSI, folder.join("a.jpg")).unwrap();
    let cfg = write_config(
        root.path(),
        &format!(
            "[source]\nuri = \"{}\"\nimage_fps = 10.0\n[source_retry]\ninitial_s = 0.2\nmax_s = 0.5\n",
            folder.display()
        ),
    );
    let d = serve_config(&cfg);
    let mut c = Client::connect(&d.socket);
    c.frame();

    // The folder vanishes (a USB stick pulled out).
    let away = root.path().join("away");
    std::fs::rename(&folder, &away).unwrap();
    let lost = c.until(500, |m| source_state(m) == Some("lost"));
    let ServerMsg::Source { detail, .. } = lost else {
        unreachable!()
    };
    assert!(detail.contains("images"), "{detail}");
    let status = kao::watch::query_status(&d.socket).unwrap();
    assert_eq!(status.source.state, kao::status::SourceState::Lost);
    assert_eq!(status.fps, 0.0);
    // Still serving: a new client is greeted.
    let mut late = Client::connect(&d.socket);
    assert!(matches!(late.next(), ServerMsg::Hello { .. }));
    log_shows(&d, "source still lost");

    // It comes back; kao resumes by itself, on the same connection.
    std::fs::rename(&away, &folder).unwrap();
    c.until(500, |m| source_state(m) == Some("up"));
    let f = c.frame();
    assert_eq!((f.width, f.height), (548, 342));
    let status = kao::watch::query_status(&d.socket).unwrap();
    assert_eq!(status.source.state, kao::status::SourceState::Up);
}

fn write_image(path: &Path, image: &opencv::core::Mat) {
    use opencv::core::Vector;
    let ext = format!(".{}", path.extension().unwrap().to_str().unwrap());
    let mut buf = Vector::<u8>::new();
    opencv::imgcodecs::imencode(&ext, image, &mut buf, &Vector::new()).unwrap();
    std::fs::write(path, buf.as_slice()).unwrap();
}

#[test]
fn bad_images_in_the_source_never_stop_the_daemon() {
    use opencv::core::{Mat, Scalar, CV_16UC1, CV_8UC1, CV_8UC3, CV_8UC4};
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let mat = |rows, cols, typ| {
        Mat::new_rows_cols_with_default(rows, cols, typ, Scalar::all(100.0)).unwrap()
    };
    write_image(&p("a_gray.png"), &mat(200, 300, CV_8UC1));
    write_image(&p("b_rgba.png"), &mat(240, 320, CV_8UC4));
    write_image(&p("c_16bit.png"), &mat(300, 400, CV_16UC1));
    write_image(&p("d_one_pixel.png"), &mat(1, 1, CV_8UC3));
    write_image(&p("e_tiny.jpg"), &mat(8, 8, CV_8UC3));
    write_image(&p("f_large.jpg"), &mat(1200, 1600, CV_8UC3));
    std::fs::write(p("g_empty.jpg"), b"").unwrap();
    let messi = std::fs::read(MESSI).unwrap();
    std::fs::write(p("h_truncated.jpg"), &messi[..messi.len() / 2]).unwrap();
    std::fs::write(p("i_text.png"), b"just some text, not an image").unwrap();
    std::fs::copy(MESSI, p("j_messi.jpg")).unwrap();

    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        cfg_dir.path(),
        &format!(
            "[source]\nuri = \"{}\"\nimage_fps = 2.0\n[detector]\nmin_face_size = 60.0\n",
            dir.path().display()
        ),
    );
    let d = serve_config(&cfg);
    let mut c = Client::connect(&d.socket);
    let mut want: Vec<(i32, i32)> = vec![
        (300, 200),
        (320, 240),
        (400, 300),
        (1, 1),
        (8, 8),
        (1600, 1200),
        (548, 342),
    ];
    let deadline = Instant::now() + Duration::from_secs(120);
    while !want.is_empty() {
        assert!(
            Instant::now() < deadline,
            "never saw {want:?}:\n{}",
            d.log()
        );
        let f = c.frame();
        want.retain(|s| *s != (f.width, f.height));
        if (f.width, f.height) == (548, 342) {
            assert!(!f.faces.is_empty(), "no face on Messi");
        }
    }
    let log = d.log();
    for bad in ["g_empty.jpg", "h_truncated.jpg", "i_text.png"] {
        assert!(
            log.lines()
                .any(|l| l.contains("skipping image") && l.contains(bad)),
            "{bad} not reported:\n{log}"
        );
    }
}

#[test]
fn a_video_cut_short_is_played_and_a_non_video_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(MEGAMIND).unwrap();
    let cut = dir.path().join("cut.avi");
    std::fs::write(&cut, &video[..video.len() / 8]).unwrap();
    let d = Daemon::start(cut.to_str().unwrap(), &[]);
    let mut c = Client::connect(&d.socket);
    for _ in 0..5 {
        let f = c.frame();
        assert_eq!((f.width, f.height), (720, 528));
    }
    drop(d);

    let fake = dir.path().join("fake.avi");
    std::fs::write(&fake, b"RIFF not really a video").unwrap();
    let out = std::process::Command::new(common::kao_bin())
        .current_dir(common::repo())
        .args(["serve", "--source", fake.to_str().unwrap(), "--socket"])
        .arg(dir.path().join("x.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fake.avi"));
}

#[test]
fn zero_size_tiny_and_odd_frames_are_errors_or_empty_not_panics() {
    use kao::inference::Detector;
    use opencv::core::{Mat, Scalar, CV_16UC3, CV_8UC1, CV_8UC3};
    let mut det = common::detector();
    assert!(det.detect(&Mat::default()).is_err());
    for (rows, cols) in [(1, 1), (2, 7), (11, 11), (12, 12)] {
        let m = Mat::new_rows_cols_with_default(rows, cols, CV_8UC3, Scalar::all(9.0)).unwrap();
        let (faces, _) = det.detect(&m).unwrap();
        assert!(faces.is_empty());
    }
    // A very large frame (a 12 MP still) is simply slow, not a crash.
    let big = Mat::new_rows_cols_with_default(3000, 4000, CV_8UC3, Scalar::all(90.0)).unwrap();
    assert!(det.detect(&big).unwrap().0.is_empty());
    for typ in [CV_8UC1, CV_16UC3] {
        let m = Mat::new_rows_cols_with_default(50, 50, typ, Scalar::all(9.0)).unwrap();
        assert!(det.detect(&m).is_err(), "type {typ} accepted");
    }
}

/// A copy of the model folder with `pnet.onnx` replaced by `bytes` and the
/// manifest's checksum updated to match (as someone swapping models would).
fn models_with_pnet(bytes: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = common::repo().join("models/mtcnn");
    for f in ["rnet.onnx", "onet.onnx"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("pnet.onnx"), bytes).unwrap();
    let manifest = std::fs::read_to_string(src.join("manifest.toml"))
        .unwrap()
        .replace(
            "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
            &kao::models::sha256_hex(bytes),
        );
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    dir
}

#[test]
fn model_files_that_are_not_onnx_or_have_wrong_shapes_are_named() {
    let onet = std::fs::read(common::repo().join("models/mtcnn/onet.onnx")).unwrap();
    for (bytes, what) in [
        (b"not an onnx model at all".to_vec(), "not ONNX"),
        (onet[..onet.len() / 2].to_vec(), "truncated ONNX"),
        (onet.clone(), "O-Net in P-Net's place"),
    ] {
        let models = models_with_pnet(&bytes);
        let cfg = write_config(models.path(), "");
        let cfg_text = std::fs::read_to_string(&cfg).unwrap().replace(
            &common::repo()
                .join("models/mtcnn/manifest.toml")
                .display()
                .to_string(),
            &models.path().join("manifest.toml").display().to_string(),
        );
        std::fs::write(&cfg, cfg_text).unwrap();
        let out = std::process::Command::new(common::kao_bin())
            .current_dir(common::repo())
            .args(["detect", "--config", cfg.to_str().unwrap(), MESSI])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{what}: {err}");
        for needle in [
            "pnet.onnx",
            &kao::models::sha256_hex(&bytes),
            "scripts/fetch-assets.sh",
        ] {
            assert!(err.contains(needle), "{what}: {needle} not named: {err}");
        }
    }
}

#[test]
fn missing_model_names_file_checksum_and_fetch_command() {
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::repo().join("models/mtcnn/manifest.toml"),
        models.path().join("manifest.toml"),
    )
    .unwrap();
    let cfg = write_config(models.path(), "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        &common::repo()
            .join("models/mtcnn/manifest.toml")
            .display()
            .to_string(),
        &models.path().join("manifest.toml").display().to_string(),
    );
    std::fs::write(&cfg, text).unwrap();
    let out = std::process::Command::new(common::kao_bin())
        .current_dir(common::repo())
        .args(["serve", "--config", cfg.to_str().unwrap(), "--socket"])
        .arg(models.path().join("kao.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("onet.onnx") || err.contains("pnet.onnx"),
        "{err}"
    );
    assert!(err.contains("07a69013") || err.contains("sha256"), "{err}");
    assert!(err.contains("scripts/fetch-assets.sh"), "{err}");
}

#[test]
fn check_config_validates_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let kao = |file: &Path| {
        std::process::Command::new(common::kao_bin())
            .current_dir(common::repo())
            .arg("check-config")
            .arg(file)
            .output()
            .unwrap()
    };
    let out = kao(&common::repo().join("config/kao.toml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("fine"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[publish]\nmax_clients = 0\n").unwrap();
    let out = kao(&bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("publish.max_clients"));

    std::fs::write(&bad, "[source]\nuri = \"/nonexistent/x.mp4\"\n").unwrap();
    let out = kao(&bad);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.mp4"));

    let out = kao(&dir.path().join("missing.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn kao_status_prints_what_the_daemon_is_doing() {
    let d = Daemon::start(MEGAMIND, &[]);
    let mut c = Client::connect(&d.socket);
    for _ in 0..3 {
        c.frame();
    }
    let out = std::process::Command::new(common::kao_bin())
        .args(["status", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "source:    up",
        "Megamind.avi",
        "fps:",
        "frames:",
        "dropped",
        "clients:   2",
        "landmarks=cpu",
        "uptime:",
    ] {
        assert!(text.contains(field), "{field} missing:\n{text}");
    }
    // The request works on a connection that also receives frames.
    writeln!(c.stream, "{{\"type\":\"status\"}}").unwrap();
    let ServerMsg::Status(r) = c.until(100, |m| matches!(m, ServerMsg::Status(_))) else {
        unreachable!()
    };
    assert!(r.frames_processed >= 3, "{r:?}");
    assert!(r.frames_captured >= r.frames_processed);

    let out = std::process::Command::new(common::kao_bin())
        .args(["status", "--socket", "/nonexistent/kao.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kao serve"));
}

/// Memory after warm-up stays flat over a long run with clients coming and
/// going. The measured figures are printed (run with --nocapture); the
/// assertion only catches a leak far beyond noise.
#[test]
fn memory_stays_flat_over_a_long_run() {
    let d = Daemon::start(MEGAMIND, &[]);
    let socket = d.socket.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Two steady clients, one of them taking annotated JPEGs.
    let readers: Vec<_> = [false, true]
        .into_iter()
        .map(|jpeg| {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&socket);
                writeln!(c.stream, "{{\"type\":\"subscribe\",\"jpeg\":{jpeg}}}").unwrap();
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.frame();
                    n += 1;
                }
                n
            })
        })
        .collect();
    // And a stream of short-lived ones.
    let churn = {
        let (socket, stop) = (socket.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut s = UnixStream::connect(&socket).unwrap();
                let _ = s.write_all(b"{\"type\":\"ping\"}\n");
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };
    let secs = |s| std::thread::sleep(Duration::from_secs(s));
    secs(15);
    let warm = d.rss_kib();
    let mut samples = vec![warm];
    for _ in 0..9 {
        secs(5);
        samples.push(d.rss_kib());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let frames: Vec<u64> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let connects = churn.join().unwrap();
    let last = *samples.last().unwrap();
    eprintln!(
        "memory: RSS KiB after warm-up {warm}, then every 5 s {samples:?}; \
         {frames:?} frames to the steady clients, {connects} short connections"
    );
    assert!(connects > 1000, "only {connects} short connections");
    assert!(
        last < warm + warm / 2 + 50 * 1024,
        "RSS grew from {warm} KiB to {last} KiB"
    );
}

/// A detector that fails every other frame: those are logged, counted and
/// skipped, and the others still reach clients.
#[test]
fn a_frame_that_fails_inference_is_skipped_and_counted() {
    use kao::inference::{DetectError, Detector, Face, StageTimings};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    struct Flaky(u32);
    impl Detector for Flaky {
        fn detect(
            &mut self,
            _: &opencv::core::Mat,
        ) -> Result<(Vec<Face>, StageTimings), DetectError> {
            self.0 += 1;
            if self.0.is_multiple_of(2) {
                return Err(DetectError::BadFrame("every other frame".into()));
            }
            Ok((Vec::new(), StageTimings::default()))
        }
        fn providers(&self) -> Vec<(String, String)> {
            Vec::new()
        }
        fn set_params(&mut self, _: kao::config::DetectorConfig) {}
    }

    let images = folder_with(&[("a.jpg", Path::new(MESSI))]);
    let mut config = common::config();
    config.source.uri = images.path().display().to_string();
    config.source.image_fps = 50.0;
    config.source.realtime = true;
    let status = Arc::new(kao::status::Status::new(&config.source.uri));
    let hub = kao::publish::Hub::new(Default::default());
    let pipeline =
        kao::pipeline::Pipeline::start(&config, Box::new(Flaky(0)), hub, status.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while status.get(&status.frames_processed) < 10 {
        assert!(Instant::now() < deadline, "pipeline stopped processing");
        std::thread::sleep(Duration::from_millis(20));
    }
    pipeline.stop();
    let failed = status.frames_failed.load(Ordering::Relaxed);
    let processed = status.get(&status.frames_processed);
    assert!(
        failed + 1 >= processed && failed <= processed + 1,
        "failed {failed}, processed {processed}"
    );
}

/// A source that stops delivering without failing (a stalled stream): here
/// an image read from a named pipe that nobody writes to any more.
#[test]
fn stalled_source_is_reported_lost_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("frame.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let messi = std::fs::read(MESSI).unwrap();
    // 1: feed the pipe, 0: pause, 2: quit.
    let feeding = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(1));
    // Each read of the image opens the pipe and reads it to its end. The
    // feeder only writes while a reader has the pipe open (a non-blocking
    // open fails otherwise), so that it never waits in `open` once told to
    // stop.
    let feeder = {
        let (fifo, messi, feeding) = (fifo.clone(), messi.clone(), feeding.clone());
        std::thread::spawn(move || {
            use std::io::ErrorKind::WouldBlock;
            use std::os::unix::fs::OpenOptionsExt;
            const O_NONBLOCK: i32 = 0o4000; // Linux
            loop {
                match feeding.load(std::sync::atomic::Ordering::Relaxed) {
                    2 => return,
                    0 => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    _ => {}
                }
                let Ok(mut f) = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(O_NONBLOCK)
                    .open(&fifo)
                else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let mut rest = &messi[..];
                while !rest.is_empty() {
                    match f.write(rest) {
                        Ok(n) => rest = &rest[n..],
                        Err(e) if e.kind() == WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        Err(_) => break, // the reader went away
                    }
                }
            }
        })
    };
    let set_feeding = |state: u8| feeding.store(state, std::sync::atomic::Ordering::Relaxed);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nuri = \"{}\"\nimage_fps = 10.0\n[source_retry]\nstall_timeout_s = 1.0\n",
            fifo.display()
        ),
    );
    let d = serve_config(&cfg);
    let mut c = Client::connect(&d.socket);
    assert_eq!(c.frame().width, 548);
    set_feeding(0);

    let lost = c.until(100, |m| source_state(m) == Some("lost"));
    let ServerMsg::Source { detail, .. } = lost else {
        unreachable!()
    };
    assert!(detail.contains("no frame for"), "{detail}");
    let status = kao::watch::query_status(&d.socket).unwrap();
    assert_eq!(status.source.state, kao::status::SourceState::Lost);

    // Frames flow again: the source is up, by itself.
    set_feeding(1);
    c.until(100, |m| source_state(m) == Some("up"));
    assert_eq!(c.frame().width, 548);
    set_feeding(2);
    feeder.join().unwrap();
}
