//! Delivery: takes acknowledged messages from the spool's `active/` queue to their next hops.
//!
//! Owns: the in-memory retry schedule, routing recipients to next hops, the outbound SMTP client
//! (greeting, EHLO, STARTTLS, pipelined transactions, connection reuse), delivery into local Maildirs,
//! per-recipient bookkeeping in the spool, exponential backoff, queue lifetime, and RFC 3464 delivery
//! status notifications. Must not touch: verdicts or message content; a message leaves byte for byte as
//! the spool holds it (only dot-stuffed on the wire).
//!
//! Never lose, never duplicate (as far as SMTP allows): a recipient is crossed off in the queue file
//! (fsynced) right after the next hop's answer, before anything else happens, so a crash re-sends only
//! to recipients whose answer was not yet recorded. A bounced recipient is crossed off only once the
//! DSN that reports it is committed to the spool, so a crash can duplicate a DSN but never lose one.
//!
//! Every log line about a message carries its `queue_id`. Metrics (per recipient):
//! `portcullis_relay_delivered_total`, `portcullis_relay_deferred_total`,
//! `portcullis_relay_bounced_total`; gauge `portcullis_queue_depth` (messages in the schedule).
//!
//! # Security
//! Untrusted here: everything a next hop sends (replies, capabilities, certificates) and the message
//! itself. Replies are read line by line with a bounded line length and line count, each under
//! `command_timeout`; connecting and the greeting are under `connect_timeout`; data pipelined by a
//! next hop ahead of the TLS handshake is discarded. Text from a next hop or from the message that is
//! placed in a DSN is stripped of control characters and cut to a bound, and the copied original
//! headers are cut at a header boundary at 64 KiB. The only path built from message data is the local
//! mailbox directory name, which [`mailbox_dir_name`] percent-encodes so it is one plain path
//! component whatever the address holds. No DSN goes to the null sender or about a bounce.

#![forbid(unsafe_code)]

mod attempt;
mod dsn;
mod limits;
mod local;
mod outcome;
mod run;
mod schedule;
mod smtp;

pub use local::mailbox_dir_name;

use config::{Config, NextHop};
use spool::{QueueId, Spool};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;
use tokio::sync::{Notify, watch};

/// Why the relay could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// `relay.tls_ca_file` could not be read or holds no usable certificate.
    #[error("relay.tls_ca_file {path}: {why}")]
    TlsCaFile { path: PathBuf, why: String },
    /// The TLS client configuration could not be built.
    #[error("relay TLS setup failed: {0}")]
    TlsSetup(String),
}

/// What happened to a message's recipients, for message tracking. Texts are the next hop's reply as
/// `code status text`, or Portcullis's own reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEvent {
    /// The next hop accepted the message for `recipient` (or it was written to the local Maildir).
    Delivered { recipient: String, next_hop: NextHop, reply: String },
    /// A temporary failure; the message is retried at `next_attempt`.
    Deferred { recipients: Vec<String>, next_hop: NextHop, reply_or_error: String, next_attempt: SystemTime },
    /// A permanent failure (or the queue lifetime ran out); the recipient is crossed off.
    Bounced { recipient: String, reply_or_reason: String },
    /// A delivery status notification about this message was queued as `dsn_id`.
    DsnQueued { dsn_id: QueueId },
}

/// Receives every [`DeliveryEvent`]. Called from delivery tasks: it must be quick and must not block.
pub trait DeliveryObserver: Send + Sync + 'static {
    fn event(&self, id: &QueueId, event: &DeliveryEvent);
}

/// The observer [`Relay::new`] uses: records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl DeliveryObserver for NoObserver {
    fn event(&self, _: &QueueId, _: &DeliveryEvent) {}
}

/// The delivery engine. Cheap to clone; every clone drives the same schedule.
#[derive(Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

/// State shared by the handle, the scheduler and the delivery tasks.
pub(crate) struct Shared {
    config: RwLock<Arc<Config>>,
    /// Bumped on every reload, so connections opened under older settings are not reused.
    generation: AtomicU64,
    tls: RwLock<Arc<smtp::TlsClients>>,
    pub(crate) spool: Spool,
    pub(crate) schedule: Mutex<schedule::Schedule>,
    /// Wakes the scheduler when something was enqueued.
    pub(crate) wake: Notify,
    /// Wakes one intake session waiting for the backlog to shrink ([`Relay::wait_for_room`]).
    pub(crate) room: Notify,
    pub(crate) observer: Arc<dyn DeliveryObserver>,
}

impl Shared {
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    pub(crate) fn tls(&self) -> Arc<smtp::TlsClients> {
        self.tls.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub(crate) fn schedule(&self) -> std::sync::MutexGuard<'_, schedule::Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub(crate) fn emit(&self, id: &QueueId, event: DeliveryEvent) {
        self.observer.event(id, &event);
    }
    /// Queue `id` for delivery now (or sooner than planned).
    pub(crate) fn enqueue(&self, id: QueueId) {
        let depth = self.schedule().enqueue(id, now_ms());
        metrics::gauge!("portcullis_queue_depth").set(depth as f64);
        self.wake.notify_one();
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("queue_depth", &self.queue_depth()).finish()
    }
}

impl Relay {
    /// A relay for the messages in `spool`'s `active/` queue. Loads `relay.tls_ca_file` if set.
    pub fn new(config: Arc<Config>, spool: Spool) -> Result<Relay, RelayError> {
        Relay::with_observer(config, spool, Arc::new(NoObserver))
    }

    /// Like [`Relay::new`], reporting every delivery event to `observer`.
    pub fn with_observer(
        config: Arc<Config>,
        spool: Spool,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Result<Relay, RelayError> {
        let tls = smtp::TlsClients::load(&config.relay.tls_ca_file)?;
        Ok(Relay {
            shared: Arc::new(Shared {
                config: RwLock::new(config),
                generation: AtomicU64::new(0),
                tls: RwLock::new(Arc::new(tls)),
                spool,
                schedule: Mutex::new(schedule::Schedule::default()),
                wake: Notify::new(),
                room: Notify::new(),
                observer,
            }),
        })
    }

    /// A message was just committed to `active/`: deliver it as soon as a slot is free. Never blocks.
    pub fn enqueue(&self, id: QueueId) {
        self.shared.enqueue(id);
    }

    /// Load everything in `active/` (honouring each message's recorded retry time) and deliver until
    /// `shutdown` turns true (or its sender goes away). On shutdown, attempts in flight get
    /// `smtp.drain_timeout` to finish; the rest are abandoned without crossing anyone off. Dropping
    /// the future abandons everything at once, with the same guarantee. Run one at a time per spool.
    pub async fn run(&self, shutdown: watch::Receiver<bool>) {
        run::run(self.shared.clone(), shutdown).await;
    }

    /// Apply new settings (SIGHUP): routes, limits, timeouts and TLS apply to attempts that start from
    /// now on; idle connections opened under the old settings are not reused. If a changed
    /// `relay.tls_ca_file` cannot be loaded, the old CA set stays and the error is logged.
    pub fn reload(&self, config: Arc<Config>) {
        let old = self.shared.config();
        if old.relay.tls_ca_file != config.relay.tls_ca_file {
            match smtp::TlsClients::load(&config.relay.tls_ca_file) {
                Ok(tls) => *self.shared.tls.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(tls),
                Err(e) => tracing::error!(error = %e, "relay reload: keeping the previous TLS CA set"),
            }
        }
        *self.shared.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        self.shared.wake.notify_one();
    }

    /// Messages known to the schedule: waiting for their next attempt or being delivered.
    pub fn queue_depth(&self) -> usize {
        self.shared.schedule().len()
    }

    /// Messages handed over for delivery now (committed, released) whose attempt has not finished:
    /// what delivery has yet to catch up with. Retries waiting for their time are not counted, so a
    /// next hop that is down does not hold intake back.
    pub fn backlog(&self) -> usize {
        self.shared.schedule().backlog()
    }

    /// Intake's flow control (as Postfix's `in_flow_delay`): wait until the [`Relay::backlog`] is
    /// under `limit`, at most `max_wait`. Returns whether it is. Each finished attempt wakes one
    /// waiter (one message out lets one in, as Postfix's flow tokens), so hundreds of waiting sessions
    /// do not all wake for every message delivered.
    pub async fn wait_for_room(&self, limit: usize, max_wait: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let notified = self.shared.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.backlog() < limit {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.backlog() < limit;
            }
        }
    }
}

/// Wall-clock time in unix milliseconds, the unit the spool records retry times in.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The name this gateway uses for itself in EHLO, DSNs and Maildir file names.
pub(crate) fn our_hostname(config: &Config) -> &str {
    if config.hostname.is_empty() { "localhost" } else { &config.hostname }
}
