//! The quarantine: the only way anything changes held mail. Hold, search, view, download, release,
//! delete, learn, safelist, expiry, message tracking, and digests with signed single-use links.
//!
//! Owns: the quarantine's rules (who may see and do what, [`actor`]), its operations on the spool's
//! `quarantine/` queue and on the store's quarantine index ([`Quarantine`]), the kinds of held mail
//! ([`Kind`]), retention and size caps ([`Quarantine::expire`]), reconciling the index with the spool
//! ([`Quarantine::reconcile`]), message tracking ([`Tracker`], which is also the relay's
//! [`relay::DeliveryObserver`], and [`Quarantine::search_tracking`]), and digests ([`digest`]) with
//! their link tokens ([`token`], key in `<data_dir>/keys/digest.key`), and the quarantine several nodes
//! share through a PostgreSQL store ([`cluster`]: bodies in the store, releases delivered by any live
//! node, each node reconciling only what it holds), and the mail plane's control socket protocol
//! ([`control`]: how a portal in its own process, without the spool, has held mail shown, released,
//! deleted and learned; [`MailPlane`] says how this process reaches held mail), and the admin's
//! operations on the mail plane the portal offers beside it ([`delivery_queue`]: the delivery queue's
//! listing, retry and delete, and digests now, locally or over the control socket). Must not touch: HTTP,
//! sessions, passwords (the portal authenticates people and hands an [`Actor`] in), SQL (the `store` crate), the
//! SMTP path (the gateway hands verdicts in through [`Tracker`] and never waits for the store).
//!
//! Every operation takes the [`Actor`] and authorizes inside: an end user sees and acts only on items
//! one of their addresses owns, and anything else is [`QuarantineError::NotFound`], exactly as if it
//! did not exist (an IDOR attempt learns nothing); virus items are for admins only. Every change is
//! idempotent (a status change is claimed in the store by exactly one caller, so a release delivers
//! once however often it is clicked), and is recorded as a tracking event and an audit record.
//!
//! # Security
//! Everything from a message (addresses, subjects, names, bodies) is untrusted data: it is bounded
//! here before it is stored, bound as SQL parameters by the store, parsed only by `message::parse`
//! under its limits, and escaped by [`digest`]'s HTML builder, whose markup comes only from `'static`
//! strings. Ids from outside ([`ItemId::parse`]) are checked strictly and never name a file: files
//! are found by the queue id the index holds. Digest tokens are HMAC-SHA256 over a versioned, fixed
//! layout (no length extension), verified in constant time (`ring::hmac::verify`), bound to one
//! action, item and recipient, expiring, and single-use through an atomic insert in the store; a
//! token acts as a narrow [`Actor`] that owns only its recipient address and never logs anyone in.

#![forbid(unsafe_code)]

mod actions;
pub mod actor;
pub mod cluster;
pub mod control;
pub mod delivery_queue;
pub mod digest;
mod expire;
mod html;
mod item;
mod lists;
mod ops;
mod reasons;
pub mod token;
mod tracking;

pub use actor::{Actor, Role, Via};
pub use delivery_queue::{QueueEntry, QueueListing};
pub use digest::{DigestReport, next_digest_at};
pub use expire::{ExpiryReport, ReconcileReport};
pub use item::{
    ActionOutcome, AttachmentInfo, Item, ItemDetail, ItemId, Kind, Page, RawMessage, ReleaseOptions,
    SearchQuery, Status, Symbol, kind_of,
};
pub use store::{DigestPrefs, SenderList, SenderListEntry};
pub use token::{DigestAction, Redeemed, TokenClaims, TokenError};
pub use tracking::{Hold, IntakeRecord, Timeline, TimelineEvent, Tracker, TrackerTask, TrackingQuery};

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

/// Why an operation failed. `NotFound` is also what an actor gets for an item they may not see.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no such quarantine item")]
    NotFound,
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("invalid query: {0}")]
    BadQuery(String),
    #[error("the held message file is missing from the spool")]
    MissingFile,
    #[error("the stored copy of quarantine item {0} does not match its checksum")]
    Damaged(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Spool(#[from] spool::SpoolError),
    #[error("learning failed: {0}")]
    Learn(String),
    #[error("digest key: {0}")]
    Key(String),
    #[error("building a digest: {0}")]
    Digest(String),
    /// Work handed to another task (blocking spool I/O, a digest run) panicked or was cancelled.
    #[error("{0} stopped: {1}")]
    Task(&'static str, String),
    /// The mail plane (another process) could not be asked, or this process has no spool for it.
    #[error("the mail plane is unavailable: {0}")]
    MailPlane(String),
    /// Not something this process does at all: it is done on a mail node (a portal of its own on a
    /// shared store has neither the spool nor a control socket to ask).
    #[error("{0}")]
    MailNodeOnly(&'static str),
}

/// Run blocking work (spool files) off the async runtime; its panic or cancellation is a
/// [`QuarantineError::Task`] naming `what`.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, QuarantineError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| QuarantineError::Task(what, e.to_string()))
}

/// Where audit records go: the gateway's writer task ([`audit::Audit`]) or the command line's
/// synchronous log (implemented by the binary). Must not block for long.
pub trait AuditSink: Send + Sync + 'static {
    fn record(&self, event: audit::Event);
}

impl AuditSink for audit::Audit {
    fn record(&self, event: audit::Event) {
        audit::Audit::record(self, event);
    }
}

/// How a released message reaches delivery.
#[derive(Clone)]
pub enum Wake {
    /// The relay runs in this process: enqueue the message.
    Relay(relay::Relay),
    /// A gateway runs elsewhere (the command line): leave it a rescan request.
    Rescan,
}

/// Where held mail is, as this process reaches it.
#[derive(Clone)]
pub enum MailPlane {
    /// This process has the spool (the mail plane, the command line): held files are read, moved and
    /// removed here, and `wake` hands released mail to delivery.
    Local { spool: spool::Spool, wake: Wake },
    /// The portal in its own process on a store only this machine uses (SQLite): held mail is shown,
    /// released, deleted and learned by the mail plane's process, asked over its control socket.
    Remote(control::client::Client),
    /// The portal in its own process on a shared store (PostgreSQL): bodies come from the store,
    /// releases go through its queue, and each holder removes its own files.
    StoreOnly,
}

/// The quarantine. Cheap to clone; every clone shares the same store, spool and settings.
#[derive(Clone)]
pub struct Quarantine {
    inner: Arc<Inner>,
}

struct Inner {
    store: store::Store,
    plane: MailPlane,
    config: RwLock<Arc<config::Config>>,
    audit: Arc<dyn AuditSink>,
    learner: Option<classifier::Learner>,
    keys_dir: PathBuf,
    digest_key: OnceLock<token::DigestKey>,
}

impl std::fmt::Debug for Quarantine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quarantine").field("keys_dir", &self.inner.keys_dir).finish_non_exhaustive()
    }
}

impl Quarantine {
    /// A quarantine over `store` and held mail as `plane` reaches it, under `config` (`[quarantine]`,
    /// `[digest]`, `data_dir`). `learner`, when given, is used for "release and learn as ham" and
    /// "learn as spam" (the mail plane's, when it is [`MailPlane::Remote`]).
    pub fn new(
        store: store::Store,
        plane: MailPlane,
        config: Arc<config::Config>,
        audit: Arc<dyn AuditSink>,
        learner: Option<classifier::Learner>,
    ) -> Quarantine {
        let keys_dir = config.data_dir.join("keys");
        let inner = Inner {
            store,
            plane,
            config: RwLock::new(config),
            audit,
            learner,
            keys_dir,
            digest_key: OnceLock::new(),
        };
        Quarantine { inner: Arc::new(inner) }
    }

    /// Apply new settings (SIGHUP).
    pub fn reload(&self, config: Arc<config::Config>) {
        *self.inner.config.write().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<config::Config> {
        self.config()
    }

    /// Close the store (waits for queries in flight).
    pub async fn close(&self) {
        self.inner.store.close().await;
    }

    pub(crate) fn config(&self) -> Arc<config::Config> {
        self.inner.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn store(&self) -> &store::Store {
        &self.inner.store
    }

    /// This process's spool; an error where held files are the mail plane's (a portal of its own).
    pub(crate) fn spool(&self) -> Result<&spool::Spool, QuarantineError> {
        match &self.inner.plane {
            MailPlane::Local { spool, .. } => Ok(spool),
            _ => {
                Err(QuarantineError::MailPlane("this process has no spool: the mail plane does this".into()))
            }
        }
    }

    /// The mail plane's control socket, when this process asks it for held mail.
    pub(crate) fn remote(&self) -> Option<&control::client::Client> {
        match &self.inner.plane {
            MailPlane::Remote(client) => Some(client),
            _ => None,
        }
    }

    /// Whether this process has the spool.
    pub(crate) fn local(&self) -> bool {
        matches!(self.inner.plane, MailPlane::Local { .. })
    }

    /// The digest signing key, loaded (or created) on first use.
    pub(crate) fn digest_key(&self) -> Result<&token::DigestKey, QuarantineError> {
        if let Some(k) = self.inner.digest_key.get() {
            return Ok(k);
        }
        let key = token::DigestKey::load_or_create(&self.inner.keys_dir)
            .map_err(|e| QuarantineError::Key(e.to_string()))?;
        Ok(self.inner.digest_key.get_or_init(|| key))
    }

    /// Whether this process delivers mail (runs a relay), and so delivers releases.
    pub(crate) fn delivers(&self) -> bool {
        matches!(self.inner.plane, MailPlane::Local { wake: Wake::Relay(_), .. })
    }

    /// Hand a message that was just put in `active/` to delivery.
    pub(crate) fn wake(&self, id: &spool::QueueId) {
        match &self.inner.plane {
            MailPlane::Local { wake: Wake::Relay(relay), .. } => relay.enqueue(id.clone()),
            MailPlane::Local { spool, wake: Wake::Rescan } => {
                if let Err(e) = spool.request(spool::ControlRequest::Rescan) {
                    tracing::error!(queue_id = %id, error = %e, "could not ask the gateway to rescan");
                }
            }
            // Nothing is put in `active/` without a spool.
            MailPlane::Remote(_) | MailPlane::StoreOnly => {}
        }
    }
}

/// Wall-clock time in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `s` cut to at most `max` bytes at a character boundary, control characters made spaces.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
