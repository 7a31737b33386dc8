//! The quarantine shared by several nodes (a PostgreSQL store): where a held message's bytes live, how a
//! release made on any node is delivered by a live one, and what each node's spool copy is worth.
//!
//! # How it works, and why this way
//! A node that holds a message keeps its file in its own `quarantine/` queue, records itself as the
//! item's holder, and stores the whole queue file (envelope and content, [`spool::Spool::export`]) in
//! `quarantine_bodies` in the same transaction as the index row. From then on the store's copy is the one
//! that counts: any node's portal shows, downloads and learns from it, and the holder's file is only a
//! local copy, read when the holder itself shows the item.
//!
//! A release on a shared store is one transaction: the item's status `held` to `released` (one winner,
//! as everywhere) and a row in `release_requests`. Mail nodes claim requests
//! ([`Quarantine::deliver_released`]: at once on the node that released, and every
//! `cluster.release_check_interval` on every mail node), import the stored file into their own `active/`
//! queue under the same queue id ([`spool::Spool::import`], durable before anything else happens), hand
//! it to their relay, and only then drop the request and the body ([`store::Store::release_delivered`]).
//! We chose requests over "the releasing node takes the item over" because a portal-only process
//! (`serve --role portal`) has no relay and may run where no mail plane does: it only has to write two
//! rows, and whichever mail node is alive delivers.
//!
//! Guarantees. Never lost: the body stays in the store until a node has the message durably in its
//! delivery queue. Never twice in normal operation: a request is claimed by one node at a time, and
//! importing twice on one node is a no-op. At least once across crashes: a node that dies after importing
//! but before finishing leaves a claim that goes stale after `cluster.node_stale_after`, and another node
//! delivers again. Delivered though the holder is dead: the body in the store is all a node needs. When an
//! old holder comes back, [`Quarantine::reconcile`] finds its file's item released (or deleted, or
//! expired) and removes the copy without delivering it; it judges "file missing" only for items it holds,
//! and not at all for an item whose body the store still has.
//!
//! Delete and expiry work on any node: the status change is claimed in the store, the body dropped, the
//! holder's file removed at once when this node is the holder and otherwise by the holder's next
//! reconcile. Digests are claimed per address and schedule slot ([`store::Store::digest_claim`]), so two
//! nodes on one schedule send each digest once.
//!
//! Must not touch: another node's spool (only the store is shared), SQL (the `store` crate).

use crate::ops::sha256_hex;
use crate::{Quarantine, QuarantineError};
use spool::{Queue, QueueId};
use store::ItemRow;

/// Release requests claimed per round.
const CLAIM_BATCH: u32 = 50;

impl Quarantine {
    /// Whether the store is shared by several nodes (PostgreSQL): bodies go to the store and releases
    /// through its queue. On SQLite the quarantine is one node's, exactly as without a cluster.
    pub(crate) fn shared(&self) -> bool {
        self.config().store.backend == config::StoreBackend::Postgres
    }

    /// This node's name in the store.
    pub(crate) fn node(&self) -> String {
        self.config().cluster.node_name.clone()
    }

    /// Whether this process's spool holds `row`'s file (always, for a quarantine that is not shared;
    /// on a shared store also for items indexed before holders were recorded; never without a spool).
    pub(crate) fn holds(&self, row: &ItemRow) -> bool {
        self.local() && (!self.shared() || row.holder.is_empty() || row.holder == self.node())
    }

    /// The envelope and content of a held item: from this node's file when it holds it, else (or when
    /// the file is gone) from the store's body.
    pub(crate) async fn held_message(
        &self,
        row: &ItemRow,
    ) -> Result<(spool::Envelope, Vec<u8>), QuarantineError> {
        let qid = QueueId::parse(&row.queue_id).map_err(|_| QuarantineError::MissingFile)?;
        if self.holds(row) {
            match self.read_file(&qid, Queue::Quarantine).await {
                Ok((msg, content)) => return Ok((msg.envelope, content)),
                Err(QuarantineError::Spool(spool::SpoolError::NotFound(_))) if self.shared() => {}
                Err(QuarantineError::Spool(spool::SpoolError::NotFound(_))) => {
                    return Err(QuarantineError::MissingFile);
                }
                Err(e) => return Err(e),
            }
        }
        let (_, bytes) = self.store().body_get(&row.id).await?.ok_or(QuarantineError::MissingFile)?;
        Ok(spool::decode(&qid, &bytes)?)
    }

    /// Release a held item through the store's queue: claimed (one winner) with its request in one
    /// transaction; a mail node delivers it at once. `false` if someone else changed it first.
    pub(crate) async fn release_shared(&self, row: &ItemRow, by: &str) -> Result<bool, QuarantineError> {
        if !self.store().quarantine_release_queued(&row.id, by, crate::now_ms()).await? {
            return Ok(false);
        }
        if self.delivers()
            && let Err(e) = self.deliver_released().await
        {
            tracing::warn!(item = %row.id, error = %e, "released; delivery is left to the next check");
        }
        Ok(true)
    }

    /// Claim released items waiting for delivery (those no node claimed, or whose claim went stale) and
    /// put each in this node's delivery queue. Returns how many were queued.
    pub async fn deliver_released(&self) -> Result<usize, QuarantineError> {
        let config = self.config();
        let stale = i64::try_from(config.cluster.node_stale_after.get().as_millis()).unwrap_or(i64::MAX);
        let mut queued = 0;
        loop {
            let claimed =
                self.store().release_claim(&self.node(), crate::now_ms(), stale, CLAIM_BATCH).await?;
            for id in &claimed {
                match self.deliver_one(id).await {
                    Ok(true) => queued += 1,
                    Ok(false) => {}
                    Err(e) => tracing::error!(item = %id, error = %e, "could not deliver a released item"),
                }
            }
            if claimed.len() < CLAIM_BATCH as usize {
                return Ok(queued);
            }
        }
    }

    /// Put one claimed release in `active/` (from the store's body; the holder's own file when the item
    /// has none), then finish the request. `false`: nothing to deliver.
    async fn deliver_one(&self, item_id: &str) -> Result<bool, QuarantineError> {
        let Some(row) = self.store().quarantine_get(item_id).await? else {
            self.store().release_delivered(item_id).await?;
            return Ok(false);
        };
        let qid = QueueId::parse(&row.queue_id).map_err(|_| QuarantineError::MissingFile)?;
        match self.store().body_get(item_id).await? {
            Some((sha256, bytes)) => {
                if sha256_hex(&bytes) != sha256 {
                    return Err(QuarantineError::Damaged(item_id.to_string()));
                }
                let (spool, id) = (self.spool()?.clone(), qid.clone());
                crate::blocking("importing a released message", move || {
                    spool.import(&id, &bytes, Queue::Active)
                })
                .await??;
                self.wake(&qid);
                if self.holds(&row) {
                    self.remove_file(&row).await?;
                }
            }
            None if self.holds(&row) => self.move_to_active(&row).await?,
            None => {
                tracing::warn!(item = %item_id, holder = %row.holder, "released item has no stored body; its holder delivers it");
                return Ok(false);
            }
        }
        self.store().release_delivered(item_id).await?;
        tracing::info!(item = %item_id, queue_id = %qid, "released message queued for delivery");
        Ok(true)
    }

    /// After a delete or an expiry claimed in the store: drop the stored body and this node's file (the
    /// holder removes its own copy at its next reconcile when the item was another node's).
    pub(crate) async fn discard(&self, row: &ItemRow) -> Result<(), QuarantineError> {
        if self.shared() {
            self.store().body_delete(&row.id).await?;
        }
        if self.holds(row) {
            self.remove_file(row).await?;
        }
        Ok(())
    }

    /// The queue file and its SHA-256 to store beside a new index row, when the store is shared.
    pub(crate) fn body_for_store(&self, bytes: &[u8]) -> Option<String> {
        self.shared().then(|| sha256_hex(bytes))
    }

    /// An item of another node found in this node's quarantine queue (two nodes gave out one queue id):
    /// left alone, and said so.
    pub(crate) fn foreign(&self, row: &ItemRow) -> bool {
        let foreign = !self.holds(row);
        if foreign {
            tracing::warn!(queue_id = %row.queue_id, holder = %row.holder, kind = row.kind.as_str(),
                "a quarantine file here has the queue id of another node's item; left alone");
        }
        foreign
    }
}
