//! The SMTP listeners: accept connections, enforce connection limits, run TLS, drive the session machine.
//!
//! Owns: sockets, STARTTLS (rustls), per-connection deadlines, connection limits in total and per client
//! address, graceful draining on shutdown, and the order of work at end of DATA: judge, add headers,
//! commit to the spool (fsync), and only then reply 250. Must not touch: MIME, scoring, SQL; those sit
//! behind the [`Gatekeeper`] trait.
//!
//! # Security
//! Everything read from a socket is untrusted and goes straight into the sans-IO session machine
//! (`smtp-session`), which bounds it. This crate adds the bounds that need a clock or a global view:
//! `command_timeout` and `data_timeout` are deadlines not extended by trickled bytes (slowloris),
//! `max_connections` and `max_connections_per_ip` cap concurrency, a failed TLS handshake ends the
//! connection, and the greeting delay catches clients that talk first. Replies come only from the
//! session machine's reply table; client text reaches the `Received:` header only escaped.

#![forbid(unsafe_code)]

mod conn;
mod driver;
mod gatekeeper;
mod limits;
mod received;
mod tls;

pub use gatekeeper::{Delivered, Disposition, Gatekeeper, Judgement, Peer};
pub use limits::ConnectionLimits;
pub use received::received_header;
pub use tls::{TlsError, server_config};

use config::Config;
use smtp_session::Reply;
use spool::Spool;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What every session shares.
pub(crate) struct Shared<G> {
    config: RwLock<Arc<Config>>,
    pub(crate) spool: Spool,
    pub(crate) gatekeeper: Arc<G>,
    pub(crate) tls: Option<TlsAcceptor>,
    limits: Arc<ConnectionLimits>,
    pub(crate) shutdown: watch::Receiver<bool>,
    next_session: AtomicU64,
}

impl<G> Shared<G> {
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }
}

/// The SMTP service. Clone it freely; all clones share state.
pub struct SmtpServer<G> {
    shared: Arc<Shared<G>>,
}

impl<G> Clone for SmtpServer<G> {
    fn clone(&self) -> Self {
        SmtpServer { shared: self.shared.clone() }
    }
}

impl<G: Gatekeeper> SmtpServer<G> {
    /// Build the service. TLS material is loaded (or created) now, so a bad certificate stops the start.
    pub fn new(
        config: Arc<Config>,
        spool: Spool,
        gatekeeper: Arc<G>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, ServerError> {
        let tls = if config.smtp.starttls {
            let s = &config.smtp;
            let tls_dir = config.data_dir.join("tls");
            Some(TlsAcceptor::from(server_config(&s.tls_cert, &s.tls_key, &tls_dir, &config.hostname)?))
        } else {
            None
        };
        let shared = Shared {
            config: RwLock::new(config),
            spool,
            gatekeeper,
            tls,
            limits: Arc::new(ConnectionLimits::default()),
            shutdown,
            next_session: AtomicU64::new(1),
        };
        Ok(SmtpServer { shared: Arc::new(shared) })
    }

    /// Bind every configured listen address.
    pub async fn bind(&self) -> Result<Vec<TcpListener>, ServerError> {
        let mut out = Vec::new();
        for addr in self.shared.config().smtp.listen.iter() {
            let l = TcpListener::bind(addr.0)
                .await
                .map_err(|source| ServerError::Bind { addr: addr.0, source })?;
            out.push(l);
        }
        Ok(out)
    }

    /// Use a new configuration for sessions that start from now on (SIGHUP). Listen addresses, the data
    /// directory and TLS material are fixed for the life of the process.
    pub fn reload(&self, config: Arc<Config>) {
        *self.shared.config.write().expect("config lock") = config;
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.shared.limits.open()
    }

    /// Accept on `listeners` until shutdown, then wait for sessions to drain.
    pub async fn serve(&self, listeners: Vec<TcpListener>) {
        let mut accepts = JoinSet::new();
        for l in listeners {
            let this = self.clone();
            accepts.spawn(async move { this.accept_loop(l).await });
        }
        while accepts.join_next().await.is_some() {}
    }

    async fn accept_loop(&self, listener: TcpListener) {
        let mut sessions = JoinSet::new();
        let mut shutdown = self.shared.shutdown.clone();
        while !*shutdown.borrow() {
            // Reap finished sessions so the set does not grow with every connection ever served.
            while sessions.try_join_next().is_some() {}
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let this = self.clone();
                        sessions.spawn(async move { this.handle(stream, addr.ip()).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => {}
            }
        }
        drop(listener);
        let grace = self.shared.config().smtp.drain_timeout.get() + std::time::Duration::from_secs(5);
        if tokio::time::timeout(grace, async { while sessions.join_next().await.is_some() {} }).await.is_err()
        {
            tracing::warn!("sessions still open after the drain timeout; closing them");
            sessions.shutdown().await;
        }
    }

    /// Serve one connection from `ip` over any stream (tests use in-memory pipes).
    pub async fn handle<S>(&self, mut stream: S, ip: IpAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let cfg = self.shared.config();
        metrics::counter!("portcullis_smtp_connections_total").increment(1);
        let slot =
            match self.shared.limits.admit(ip, cfg.smtp.max_connections, cfg.smtp.max_connections_per_ip) {
                Ok(slot) => slot,
                Err(reply) => {
                    metrics::counter!("portcullis_smtp_connections_refused_total").increment(1);
                    tracing::info!(%ip, reply = %reply, "connection refused");
                    refuse(&mut stream, &reply).await;
                    return;
                }
            };
        let session = self.shared.next_session.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(session, %ip, "connection opened");
        let peer = Peer { session, ip, helo: None, tls: false };
        if let smtp_session::Decision::Refuse(reply) = self.shared.gatekeeper.check_connection(&peer).await {
            metrics::counter!("portcullis_smtp_connections_refused_total").increment(1);
            tracing::info!(session, %ip, reply = %reply, "connection refused by policy");
            refuse(&mut stream, &reply).await;
            return;
        }
        driver::run(stream, peer, self.shared.clone()).await;
        tracing::debug!(session, "connection closed");
        drop(slot);
    }
}

async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, reply: &Reply) {
    let _ = stream.write_all(&reply.to_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests;
