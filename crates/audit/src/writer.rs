//! The gateway's audit writer: a task that owns the log, appends what it is sent in group-committed
//! batches, signs checkpoints on a timer, and wakes the forwarders (the syslog collector's, and on a
//! shared store the copy into the cluster's trail, started by [`Audit::copy_to_store`]).
//!
//! Fsync policy: each batch the task takes from its queue (everything queued at that moment, up to
//! [`BATCH`]) is written with one `write` and made durable with one `fdatasync` before any
//! [`Audit::record_durable`] caller in it is answered. [`Audit::record`] only queues: it never waits
//! and never fails the caller; if the queue ([`QUEUE`] events) is full, the event is counted and an
//! `audit.overflow` record with the count is written next, so a loss is itself on the record.

use crate::event::{Action, Actor, Event};
use crate::forward::{Forwarder, Limits, Sink, StoreSink, SyslogSink};
use crate::keys::SigningKey;
use crate::log::AuditLog;
use crate::{AuditError, AuditPaths};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Events the writer's queue holds.
pub const QUEUE: usize = 4096;
/// Most events written (and fsynced) together.
pub const BATCH: usize = 512;

type Reply = oneshot::Sender<Result<u64, String>>;

enum Msg {
    Record(Event, Option<Reply>),
    Checkpoint(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// A handle on the gateway's audit trail; cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Audit {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
    public_key: Arc<str>,
    paths: AuditPaths,
    store_limits: Limits,
    /// Bumped after each batch written: wakes every forwarder.
    appended: Arc<watch::Sender<u64>>,
    forward_stop: Arc<watch::Sender<bool>>,
    forwarders: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Audit(public key {})", self.public_key)
    }
}

impl Audit {
    /// Open the trail under `data_dir` (making the signing key on first start), sign the current head,
    /// and start the writer and, if configured, the forwarder on the current tokio runtime.
    pub fn start(
        data_dir: &Path,
        settings: &config::AuditConfig,
        hostname: &str,
    ) -> Result<Audit, AuditError> {
        let paths = AuditPaths::new(data_dir);
        let key = Arc::new(SigningKey::load_or_create(&paths.keys)?);
        let mut log = AuditLog::open(&paths)?;
        log.checkpoint(&key)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let (forward_stop, _) = watch::channel(false);
        let audit = Audit {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            public_key: key.public_hex().into(),
            paths: paths.clone(),
            store_limits: Limits {
                batch: settings.store_batch,
                alert_backlog: settings.store_alert_backlog,
                retry_max: settings.store_retry_max.get(),
            },
            appended: Arc::new(watch::channel(0).0),
            forward_stop: Arc::new(forward_stop),
            forwarders: Arc::new(Mutex::new(Vec::new())),
        };
        if !settings.syslog_address.is_empty() {
            let limits = Limits {
                batch: settings.syslog_batch,
                alert_backlog: settings.syslog_alert_backlog,
                retry_max: settings.syslog_retry_max.get(),
            };
            audit.forward(SyslogSink::new(settings, hostname)?, paths.cursor(), limits);
        }
        let appended = audit.appended.clone();
        let task = Writer { log: Arc::new(Mutex::new(log)), key, dropped: audit.dropped.clone(), appended };
        tokio::spawn(task.run(rx, settings.checkpoint_interval.get()));
        Ok(audit)
    }

    /// Queue `event`; never waits. See the module docs for what happens when the queue is full.
    pub fn record(&self, event: Event) {
        if self.tx.try_send(Msg::Record(event, None)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("audit queue full or writer stopped; an audit event was not recorded");
        }
    }

    /// Record `event` and wait until it is on disk; returns its sequence number.
    pub async fn record_durable(&self, event: Event) -> Result<u64, AuditError> {
        let (reply, done) = oneshot::channel();
        self.tx.send(Msg::Record(event, Some(reply))).await.map_err(|_| AuditError::Stopped)?;
        match done.await {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(why)) => Err(AuditError::NotWritten(why)),
            Err(_) => Err(AuditError::Stopped),
        }
    }

    /// Sign the head now (after the start record, say) and wait for it.
    pub async fn checkpoint(&self) {
        let (done, signed) = oneshot::channel();
        if self.tx.send(Msg::Checkpoint(done)).await.is_ok() {
            let _ = signed.await;
        }
    }

    /// Copy the trail, as it is written, into `store`'s cluster-wide audit trail under `node` (this
    /// node's `cluster.node_name`), catching up from `audit/store.cursor` after an outage.
    pub fn copy_to_store(&self, store: store::Store, node: &str) {
        let sink = StoreSink::new(store, node, &self.public_key, self.paths.checkpoints());
        self.forward(sink, self.paths.store_cursor(), self.store_limits);
    }

    /// Start a forwarder to `sink` with its cursor in `cursor_file`.
    pub(crate) fn forward<S: Sink>(&self, sink: S, cursor_file: std::path::PathBuf, limits: Limits) {
        let fwd = Forwarder::new(
            self.paths.log(),
            cursor_file,
            sink,
            limits,
            self.clone(),
            self.appended.subscribe(),
        );
        let task = tokio::spawn(fwd.run(self.forward_stop.subscribe()));
        self.forwarders.lock().expect("forwarders lock").push(task);
    }

    /// The public half of the checkpoint key (hex), for operators to pin.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Write what is queued, sign the head, then give the forwarders up to `grace` to send the rest.
    pub async fn shutdown(&self, grace: Duration) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Msg::Stop(done)).await.is_ok() {
            let _ = finished.await;
        }
        let _ = self.forward_stop.send(true);
        let handles = std::mem::take(&mut *self.forwarders.lock().expect("forwarders lock"));
        let all = wait_all(handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("audit forwarding did not catch up before stopping; it resumes at next start");
        }
    }
}

struct Writer {
    log: Arc<Mutex<AuditLog>>,
    key: Arc<SigningKey>,
    dropped: Arc<AtomicU64>,
    appended: Arc<watch::Sender<u64>>,
}

impl Writer {
    async fn run(self, mut rx: mpsc::Receiver<Msg>, every: Duration) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    let mut batch = vec![msg];
                    while batch.len() < BATCH && let Ok(m) = rx.try_recv() {
                        batch.push(m);
                    }
                    let (stop, signed) = self.write(batch).await;
                    if stop.is_some() || !signed.is_empty() {
                        self.checkpoint().await;
                    }
                    for done in signed {
                        let _ = done.send(());
                    }
                    if let Some(stop) = stop {
                        let _ = stop.send(());
                        break;
                    }
                }
                _ = tick.tick() => self.checkpoint().await,
            }
        }
    }

    /// Write the events of `batch` (up to a stop request). Returns the stop request and the callers
    /// waiting for a checkpoint.
    async fn write(&self, batch: Vec<Msg>) -> (Option<oneshot::Sender<()>>, Vec<oneshot::Sender<()>>) {
        let mut events = Vec::with_capacity(batch.len() + 1);
        let mut replies = Vec::new();
        let mut stop = None;
        let mut signed = Vec::new();
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            events.push(
                Event::new(Action::AuditOverflow, Actor::System).detail("lost_events", lost.to_string()),
            );
            replies.push(None);
        }
        for msg in batch {
            match msg {
                Msg::Record(e, reply) if stop.is_none() => {
                    events.push(e);
                    replies.push(reply);
                }
                Msg::Record(..) => {}
                Msg::Checkpoint(done) => signed.push(done),
                Msg::Stop(done) => stop = stop.or(Some(done)),
            }
        }
        let log = self.log.clone();
        let result =
            tokio::task::spawn_blocking(move || log.lock().expect("audit log lock").append(events)).await;
        let outcome = match result {
            Ok(Ok(records)) => Ok(records.into_iter().map(|r| r.seq).collect::<Vec<_>>()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("audit writer failed: {e}")),
        };
        if let Err(why) = &outcome {
            tracing::error!(error = %why, "could not write audit records");
        }
        for (i, reply) in replies.into_iter().enumerate() {
            if let Some(reply) = reply {
                let _ = reply.send(outcome.as_ref().map(|seqs| seqs[i]).map_err(Clone::clone));
            }
        }
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        (stop, signed)
    }

    async fn checkpoint(&self) {
        let (log, key) = (self.log.clone(), self.key.clone());
        let signed =
            tokio::task::spawn_blocking(move || log.lock().expect("audit log lock").checkpoint(&key)).await;
        match signed {
            Ok(Ok(Some(cp))) => tracing::debug!(seq = cp.seq, "audit checkpoint signed"),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not sign an audit checkpoint"),
            Err(e) => tracing::error!(error = %e, "audit checkpoint task failed"),
        }
    }
}

/// Wait for every task in `handles` (in turn: each runs on its own meanwhile).
async fn wait_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}
