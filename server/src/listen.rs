//! Accepting connections with limits, so that slow or silent clients cannot hold the
//! server: a request's head must arrive within `header_read_timeout` (hyper's timer,
//! which also runs while a kept-alive connection waits for its next request), a
//! connection on which nothing moves for `idle_timeout` is closed (a stalled upload,
//! a response nobody reads), and at most `max_connections` are served at once; a
//! client past the cap is answered `503` with `Retry-After` and closed.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use docbuild_builder::config::ServerConfig;

/// The limits, from `[server]` in `docbuild.toml`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server
                .header_read_timeout
                .unwrap_or(Self::DEFAULT_HEADER_READ_TIMEOUT),
            idle_timeout: server.idle_timeout.unwrap_or(Self::DEFAULT_IDLE_TIMEOUT),
            max_connections: server
                .max_connections
                .unwrap_or(Self::DEFAULT_MAX_CONNECTIONS)
                .max(1),
        }
    }
}

/// Serves `app` on `listener` until the process ends.
pub async fn run(listener: TcpListener, app: Router, limits: Limits) -> io::Result<()> {
    let served = Arc::new(Semaphore::new(limits.max_connections));
    // Clients being told to come back later are few at a time as well.
    let turned_away = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was
                // accepted: wait a little rather than spin.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&served).try_acquire_owned() {
            Ok(permit) => {
                let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
                let connection = http.serve_connection(io, TowerToHyperService::new(app.clone()));
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(permit);
                });
            }
            Err(_) => {
                if let Ok(permit) = Arc::clone(&turned_away).try_acquire_owned() {
                    tokio::spawn(async move {
                        turn_away(stream).await;
                        drop(permit);
                    });
                }
                // Else the connection is dropped, closed at once.
            }
        }
    }
}

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 40\r\n\r\ntoo many connections; try again shortly\n";

/// Answers `503` and closes, reading what the client sent meanwhile so that the
/// close does not reset the connection before the answer is read.
async fn turn_away(mut stream: TcpStream) {
    let limit = Duration::from_secs(1);
    let _ = tokio::time::timeout(limit, async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
}

/// A connection that fails once nothing was read or written for `timeout` while
/// the server waits on it.
struct IdleTimeout {
    stream: TcpStream,
    timeout: Duration,
    last_activity: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(stream: TcpStream, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            stream,
            timeout,
            last_activity: now,
            deadline: Box::pin(tokio::time::sleep_until(now + timeout)),
        }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Called while an operation waits: an error once the connection was idle long
    /// enough. The timer is moved only when it fires, not on every read and write.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let due = self.last_activity + self.timeout;
            if due <= Instant::now() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "idle connection",
                )));
            }
            self.deadline.as_mut().reset(due);
        }
        Poll::Pending
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.touch();
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_connection_times_out_and_an_active_one_does_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            use std::io::Write;
            let mut stream = std::net::TcpStream::connect(address).unwrap();
            for _ in 0..6 {
                std::thread::sleep(Duration::from_millis(100));
                stream.write_all(b"x").unwrap();
            }
            std::thread::sleep(Duration::from_secs(2));
        });
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut connection = IdleTimeout::new(stream, Duration::from_millis(300));
        let start = std::time::Instant::now();
        let mut buf = [0u8; 16];
        let mut received = 0;
        let error = loop {
            match connection.read(&mut buf).await {
                Ok(n) => received += n,
                Err(error) => break error,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(received, 6, "the active part is read whole");
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(850) && elapsed < Duration::from_millis(1500),
            "{elapsed:?}"
        );
        client.join().unwrap();
    }
}
