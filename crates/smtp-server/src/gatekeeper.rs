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
    /// With [`Disposition::Deliver`]: what is delivered.
    pub delivered: Delivered,
}

/// What a [`Disposition::Deliver`] delivers. Content other than what was received is committed to
/// `active/` as a new queue file with the same envelope and header block, and 250 names it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Delivered {
    /// The message as received.
    #[default]
    AsReceived,
    /// This content instead (e.g. with the subject prefix of tagged mail); the received message is
    /// not kept.
    Rewritten(Vec<u8>),
    /// Strip-and-deliver: this content instead (e.g. without a blocked attachment), and the received
    /// message is committed to quarantine untouched.
    Stripped(Vec<u8>),
}

impl Judgement {
    pub fn deliver() -> Judgement {
        Judgement {
            disposition: Disposition::Deliver,
            headers: Vec::new(),
            summary: String::new(),
            delivered: Delivered::AsReceived,
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
