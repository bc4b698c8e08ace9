//! Accepting connections: a task accepts TCP connections and hands each to its own task for the TLS
//! handshake (bounded in time and in number), so a slow or silent client never holds up the next one;
//! finished connections reach axum through [`Incoming`], its `serve::Listener`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// A client that has not finished its TLS handshake after this long is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond that new connections are closed at once (a flood of
/// half-open connections must not take the box's memory).
const MAX_HANDSHAKES: usize = 256;

/// A connection ready for HTTP: TLS or, when configured, plain.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The peer of a connection, as handlers and the access log see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, Incoming>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

/// Ready connections, for `axum::serve`.
pub struct Incoming {
    ready: mpsc::Receiver<(Box<dyn Io>, SocketAddr)>,
    local: SocketAddr,
}

impl Listener for Incoming {
    type Io = Box<dyn Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task ended (shutdown): no connection will come; axum's graceful shutdown
            // stops asking.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Starts accepting on `tcp`; TLS when `tls` is given. Stops accepting when `stop` becomes true.
pub fn incoming(
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<Incoming> {
    let local = tcp.local_addr()?;
    let (ready_tx, ready) = mpsc::channel::<(Box<dyn Io>, SocketAddr)>(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = tokio::select! {
                _ = async { drop(stop.wait_for(|s| *s).await) } => break,
                accepted = tcp.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: say so, wait, carry on.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let Some(acceptor) = acceptor.clone() else {
                if ready_tx.send((Box::new(stream), peer)).await.is_err() {
                    break;
                }
                continue;
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                tracing::warn!(client = %peer.ip(), "too many TLS handshakes in progress: connection closed");
                continue;
            };
            let ready_tx = ready_tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = ready_tx.send((Box::new(tls), peer)).await;
                    }
                    // A phone that does not trust the certificate yet ends here: worth seeing, not alarming.
                    Ok(Err(e)) => tracing::info!(client = %peer.ip(), error = %e, "TLS handshake failed"),
                    Err(_) => tracing::info!(client = %peer.ip(), timeout_secs = HANDSHAKE_TIMEOUT.as_secs(),
                        "TLS handshake timed out"),
                }
            });
        }
        tracing::debug!(address = %local, "stopped accepting connections");
    });
    Ok(Incoming { ready, local })
}
