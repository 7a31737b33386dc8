//! Message tracking: the gateway's intake (received, verdict, quarantined) and the relay's delivery
//! events go through a [`Tracker`], a bounded channel to one task that writes them to the store, so
//! neither the SMTP reply nor a delivery ever waits for the database. Searches come back as one
//! [`Timeline`] per message.
//!
//! If the channel is full, events are dropped (and counted in the log) rather than slowing mail; a
//! quarantined message is never lost from the index that way, because [`Quarantine::reconcile`]
//! indexes any file in `quarantine/` that has no row.

use crate::item::{self, Symbol};
use crate::{Actor, Quarantine, QuarantineError, Role, bounded, now_ms};
use relay::{DeliveryEvent, DeliveryObserver};
use serde::Serialize;
use spool::QueueId;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use store::{TrackedMessage, TrackingEventRow, TrackingFilter, TrackingScope};
use tokio::sync::mpsc;

/// Pending tracking records between the gateway and the writer task.
const CHANNEL: usize = 16_384;
/// Events written per store transaction, at most.
const WRITE_BATCH: usize = 256;
/// Longest detail text (a next hop's reply, a reason) kept in an event.
const MAX_DETAIL: usize = 512;

/// A message the gateway committed to `quarantine/`, with the verdict that held it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub queue_id: QueueId,
    pub score: f64,
    /// The verdict's symbols with reasons; empty: read back from the message's verdict header.
    pub symbols: Vec<Symbol>,
}

/// What the gateway knows when it accepts a message: for the `received` and `verdict` events.
#[derive(Debug, Clone, PartialEq)]
pub struct IntakeRecord {
    pub queue_id: QueueId,
    pub received_at_ms: i64,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The subject as delivered: of the content delivered instead of the message as received, if
    /// any (tagged mail with `actions.tag_subject_prefix`, a stripped copy).
    pub subject: String,
    /// The subject as received, when it differs from `subject` (kept in the `received` event).
    pub original_subject: Option<String>,
    pub message_id: String,
    pub client_ip: String,
    pub helo: String,
    pub tls: bool,
    pub size: u64,
    /// The verdict's action (`accept`, `tag`, `quarantine`, ...).
    pub verdict: String,
    pub score: f64,
    pub symbols: Vec<Symbol>,
    /// Committed to `quarantine/` (then also indexed) rather than `active/`.
    pub quarantined: bool,
}

enum Record {
    Intake(Box<IntakeRecord>),
    Event(TrackingEventRow),
}

/// The gateway's and the relay's way into tracking: never blocks. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").field("dropped", &self.dropped.load(Ordering::Relaxed)).finish()
    }
}

/// The writing half of a [`Tracker`], started once the [`Quarantine`] exists (the relay needs the
/// tracker as its observer before the quarantine, which needs the relay, can be made).
pub struct TrackerTask {
    rx: mpsc::Receiver<Record>,
}

impl TrackerTask {
    /// Write what the tracker receives through `quarantine`, on a task of the current runtime. The
    /// task ends when every clone of the tracker is dropped.
    pub fn spawn(self, quarantine: Quarantine) -> tokio::task::JoinHandle<()> {
        tokio::spawn(write_loop(quarantine, self.rx))
    }
}

impl Tracker {
    /// A tracker and the task that will write for it.
    pub fn new() -> (Tracker, TrackerTask) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        (Tracker { tx, dropped: Arc::new(AtomicU64::new(0)) }, TrackerTask { rx })
    }

    /// A tracker writing through `quarantine` from a task spawned on the current runtime.
    pub fn spawn(quarantine: Quarantine) -> Tracker {
        let (tracker, task) = Tracker::new();
        task.spawn(quarantine);
        tracker
    }

    /// A message was accepted (and committed): record it, and index it if it was quarantined.
    pub fn intake(&self, record: IntakeRecord) {
        self.send(Record::Intake(Box::new(record)));
    }

    fn send(&self, r: Record) {
        if self.tx.try_send(r).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    "tracking is behind: records dropped (quarantine files are reconciled)"
                );
            }
        }
    }
}

impl DeliveryObserver for Tracker {
    fn event(&self, id: &QueueId, event: &DeliveryEvent) {
        let (kind, details) = match event {
            DeliveryEvent::Delivered { recipient, next_hop, reply } => (
                "delivered",
                serde_json::json!({"recipient": recipient, "next_hop": next_hop.to_string(), "reply": bounded(reply, MAX_DETAIL)}),
            ),
            DeliveryEvent::Deferred { recipients, next_hop, reply_or_error, next_attempt } => {
                let next =
                    next_attempt.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
                let recipients: Vec<&String> = recipients.iter().take(100).collect();
                (
                    "deferred",
                    serde_json::json!({"recipients": recipients, "next_hop": next_hop.to_string(),
                        "reply": bounded(reply_or_error, MAX_DETAIL), "next_attempt_ms": next}),
                )
            }
            DeliveryEvent::Bounced { recipient, reply_or_reason } => (
                "bounced",
                serde_json::json!({"recipient": recipient, "reply": bounded(reply_or_reason, MAX_DETAIL)}),
            ),
            DeliveryEvent::DsnQueued { dsn_id } => {
                ("dsn_queued", serde_json::json!({"dsn_id": dsn_id.as_str()}))
            }
        };
        self.send(Record::Event(event_row(id.as_str(), kind, "relay", details)));
    }
}

fn event_row(queue_id: &str, kind: &str, actor: &str, details: serde_json::Value) -> TrackingEventRow {
    TrackingEventRow {
        queue_id: queue_id.to_string(),
        at_ms: now_ms(),
        kind: kind.to_string(),
        actor: actor.to_string(),
        details_json: details.to_string(),
    }
}

async fn write_loop(quarantine: Quarantine, mut rx: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut events = Vec::new();
        for r in batch.drain(..) {
            match r {
                Record::Event(e) => events.push(e),
                Record::Intake(i) => {
                    // Keep the order of a message's events: what came before is written first.
                    flush(&quarantine, &mut events).await;
                    record_intake(&quarantine, &i).await;
                }
            }
        }
        flush(&quarantine, &mut events).await;
    }
}

async fn flush(q: &Quarantine, events: &mut Vec<TrackingEventRow>) {
    if let Err(e) = q.store().tracking_add_events(events).await {
        tracing::error!(error = %e, events = events.len(), "could not record tracking events");
    }
    events.clear();
}

async fn record_intake(q: &Quarantine, i: &IntakeRecord) {
    let message = TrackedMessage {
        queue_id: i.queue_id.to_string(),
        received_at_ms: i.received_at_ms,
        sender: bounded(&i.sender.to_ascii_lowercase(), 320),
        recipients: i.recipients.iter().take(1000).map(|r| bounded(&r.to_ascii_lowercase(), 320)).collect(),
        subject: bounded(&i.subject, item::MAX_HEADER_TEXT),
        message_id: bounded(&i.message_id.to_lowercase(), item::MAX_HEADER_TEXT),
        client_ip: i.client_ip.clone(),
        verdict: i.verdict.clone(),
        score: i.score,
    };
    let qid = i.queue_id.as_str();
    let names: Vec<&str> = i.symbols.iter().take(200).map(|s| s.name.as_str()).collect();
    let helo = bounded(&i.helo, 255);
    let mut received =
        serde_json::json!({"client_ip": i.client_ip, "helo": helo, "tls": i.tls, "size": i.size});
    if let Some(original) = &i.original_subject {
        received["original_subject"] = bounded(original, item::MAX_HEADER_TEXT).into();
    }
    let events = [
        event_row(qid, "received", "smtp", received),
        event_row(
            qid,
            "verdict",
            "verdict",
            serde_json::json!({"action": i.verdict, "score": i.score, "symbols": names}),
        ),
    ];
    let written = q.store().tracking_record_message(&message).await;
    let written = match written {
        Ok(_) => q.store().tracking_add_events(&events).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::error!(queue_id = qid, error = %e, "could not record a received message");
    }
    if i.quarantined {
        let hold = Hold { queue_id: i.queue_id.clone(), score: i.score, symbols: i.symbols.clone() };
        if let Err(e) = q.hold(&hold).await {
            tracing::error!(queue_id = qid, error = %e, "could not index a quarantined message (reconciled later)");
        }
    }
}

/// A tracking search. Empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct TrackingQuery {
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub client_ip: Option<String>,
    pub queue_id: Option<String>,
    /// The verdict's action.
    pub verdict: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One event of a message's life.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEvent {
    pub at_ms: i64,
    pub kind: String,
    pub actor: String,
    pub details: serde_json::Value,
}

/// A tracked message and its events in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    pub queue_id: String,
    pub received_at_ms: i64,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub client_ip: String,
    pub verdict: String,
    pub score: f64,
    pub events: Vec<TimelineEvent>,
}

impl Quarantine {
    /// Tracked messages matching `q`, newest first, each with its ordered events. Admins and helpdesk
    /// search everything; end users only messages addressed to one of their addresses.
    pub async fn search_tracking(
        &self,
        actor: &Actor,
        q: &TrackingQuery,
    ) -> Result<Vec<Timeline>, QuarantineError> {
        let t = |name, v: &Option<String>| item::term(name, v);
        let (recipient, sender) = (t("recipient", &q.recipient)?, t("sender", &q.sender)?);
        let (message_id, client_ip) = (t("message_id", &q.message_id)?, t("client_ip", &q.client_ip)?);
        let (queue_id, verdict) = (t("queue_id", &q.queue_id)?, t("verdict", &q.verdict)?);
        let filter = TrackingFilter {
            subject_contains: t("subject", &q.subject)?,
            received_from_ms: q.from_ms,
            received_before_ms: q.to_ms,
            before: item::cursor_decode(&q.cursor)?,
            limit: item::page_size(q.limit),
        };
        let scopes: Vec<TrackingScope> = if actor.role == Role::User {
            let mine = actor.addresses.iter().map(|a| a.to_lowercase());
            mine.filter(|a| recipient.as_ref().is_none_or(|r| r == a))
                .take(50)
                .map(TrackingScope::Recipient)
                .collect()
        } else if let Some(v) = &queue_id {
            vec![TrackingScope::QueueId(v.clone())]
        } else if let Some(v) = &message_id {
            vec![TrackingScope::MessageId(v.clone())]
        } else if let Some(v) = &recipient {
            vec![TrackingScope::Recipient(v.clone())]
        } else if let Some(v) = &sender {
            vec![TrackingScope::Sender(v.clone())]
        } else if let Some(v) = &client_ip {
            vec![TrackingScope::ClientIp(v.clone())]
        } else if let Some(v) = &verdict {
            vec![TrackingScope::Verdict(v.clone())]
        } else {
            vec![TrackingScope::All]
        };
        let mut found: Vec<TrackedMessage> = Vec::new();
        for scope in &scopes {
            found.extend(self.store().tracking_search(scope, &filter).await?);
        }
        found.sort_by(|a, b| (b.received_at_ms, &b.queue_id).cmp(&(a.received_at_ms, &a.queue_id)));
        found.dedup_by(|a, b| a.queue_id == b.queue_id);
        found.truncate(filter.limit as usize);
        let keep = |m: &TrackedMessage| {
            let eq = |want: &Option<String>, have: &str| {
                want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
            };
            eq(&sender, &m.sender)
                && eq(&message_id, &m.message_id)
                && eq(&client_ip, &m.client_ip)
                && eq(&queue_id, &m.queue_id)
                && eq(&verdict, &m.verdict)
                && recipient.as_deref().is_none_or(|r| m.recipients.iter().any(|x| x == r))
        };
        let mut out = Vec::new();
        for m in found.into_iter().filter(keep) {
            let events = self.store().tracking_events(&m.queue_id).await?;
            out.push(timeline(m, events));
        }
        Ok(out)
    }

    /// Record a message this gateway generated (a digest) so it can be tracked like any other.
    pub(crate) async fn track_generated(&self, id: &QueueId, recipient: &str, subject: &str) {
        let m = TrackedMessage {
            queue_id: id.to_string(),
            received_at_ms: now_ms(),
            sender: String::new(),
            recipients: vec![recipient.to_string()],
            subject: subject.to_string(),
            message_id: String::new(),
            client_ip: String::new(),
            verdict: "local".into(),
            score: 0.0,
        };
        if let Err(e) = self.store().tracking_record_message(&m).await {
            tracing::error!(queue_id = %id, error = %e, "could not record a generated message");
        }
        self.track(id.as_str(), "received", &Actor::system(), serde_json::json!({"generated": "digest"}))
            .await;
    }
}

fn timeline(m: TrackedMessage, events: Vec<TrackingEventRow>) -> Timeline {
    Timeline {
        queue_id: m.queue_id,
        received_at_ms: m.received_at_ms,
        sender: m.sender,
        recipients: m.recipients,
        subject: m.subject,
        message_id: m.message_id,
        client_ip: m.client_ip,
        verdict: m.verdict,
        score: m.score,
        events: events
            .into_iter()
            .map(|e| TimelineEvent {
                at_ms: e.at_ms,
                kind: e.kind,
                actor: e.actor,
                details: serde_json::from_str(&e.details_json).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    }
}
