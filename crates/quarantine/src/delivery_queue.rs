//! The administrator's operations on the mail plane that the portal offers beside the quarantine:
//! the delivery queue (`active/`: a bounded listing, "retry every deferred message now", deleting
//! one message) and "send the digests now". Where this process has the spool they act on it; a
//! portal of its own asks the mail plane over the control socket ([`crate::control`]), whose server
//! runs these same functions as the account the store knows. Admins only; each change is an audit
//! record naming the actor.
//!
//! # Security
//! Queue ids from outside are checked by [`QueueId::parse`] before they name a file. Envelope
//! addresses are untrusted text: a listing carries at most [`MAX_QUEUE_LISTED`] messages, each with
//! at most [`MAX_LISTED_RECIPIENTS`] pending recipients, every address cut to [`MAX_LISTED_TEXT`]
//! bytes with control characters removed; the portal escapes them when it shows them.

use crate::control::Caller;
use crate::reasons::ADMINS_ONLY;
use crate::{Actor, DigestReport, MailPlane, Quarantine, QuarantineError, Role, bounded};
use serde::{Deserialize, Serialize};
use spool::{ControlRequest, Queue, QueueId, Spool};

/// Most queued messages one listing carries (the total is counted in full).
pub const MAX_QUEUE_LISTED: usize = 500;
/// Most pending recipients listed for one message (the rest are counted).
pub const MAX_LISTED_RECIPIENTS: usize = 10;
/// Longest queue id, sender or recipient in a listing, in bytes.
pub const MAX_LISTED_TEXT: usize = 320;

/// What a portal of its own on a shared store (no spool, no control socket) says for these.
const ON_A_MAIL_NODE: &str = "the delivery queue and digests are operated on a mail node (`portcullis queue`, `portcullis quarantine digest`)";

/// One message waiting in `active/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueEntry {
    pub id: String,
    /// The envelope sender; empty for the null sender.
    pub sender: String,
    /// Recipients not yet delivered, the first [`MAX_LISTED_RECIPIENTS`].
    pub pending: Vec<String>,
    /// Pending recipients past those listed.
    pub more_pending: u64,
    pub attempts: u32,
    /// Unix ms of the next attempt; 0: as soon as possible.
    pub next_attempt_ms: u64,
    /// Bytes of the message.
    pub size: u64,
}

/// The first [`MAX_QUEUE_LISTED`] messages of `active/`, and how many there are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueListing {
    pub total: u64,
    pub messages: Vec<QueueEntry>,
}

impl Quarantine {
    /// The delivery queue, for an admin.
    pub async fn queue_list(&self, actor: &Actor) -> Result<QueueListing, QuarantineError> {
        admin_only(actor)?;
        if let Some(mail) = self.remote() {
            return mail.queue_list(Caller::of(actor)?).await;
        }
        let spool = self.mail_node_spool()?.clone();
        crate::blocking("listing the queue", move || listing(&spool)).await?
    }

    /// Ask the relay to retry every deferred message now (a spool request), for an admin.
    pub async fn queue_retry(&self, actor: &Actor) -> Result<(), QuarantineError> {
        admin_only(actor)?;
        if let Some(mail) = self.remote() {
            return mail.queue_retry(Caller::of(actor)?).await;
        }
        self.mail_node_spool()?.request(ControlRequest::Flush)?;
        self.audit_as(audit::Action::QueueFlush, actor, "", &[]);
        Ok(())
    }

    /// Delete one queued message without delivering it, for an admin. An id that is not a queue id
    /// is [`QuarantineError::NotFound`], as is a message no longer queued.
    pub async fn queue_delete(&self, actor: &Actor, id: &str) -> Result<(), QuarantineError> {
        admin_only(actor)?;
        let id = QueueId::parse(id).map_err(|_| QuarantineError::NotFound)?;
        if let Some(mail) = self.remote() {
            return mail.queue_delete(Caller::of(actor)?, id.as_str()).await;
        }
        let (spool, qid) = (self.mail_node_spool()?.clone(), id.clone());
        let removed =
            crate::blocking("removing a queue file", move || spool.remove(Queue::Active, &qid)).await?;
        match removed {
            Ok(()) => {}
            Err(spool::SpoolError::NotFound(_)) => return Err(QuarantineError::NotFound),
            Err(e) => return Err(e.into()),
        }
        self.audit_as(audit::Action::QueueDelete, actor, id.as_str(), &[]);
        Ok(())
    }

    /// Send every recipient who wants one a digest now (as the schedule would), for an admin.
    pub async fn send_digests_now(&self, actor: &Actor) -> Result<DigestReport, QuarantineError> {
        admin_only(actor)?;
        if let Some(mail) = self.remote() {
            return mail.send_digests(Caller::of(actor)?).await;
        }
        self.mail_node_spool()?;
        let report = self.send_digests().await?;
        let (sent, items) = (report.sent.to_string(), report.items.to_string());
        self.audit_as(audit::Action::QuarantineDigestsSend, actor, "", &[("sent", &sent), ("items", &items)]);
        Ok(report)
    }

    /// This process's spool; a portal of its own on a shared store has none, and says where to go.
    fn mail_node_spool(&self) -> Result<&Spool, QuarantineError> {
        match &self.inner.plane {
            MailPlane::Local { spool, .. } => Ok(spool),
            _ => Err(QuarantineError::MailNodeOnly(ON_A_MAIL_NODE)),
        }
    }
}

fn admin_only(actor: &Actor) -> Result<(), QuarantineError> {
    if actor.role == Role::Admin { Ok(()) } else { Err(QuarantineError::Forbidden(ADMINS_ONLY)) }
}

/// The listing of `active/` (blocking: it reads the files' heads).
fn listing(spool: &Spool) -> Result<QueueListing, QuarantineError> {
    let ids = spool.list(Queue::Active)?;
    let mut messages = Vec::new();
    for id in ids.iter().take(MAX_QUEUE_LISTED) {
        // Delivered or deleted since it was listed.
        let Ok(m) = spool.load(Queue::Active, id) else { continue };
        let pending: Vec<&String> = m.pending().map(|i| &m.envelope.recipients[i]).collect();
        messages.push(QueueEntry {
            id: bounded(id.as_str(), MAX_LISTED_TEXT),
            sender: bounded(&m.envelope.sender, MAX_LISTED_TEXT),
            pending: pending
                .iter()
                .take(MAX_LISTED_RECIPIENTS)
                .map(|r| bounded(r, MAX_LISTED_TEXT))
                .collect(),
            more_pending: pending.len().saturating_sub(MAX_LISTED_RECIPIENTS) as u64,
            attempts: m.attempts,
            next_attempt_ms: m.next_attempt_ms,
            size: m.size(),
        });
    }
    Ok(QueueListing { total: ids.len() as u64, messages })
}
