//! Accepting clients and serving each one on its own task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};
use tracing::{debug, warn};

use super::protocol::{ClientMsg, ServerMsg, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use super::Hub;

/// A write that makes no progress for this long means the client is gone or
/// stuck for good; it is disconnected (a half-written line cannot be taken
/// back, so this is long: a client that merely pauses, e.g. a viewer in a
/// debugger, misses messages and carries on).
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts clients until `shutdown` turns true; then tells every client
/// goodbye and returns once they are all gone.
pub async fn serve(
    listener: UnixListener,
    hub: Hub,
    max_clients: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(max_clients));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        warn!(cause = %err, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tasks.spawn(refuse(stream, max_clients));
                    continue;
                };
                let hub = hub.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    client(stream, hub, shutdown).await;
                    drop(permit);
                });
            }
            // Reap finished client tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Clients see the shutdown through their own receiver; give them a
    // moment to say goodbye.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
}

async fn refuse(mut stream: UnixStream, max: usize) {
    let msg = ServerMsg::Error {
        message: format!("too many clients (max_clients = {max}); try again later"),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(msg.to_line().as_bytes())).await;
}

/// Serves one client: requests in, results out.
async fn client(stream: UnixStream, hub: Hub, mut shutdown: watch::Receiver<bool>) {
    let n = hub.clients.fetch_add(1, Ordering::Relaxed) + 1;
    debug!(clients = n, "client connected");
    let (read, mut write) = stream.into_split();
    let (mut frames, mut events) = hub.subscribe();
    // Requests are read on a task of their own: a line read is not safe to
    // cancel in `select!`, and a client may send nothing at all.
    let (req_tx, mut requests) = mpsc::channel(4);
    let reader = tokio::spawn(read_requests(read, req_tx));

    let info = hub.info();
    let hello = ServerMsg::Hello {
        protocol: PROTOCOL_VERSION,
        server: format!("kao {}", env!("CARGO_PKG_VERSION")),
        source: info.source,
        model: info.model,
        providers: info.providers,
    };
    let mut jpeg = false;
    let mut missed = 0u64;
    let mut ok = send(&mut write, &hello.to_line(), &mut shutdown).await;
    let reason = loop {
        if !ok {
            break "write failed or timed out";
        }
        tokio::select! {
            _ = shutdown.changed() => {
                let bye = ServerMsg::Bye { reason: "kao is shutting down".into() };
                let _ = tokio::time::timeout(Duration::from_millis(200), write.write_all(bye.to_line().as_bytes())).await;
                break "server shutdown";
            }
            request = requests.recv() => match request {
                Some(Ok(ClientMsg::Subscribe { jpeg: want })) => jpeg = want,
                Some(Ok(ClientMsg::Ping)) => ok = send(&mut write, &ServerMsg::Pong.to_line(), &mut shutdown).await,
                Some(Ok(ClientMsg::Status)) => {
                    let reply = match hub.status_report() {
                        Some(report) => ServerMsg::Status(Box::new(report)),
                        None => ServerMsg::Error { message: "this server keeps no status".into() },
                    };
                    ok = send(&mut write, &reply.to_line(), &mut shutdown).await;
                }
                Some(Err(message)) => {
                    let _ = send(&mut write, &ServerMsg::Error { message }.to_line(), &mut shutdown).await;
                    break "bad request";
                }
                None => break "client closed the connection",
            },
            frame = frames.recv() => match frame {
                Ok(p) => {
                    ok = send(&mut write, &p.line(jpeg, missed), &mut shutdown).await;
                    missed = 0;
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    debug!(missed = n, "slow client missed frames");
                    missed += n;
                }
                Err(broadcast::error::RecvError::Closed) => break "publisher closed",
            },
            event = events.recv() => match event {
                Ok(msg) => ok = send(&mut write, &msg.to_line(), &mut shutdown).await,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break "publisher closed",
            },
        }
    };
    reader.abort();
    let n = hub.clients.fetch_sub(1, Ordering::Relaxed) - 1;
    debug!(clients = n, reason, "client disconnected");
}

/// Writes one line; false when the client is gone, stuck or we are stopping.
async fn send(
    write: &mut OwnedWriteHalf,
    line: &str,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        r = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(line.as_bytes())) => matches!(r, Ok(Ok(()))),
        _ = shutdown.changed() => false,
    }
}

/// Reads request lines, each at most [`MAX_REQUEST_BYTES`], and forwards
/// them parsed. Stops at the first bad one, after forwarding its error.
async fn read_requests(read: OwnedReadHalf, out: mpsc::Sender<Result<ClientMsg, String>>) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_REQUEST_BYTES as u64 + 1);
        match limited.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return, // closed
            Ok(_) => {}
        }
        if line.len() > MAX_REQUEST_BYTES {
            let _ = out
                .send(Err(format!(
                    "request longer than {MAX_REQUEST_BYTES} bytes"
                )))
                .await;
            return;
        }
        let parsed = std::str::from_utf8(&line)
            .map_err(|_| "bad request (not UTF-8)".to_string())
            .and_then(|s| {
                if s.trim().is_empty() {
                    Ok(None)
                } else {
                    ClientMsg::parse(s).map(Some)
                }
            });
        match parsed {
            Ok(None) => continue, // blank lines are allowed, as keep-alives
            Ok(Some(msg)) => {
                if out.send(Ok(msg)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return;
            }
        }
    }
}
