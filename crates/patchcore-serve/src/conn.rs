//! Connections, below the routes: the accept loop with what `axum::serve` lacks.
//!
//! * A connection limit (`max_connections`): beyond it, new connections wait in the kernel's
//!   backlog instead of costing a task and buffers each.
//! * A header-read timeout: a request head (and, between keep-alive requests, the next one)
//!   must arrive within `header_timeout`, or the connection is closed. Slowloris clients
//!   cost a connection slot for that long at most.
//! * A bounded drain: on shutdown the listener closes, idle connections close at once, the
//!   others may finish for `drain_timeout`; then the loop returns and whatever is left is
//!   dropped.
//! * HTTP/2 with prior knowledge (h2c) is refused with a GOAWAY frame whose error code is
//!   HTTP_1_1_REQUIRED, the answer RFC 9113 gives for it; `Upgrade: h2c` is ignored (the
//!   request is answered in HTTP/1.1, as RFC 9110 allows).
//! * A request carrying both `Content-Length` and `Transfer-Encoding` (a request-smuggling
//!   shape; hyper would drop the length and read chunks) is marked, and the routes answer it
//!   400: see [`framing`](super::framing).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use crate::framing::FramingScan;

/// The connection-level limits of the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub header_timeout: Duration,
    pub drain_timeout: Duration,
    pub max_connections: usize,
}

/// Marks a request whose head had both `Content-Length` and `Transfer-Encoding`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConflictingFraming;

/// Serves `app` on `listener` until `shutdown` resolves, then drains for at most
/// `limits.drain_timeout`.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the slot semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, watcher) = (app.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = permit;
            connection(stream, app, limits.header_timeout, watcher).await;
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(limits.drain_timeout) => tracing::warn!(
            "drain timeout ({} ms): closing the connections still open (of {open} at shutdown)",
            limits.drain_timeout.as_millis()
        ),
    }
}

/// One connection: refused if it speaks HTTP/2, else HTTP/1.1 through hyper.
async fn connection(stream: TcpStream, app: Router, header_timeout: Duration, watcher: Watcher) {
    match tokio::time::timeout(header_timeout, sniff_h2(&stream)).await {
        Ok(Sniff::H2) => return refuse_h2(stream).await,
        Ok(Sniff::Closed) | Err(_) => return,
        Ok(Sniff::Http1) => {}
    }
    let conflict = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(Guarded {
        inner: stream,
        scan: FramingScan::default(),
        conflict: conflict.clone(),
    });
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        if conflict.load(Ordering::Relaxed) {
            req.extensions_mut().insert(ConflictingFraming);
        }
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    if let Err(e) = watcher.watch(builder.serve_connection(io, svc)).await {
        tracing::debug!("connection closed: {e}");
    }
}

/// The client preface of HTTP/2 (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Sniff {
    H2,
    Http1,
    Closed,
}

/// Peeks at the first bytes until they can or cannot be the HTTP/2 preface.
async fn sniff_h2(stream: &TcpStream) -> Sniff {
    let mut buf = [0u8; 24];
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return Sniff::Closed,
            Ok(n) => n,
        };
        if buf[..n] != H2_PREFACE[..n] {
            return Sniff::Http1;
        }
        if n == H2_PREFACE.len() {
            return Sniff::H2;
        }
        // A prefix of the preface ("P", "PR", ...): wait for more bytes.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The frames that refuse HTTP/2: an empty SETTINGS (the server preface), then GOAWAY with
/// last stream 0, error HTTP_1_1_REQUIRED (0xd) and a reason as debug data.
pub(crate) fn h2_refusal() -> Vec<u8> {
    const REASON: &[u8] = b"HTTP/2 is not served here: send HTTP/1.1 requests";
    let mut out = vec![0, 0, 0, 0x4, 0, 0, 0, 0, 0];
    let len = (8 + REASON.len()) as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[0x7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&0xdu32.to_be_bytes());
    out.extend_from_slice(REASON);
    out
}

async fn refuse_h2(stream: TcpStream) {
    tracing::debug!("refused an HTTP/2 connection");
    let frames = h2_refusal();
    let mut sent = 0;
    while sent < frames.len() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(&frames[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    // Closing with unread bytes (the rest of the client's preface) would reset the
    // connection and could discard the GOAWAY: shut down writing, then let the client close.
    if let Ok(std_stream) = stream.into_std() {
        let _ = std_stream.shutdown(std::net::Shutdown::Write);
        let _ = std_stream.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = tokio::task::spawn_blocking(move || {
            let mut sink = [0u8; 1024];
            while matches!(std::io::Read::read(&mut &std_stream, &mut sink), Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// The TCP stream with every byte read fed to a [`FramingScan`].
struct Guarded {
    inner: TcpStream,
    scan: FramingScan,
    conflict: Arc<AtomicBool>,
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r
            && this.scan.feed(&buf.filled()[before..])
        {
            this.conflict.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_refusal_is_settings_then_goaway_http_1_1_required() {
        let f = super::h2_refusal();
        assert_eq!(
            &f[..9],
            &[0, 0, 0, 4, 0, 0, 0, 0, 0],
            "empty SETTINGS on stream 0"
        );
        let len = u32::from_be_bytes([0, f[9], f[10], f[11]]) as usize;
        assert_eq!((f[12], f.len()), (0x7, 18 + len), "one GOAWAY frame");
        assert_eq!(&f[18..22], &[0, 0, 0, 0], "last stream 0");
        assert_eq!(&f[22..26], &[0, 0, 0, 0xd], "HTTP_1_1_REQUIRED");
        assert!(String::from_utf8_lossy(&f[26..]).contains("HTTP/1.1"));
    }
}
