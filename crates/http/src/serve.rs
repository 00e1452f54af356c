//! The connection loop: accepts connections from a [`Listener`] and serves each with
//! hyper's HTTP/1.1 server in a task of its own, until the shutdown future resolves; then
//! stops accepting, lets every connection finish the request it is serving (idle ones
//! close at once) and returns when the last one has closed.
//!
//! Each connection learns of the shutdown through a oneshot channel of its own, so polling
//! a busy connection never touches state shared with the others (a watch channel would
//! take its waiter list's mutex on every wakeup of every connection).
//!
//! Limits ([`HttpLimits`](crate::HttpLimits)): at most `max_connections` connections are
//! served at once (accepting pauses at the limit); a request head must arrive whole within
//! `read_header_timeout` of the connection's opening (the first request) or of its first
//! byte (later ones: checked every header timeout, so within twice that), and be at most
//! `max_header_size` bytes (431 past it); a keep-alive connection idle for `idle_timeout`
//! is closed. Each connection's
//! [`Clock`] tells a half-sent head from an idle connection, as Go's server (and so
//! OpenBao) does with `ReadHeaderTimeout` and `IdleTimeout`; hyper's own header timer
//! runs from the end of the previous response and would close idle connections at the
//! header timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::App;

/// A source of accepted connections (plain TCP, or TLS after the handshake).
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer's address. Never fails: errors are logged and
    /// accepting goes on.
    fn accept(&mut self) -> impl Future<Output = (Self::Io, SocketAddr)> + Send;
}

impl Listener for TcpListener {
    type Io = TcpStream;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match TcpListener::accept(self).await {
                Ok((stream, peer)) => {
                    set_nodelay(&stream);
                    return (stream, peer);
                }
                Err(e) => accept_failed(e).await,
            }
        }
    }
}

/// Responses go out in one write each; without `TCP_NODELAY` a response written while an
/// earlier one is unacknowledged would wait for the peer's delayed ACK (Go's servers, and
/// so OpenBao's, set it on every connection).
pub(crate) fn set_nodelay(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY failed");
    }
}

/// An error from `accept`: a connection that failed before it was accepted is skipped;
/// anything else (out of file descriptors, say) is logged and retried after a pause, so
/// the loop neither spins nor ends.
pub(crate) async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Serve `app` on every connection `listener` accepts until `shutdown` resolves, then
/// shut down gracefully (see the module doc).
pub async fn serve<L: Listener>(
    mut listener: L,
    app: App,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = pin!(shutdown);
    // One stop signal per live connection; the closed ones are pruned as the list grows.
    let mut stops: Vec<oneshot::Sender<()>> = Vec::new();
    // Every connection task holds a sender: `recv` ends when the last one has finished.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let slots = Arc::new(Semaphore::new(app.limits().max_connections.max(1)));
    let mut warned_full = false;
    loop {
        // A free slot first: at the limit, new clients wait in the backlog.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                if !warned_full {
                    warned_full = true;
                    tracing::warn!(
                        max_connections = app.limits().max_connections,
                        "connection limit reached: accepting pauses until one closes"
                    );
                }
                tokio::select! {
                    s = slots.clone().acquire_owned() => match s {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        if stops.len() >= 64 && stops.len() == stops.capacity() {
            stops.retain(|s| !s.is_closed());
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        stops.push(stop_tx);
        let done = done_tx.clone();
        let app = app.clone();
        tokio::spawn(async move {
            connection(io, peer, app, stop_rx, done).await;
            drop(slot);
        });
    }
    drop(listener);
    for stop in stops {
        let _ = stop.send(());
    }
    drop(done_tx);
    let _ = done_rx.recv().await;
}

/// What a connection is doing, for its watchdog: milliseconds since the connection began
/// at which the current request head's first byte arrived (0: none yet), at which the
/// last request ended or the connection began (idle since), and whether a request is being
/// served. Written by the reads and the service; read by the connection's task.
struct Clock {
    start: Instant,
    head_since: AtomicU64,
    idle_since: AtomicU64,
    serving: AtomicU64,
}

impl Clock {
    fn now(&self) -> u64 {
        // +1 so that 0 means "not set"
        u64::try_from(self.start.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    /// When the connection must be dropped unless something happens first: a head not
    /// complete in time, or an idle connection; none while a request is served (its own
    /// timeout bounds it).
    fn deadline(&self, limits: &crate::HttpLimits) -> Option<Instant> {
        if self.serving.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let at = |ms: u64, d: Duration| self.start + Duration::from_millis(ms - 1) + d;
        match self.head_since.load(Ordering::Relaxed) {
            0 => Some(at(
                self.idle_since.load(Ordering::Relaxed).max(1),
                limits.idle_timeout,
            )),
            t => Some(at(t, limits.read_header_timeout)),
        }
    }
}

/// The connection's stream, noting when a new request's first byte arrives.
struct Watched<I> {
    io: I,
    clock: Arc<Clock>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.clock.serving.load(Ordering::Relaxed) == 0
            && self.clock.head_since.load(Ordering::Relaxed) == 0
        {
            let now = self.clock.now();
            self.clock.head_since.store(now, Ordering::Relaxed);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Marks a request as being served until dropped (the response is handed to hyper).
struct Serving(Arc<Clock>);

impl Serving {
    fn begin(clock: &Arc<Clock>) -> Serving {
        clock.serving.fetch_add(1, Ordering::Relaxed);
        clock.head_since.store(0, Ordering::Relaxed);
        Serving(clock.clone())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.idle_since.store(now, Ordering::Relaxed);
        self.0.serving.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    peer: SocketAddr,
    app: App,
    mut stop: oneshot::Receiver<()>,
    _done: mpsc::Sender<()>,
) {
    let limits = app.limits().clone();
    let clock = Arc::new(Clock {
        start: Instant::now(),
        // the first head is due read_header_timeout after the connection opens, as in Go
        head_since: AtomicU64::new(1),
        idle_since: AtomicU64::new(0),
        serving: AtomicU64::new(0),
    });
    let io = Watched {
        io,
        clock: clock.clone(),
    };
    let svc_clock = clock.clone();
    let svc = service_fn(move |req| {
        let app = app.clone();
        let serving = Serving::begin(&svc_clock);
        async move {
            let resp = app.call(req, peer).await;
            drop(serving);
            Ok::<_, Infallible>(resp)
        }
    });
    let mut builder = http1::Builder::new();
    builder.max_header_size(limits.max_header_size);
    let mut conn = pin!(builder.serve_connection(TokioIo::new(io), svc));
    let ended = loop {
        // Looked at again at least every header timeout: a head that starts on an idle
        // connection moves its deadline earlier without waking this task, so it is
        // dropped between one and two header timeouts after its first byte. While a
        // request is served there is no deadline (the request's own timeout bounds it).
        let next_look = Instant::now() + limits.read_header_timeout;
        let deadline = clock
            .deadline(&limits)
            .map_or(next_look, |d| d.min(next_look));
        let watchdog = tokio::time::sleep_until(deadline);
        tokio::select! {
            biased;
            r = conn.as_mut() => break r,
            _ = &mut stop => {
                conn.as_mut().graceful_shutdown();
                break conn.await;
            }
            () = watchdog => {
                // Re-read: the head may have completed, or a byte arrived, meanwhile.
                if clock.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    let why = if clock.head_since.load(Ordering::Relaxed) == 0 {
                        "idle"
                    } else {
                        "request head not received in time"
                    };
                    tracing::debug!(%peer, why, "closing the connection");
                    return;
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
