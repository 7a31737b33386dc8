//! The byte level of an outbound connection: bounded reply reading and timed writes.
//!
//! Replies are parsed with `smtp_session::Reply::parse_line`, the same grammar the server speaks.

use smtp_session::Reply;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Longest reply line accepted from a next hop (RFC 5321 allows 512; be generous, but bounded).
const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply (an EHLO reply has one per extension).
const MAX_REPLY_LINES: usize = 100;
/// Message content is written in pieces this big, each under its own deadline, so a slow but
/// progressing next hop is not cut off while a stalled one is.
const WRITE_CHUNK: usize = 64 * 1024;

/// Any stream a connection can run over: plain TCP, TLS over TCP, or an in-memory pipe in tests.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why talking to a next hop failed. `stage` says what we were waiting for.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("timed out {stage}")]
    Timeout { stage: &'static str },
    #[error("connection error {stage}: {source}")]
    Io { stage: &'static str, source: io::Error },
    #[error("connection closed by the next hop {stage}")]
    Closed { stage: &'static str },
    #[error("protocol error {stage}: {why}")]
    Protocol { stage: &'static str, why: &'static str },
}

pub(crate) struct Wire {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    /// Deadline for each reply and each written piece.
    pub(crate) timeout: Duration,
}

impl Wire {
    pub(crate) fn new(io: Box<dyn Io>, timeout: Duration) -> Wire {
        Wire { io, buf: Vec::with_capacity(1024), timeout }
    }

    /// Read one complete (possibly multi-line) reply under the deadline.
    pub(crate) async fn read_reply(&mut self, stage: &'static str) -> Result<Reply, WireError> {
        match tokio::time::timeout(self.timeout, self.read_reply_untimed(stage)).await {
            Ok(r) => r,
            Err(_) => Err(WireError::Timeout { stage }),
        }
    }

    async fn read_reply_untimed(&mut self, stage: &'static str) -> Result<Reply, WireError> {
        let mut texts = Vec::new();
        let mut code = None;
        loop {
            let line = self.read_line(stage).await?;
            let (c, last, text) =
                Reply::parse_line(&line).ok_or(WireError::Protocol { stage, why: "malformed reply line" })?;
            if *code.get_or_insert(c) != c {
                return Err(WireError::Protocol { stage, why: "reply code changed within a reply" });
            }
            if texts.len() == MAX_REPLY_LINES {
                return Err(WireError::Protocol { stage, why: "reply has too many lines" });
            }
            texts.push(text.to_string());
            if last {
                return Ok(Reply::from_peer(c, texts));
            }
        }
    }

    /// One line, up to and including LF, bounded by [`MAX_REPLY_LINE`].
    async fn read_line(&mut self, stage: &'static str) -> Result<Vec<u8>, WireError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                return Ok(self.buf.drain(..=end).collect());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(WireError::Protocol { stage, why: "reply line too long" });
            }
            let mut chunk = [0u8; 4096];
            let n = self.io.read(&mut chunk).await.map_err(|source| WireError::Io { stage, source })?;
            if n == 0 {
                return Err(WireError::Closed { stage });
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Write commands (small) and flush, under one deadline.
    pub(crate) async fn send(&mut self, bytes: &[u8], stage: &'static str) -> Result<(), WireError> {
        let write = async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        };
        match tokio::time::timeout(self.timeout, write).await {
            Ok(r) => r.map_err(|source| WireError::Io { stage, source }),
            Err(_) => Err(WireError::Timeout { stage }),
        }
    }

    /// Write message content after DATA: dot-stuffed piece by piece (so a large message is never
    /// copied whole), ending in CRLF (added if missing), then `.` CRLF. Each piece has its own deadline.
    pub(crate) async fn send_content(&mut self, content: &[u8]) -> Result<(), WireError> {
        let mut line_start = true;
        let mut out = Vec::with_capacity(content.len().min(WRITE_CHUNK) + 64);
        let mut rest = content;
        loop {
            let (piece, tail) = rest.split_at(rest.len().min(WRITE_CHUNK));
            out.clear();
            stuff_into(&mut out, piece, &mut line_start);
            if tail.is_empty() {
                out.extend_from_slice(terminator(content));
            }
            self.send(&out, "sending the message content").await?;
            if tail.is_empty() {
                return Ok(());
            }
            rest = tail;
        }
    }

    /// Whether the next hop said something unasked (typically `421` before closing) or closed: such a
    /// connection must not carry another transaction.
    pub(crate) async fn is_stale(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        // A zero deadline polls the read once: pending means nothing was said and the socket is open.
        tokio::time::timeout(Duration::ZERO, self.io.read(&mut probe)).await.is_ok()
    }

    /// Give up the stream (to wrap it in TLS). Anything the next hop sent ahead of the handshake is
    /// discarded, as a server must discard what a client pipelines after STARTTLS (CVE-2011-0411).
    pub(crate) fn into_io(self) -> (Box<dyn Io>, bool) {
        let injected = !self.buf.is_empty();
        (self.io, injected)
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.timeout, self.io.shutdown()).await;
    }
}

/// Dot-stuff one piece of content: a line starting with `.` gets another (`line_start` carries
/// across pieces).
fn stuff_into(out: &mut Vec<u8>, piece: &[u8], line_start: &mut bool) {
    for &b in piece {
        if *line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        *line_start = b == b'\n';
    }
}

/// What ends the content: `.` CRLF, after a CRLF if the content does not end in one.
fn terminator(content: &[u8]) -> &'static [u8] {
    if content.is_empty() || content.ends_with(b"\r\n") { b".\r\n" } else { b"\r\n.\r\n" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot_stuff(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        stuff_into(&mut out, content, &mut true);
        out.extend_from_slice(terminator(content));
        out
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(dot_stuff(b"a\r\n.b\r\n..\r\n"), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(dot_stuff(b".start\r\nend"), b"..start\r\nend\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\r\n.\r\n"), b"x\r\n..\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"mid.dle\r\n"), b"mid.dle\r\n.\r\n");
    }

    #[tokio::test]
    async fn content_is_stuffed_the_same_across_piece_boundaries() {
        // 16-byte lines put a line start exactly on every piece boundary; 15-byte lines then drift
        // across boundaries at every other offset.
        let mut content = Vec::new();
        for i in 0..2 * WRITE_CHUNK / 16 {
            let dotted = (i * 16) % WRITE_CHUNK == 0 || i % 5 == 0;
            content.extend_from_slice(if dotted { b".dotted-line-0\r\n" } else { b"plain-line-012\r\n" });
        }
        for i in 0..WRITE_CHUNK / 15 + 3 {
            content.extend_from_slice(if i % 3 == 0 { b"..two-dots-9\r\n" } else { b"plain-line-1\r\n" });
        }
        content.extend_from_slice(b"no final newline");
        let dot_opens_a_piece =
            |k: usize| content[k * WRITE_CHUNK] == b'.' && content[k * WRITE_CHUNK - 1] == b'\n';
        assert!((1..3).any(dot_opens_a_piece), "the test puts a line-leading dot at a piece boundary");
        let (client, mut server) = tokio::io::duplex(8 * 1024);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            server.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut w = Wire::new(Box::new(client), Duration::from_secs(5));
        w.send_content(&content).await.unwrap();
        w.shutdown().await;
        drop(w);
        assert_eq!(reader.await.unwrap(), dot_stuff(&content));
    }

    async fn wire_with(input: &[u8]) -> Wire {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        server.write_all(input).await.unwrap();
        drop(server);
        Wire::new(Box::new(client), Duration::from_secs(5))
    }

    #[tokio::test]
    async fn reads_multi_line_replies_in_order() {
        let mut w = wire_with(b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n550 5.1.1 no\r\n").await;
        let r = w.read_reply("ehlo").await.unwrap();
        assert_eq!((r.code, r.lines.len()), (250, 3));
        let r = w.read_reply("rcpt").await.unwrap();
        assert_eq!(r.to_string(), "550 5.1.1 no");
        assert!(matches!(w.read_reply("x").await, Err(WireError::Closed { .. })));
    }

    #[tokio::test]
    async fn hostile_replies_are_bounded() {
        let mut w = wire_with(&[b'2'; 10_000]).await;
        assert!(matches!(w.read_reply("x").await, Err(WireError::Protocol { .. })));
        let mut w = wire_with(b"250-a\r\n354 b\r\n").await;
        assert!(matches!(w.read_reply("x").await, Err(WireError::Protocol { .. })));
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES + 1);
        let mut w = wire_with(many.as_bytes()).await;
        assert!(matches!(w.read_reply("x").await, Err(WireError::Protocol { .. })));
        let mut w = wire_with(b"hello\r\n").await;
        assert!(matches!(w.read_reply("x").await, Err(WireError::Protocol { .. })));
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let mut w = Wire::new(Box::new(client), Duration::from_millis(50));
        assert!(matches!(w.read_reply("greeting").await, Err(WireError::Timeout { .. })));
        assert!(!w.is_stale().await);
    }
}
