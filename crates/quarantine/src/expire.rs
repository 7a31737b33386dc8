//! Expiry (retention and size caps per kind) and reconciling the index with the spool.

use crate::item::{Kind, Status};
use crate::{Actor, Hold, Quarantine, QuarantineError, now_ms};
use spool::Queue;
use std::collections::HashSet;

/// Items expired per query while enforcing a limit (the loop continues until the limit holds).
const BATCH: u32 = 500;

/// What one expiry run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Items past their kind's retention.
    pub expired_by_age: usize,
    /// Items expired (oldest first) because their kind held more than its size cap.
    pub expired_by_size: usize,
    /// Tracking timelines forgotten.
    pub tracking_purged: u64,
}

/// What one reconcile run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Files in `quarantine/` that had no index row and were indexed.
    pub indexed: usize,
    /// Releases, deletions and expiries whose file step had not happened (a crash), finished.
    pub finished: usize,
    /// Held rows whose file was gone (removed behind the quarantine's back), marked deleted.
    pub missing: usize,
}

impl Quarantine {
    /// Expire what retention and the size caps say must go, purge old tracking and spent token marks.
    pub async fn expire(&self) -> Result<ExpiryReport, QuarantineError> {
        let config = self.config();
        let q = &config.quarantine;
        let mut report = ExpiryReport::default();
        let now = now_ms();
        for (kind, retention, cap) in [
            (Kind::Spam, q.spam_retention, q.spam_max_size),
            (Kind::Virus, q.virus_retention, q.virus_max_size),
            (Kind::Policy, q.policy_retention, q.policy_max_size),
        ] {
            let cutoff = now.saturating_sub(i64::try_from(retention.get().as_millis()).unwrap_or(i64::MAX));
            report.expired_by_age += self.expire_older(kind, cutoff).await?;
            report.expired_by_size +=
                self.expire_over(kind, i64::try_from(cap.0).unwrap_or(i64::MAX)).await?;
        }
        let keep = i64::try_from(q.tracking_retention.get().as_millis()).unwrap_or(i64::MAX);
        report.tracking_purged = self.store().tracking_purge(now.saturating_sub(keep)).await?;
        self.store().digest_tokens_purge(now).await?;
        Ok(report)
    }

    async fn expire_older(&self, kind: Kind, cutoff_ms: i64) -> Result<usize, QuarantineError> {
        let mut n = 0;
        loop {
            let batch = self.store().quarantine_held_before(kind, cutoff_ms, BATCH).await?;
            for (id, _) in &batch {
                n += usize::from(self.expire_one(id, "retention").await?);
            }
            if batch.len() < BATCH as usize {
                return Ok(n);
            }
        }
    }

    async fn expire_over(&self, kind: Kind, cap: i64) -> Result<usize, QuarantineError> {
        let mut n = 0;
        loop {
            let (mut total, oldest) = self.store().quarantine_held_sizes(kind, BATCH).await?;
            if total <= cap || oldest.is_empty() {
                return Ok(n);
            }
            for (id, _, size) in &oldest {
                if total <= cap {
                    return Ok(n);
                }
                if self.expire_one(id, "size cap").await? {
                    n += 1;
                    total -= size;
                }
            }
        }
    }

    /// Expire one held item; `false` if it had left `held` meanwhile.
    async fn expire_one(&self, id: &str, why: &str) -> Result<bool, QuarantineError> {
        let system = Actor::system();
        let Some(row) = self.store().quarantine_get(id).await? else { return Ok(false) };
        if !self.claim(&row, Status::Expired, &system).await? {
            return Ok(false);
        }
        self.discard(&row).await?;
        self.track(&row.queue_id, "expired", &system, serde_json::json!({"item": row.id, "why": why})).await;
        self.audit(audit::Action::QuarantineDelete, &system, &row, &[("reason", why)]);
        Ok(true)
    }

    /// Make the index and `quarantine/` agree: index files that have no row (a crash between commit
    /// and indexing), finish status changes whose file step was lost, and mark held rows whose file
    /// is gone. Run at start and with every expiry. On a shared store only the items this node holds are
    /// judged, a released item's file is removed (the store's copy was delivered), and an item whose
    /// body the store has is never "missing" ([`crate::cluster`]).
    pub async fn reconcile(&self) -> Result<ReconcileReport, QuarantineError> {
        let spool = self.spool()?.clone();
        let files =
            crate::blocking("listing the quarantine", move || spool.list(Queue::Quarantine)).await??;
        let held = if self.shared() {
            self.store().quarantine_held_by(&self.node()).await?
        } else {
            self.store().quarantine_held_queue_ids().await?
        };
        let held: HashSet<String> = held.into_iter().collect();
        let mut report = ReconcileReport::default();
        let on_disk: HashSet<&str> = files.iter().map(|f| f.as_str()).collect();
        for qid in files.iter().filter(|f| !held.contains(f.as_str())) {
            match self.store().quarantine_by_queue_id(qid.as_str()).await? {
                None => {
                    match self.hold(&Hold { queue_id: qid.clone(), score: 0.0, symbols: Vec::new() }).await {
                        Ok(_) => report.indexed += 1,
                        Err(e) => {
                            tracing::error!(queue_id = %qid, error = %e, "could not index a quarantine file")
                        }
                    }
                }
                Some(row) if self.foreign(&row) => {}
                Some(row) => {
                    match row.status {
                        Status::Released if self.shared() => self.remove_file(&row).await?,
                        Status::Released => self.move_to_active(&row).await?,
                        Status::Deleted | Status::Expired => self.remove_file(&row).await?,
                        Status::Held => continue,
                    }
                    report.finished += 1;
                }
            }
        }
        for qid in held.iter().filter(|q| !on_disk.contains(q.as_str())) {
            report.missing += usize::from(self.mark_missing(qid).await?);
        }
        Ok(report)
    }

    /// A held row whose file is not in `quarantine/`: deleted behind our back (not a release in
    /// flight: a release claims the row before it moves the file).
    async fn mark_missing(&self, qid: &str) -> Result<bool, QuarantineError> {
        let Some(row) = self.store().quarantine_by_queue_id(qid).await? else { return Ok(false) };
        let Ok(id) = spool::QueueId::parse(qid) else { return Ok(false) };
        // Indexed between our listing and now? Then the file is there.
        let spool = self.spool()?.clone();
        let present =
            crate::blocking("reading a queue file", move || spool.load(Queue::Quarantine, &id).is_ok())
                .await
                .unwrap_or(true);
        if present || (self.shared() && self.store().body_get(&row.id).await?.is_some()) {
            return Ok(false);
        }
        let changed = self
            .store()
            .quarantine_set_status(
                &row.id,
                Status::Held,
                Status::Deleted,
                Some("system: file missing"),
                now_ms(),
            )
            .await?;
        if changed {
            self.track(
                qid,
                "deleted",
                &Actor::system(),
                serde_json::json!({"item": row.id, "why": "file missing"}),
            )
            .await;
        }
        Ok(changed)
    }
}
