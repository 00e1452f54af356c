//! The connection loop: accepts connections from a [`Listener`] and serves each with
//! hyper's HTTP/1.1 server in a task of its own, until the shutdown future resolves; then
//! stops accepting, lets every connection finish the request it is serving (idle ones
//! close at once) and returns when the last one has closed.
//!
//! Each connection learns of the shutdown through a oneshot channel of its own, so polling
//! a busy connection never touches state shared with the others (a watch channel would
//! take its waiter list's mutex on every wakeup of every connection).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

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
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        if stops.len() >= 64 && stops.len() == stops.capacity() {
            stops.retain(|s| !s.is_closed());
        }
        let (stop_tx, stop_rx) = oneshot::channel();
        stops.push(stop_tx);
        tokio::spawn(connection(io, peer, app.clone(), stop_rx, done_tx.clone()));
    }
    drop(listener);
    for stop in stops {
        let _ = stop.send(());
    }
    drop(done_tx);
    let _ = done_rx.recv().await;
}

async fn connection<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    peer: SocketAddr,
    app: App,
    mut stop: oneshot::Receiver<()>,
    _done: mpsc::Sender<()>,
) {
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(app.call(req, peer).await) }
    });
    let mut conn = pin!(http1::Builder::new().serve_connection(TokioIo::new(io), svc));
    let ended = tokio::select! {
        biased;
        r = conn.as_mut() => r,
        _ = &mut stop => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
