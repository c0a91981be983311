//! The TCP listener the HTTP server accepts from: at most
//! [`MAX_CONNECTIONS`] connections at once, so that many idle or stuck
//! HTTP clients cannot use up the daemon's file descriptors (which the
//! source and the socket clients need too). When full, new connections
//! wait in the kernel's backlog until one closes.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

/// HTTP connections open at once, viewers included.
pub const MAX_CONNECTIONS: usize = 256;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// A connection must have sent a whole request (the server has started to
/// answer) this soon after it was accepted, or it is closed: otherwise a
/// client trickling its headers ("slowloris") holds a slot for ever, and
/// enough of them lock everyone out, `/healthz` included.
pub const FIRST_REQUEST_DEADLINE: Duration = Duration::from_secs(10);

pub struct Limited {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    deadline: Duration,
}

impl Limited {
    pub fn new(inner: TcpListener) -> Limited {
        Limited::with_deadline(inner, FIRST_REQUEST_DEADLINE)
    }

    pub fn with_deadline(inner: TcpListener, deadline: Duration) -> Limited {
        Limited {
            inner,
            slots: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            deadline,
        }
    }
}

/// An accepted connection, holding its slot until dropped.
pub struct Connection {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
    /// Runs until the server first writes to the connection; when it fires
    /// first, reads fail and the connection is closed.
    first_response: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Connection {
    fn answered(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.first_response = None;
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        // The semaphore is never closed, so acquiring only waits.
        let slot = loop {
            if let Ok(slot) = self.slots.clone().acquire_owned().await {
                break slot;
            }
        };
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Frames are sent as soon as they are written: the
                    // viewer's latency matters more than packet count.
                    let _ = stream.set_nodelay(true);
                    return (
                        Connection {
                            stream,
                            _slot: slot,
                            first_response: Some(Box::pin(tokio::time::sleep(self.deadline))),
                        },
                        addr,
                    );
                }
                Err(err) => {
                    warn!(cause = %err, "http accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.first_response.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request in time",
                )));
            }
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.answered(&written);
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.answered(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn server(deadline: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limited = Limited::with_deadline(listener, deadline);
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(limited, app).await });
        addr
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_closed() {
        let addr = server(Duration::from_millis(300)).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut buf = Vec::new();
        // The server closes it: the read ends (EOF or reset) instead of hanging.
        let ended = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(ended.is_ok(), "slow client still open after 5 s");
    }

    #[tokio::test]
    async fn a_prompt_client_is_answered_and_may_stay_connected() {
        let addr = server(Duration::from_millis(300)).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        // Past the deadline, a second request on the same connection works.
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = c.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
}
