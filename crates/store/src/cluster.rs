//! What the nodes of a cluster share through the store (migration `0300_cluster.sql`): the nodes that
//! run (each one's heartbeat), the bodies of quarantined messages (so any node can release or show a
//! message another node held), and a durable queue of release requests that any live node can claim.
//!
//! Claiming is one statement on both databases: `UPDATE ... WHERE item_id IN (oldest claimable, LIMIT)
//! AND <claimable> RETURNING item_id`. Repeating the claimable condition on the row itself makes it
//! race-free: on PostgreSQL a second claimer that waited for the first one's row locks re-checks the
//! condition on the updated rows and skips them (it may then claim fewer than it could, and claims the
//! rest on its next round); on SQLite the statement holds the write lock. A claim older than
//! `stale_after_ms` (its node died before finishing) can be claimed again.
//!
//! A quarantined item shared by the nodes is held by one node (`quarantine_items.holder`, migration
//! `0301`): only that node judges whether its file is missing ([`Store::quarantine_held_by`]). A release
//! is the status change and its request in one transaction ([`Store::quarantine_release_queued`]), so a
//! released item always has a request until a node has put it in its delivery queue and finished it
//! ([`Store::release_delivered`], which drops the request and the body together). A digest is claimed
//! per address by moving its last-digest time from what the sender read to the new one
//! ([`Store::digest_claim`]), so two nodes on the same schedule never both send it.
//!
//! Each node holds a queue-id tag (`nodes.tag`, migration `0305`): a number below [`NODE_TAGS`] that no
//! other node sharing the store holds, which the node puts in every queue id it mints, so two nodes
//! never mint the same id. [`Store::node_claim_tag`] gives a node its tag at start: the one it holds
//! under its name if it has one (a restart keeps it), else the lowest free one. The claim is a read
//! then a write in one transaction that runs alone (`Exclusive::NodeTags`: `BEGIN IMMEDIATE` on
//! SQLite, an advisory lock on PostgreSQL), and the column's unique index stands behind it. Forgetting a
//! node ([`Store::node_forget`]) deletes its row and so frees its tag; a node forgotten while it still
//! runs takes its tag back with its next heartbeat, which fails (logged) if another node has claimed
//! it meanwhile.
//!
//! Item ids are the quarantine index's opaque ids ([`crate::ItemRow::id`]); bodies and requests go
//! with their item (foreign keys, `ON DELETE CASCADE`). Times are Unix milliseconds chosen by the
//! caller.

use crate::{Exclusive, ItemStatus, Store, StoreError, query_err};

/// What a node reports about itself on each heartbeat, and what [`Store::nodes`] returns.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeBeat {
    /// The node's name, unique in the cluster.
    pub name: String,
    /// The Portcullis version it runs.
    pub version: String,
    pub started_at_ms: i64,
    /// When it last reported.
    pub heartbeat_ms: i64,
    /// Messages in its delivery queue.
    pub queue_depth: i64,
    /// Its SMTP listeners, as text.
    pub smtp_listen: String,
    /// Its portal listener, as text (empty when it serves no portal).
    pub portal_listen: String,
}

/// A node as stored: the last heartbeat it sent and the queue-id tag it holds.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    #[sqlx(flatten)]
    pub beat: NodeBeat,
    /// Its queue-id tag (`None`: a node recorded before tags that has not started since).
    pub tag: Option<i64>,
}

/// How many queue-id tags the nodes sharing a store can hold (`0..NODE_TAGS`): all the values of
/// `spool::NODE_TAG_BITS` bits (the mail plane checks the two agree when it compiles), and the bound
/// of the `nodes.tag` column's check.
pub const NODE_TAGS: u16 = 1024;

/// A node's row from its heartbeat and tag (`bind_node`'s eight values); a known node gets its tag.
const UPSERT_NODE_CLAIM: &str = "INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, \
     smtp_listen, portal_listen, tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (name) DO UPDATE SET tag = excluded.tag";

/// A node's row from its heartbeat and tag (`bind_node`'s eight values); a known node gets the
/// heartbeat and keeps its tag.
const UPSERT_NODE_BEAT: &str = "INSERT INTO nodes (name, version, started_at_ms, heartbeat_ms, queue_depth, \
     smtp_listen, portal_listen, tag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
       started_at_ms = excluded.started_at_ms, heartbeat_ms = excluded.heartbeat_ms, \
       queue_depth = excluded.queue_depth, smtp_listen = excluded.smtp_listen, \
       portal_listen = excluded.portal_listen";

/// Bind a node's row to one of the `UPSERT_NODE_*` statements, on either backend.
fn bind_node<'q, DB>(
    query: sqlx::query::Query<'q, DB, DB::Arguments>,
    beat: &'q NodeBeat,
    tag: i64,
) -> sqlx::query::Query<'q, DB, DB::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(beat.name.as_str())
        .bind(beat.version.as_str())
        .bind(beat.started_at_ms)
        .bind(beat.heartbeat_ms)
        .bind(beat.queue_depth)
        .bind(beat.smtp_listen.as_str())
        .bind(beat.portal_listen.as_str())
        .bind(tag)
}

impl Store {
    /// Give the node of `beat` its queue-id tag (see the module documentation): the tag it holds under
    /// its name, or the lowest one no node holds, recorded with `beat` as the node's row when the store
    /// does not know the node yet (a known node's row keeps its last heartbeat). Fails with
    /// [`StoreError::NodeTagsFull`] when every tag is held by other nodes.
    pub async fn node_claim_tag(&self, beat: &NodeBeat) -> Result<u16, StoreError> {
        let mut tx = self.begin_write(Exclusive::NodeTags).await?;
        let held: Option<(Option<i64>,)> = on_tx!(&mut tx, |conn| {
            sqlx::query_as("SELECT tag FROM nodes WHERE name = $1")
                .bind(&beat.name)
                .fetch_optional(conn)
                .await
        })
        .map_err(query_err("reading a node's queue-id tag"))?;
        let tag = match held {
            Some((Some(tag),)) => tag,
            _ => {
                let (free,): (Option<i64>,) = on_tx!(&mut tx, |conn| {
                    sqlx::query_as(
                        "SELECT MIN(t) FROM (SELECT 0 AS t UNION ALL \
                                             SELECT tag + 1 FROM nodes WHERE tag IS NOT NULL) AS candidates \
                         WHERE t < $1 AND NOT EXISTS (SELECT 1 FROM nodes WHERE tag = candidates.t)",
                    )
                    .bind(i64::from(NODE_TAGS))
                    .fetch_one(conn)
                    .await
                })
                .map_err(query_err("finding a free queue-id tag"))?;
                let Some(free) = free else {
                    tx.rollback("giving up on a queue-id tag").await?;
                    return Err(StoreError::NodeTagsFull { node: beat.name.clone() });
                };
                on_tx!(&mut tx, |conn| {
                    bind_node(sqlx::query(UPSERT_NODE_CLAIM), beat, free)
                        .execute(conn)
                        .await
                        .map(|r| r.rows_affected())
                })
                .map_err(query_err("claiming a queue-id tag"))?;
                free
            }
        };
        tx.commit("committing a queue-id tag").await?;
        u16::try_from(tag)
            .ok()
            .filter(|t| *t < NODE_TAGS)
            .ok_or(StoreError::BadNodeTag { node: beat.name.clone(), tag })
    }

    /// Record a heartbeat of the node holding queue-id tag `tag` (its row is created or replaced; a row
    /// created here, for a node forgotten while it ran, takes its tag back).
    pub async fn node_heartbeat(&self, beat: &NodeBeat, tag: u16) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            bind_node(sqlx::query(UPSERT_NODE_BEAT), beat, i64::from(tag))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| {
            // The name's row is gone (forgotten) and its tag's unique index refuses the row again.
            if e.as_database_error().is_some_and(|d| d.is_unique_violation()) {
                StoreError::NodeTagTaken { node: beat.name.clone(), tag }
            } else {
                query_err("recording a node heartbeat")(e)
            }
        })?;
        Ok(())
    }

    /// Every node that has reported, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT name, version, started_at_ms, heartbeat_ms, queue_depth, smtp_listen, portal_listen, \
                 tag FROM nodes ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("listing nodes"))
    }

    /// Forget a node (it was retired), freeing its queue-id tag; `false` if it was not known.
    pub async fn node_forget(&self, name: &str) -> Result<bool, StoreError> {
        let gone = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM nodes WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("forgetting a node"))?;
        Ok(gone == 1)
    }

    /// Keep the body of quarantined item `item_id` with its SHA-256 (hex). Idempotent: `false` (and
    /// the stored body unchanged) when the item has one already. The item must be indexed.
    pub async fn body_put(&self, item_id: &str, sha256: &str, body: &[u8]) -> Result<bool, StoreError> {
        let stored = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO quarantine_bodies (item_id, sha256, body) VALUES ($1, $2, $3) \
                 ON CONFLICT (item_id) DO NOTHING",
            )
            .bind(item_id)
            .bind(sha256)
            .bind(body)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("storing a quarantined body"))?;
        Ok(stored == 1)
    }

    /// The SHA-256 (hex) and body of quarantined item `item_id`, if the store has it.
    pub async fn body_get(&self, item_id: &str) -> Result<Option<(String, Vec<u8>)>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as("SELECT sha256, body FROM quarantine_bodies WHERE item_id = $1")
                .bind(item_id)
                .fetch_optional(pool)
                .await
        })
        .map_err(query_err("reading a quarantined body"))
    }

    /// Drop the body of quarantined item `item_id`; `false` if there was none.
    pub async fn body_delete(&self, item_id: &str) -> Result<bool, StoreError> {
        let gone = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM quarantine_bodies WHERE item_id = $1")
                .bind(item_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("deleting a quarantined body"))?;
        Ok(gone == 1)
    }

    /// Ask for quarantined item `item_id` to be delivered by whichever node claims it. Idempotent:
    /// `false` when it is requested already.
    pub async fn release_request(&self, item_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let queued = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO release_requests (item_id, requested_at_ms) VALUES ($1, $2) \
                 ON CONFLICT (item_id) DO NOTHING",
            )
            .bind(item_id)
            .bind(now_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("queueing a release request"))?;
        Ok(queued == 1)
    }

    /// Claim for `node` up to `limit` of the oldest release requests that are unclaimed, or whose claim
    /// is `stale_after_ms` old or older; returns their item ids (sorted). No two claimers ever get the
    /// same request while its claim is fresh.
    pub async fn release_claim(
        &self,
        node: &str,
        now_ms: i64,
        stale_after_ms: i64,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "UPDATE release_requests SET claimed_by = $1, claimed_at_ms = $2 \
                 WHERE item_id IN (SELECT item_id FROM release_requests \
                                   WHERE claimed_by IS NULL OR claimed_at_ms <= $3 \
                                   ORDER BY requested_at_ms, item_id LIMIT $4) \
                   AND (claimed_by IS NULL OR claimed_at_ms <= $3) \
                 RETURNING item_id",
            )
            .bind(node)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(stale_after_ms))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("claiming release requests"))?;
        let mut ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
        ids.sort();
        Ok(ids)
    }

    /// A claimed release request is done (delivered, or given up): remove it. `false` if it was gone.
    pub async fn release_done(&self, item_id: &str) -> Result<bool, StoreError> {
        let gone = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM release_requests WHERE item_id = $1")
                .bind(item_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("finishing a release request"))?;
        Ok(gone == 1)
    }

    /// Queue ids of the held items whose file is in `holder`'s spool (what that node reconciles).
    pub async fn quarantine_held_by(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT queue_id FROM quarantine_items WHERE holder = $1 AND status = 'held'")
                .bind(holder)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("listing a node's held quarantine items"))?;
        Ok(rows.into_iter().map(|(q,)| q).collect())
    }

    /// Release held item `id` for delivery by whichever node claims it: the status change (`held` to
    /// `released`, by `by` at `at_ms`) and its release request in one transaction. `true` for exactly
    /// one caller; `false` when the item is not (or no longer) held.
    pub async fn quarantine_release_queued(
        &self,
        id: &str,
        by: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        let claimed = on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE quarantine_items SET status = $2, status_by = $3, status_at_ms = $4 \
                 WHERE id = $1 AND status = 'held'",
            )
            .bind(id)
            .bind(ItemStatus::Released.as_str())
            .bind(by)
            .bind(at_ms)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("releasing a quarantine item"))?
            == 1;
        if claimed {
            on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO release_requests (item_id, requested_at_ms) VALUES ($1, $2) \
                     ON CONFLICT (item_id) DO NOTHING",
                )
                .bind(id)
                .bind(at_ms)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(query_err("queueing a release request"))?;
        }
        tx.commit("committing a release").await?;
        Ok(claimed)
    }

    /// A claimed release is in a node's delivery queue: drop its request and the item's body together.
    /// `false` if the request was gone.
    pub async fn release_delivered(&self, item_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        let gone = on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM release_requests WHERE item_id = $1")
                .bind(item_id)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("finishing a release request"))?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM quarantine_bodies WHERE item_id = $1")
                .bind(item_id)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("deleting a released body"))?;
        tx.commit("committing a delivered release").await?;
        Ok(gone == 1)
    }

    /// Claim the digest of `address` covering what was held up to `until_ms`, if its last digest is still
    /// `last_ms` (what the caller read): `true` for exactly one caller, who then sends it.
    pub async fn digest_claim(&self, address: &str, last_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        let claimed = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO digest_prefs (address, enabled, last_digest_ms) VALUES ($1, 1, $3) \
                 ON CONFLICT (address) DO UPDATE SET last_digest_ms = $3 \
                 WHERE digest_prefs.last_digest_ms = $2",
            )
            .bind(address)
            .bind(last_ms)
            .bind(until_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("claiming a digest"))?;
        Ok(claimed == 1)
    }
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
