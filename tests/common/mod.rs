//! Shared by the integration tests: the repository's paths, the real sample
//! inputs and a detector built from the fetched models.
#![allow(dead_code)]

pub mod tiny_onnx;

use std::path::{Path, PathBuf};

use kao::config::Config;
use kao::inference::Mtcnn;
use kao::models::Manifest;

pub const MEGAMIND: &str = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi";
pub const MESSI: &str = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path from the fixtures: absolute ones as they are, others under the repo.
pub fn resolve(path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_owned()
    } else {
        repo().join(p)
    }
}

/// Fails with the command to run when an input the tests need is missing:
/// these tests check real models on real data and must not pass vacuously.
pub fn require(path: &Path) {
    assert!(
        path.exists(),
        "{} is missing: run `make setup` (scripts/setup.sh installs packages, scripts/fetch-assets.sh fetches models and samples)",
        path.display()
    );
}

/// The default configuration with paths anchored at the repository, so
/// tests work from any working directory.
pub fn config() -> Config {
    let mut c = Config::default();
    c.models.manifest = repo()
        .join("models/mtcnn/manifest.toml")
        .display()
        .to_string();
    c.runtime.ort_library = repo()
        .join(kao::inference::runtime::FETCHED_LIBRARY)
        .display()
        .to_string();
    require(Path::new(&c.runtime.ort_library));
    c
}

pub fn detector() -> Mtcnn {
    let c = config();
    let manifest = Manifest::load(Path::new(&c.models.manifest)).unwrap();
    Mtcnn::load(&manifest, &c.runtime, c.detector.clone()).unwrap()
}

/// The kao binary built for these tests.
pub fn kao_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kao"))
}

/// A `kao serve` child process on a private socket, killed when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `kao serve` with `extra` arguments and waits for its socket.
    pub fn start(source: &str, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("kao.sock");
        Daemon::start_at(source, &socket, dir, extra)
    }

    /// Like `start`, on a given socket path; `dir` holds the log.
    pub fn start_at(source: &str, socket: &Path, dir: tempfile::TempDir, extra: &[&str]) -> Daemon {
        Daemon::start_env(source, socket, dir, extra, &[])
    }

    /// Like `start_at`, with extra environment variables.
    pub fn start_env(
        source: &str,
        socket: &Path,
        dir: tempfile::TempDir,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        require(Path::new(source));
        let mut args = vec!["--source", source];
        args.extend_from_slice(extra);
        Daemon::spawn(&args, socket, dir, env)
    }

    /// `kao serve --socket SOCKET ARGS…` with `env`, once it listens.
    pub fn spawn(
        args: &[&str],
        socket: &Path,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
    ) -> Daemon {
        let socket = socket.to_owned();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        // Any free port for HTTP, unless the test chooses: daemons of
        // parallel tests must not fight over the default one.
        let http: &[&str] = if args.contains(&"--http") {
            &[]
        } else {
            &["--http", "127.0.0.1:0"]
        };
        let child = std::process::Command::new(kao_bin())
            .current_dir(repo())
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .args(http)
            .args(args)
            .env("KAO_LOG", "info")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Daemon { child, socket, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // Wait until it accepts connections (a stale socket file may exist
        // before the daemon replaces it).
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "kao serve exited with {status} before listening:\n{}",
                    d.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no socket after 30 s:\n{}",
                d.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        d
    }

    /// Resident memory of the daemon in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The viewer's URL (`http://127.0.0.1:PORT/`), from the daemon's log.
    pub fn http_url(&self) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let log = self.log();
            if let Some(at) = log.find("url=http://") {
                let rest = &log[at + 4..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                return rest[..end].to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the daemon logged no viewer URL:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Sends a signal by number (15 = SIGTERM, 2 = SIGINT).
    pub fn signal(&self, sig: i32) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `secs`.
    pub fn wait(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
