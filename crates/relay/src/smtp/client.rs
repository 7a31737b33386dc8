//! Opening a session with a next hop: connect, greeting, EHLO (HELO fallback), STARTTLS.

use super::wire::{Io, Wire, WireError};
use config::OutboundTls;
use rustls::pki_types::ServerName;
use smtp_session::Reply;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// What the next hop said it supports in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub pipelining: bool,
    /// `SIZE` was offered.
    pub size: bool,
    /// The largest message it takes, if it named one.
    pub size_limit: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
}

impl Capabilities {
    fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "STARTTLS" => caps.starttls = true,
                "SIZE" => {
                    caps.size = true;
                    caps.size_limit = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0);
                }
                _ => {}
            }
        }
        caps
    }
}

/// How to reach a next hop and what to ask of it.
pub(crate) struct Settings<'a> {
    pub host: &'a str,
    pub port: u16,
    /// Our name in EHLO.
    pub helo: &'a str,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub tls_mode: OutboundTls,
    /// Client settings for STARTTLS (absent when `tls_mode` is `None`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// Why a session could not be opened. Every variant defers delivery.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("cannot connect to {hop}: {source}")]
    Connect { hop: String, source: io::Error },
    #[error("timed out connecting to {hop} or waiting for its greeting")]
    Timeout { hop: String },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("next hop refused the session {stage}: {reply}")]
    Refused { stage: &'static str, reply: Reply },
    #[error("TLS is required but the next hop does not offer STARTTLS")]
    TlsNotOffered,
    #[error("TLS handshake with the next hop failed: {0}")]
    Handshake(String),
}

/// An open session, ready for a transaction.
pub(crate) struct Connection {
    pub(crate) wire: Wire,
    pub(crate) caps: Capabilities,
    /// Transactions completed over this connection.
    pub(crate) transactions: u32,
    pub(crate) tls: bool,
}

/// Open a session. Under opportunistic TLS a failed handshake is retried once in plain text, as
/// RFC 7435 intends: a next hop with broken TLS still gets its mail.
pub(crate) async fn connect(s: &Settings<'_>) -> Result<Connection, ConnectError> {
    match open(s, s.tls_mode).await {
        Err(ConnectError::Handshake(why)) if s.tls_mode == OutboundTls::Opportunistic => {
            tracing::warn!(next_hop = %s.host, port = s.port, %why, "opportunistic TLS failed; retrying in plain text");
            open(s, OutboundTls::None).await
        }
        other => other,
    }
}

async fn open(s: &Settings<'_>, mode: OutboundTls) -> Result<Connection, ConnectError> {
    let hop = format!("{}:{}", s.host, s.port);
    let greeted = tokio::time::timeout(s.connect_timeout, greet(s, &hop)).await;
    let mut wire = greeted.map_err(|_| ConnectError::Timeout { hop: hop.clone() })??;
    wire.timeout = s.command_timeout;
    let caps = ehlo(&mut wire, s.helo).await?;
    let wants_tls = match mode {
        OutboundTls::None => false,
        OutboundTls::Opportunistic => caps.starttls,
        OutboundTls::Required if !caps.starttls => return Err(ConnectError::TlsNotOffered),
        OutboundTls::Required => true,
    };
    let mut conn = Connection { wire, caps, transactions: 0, tls: false };
    if wants_tls {
        conn = starttls(conn, s, mode).await?;
    }
    Ok(conn)
}

async fn greet(s: &Settings<'_>, hop: &str) -> Result<Wire, ConnectError> {
    let tcp = TcpStream::connect((s.host, s.port))
        .await
        .map_err(|source| ConnectError::Connect { hop: hop.to_string(), source })?;
    // Commands are small and pipelined; waiting for more to fill a segment only adds latency.
    let _ = tcp.set_nodelay(true);
    let mut wire = Wire::new(Box::new(tcp), s.connect_timeout);
    let greeting = match wire.read_reply("waiting for the greeting").await {
        Ok(reply) => reply,
        Err(WireError::Timeout { .. }) => return Err(ConnectError::Timeout { hop: hop.to_string() }),
        Err(e) => return Err(e.into()),
    };
    if greeting.code != 220 {
        return Err(ConnectError::Refused { stage: "in its greeting", reply: greeting });
    }
    Ok(wire)
}

/// EHLO, falling back to HELO (no extensions) if EHLO is refused as a command.
async fn ehlo(wire: &mut Wire, helo: &str) -> Result<Capabilities, ConnectError> {
    wire.send(format!("EHLO {helo}\r\n").as_bytes(), "sending EHLO").await?;
    let reply = wire.read_reply("after EHLO").await?;
    if reply.is_positive() {
        return Ok(Capabilities::from_ehlo(&reply));
    }
    if !reply.is_permanent() || reply.code == 554 {
        return Err(ConnectError::Refused { stage: "after EHLO", reply });
    }
    wire.send(format!("HELO {helo}\r\n").as_bytes(), "sending HELO").await?;
    let reply = wire.read_reply("after HELO").await?;
    if !reply.is_positive() {
        return Err(ConnectError::Refused { stage: "after HELO", reply });
    }
    Ok(Capabilities::default())
}

async fn starttls(
    mut conn: Connection,
    s: &Settings<'_>,
    mode: OutboundTls,
) -> Result<Connection, ConnectError> {
    conn.wire.send(b"STARTTLS\r\n", "sending STARTTLS").await?;
    let reply = conn.wire.read_reply("after STARTTLS").await?;
    if reply.code != 220 {
        if mode == OutboundTls::Required {
            return Err(ConnectError::Refused { stage: "after STARTTLS", reply });
        }
        // Opportunistic: the session is still usable in plain text.
        return Ok(conn);
    }
    let tls_config = s.tls.clone().ok_or_else(|| ConnectError::Handshake("no TLS client settings".into()))?;
    let name = ServerName::try_from(s.host.to_string())
        .map_err(|e| ConnectError::Handshake(format!("next hop name {:?}: {e}", s.host)))?;
    let timeout = conn.wire.timeout;
    let (io, injected): (Box<dyn Io>, bool) = conn.wire.into_io();
    if injected {
        tracing::warn!(next_hop = %s.host, "next hop sent data ahead of the TLS handshake; discarded");
    }
    let handshake = TlsConnector::from(tls_config).connect(name, io);
    let tls = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => return Err(ConnectError::Handshake(e.to_string())),
        Err(_) => return Err(ConnectError::Handshake("timed out".into())),
    };
    let mut wire = Wire::new(Box::new(tls), timeout);
    let caps = ehlo(&mut wire, s.helo).await?;
    Ok(Connection { wire, caps, transactions: 0, tls: true })
}

impl Connection {
    /// End the session politely; errors do not matter any more.
    pub(crate) async fn quit(mut self) {
        if self.wire.send(b"QUIT\r\n", "sending QUIT").await.is_ok() {
            let _ = self.wire.read_reply("after QUIT").await;
        }
        self.wire.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_from_ehlo() {
        let r = Reply::from_peer(
            250,
            vec![
                "mx.test".into(),
                "pipelining".into(),
                "SIZE 1000".into(),
                "8BITMIME".into(),
                "STARTTLS".into(),
            ],
        );
        let c = Capabilities::from_ehlo(&r);
        assert!(c.pipelining && c.size && c.eight_bit_mime && c.starttls && !c.smtputf8);
        assert_eq!(c.size_limit, Some(1000));
        let r = Reply::from_peer(250, vec!["mx.test".into(), "SIZE".into(), "SMTPUTF8".into()]);
        let c = Capabilities::from_ehlo(&r);
        assert!(c.size && c.smtputf8 && c.size_limit.is_none());
    }
}
