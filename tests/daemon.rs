//! The daemon as a real process on real video, with real socket clients:
//! well-behaved, slow, stalled, garbage-sending and many at once.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Daemon, MEGAMIND};
use kao::publish::protocol::{ServerMsg, MAX_REQUEST_BYTES};

fn connect(d: &Daemon) -> (UnixStream, BufReader<UnixStream>) {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn next_msg(r: &mut BufReader<UnixStream>) -> ServerMsg {
    let mut line = String::new();
    let n = r.read_line(&mut line).unwrap();
    assert!(n > 0, "connection closed");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

fn next_frame(r: &mut BufReader<UnixStream>) -> kao::publish::protocol::FrameMsg {
    loop {
        if let ServerMsg::Frame(f) = next_msg(r) {
            return f;
        }
    }
}

#[test]
fn client_receives_faces_with_five_keypoints_from_real_video() {
    let d = Daemon::start(MEGAMIND, &[]);
    let mut out = Vec::new();
    let seen = kao::watch::watch(&d.socket, Some(20), true, &mut out).unwrap();
    assert_eq!(seen, 20);
    let text = String::from_utf8(out).unwrap();
    let msgs: Vec<ServerMsg> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ServerMsg::Hello {
        protocol,
        providers,
        ..
    } = &msgs[0]
    else {
        panic!("first message is not hello: {:?}", msgs[0])
    };
    assert_eq!(*protocol, 1);
    // The default family (blazeface): detector and face mesh, both on the CPU.
    assert_eq!(providers["detector"], "cpu");
    assert_eq!(providers["landmarks"], "cpu");

    let frames: Vec<_> = msgs
        .iter()
        .filter_map(|m| {
            if let ServerMsg::Frame(f) = m {
                Some(f)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(frames.len(), 20);
    // Sequence numbers strictly increase; gaps are frames dropped while busy.
    assert!(frames.windows(2).all(|w| w[0].seq < w[1].seq));
    let with_faces = frames.iter().filter(|f| !f.faces.is_empty()).count();
    assert!(with_faces >= 18, "only {with_faces}/20 frames had faces");
    for f in &frames {
        assert_eq!((f.width, f.height), (720, 528));
        let t = &f.timings_ms;
        assert!(t.get("total") >= t.get("detector") + t.get("landmarks"));
        assert!(t.get("detector") + t.get("landmarks") > 0.0);
        assert!(f.captured_at_ms > 1.7e12);
        for face in &f.faces {
            assert!(face.score > 0.7 && face.score <= 1.0);
            let b = &face.bbox;
            assert!(b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 720.0 && b.y + b.h <= 528.0);
            // Each keypoint lies inside (or very near) its face box.
            let k = &face.keypoints;
            for p in [k.left_eye, k.right_eye, k.nose, k.mouth_left, k.mouth_right] {
                assert!(
                    p[0] > b.x - 5.0 && p[0] < b.x + b.w + 5.0,
                    "{p:?} outside {b:?}"
                );
                assert!(
                    p[1] > b.y - 5.0 && p[1] < b.y + b.h + 5.0,
                    "{p:?} outside {b:?}"
                );
            }
            // The left eye (image left) is left of the right eye, both above the mouth.
            assert!(k.left_eye[0] < k.right_eye[0]);
            assert!(k.left_eye[1] < k.mouth_left[1]);
        }
    }
}

#[test]
fn client_can_ask_for_annotated_jpeg() {
    use base64::Engine;
    let d = Daemon::start(MEGAMIND, &[]);
    let (mut s, mut r) = connect(&d);
    writeln!(s, "{{\"type\":\"subscribe\",\"jpeg\":true}}").unwrap();
    // Frames already in flight may come without; one soon has the image.
    let jpeg = (0..10)
        .find_map(|_| next_frame(&mut r).jpeg)
        .expect("no frame carried a JPEG");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(jpeg)
        .unwrap();
    let image = kao::imageio::decode_image(&bytes, "frame.jpg".as_ref()).unwrap();
    use opencv::prelude::*;
    assert_eq!((image.cols(), image.rows()), (720, 528));
}

#[test]
fn garbage_gets_an_error_and_a_closed_connection() {
    let d = Daemon::start(MEGAMIND, &[]);
    for garbage in [
        &b"hello daemon\n"[..],
        b"{\"type\":\"format_disk\"}\n",
        b"\xff\xfe\x00\x01\n",
    ] {
        let (mut s, mut r) = connect(&d);
        s.write_all(garbage).unwrap();
        let error = loop {
            match next_msg(&mut r) {
                ServerMsg::Error { message } => break message,
                _ => continue,
            }
        };
        assert!(error.contains("bad request"), "{error}");
        // After the error the server closes: reading reaches EOF.
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
    }
    // An endless line without a newline is cut off at the limit.
    let (mut s, mut r) = connect(&d);
    let big = vec![b'x'; MAX_REQUEST_BYTES * 4];
    let _ = s.write_all(&big);
    let error = loop {
        match next_msg(&mut r) {
            ServerMsg::Error { message } => break message,
            _ => continue,
        }
    };
    assert!(error.contains("longer than"), "{error}");
    // The daemon is still serving well-behaved clients.
    let mut out = Vec::new();
    assert_eq!(
        kao::watch::watch(&d.socket, Some(3), true, &mut out).unwrap(),
        3
    );
}

#[test]
fn stalled_client_misses_frames_without_slowing_others() {
    let d = Daemon::start(MEGAMIND, &[]);
    // The stalled client subscribes to JPEGs (large messages) and never reads.
    let (mut stalled, mut stalled_r) = connect(&d);
    writeln!(stalled, "{{\"type\":\"subscribe\",\"jpeg\":true}}").unwrap();

    // The fast client reads 30 frames while the other one stalls: more than
    // the stalled client's buffers (16 messages plus what the socket holds)
    // can absorb. No time limit: a loaded machine is slower, not wrong.
    let (_s, mut fast) = connect(&d);
    let mut last = next_frame(&mut fast).seq;
    for _ in 0..30 {
        let f = next_frame(&mut fast);
        assert!(f.seq > last, "frames out of order");
        last = f.seq;
    }

    // The stalled client, once it reads again, is told what it missed.
    let mut missed = 0;
    for _ in 0..60 {
        let f = next_frame(&mut stalled_r);
        missed += f.missed;
        if missed > 0 {
            break;
        }
    }
    assert!(missed > 0, "stalled client was never told it missed frames");
}

#[test]
fn many_clients_at_once_all_get_frames() {
    let d = Daemon::start(MEGAMIND, &[]);
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let socket = d.socket.clone();
            std::thread::spawn(move || {
                let mut out = Vec::new();
                kao::watch::watch(&socket, Some(3), true, &mut out).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 3);
    }
    // And a burst of connect-and-leave does no harm.
    for _ in 0..200 {
        drop(UnixStream::connect(&d.socket).unwrap());
    }
    // Slots of the departed clients free up as their tasks notice; a client
    // may be refused for a moment ("too many clients"), never for long.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut out = Vec::new();
        match kao::watch::watch(&d.socket, Some(2), true, &mut out) {
            Ok(n) => {
                assert_eq!(n, 2);
                break;
            }
            Err(kao::watch::WatchError::Refused(m)) if Instant::now() < deadline => {
                assert!(m.contains("too many clients"), "{m}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn sigterm_says_goodbye_and_removes_the_socket() {
    let mut d = Daemon::start(MEGAMIND, &[]);
    let (_s, mut r) = connect(&d);
    next_frame(&mut r);
    d.signal(15);
    let bye = loop {
        match next_msg(&mut r) {
            ServerMsg::Bye { reason } => break reason,
            _ => continue,
        }
    };
    assert!(bye.contains("shutting down"));
    let status = d.wait(10).expect("kao did not exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(!d.socket.exists(), "socket file left behind");
}

#[test]
fn stale_socket_is_replaced_and_live_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("kao.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let stale_str = stale.to_str().unwrap();

    let d = Daemon::start_at(MEGAMIND, &stale, tempfile::tempdir().unwrap(), &[]);
    let mut out = Vec::new();
    assert_eq!(
        kao::watch::watch(&stale, Some(1), true, &mut out).unwrap(),
        1
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&stale).unwrap().permissions().mode() & 0o777,
        0o660
    );

    // A second daemon on the same, live socket refuses to start.
    let second = std::process::Command::new(common::kao_bin())
        .current_dir(common::repo())
        .args(["serve", "--source", MEGAMIND, "--socket", stale_str])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already serving"), "{err}");
    drop(d);
}

#[test]
fn folder_of_images_is_replayed_and_bad_files_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::MESSI, dir.path().join("a.jpg")).unwrap();
    std::fs::write(dir.path().join("b.jpg"), b"not really a jpeg").unwrap();
    std::fs::copy(
        common::repo().join(".cache/assets/astronaut.png"),
        dir.path().join("c.png"),
    )
    .unwrap();
    // Two frames a second: slow enough that inference sees every image.
    let cfg = dir.path().join("kao.toml");
    std::fs::write(&cfg, "[source]\nimage_fps = 2.0\n").unwrap();
    let d = Daemon::start(
        dir.path().to_str().unwrap(),
        &["--config", cfg.to_str().unwrap()],
    );
    let (_s, mut r) = connect(&d);
    let sizes: Vec<(i32, i32)> = (0..6)
        .map(|_| next_frame(&mut r))
        .map(|f| (f.width, f.height))
        .collect();
    assert!(sizes.contains(&(548, 342)), "{sizes:?}");
    assert!(sizes.contains(&(512, 512)), "{sizes:?}");
    assert!(d.log().contains("skipping image"), "{}", d.log());
}
