//! The systemd notification protocol (`sd_notify`), written out: one
//! datagram of `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET`.
//!
//! Outside systemd (no `$NOTIFY_SOCKET`) every call does nothing, so the
//! daemon behaves the same from a terminal.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// Where notifications go, if anywhere.
#[derive(Debug, Clone, PartialEq)]
enum Address {
    /// A socket file.
    Path(PathBuf),
    /// A Linux abstract socket (`@name` in `$NOTIFY_SOCKET`).
    Abstract(Vec<u8>),
}

/// A sender of notifications to the service manager.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, Address)>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET`; a notifier that does nothing when it is unset
    /// or unusable (the latter is logged once, here).
    pub fn from_env() -> Notifier {
        let Some(raw) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
            return Notifier { socket: None };
        };
        use std::os::unix::ffi::OsStrExt;
        let bytes = raw.as_bytes();
        let address = match bytes.strip_prefix(b"@") {
            Some(name) => Address::Abstract(name.to_vec()),
            None => Address::Path(PathBuf::from(&raw)),
        };
        match UnixDatagram::unbound() {
            Ok(socket) => Notifier {
                socket: Some((socket, address)),
            },
            Err(err) => {
                warn!(cause = %err, "cannot create a socket for systemd notifications; running without them");
                Notifier { socket: None }
            }
        }
    }

    /// A notifier that sends to a socket file (as `$NOTIFY_SOCKET=path` would).
    pub fn to_path(path: &std::path::Path) -> std::io::Result<Notifier> {
        Ok(Notifier {
            socket: Some((UnixDatagram::unbound()?, Address::Path(path.to_owned()))),
        })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { socket: None }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Failures are
    /// logged at debug level: the service manager may be gone at shutdown.
    pub fn notify(&self, state: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        let sent = match address {
            Address::Path(path) => socket.send_to(state.as_bytes(), path),
            Address::Abstract(name) => send_abstract(socket, name, state.as_bytes()),
        };
        if let Err(err) = sent {
            debug!(cause = %err, state, "systemd notification not sent");
        }
    }

    pub fn ready(&self) {
        self.notify("READY=1");
    }

    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    pub fn reloading(&self) {
        // RELOADING=1 must be followed by READY=1 once the reload is done.
        self.notify("RELOADING=1");
    }

    /// A one-line status shown by `systemctl status`.
    pub fn status(&self, line: &str) {
        // A newline would start a new KEY=VALUE pair.
        self.notify(&format!("STATUS={}", line.replace('\n', " ")));
    }
}

fn send_abstract(socket: &UnixDatagram, name: &[u8], data: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(data, &addr)
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`), when it is
/// meant for this process (`$WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Keeps systemd's watchdog fed from the pipeline's own progress.
///
/// [`Watchdog::beat`] is called by the inference thread each time round its
/// loop (at least every idle poll, and after every frame). A ping goes out
/// at most every half interval. There is deliberately no timer: when the
/// inference thread is stuck, the pings stop and systemd restarts kao.
pub struct Watchdog {
    notifier: Notifier,
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Watchdog {
    /// From the environment; `None` when systemd asked for no watchdog.
    pub fn from_env() -> Option<Watchdog> {
        let interval = watchdog_interval()?;
        let notifier = Notifier::from_env();
        notifier.enabled().then(|| Watchdog {
            notifier,
            every: interval / 2,
            last: Mutex::new(None),
        })
    }

    /// A watchdog with systemd's `interval`, pinging through `notifier`.
    pub fn new(notifier: Notifier, interval: Duration) -> Watchdog {
        Watchdog {
            notifier,
            every: interval / 2,
            last: Mutex::new(None),
        }
    }

    /// Records progress; pings systemd when half an interval has passed.
    pub fn beat(&self) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        *last = Some(Instant::now());
        self.notifier.notify("WATCHDOG=1");
    }

    pub fn interval(&self) -> Duration {
        self.every * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_arrive_as_datagrams_on_a_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), Address::Path(path))),
        };
        n.ready();
        n.status("3.0 fps\nsource up");
        let mut buf = [0u8; 256];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=3.0 fps source up");
    }

    #[test]
    fn abstract_socket_names_work() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("kao-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                Address::Abstract(name.into_bytes()),
            )),
        };
        n.stopping();
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn watchdog_pings_at_most_every_half_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let w = Watchdog {
            notifier: Notifier {
                socket: Some((UnixDatagram::unbound().unwrap(), Address::Path(path))),
            },
            every: Duration::from_secs(3600),
            last: Mutex::new(None),
        };
        for _ in 0..5 {
            w.beat();
        }
        let mut buf = [0u8; 64];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
        assert!(listener.recv(&mut buf).is_err(), "second ping too early");
    }
}
