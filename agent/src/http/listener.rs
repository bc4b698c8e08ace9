//! Accepting connections: a task accepts TCP connections and hands each to its own task for the TLS
//! handshake (bounded in time and in number), so a slow or silent client never holds up the next one;
//! finished connections reach axum through [`Incoming`], its `serve::Listener`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// Starts accepting on `tcp`; TLS when `tls` is given. Stops accepting when `stop` becomes true. A
/// connection on which nothing is read or written for `idle` is closed: a client that opens connections
/// and never finishes its request headers (which the request timeout, counted from the headers, cannot
/// see) does not keep them for ever.
pub fn incoming(
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
    idle: Duration,
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
            let stream = Idle::new(stream, idle);
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

/// A connection that fails its next read once nothing has moved on it for its idle time.
pub struct Idle<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<T> Idle<T> {
    fn new(inner: T, idle: Duration) -> Idle<T> {
        Idle { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }

    fn moved(&mut self) {
        self.deadline.as_mut().reset(tokio::time::Instant::now() + self.idle);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Idle<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connection idle")))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Idle<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A client that connects and sends nothing loses the connection; one that talks keeps it.
    #[tokio::test]
    async fn a_silent_connection_is_closed() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let (_stop, stopped) = watch::channel(false);
        let mut incoming = incoming(tcp, None, stopped, Duration::from_millis(300)).unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server_side, peer) = incoming.accept().await;
        assert_eq!(peer, client.local_addr().unwrap());
        client.write_all(b"GET").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(server_side.read(&mut buf).await.unwrap(), 3);
        let err = server_side.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
