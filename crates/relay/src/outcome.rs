//! What one delivery attempt says about one recipient.

use smtp_session::{Reply, StatusCode};
use std::fmt;

/// Why a recipient was not delivered: the next hop's reply, or Portcullis's own reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Enhanced status code reported in a DSN.
    pub status: StatusCode,
    pub diagnostic: Diagnostic,
    /// The next hop that answered, when one did (DSN `Remote-MTA`).
    pub remote_mta: Option<String>,
    /// The queue lifetime ran out; the diagnostic is the last error seen.
    pub expired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Diagnostic {
    /// A reply from the next hop, as `code status text`.
    Smtp(String),
    /// Portcullis's own words (connection failures, local delivery, limits).
    Local(String),
}

impl Problem {
    /// A problem found here, not reported by a next hop.
    pub(crate) fn local(status: (u8, u16, u16), why: impl Into<String>) -> Problem {
        Problem {
            status: StatusCode(status.0, status.1, status.2),
            diagnostic: Diagnostic::Local(why.into()),
            remote_mta: None,
            expired: false,
        }
    }

    /// A next hop's 4xx or 5xx reply. The enhanced code is trusted only if its class matches the reply's.
    pub(crate) fn from_reply(reply: &Reply, remote: &str) -> Problem {
        let class = (reply.code / 100) as u8;
        let status = match reply.status {
            Some(s) if s.0 == class => s,
            _ => StatusCode(class, 0, 0),
        };
        Problem {
            status,
            diagnostic: Diagnostic::Smtp(peer_text(reply)),
            remote_mta: Some(remote.to_string()),
            expired: false,
        }
    }

    /// This (temporary) problem was the last before the queue lifetime ran out.
    pub(crate) fn expired(mut self) -> Problem {
        self.expired = true;
        self.status = StatusCode(4, 4, 7);
        self
    }

    /// What to tell people: the diagnostic, prefixed by the expiry when that is why.
    pub(crate) fn reason(&self) -> String {
        if self.expired {
            format!("delivery time expired; last error: {}", self.text())
        } else {
            self.text().to_string()
        }
    }

    /// The text that says what went wrong.
    pub(crate) fn text(&self) -> &str {
        match &self.diagnostic {
            Diagnostic::Smtp(t) | Diagnostic::Local(t) => t,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// A next hop's reply as text for logs, events and DSNs: control characters gone, length bounded.
fn peer_text(reply: &Reply) -> String {
    crate::dsn::clean(&reply.to_string(), true)
}

/// One recipient's result in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Accepted; the next hop's final reply (or the local Maildir note).
    Delivered(String),
    /// Try again later.
    Deferred(Problem),
    /// Permanent failure.
    Bounced(Problem),
}

impl Outcome {
    /// The outcome a next hop's reply means: 2xx delivered, 4xx deferred, 5xx bounced.
    pub(crate) fn from_reply(reply: &Reply, remote: &str) -> Outcome {
        if reply.is_positive() {
            Outcome::Delivered(peer_text(reply))
        } else if reply.is_permanent() {
            Outcome::Bounced(Problem::from_reply(reply, remote))
        } else {
            Outcome::Deferred(Problem::from_reply(reply, remote))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_map_to_outcomes_and_mismatched_codes_are_ignored() {
        let r = Reply::from_peer(550, vec!["5.1.1 no such user".into()]);
        let Outcome::Bounced(p) = Outcome::from_reply(&r, "mx") else { panic!() };
        assert_eq!(p.status, StatusCode(5, 1, 1));
        assert_eq!(p.text(), "550 5.1.1 no such user");
        let r = Reply::from_peer(451, vec!["2.0.0 confused".into()]);
        let Outcome::Deferred(p) = Outcome::from_reply(&r, "mx") else { panic!() };
        assert_eq!(p.status, StatusCode(4, 0, 0));
        let r = Reply::from_peer(250, vec!["ok\r\x1b[2J".into(), "x".repeat(5000)]);
        let Outcome::Delivered(text) = Outcome::from_reply(&r, "mx") else { panic!() };
        assert!(text.starts_with("250 ok  ") && text.len() < 1000, "{text}");
    }
}
