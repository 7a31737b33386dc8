//! SMTP replies: the one table every reply code and enhanced status code comes from.
//!
//! Server replies are built only by the named constructors in [`replies`]; the relay parses the next hop's
//! replies into the same [`Reply`] type with [`Reply::parse_line`].

use std::borrow::Cow;
use std::fmt;

/// An RFC 3463 enhanced status code, e.g. `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCode(pub u8, pub u16, pub u16);

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<StatusCode>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    pub fn new(code: u16, status: (u8, u16, u16), text: impl Into<Cow<'static, str>>) -> Reply {
        Reply { code, status: Some(StatusCode(status.0, status.1, status.2)), lines: vec![text.into()] }
    }

    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }
    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The reply as sent on the wire, every line ending in CRLF.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(s) = self.status {
                out.extend_from_slice(format!("{s} ").as_bytes());
            }
            // Replies never carry line breaks or control bytes, whatever text reached them.
            out.extend(line.bytes().map(|b| if b.is_ascii_control() { b'?' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
        if self.lines.is_empty() {
            out.extend_from_slice(format!("{} \r\n", self.code).as_bytes());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }

    /// Parse one reply line from a peer: `(code, is_last_line, text)`. Returns `None` if it is not one.
    pub fn parse_line(line: &[u8]) -> Option<(u16, bool, &str)> {
        let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(line);
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let code: u16 = std::str::from_utf8(&line[..3]).ok()?.parse().ok()?;
        if !(200..600).contains(&code) {
            return None;
        }
        let (last, text) = match line.get(3) {
            None => (true, &b""[..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return None,
        };
        Some((code, last, std::str::from_utf8(text).unwrap_or("(reply text is not UTF-8)")))
    }

    /// Build a reply from a peer's lines (already split by [`Reply::parse_line`]), reading the enhanced code.
    pub fn from_peer(code: u16, texts: Vec<String>) -> Reply {
        let mut status = None;
        let lines = texts
            .into_iter()
            .map(|t| {
                let (s, rest) = split_status(&t);
                if status.is_none() {
                    status = s;
                }
                Cow::Owned(rest.to_string())
            })
            .collect();
        Reply { code, status, lines }
    }

    /// The reply text on one line (for logs and DSNs), without codes.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

fn split_status(text: &str) -> (Option<StatusCode>, &str) {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut it = first.split('.');
    let parsed = (|| {
        let a: u8 = it.next()?.parse().ok()?;
        let b: u16 = it.next()?.parse().ok()?;
        let c: u16 = it.next()?.parse().ok()?;
        (it.next().is_none() && matches!(a, 2 | 4 | 5)).then_some(StatusCode(a, b, c))
    })();
    match parsed {
        Some(s) => (Some(s), rest),
        None => (None, text),
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} {} {}", self.code, s, self.text()),
            None => write!(f, "{} {}", self.code, self.text()),
        }
    }
}

/// Every reply the gateway's SMTP server sends, by name.
pub mod replies {
    use super::{Reply, StatusCode};

    pub fn greeting(host: &str) -> Reply {
        Reply { code: 220, status: None, lines: vec![format!("{host} ESMTP Portcullis").into()] }
    }
    pub fn helo(host: &str) -> Reply {
        Reply { code: 250, status: None, lines: vec![host.to_string().into()] }
    }
    /// The EHLO reply: our name, then one line per extension.
    pub fn ehlo(host: &str, extensions: Vec<String>) -> Reply {
        let mut lines = vec![host.to_string().into()];
        lines.extend(extensions.into_iter().map(Into::into));
        Reply { code: 250, status: None, lines }
    }
    pub fn ok() -> Reply {
        Reply::new(250, (2, 0, 0), "OK")
    }
    pub fn sender_ok() -> Reply {
        Reply::new(250, (2, 1, 0), "Sender OK")
    }
    pub fn recipient_ok() -> Reply {
        Reply::new(250, (2, 1, 5), "Recipient OK")
    }
    pub fn start_data() -> Reply {
        Reply { code: 354, status: None, lines: vec!["End data with <CR><LF>.<CR><LF>".into()] }
    }
    pub fn chunk_received(n: u64) -> Reply {
        Reply::new(250, (2, 0, 0), format!("{n} octets received"))
    }
    pub fn queued(id: &str) -> Reply {
        Reply::new(250, (2, 0, 0), format!("OK queued as {id}"))
    }
    pub fn bye() -> Reply {
        Reply::new(221, (2, 0, 0), "Bye")
    }
    pub fn help() -> Reply {
        Reply::new(214, (2, 0, 0), "See RFC 5321")
    }
    pub fn cannot_vrfy() -> Reply {
        Reply::new(252, (2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery")
    }
    pub fn ready_for_tls() -> Reply {
        Reply::new(220, (2, 0, 0), "Ready to start TLS")
    }

    // 4xx: try again later.
    pub fn too_many_connections() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many connections, try again later")
    }
    pub fn too_many_connections_from_ip() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many connections from your address, try again later")
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many errors, closing connection")
    }
    pub fn too_many_messages() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many messages in one session, closing connection")
    }
    pub fn timeout() -> Reply {
        Reply::new(421, (4, 4, 2), "Timeout exceeded, closing connection")
    }
    pub fn shutting_down() -> Reply {
        Reply::new(421, (4, 3, 2), "Service shutting down, try again later")
    }
    pub fn tls_unavailable() -> Reply {
        Reply::new(454, (4, 7, 0), "TLS not available, try again later")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, (4, 5, 3), "Too many recipients")
    }
    pub fn insufficient_storage() -> Reply {
        Reply::new(452, (4, 3, 1), "Insufficient system storage, try again later")
    }
    pub fn content_tempfail(why: &str) -> Reply {
        Reply::new(451, (4, 7, 1), format!("Message deferred: {why}; try again later"))
    }
    pub fn local_error() -> Reply {
        Reply::new(451, (4, 3, 0), "Local error in processing, try again later")
    }
    /// The connection policy (a sender group) defers this client, at connection.
    pub fn policy_tempfail() -> Reply {
        Reply::new(421, (4, 7, 0), "Service temporarily unavailable for your address, try again later")
    }
    /// The connection policy defers this client, at MAIL FROM.
    pub fn sender_policy_tempfail() -> Reply {
        Reply::new(451, (4, 7, 1), "Temporarily refused by policy, try again later")
    }
    /// The client's sender group allows no more connections in this window.
    pub fn rate_limited() -> Reply {
        Reply::new(421, (4, 7, 0), "Too many connections from your address recently, try again later")
    }
    /// The client's sender group allows no more messages in this window.
    pub fn message_rate_limited() -> Reply {
        Reply::new(451, (4, 7, 1), "Too many messages from your address recently, try again later")
    }

    // 5xx: permanent.
    pub fn unrecognized() -> Reply {
        Reply::new(500, (5, 5, 1), "Command unrecognized")
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, (5, 5, 2), "Line too long")
    }
    pub fn bad_line_ending() -> Reply {
        Reply::new(501, (5, 5, 2), "Bare CR or LF not allowed; lines end with CRLF")
    }
    pub fn bad_bytes() -> Reply {
        Reply::new(501, (5, 5, 2), "Invalid characters in command")
    }
    pub fn bad_data_line_ending() -> Reply {
        Reply::new(550, (5, 5, 2), "Bare CR or LF in message data not allowed; closing connection")
    }
    pub fn bad_bdat_line_ending() -> Reply {
        Reply::new(550, (5, 5, 2), "Bare CR or LF in message data not allowed")
    }
    pub fn syntax(usage: &'static str) -> Reply {
        Reply::new(501, (5, 5, 4), format!("Syntax: {usage}"))
    }
    pub fn bad_sender(why: &str) -> Reply {
        Reply::new(501, (5, 1, 7), format!("Bad sender address syntax: {why}"))
    }
    pub fn bad_recipient(why: &str) -> Reply {
        Reply::new(501, (5, 1, 3), format!("Bad recipient address syntax: {why}"))
    }
    pub fn need_utf8() -> Reply {
        Reply::new(553, (5, 6, 7), "Non-ASCII address requires the SMTPUTF8 parameter")
    }
    pub fn bad_sequence(what: &'static str) -> Reply {
        Reply::new(503, (5, 5, 1), what)
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, (5, 5, 1), "No valid recipients")
    }
    pub fn not_implemented(what: &'static str) -> Reply {
        Reply::new(502, (5, 5, 1), format!("{what} not implemented"))
    }
    pub fn unsupported_parameter(name: &str) -> Reply {
        Reply::new(555, (5, 5, 4), format!("Unsupported parameter {name}"))
    }
    pub fn message_too_big() -> Reply {
        Reply::new(552, (5, 3, 4), "Message size exceeds fixed maximum message size")
    }
    pub fn relay_denied() -> Reply {
        Reply::new(550, (5, 7, 1), "Relaying denied")
    }
    pub fn tls_required() -> Reply {
        Reply::new(530, (5, 7, 0), "Must issue a STARTTLS command first")
    }
    pub fn early_talker() -> Reply {
        Reply::new(554, (5, 5, 0), "Protocol error: talking before the greeting; closing connection")
    }
    /// The connection policy (a sender group) refuses this client, at connection.
    pub fn policy_reject() -> Reply {
        Reply::new(554, (5, 7, 1), "Access denied by policy")
    }
    /// The connection policy refuses this client, at MAIL FROM.
    pub fn sender_policy_reject() -> Reply {
        Reply::new(550, (5, 7, 1), "Sender refused by policy")
    }
    pub fn rejected(why: &str) -> Reply {
        Reply::new(550, (5, 7, 1), format!("Message rejected: {why}"))
    }
    pub fn unknown_user() -> Reply {
        Reply::new(550, (5, 1, 1), "Recipient address rejected: user unknown")
    }

    /// Whether a reply is one the client caused (it counts towards the session's error limit).
    pub fn is_client_error(r: &Reply) -> bool {
        r.code >= 500 || matches!(r.status, Some(StatusCode(4, 5, 3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        assert_eq!(replies::ok().to_bytes(), b"250 2.0.0 OK\r\n");
        let e = replies::ehlo("mx.test", vec!["PIPELINING".into(), "SIZE 10".into()]);
        assert_eq!(e.to_bytes(), b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
        let hostile = Reply::new(550, (5, 7, 1), "a\r\nb");
        assert_eq!(hostile.to_bytes(), b"550 5.7.1 a??b\r\n");
    }

    #[test]
    fn parse_peer_lines() {
        assert_eq!(Reply::parse_line(b"250-PIPELINING\r\n"), Some((250, false, "PIPELINING")));
        assert_eq!(Reply::parse_line(b"250 OK\r\n"), Some((250, true, "OK")));
        assert_eq!(Reply::parse_line(b"250\r\n"), Some((250, true, "")));
        assert_eq!(Reply::parse_line(b"25x OK\r\n"), None);
        assert_eq!(Reply::parse_line(b"999 OK\r\n"), None);
        let r = Reply::from_peer(550, vec!["5.1.1 no such user".into()]);
        assert_eq!(r.status, Some(StatusCode(5, 1, 1)));
        assert_eq!(r.text(), "no such user");
        assert_eq!(Reply::from_peer(250, vec!["OK".into()]).status, None);
    }
}
