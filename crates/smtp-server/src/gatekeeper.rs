//! The questions the SMTP server asks the rest of the gateway, as one trait.

use smtp_session::{Address, Decision, Reply};
use spool::{Envelope, Queue, QueueId};
use std::future::Future;
use std::net::IpAddr;

/// What is known about the client of a session.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Session id, for logs.
    pub session: u64,
    pub ip: IpAddr,
    pub helo: Option<String>,
    pub tls: bool,
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Queue it for delivery.
    Deliver,
    /// Hold it in the quarantine queue.
    Quarantine,
    /// Refuse it at the end of DATA with this reply (no bounce is ever sent for it).
    Reject(Reply),
    /// Ask the client to try again later with this reply.
    Tempfail(Reply),
}

/// A content verdict: the disposition and the header block to add above the message (after our
/// `Received:`), e.g. `Authentication-Results:` and the verdict headers. Lines end in CRLF.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub disposition: Disposition,
    pub headers: Vec<u8>,
    /// One line for the log: score, action, symbols.
    pub summary: String,
    /// Strip-and-deliver: with [`Disposition::Deliver`], the content to deliver instead of what was
    /// received (e.g. without a blocked attachment). The received message is then committed to
    /// quarantine untouched, and this content to `active/` as a new queue file with the same
    /// envelope and header block; 250 names the delivered copy.
    pub deliver_instead: Option<Vec<u8>>,
}

impl Judgement {
    pub fn deliver() -> Judgement {
        Judgement {
            disposition: Disposition::Deliver,
            headers: Vec::new(),
            summary: String::new(),
            deliver_instead: None,
        }
    }
}

/// Policy and verdict hooks. Every method may take its time; the session waits (the client does too).
pub trait Gatekeeper: Send + Sync + 'static {
    /// A client connected and passed the connection limits; asked before the greeting (e.g. a host
    /// access table). A refusal is sent instead of the greeting and the connection closed.
    fn check_connection(&self, _peer: &Peer) -> impl Future<Output = Decision> + Send {
        async { Decision::Accept }
    }

    /// A recipient passed syntax and the accepted-domain check (e.g. look it up in a directory).
    fn check_recipient(&self, _peer: &Peer, _rcpt: &Address) -> impl Future<Output = Decision> + Send {
        async { Decision::Accept }
    }

    /// The sender passed syntax.
    fn check_sender(&self, _peer: &Peer, _sender: Option<&Address>) -> impl Future<Output = Decision> + Send {
        async { Decision::Accept }
    }

    /// Judge a complete message. `content` is exactly what the client sent (after dot-unstuffing).
    fn judge(
        &self,
        peer: &Peer,
        envelope: &Envelope,
        content: &[u8],
    ) -> impl Future<Output = Judgement> + Send;

    /// A message was committed to `queue` and is about to be acknowledged with 250.
    fn queued(&self, id: &QueueId, queue: Queue, envelope: &Envelope, judgement: &Judgement);
}
