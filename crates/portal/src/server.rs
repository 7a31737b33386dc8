//! The management listener: our own accept loop around hyper's HTTP/1.1 server, so the limits that
//! come before any handler are ours to set: TLS (rustls, ring), a cap on open connections, the size
//! of the request head (431 beyond), a deadline for the head, and a refusal (400) of any request that
//! carries both `Content-Length` and `Transfer-Encoding` (a request-smuggling shape that hyper would
//! otherwise quietly resolve in favour of `Transfer-Encoding`).

use crate::error::PortalError;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// The client's address, put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// A bound listener and, under TLS, its acceptor.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Listener {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Bind `[portal] listen` (the exposure rule is checked with the configuration: a non-loopback address
/// without TLS never gets here unless `allow_insecure_public` is set, and then it is logged).
pub async fn bind(settings: &config::PortalConfig) -> Result<Listener, PortalError> {
    let addr = settings.listen.0;
    if !addr.ip().is_loopback() && !settings.tls() {
        tracing::warn!(%addr, "portal.allow_insecure_public: the portal is reachable from other machines WITHOUT TLS");
    }
    let tls = if settings.tls() { Some(tls_acceptor(settings)?) } else { None };
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|e| PortalError::Internal(format!("cannot listen on portal.listen = {addr}: {e}")))?;
    Ok(Listener { tcp, tls })
}

fn tls_acceptor(settings: &config::PortalConfig) -> Result<tokio_rustls::TlsAcceptor, PortalError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |what: &str, e: String| PortalError::Internal(format!("{what}: {e}"));
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&settings.tls_cert).and_then(|i| i.collect()).map_err(|e| {
            err(&format!("reading portal.tls_cert {}", settings.tls_cert.display()), e.to_string())
        })?;
    if certs.is_empty() {
        return Err(err("portal.tls_cert", "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.tls_key)
        .map_err(|e| err(&format!("reading portal.tls_key {}", settings.tls_key.display()), e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err("portal TLS certificate and key", e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serve `router` on `listener` until `stopped` turns true; connections in progress get a graceful
/// close.
pub async fn serve(
    listener: Listener,
    router: Router,
    settings: &config::PortalConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let limits = Arc::new(ConnLimits {
        max_head: settings.max_header_size.0 as usize,
        head_timeout: settings.request_timeout.get(),
    });
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            a = listener.tcp.accept() => a,
            _ = stopped.changed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "portal accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (router, tls, limits, stopped) =
            (router.clone(), listener.tls.clone(), limits.clone(), stopped.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            match tls {
                None => connection(tcp, peer, router, &limits, stopped).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(limits.head_timeout, acceptor.accept(tcp)).await;
                    if let Ok(Ok(stream)) = handshake {
                        connection(stream, peer, router, &limits, stopped).await;
                    }
                }
            }
        });
    }
}

struct ConnLimits {
    max_head: usize,
    head_timeout: std::time::Duration,
}

async fn connection<T>(
    io: T,
    peer: SocketAddr,
    router: Router,
    limits: &ConnLimits,
    mut stopped: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conflict = Arc::new(AtomicBool::new(false));
    let io = TokioIo::new(FramingGuard::new(io, conflict.clone()));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (router, conflict) = (router.clone(), conflict.clone());
        async move {
            if conflict.load(Ordering::Relaxed) {
                return Ok::<_, std::convert::Infallible>(conflicting_framing());
            }
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ClientAddr(peer.ip()));
            router.oneshot(req).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8192))
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        }
    }
}

fn conflicting_framing() -> Response<Body> {
    let mut r = Response::new(Body::from("both Content-Length and Transfer-Encoding: refused\n"));
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

/// Reads pass through unchanged while a small line scanner watches each header block (text up to an
/// empty line) for `Content-Length` and `Transfer-Encoding` together, and raises the flag. A body that
/// itself holds such lines can raise it too; the portal's bodies are forms and JSON, so that costs
/// nothing real, and the flag only ever refuses.
struct FramingGuard<T> {
    inner: T,
    flag: Arc<AtomicBool>,
    line: Vec<u8>,
    seen_length: bool,
    seen_encoding: bool,
}

/// Enough of a header line to know its name.
const NAME_PREFIX: usize = 20;

impl<T> FramingGuard<T> {
    fn new(inner: T, flag: Arc<AtomicBool>) -> Self {
        FramingGuard {
            inner,
            flag,
            line: Vec::with_capacity(NAME_PREFIX),
            seen_length: false,
            seen_encoding: false,
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b != b'\n' {
                if self.line.len() < NAME_PREFIX && b != b'\r' {
                    self.line.push(b.to_ascii_lowercase());
                }
                continue;
            }
            if self.line.is_empty() {
                if self.seen_length && self.seen_encoding {
                    self.flag.store(true, Ordering::Relaxed);
                }
                self.seen_length = false;
                self.seen_encoding = false;
            } else {
                let name = self.line.split(|c| *c == b':').next().unwrap_or(&[]).trim_ascii();
                self.seen_length |= name == b"content-length";
                self.seen_encoding |= name == b"transfer-encoding";
            }
            self.line.clear();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = buf.filled()[before..].to_vec();
            self.scan(&new);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FramingGuard<T> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let mut g = FramingGuard::new((), flag.clone());
        for c in chunks {
            g.scan(c);
        }
        flag.load(Ordering::Relaxed)
    }

    #[test]
    fn both_framing_headers_in_one_head_are_flagged() {
        let both = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(flagged(&[both]));
        assert!(flagged(&[&both[..30], &both[30..41], &both[41..]]), "split across reads");
        let te_first = b"POST / HTTP/1.1\r\ntransfer-encoding : chunked\r\ncontent-length:5\r\n\r\n";
        assert!(flagged(&[te_first]));
        assert!(!flagged(&[b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"]));
        assert!(!flagged(&[b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\nGET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"]));
    }
}
