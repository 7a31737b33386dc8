//! Wiring the quarantine into `serve`: the store, the tracker (the relay's delivery observer and the
//! gateway's intake recorder), the [`Quarantine`] itself, and its background tasks (reconcile at
//! start, then expiry every `quarantine.expire_interval`, digests on the `[digest]` schedule, and on a
//! shared store the delivery of releases made on any node every `cluster.release_check_interval`).
//!
//! The SMTP reply never waits on the store: [`IntakeHook::queued`] only hands a record to the
//! tracker's bounded channel. A quarantined message whose record is lost that way (the channel full,
//! a crash) is still indexed, by the reconcile at start and after every expiry run.

use anyhow::Context as _;
use checks::Verdict;
use config::Config;
use quarantine::{IntakeRecord, Quarantine, Symbol, Tracker, TrackerTask, Wake};
use relay::Relay;
use smtp_server::{Delivered, Judgement, Peer};
use spool::{Envelope, Queue, QueueId, Spool};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Verdicts waiting for their commit, at most this many (older ones are dropped first).
const MAX_PENDING: usize = 4096;
/// A verdict whose message was never committed (refused, client gone) is forgotten after this.
const PENDING_TTL: Duration = Duration::from_secs(120);

/// The quarantine's parts that exist before the relay does.
pub(crate) struct Held {
    store: store::Store,
    tracker: Tracker,
    task: TrackerTask,
    hook: Arc<IntakeHook>,
    learner: Option<classifier::Learner>,
    nudge: crate::model_reload::Nudge,
}

impl Held {
    /// Open the store and make the tracker (whose writer starts with [`Held::start`]).
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Held> {
        let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
        let (tracker, task) = Tracker::new();
        let hook = Arc::new(IntakeHook {
            tracker: tracker.clone(),
            pending: Mutex::default(),
            quarantine: OnceLock::new(),
        });
        let learner = learner(config, &store).await?;
        Ok(Held { store, tracker, task, hook, learner, nudge: Default::default() })
    }

    /// The store (for the node's registration and heartbeat).
    pub(crate) fn store(&self) -> store::Store {
        self.store.clone()
    }

    /// The model the learner learns into and its store, for the verdict engine to judge with (one
    /// model per process, kept in step with the store by [`crate::model_reload`]).
    pub(crate) fn model(&self) -> Option<crate::model_reload::Model> {
        let learner = self.learner.as_ref()?;
        Some(crate::model_reload::Model {
            classifier: learner.classifier().clone(),
            store: self.store.clone(),
            nudge: self.nudge.clone(),
        })
    }

    /// The relay's delivery observer.
    pub(crate) fn observer(&self) -> Arc<dyn relay::DeliveryObserver> {
        Arc::new(self.tracker.clone())
    }

    /// What the gate calls after each verdict and commit.
    pub(crate) fn intake(&self) -> Arc<IntakeHook> {
        self.hook.clone()
    }

    /// Make the quarantine, start the tracker's writer, reconcile, and run expiry and digests until
    /// `stopped` turns true.
    pub(crate) fn start(
        self,
        config: &Arc<Config>,
        spool: Spool,
        relay: Relay,
        audit: audit::Audit,
        stopped: watch::Receiver<bool>,
    ) -> Quarantine {
        let q = Quarantine::new(
            self.store,
            quarantine::MailPlane::Local { spool, wake: Wake::Relay(relay) },
            config.clone(),
            Arc::new(NudgingAudit { audit, nudge: self.nudge }),
            self.learner,
        );
        let _ = self.hook.quarantine.set(q.clone());
        self.task.spawn(q.clone());
        tokio::spawn(expiry_loop(q.clone(), stopped.clone()));
        if config.store.backend == config::StoreBackend::Postgres {
            tokio::spawn(release_loop(q.clone(), stopped.clone()));
        }
        tokio::spawn(digest_loop(q.clone(), stopped));
        q
    }
}

/// The audit trail for the quarantine, nudging the classifier's reload loop after each action it
/// records (a release or a "learn as spam" may have changed the model: see [`crate::model_reload`]).
struct NudgingAudit {
    audit: audit::Audit,
    nudge: crate::model_reload::Nudge,
}

impl quarantine::AuditSink for NudgingAudit {
    fn record(&self, event: audit::Event) {
        self.audit.record(event);
        self.nudge.nudge();
    }
}

/// A learner for "learn as spam/ham", with the model as stored (learning works out its updates from
/// the current weights).
pub(crate) async fn learner(
    config: &Config,
    store: &store::Store,
) -> anyhow::Result<Option<classifier::Learner>> {
    if !config.classifier.enabled {
        return Ok(None);
    }
    let settings = classifier::Settings::from_config(config);
    let model = classifier::load(store, settings).await.context("loading the classifier for learning")?;
    crate::stale_model::log_change(None, &model);
    Ok(Some(classifier::Learner::new(store.clone(), Arc::new(model))))
}

/// Reconcile now, then expire and reconcile every `quarantine.expire_interval`.
async fn expiry_loop(q: Quarantine, mut stopped: watch::Receiver<bool>) {
    loop {
        match q.reconcile().await {
            Ok(r) if r.indexed + r.finished + r.missing > 0 => {
                tracing::info!(
                    indexed = r.indexed,
                    finished = r.finished,
                    missing = r.missing,
                    "quarantine reconciled with the spool"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "quarantine reconcile failed"),
        }
        let interval = q_config(&q).quarantine.expire_interval.get();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => return,
        }
        match q.expire().await {
            Ok(r) => tracing::info!(
                by_age = r.expired_by_age,
                by_size = r.expired_by_size,
                tracking = r.tracking_purged,
                "quarantine expiry"
            ),
            Err(e) => tracing::error!(error = %e, "quarantine expiry failed"),
        }
    }
}

/// Deliver releases made on any node (a portal-only process, a node that died before delivering).
async fn release_loop(q: Quarantine, mut stopped: watch::Receiver<bool>) {
    loop {
        match q.deliver_released().await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released messages queued for delivery"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "delivering released messages failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(q_config(&q).cluster.release_check_interval.get()) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Send digests on the `[digest]` schedule (settings re-read every round, so a reload applies).
async fn digest_loop(q: Quarantine, mut stopped: watch::Receiver<bool>) {
    loop {
        let config = q_config(&q);
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        // Every node on the schedule covers the same slot, so the store lets one send each digest.
        let slot = quarantine::next_digest_at(&config.digest, now);
        let wait = if config.digest.enabled {
            Duration::from_secs(slot.saturating_sub(now))
        } else {
            Duration::from_secs(60)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return,
        }
        if !q_config(&q).digest.enabled {
            continue;
        }
        match q.send_digests_until(i64::try_from(slot.saturating_mul(1000)).unwrap_or(i64::MAX)).await {
            Ok(r) if r.sent > 0 => {
                tracing::info!(digests = r.sent, items = r.items, "quarantine digests queued")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "quarantine digests failed"),
        }
    }
}

/// The view of `content`'s header block alone (bounded by the verdict's limits): what tracking reads.
fn header_view(content: &[u8], limits: &message::MessageLimits) -> message::MessageView {
    let end = content.windows(4).position(|w| w == b"\r\n\r\n").map_or(content.len(), |p| p + 4);
    message::parse(&content[..end.min(limits.max_header_bytes)], limits)
}

fn q_config(q: &Quarantine) -> Arc<Config> {
    q.settings()
}

/// The facts of one verdict, kept from `judge` until `queued` names the queue id.
struct Pending {
    at: Instant,
    size: u64,
    subject: String,
    /// The subject of the content delivered instead of the message as received (tagged mail, a
    /// stripped copy), when it differs.
    delivered_subject: Option<String>,
    message_id: String,
    verdict: String,
    score: f64,
    symbols: Vec<Symbol>,
}

/// Carries each verdict from `Gatekeeper::judge` to `Gatekeeper::queued` (which is told the queue id
/// but not the verdict's reasons), then into tracking and the quarantine index.
pub(crate) struct IntakeHook {
    tracker: Tracker,
    pending: Mutex<HashMap<u64, Pending>>,
    quarantine: OnceLock<Quarantine>,
}

/// The key of one message between judge and commit: its envelope and the verdict's header block.
fn key(envelope: &Envelope, headers: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (envelope.received_at, &envelope.sender, &envelope.recipients, envelope.client_ip, headers).hash(&mut h);
    h.finish()
}

impl IntakeHook {
    /// A verdict was reached for `content`, to be delivered as `delivered` (the header blocks are
    /// read here, bounded, for tracking).
    pub(crate) fn judged(
        &self,
        envelope: &Envelope,
        headers: &[u8],
        content: &[u8],
        delivered: &Delivered,
        verdict: &Verdict,
        limits: &message::MessageLimits,
    ) {
        let view = header_view(content, limits);
        let subject = view.subject.unwrap_or_default();
        let delivered_subject = match delivered {
            Delivered::Rewritten(copy) | Delivered::Stripped(copy) => {
                Some(header_view(copy, limits).subject.unwrap_or_default()).filter(|s| *s != subject)
            }
            Delivered::AsReceived => None,
        };
        let pending = Pending {
            at: Instant::now(),
            size: content.len() as u64,
            subject,
            delivered_subject,
            message_id: view.message_id.unwrap_or_default(),
            verdict: crate::gate::action_name(verdict.action).to_string(),
            score: verdict.score,
            symbols: verdict
                .symbols
                .iter()
                .map(|s| Symbol { name: s.name.clone(), score: s.score, reason: s.reason.clone() })
                .collect(),
        };
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PENDING {
            map.retain(|_, p| p.at.elapsed() < PENDING_TTL);
            if map.len() >= MAX_PENDING {
                map.clear();
            }
        }
        map.insert(key(envelope, headers), pending);
    }

    /// A message was committed to `queue` (called before the 250; never blocks).
    pub(crate) fn queued(
        &self,
        id: &QueueId,
        queue: Queue,
        peer: Option<&Peer>,
        envelope: &Envelope,
        judgement: &Judgement,
    ) {
        // Not removed: a strip-and-deliver verdict commits twice (the original held, the copy delivered).
        let map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let p = map.get(&key(envelope, &judgement.headers));
        let verdict = p.map_or_else(
            || judgement.summary.split(' ').next().unwrap_or("accept").to_string(),
            |p| p.verdict.clone(),
        );
        // What is delivered is tracked by the subject it is delivered with (a held original by its own).
        let received_subject = p.map(|p| p.subject.clone()).unwrap_or_default();
        let delivered_subject =
            p.and_then(|p| p.delivered_subject.clone()).filter(|_| queue == Queue::Active);
        let record = IntakeRecord {
            queue_id: id.clone(),
            received_at_ms: i64::try_from(envelope.received_at).unwrap_or(0),
            sender: envelope.sender.clone(),
            recipients: envelope.recipients.clone(),
            original_subject: delivered_subject.is_some().then(|| received_subject.clone()),
            subject: delivered_subject.unwrap_or(received_subject),
            message_id: p.map(|p| p.message_id.clone()).unwrap_or_default(),
            client_ip: envelope.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            helo: peer.and_then(|p| p.helo.clone()).or_else(|| envelope.helo.clone()).unwrap_or_default(),
            tls: envelope.tls,
            size: p.map_or(0, |p| p.size),
            verdict: if verdict.is_empty() { "accept".into() } else { verdict },
            score: p.map_or(0.0, |p| p.score),
            symbols: p.map(|p| p.symbols.clone()).unwrap_or_default(),
            quarantined: queue == Queue::Quarantine,
        };
        drop(map);
        self.tracker.intake(record);
    }

    /// New settings (SIGHUP) for the quarantine.
    pub(crate) fn reload(&self, config: &Arc<Config>) {
        if let Some(q) = self.quarantine.get() {
            q.reload(config.clone());
        }
    }
}
