//! The cluster's audit trail (migration `0302_audit.sql`): every node's records as its local log holds
//! them, its checkpoint key and its signed checkpoints, so one place shows and verifies the trail of
//! every node.
//!
//! The local log (`<data_dir>/audit/audit.log`, owned by the `audit` crate) stays the source of truth;
//! these tables are a copy that node's copier keeps up to date. A row keeps the record's line exactly as
//! written (its canonical JSON, hash included), so verification recomputes every hash from the line;
//! `seq`, `time` and `hash` beside it are for ordering and lookups only. Nothing here checks a chain or
//! a signature (the `audit` crate does); this module only stores and reads, and never changes or removes
//! a row: [`Store::audit_copy`] adds rows, skips rows it holds already, and reports a row it holds
//! with a different hash instead of replacing it.

use crate::{Exclusive, Store, StoreError, query_err};

/// One audit record of one node, as copied from its log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    /// The node that wrote it (`cluster.node_name`).
    pub node: String,
    pub seq: i64,
    /// RFC 3339 UTC with milliseconds, as in the record.
    pub time: String,
    pub hash: String,
    /// The record's line in the node's log, without its newline.
    pub line: String,
}

/// Where a page of [`Store::audit_recent`] ends: the next page starts after this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCursor {
    pub time: String,
    pub node: String,
    pub seq: i64,
}

impl Store {
    /// Copy `rows` (in order) in one transaction. A row the store holds already with the same hash is
    /// skipped (a batch sent again after a failure); if it holds one with a different hash, nothing of
    /// the batch is kept and that stored row is returned.
    pub async fn audit_copy(&self, rows: &[AuditRow]) -> Result<Option<AuditRow>, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        for row in rows {
            let added = on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO audit_records (node, seq, time, hash, line) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (node, seq) DO NOTHING",
                )
                .bind(&row.node)
                .bind(row.seq)
                .bind(&row.time)
                .bind(&row.hash)
                .bind(&row.line)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
            })
            .map_err(query_err("copying audit records"))?;
            if added == 1 {
                continue;
            }
            let stored: AuditRow = on_tx!(&mut tx, |conn| {
                sqlx::query_as(
                    "SELECT node, seq, time, hash, line FROM audit_records WHERE node = $1 AND seq = $2",
                )
                .bind(&row.node)
                .bind(row.seq)
                .fetch_one(conn)
                .await
            })
            .map_err(query_err("reading a copied audit record"))?;
            if stored.hash != row.hash {
                tx.rollback("refusing a different copy of an audit record").await?;
                return Ok(Some(stored));
            }
        }
        tx.commit("committing copied audit records").await?;
        Ok(None)
    }

    /// The last record (highest seq) the store holds for `node`.
    pub async fn audit_head(&self, node: &str) -> Result<Option<AuditRow>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT node, seq, time, hash, line FROM audit_records WHERE node = $1 \
                 ORDER BY seq DESC LIMIT 1",
            )
            .bind(node)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("reading a node's last audit record"))
    }

    /// Up to `limit` of `node`'s records after `after_seq`, by seq (how verification walks a chain).
    pub async fn audit_chain(
        &self,
        node: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT node, seq, time, hash, line FROM audit_records WHERE node = $1 AND seq > $2 \
                 ORDER BY seq LIMIT $3",
            )
            .bind(node)
            .bind(after_seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("reading a node's audit records"))
    }

    /// Up to `limit` records of every node, newest first (by time, then node and seq, descending),
    /// after `before` if given.
    pub async fn audit_recent(
        &self,
        before: Option<&AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (time, node, seq) = match before {
            Some(c) => (Some(c.time.as_str()), c.node.as_str(), c.seq),
            None => (None, "", 0),
        };
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT node, seq, time, hash, line FROM audit_records \
                 WHERE $1 IS NULL OR time < $1 OR (time = $1 AND (node < $2 OR (node = $2 AND seq < $3))) \
                 ORDER BY time DESC, node DESC, seq DESC LIMIT $4",
            )
            .bind(time)
            .bind(node)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("listing recent audit records"))
    }

    /// Record `public_key` (hex) as `node`'s checkpoint key unless it has one; returns the key the store
    /// holds for it (the one given, or the one registered first).
    pub async fn audit_register_key(
        &self,
        node: &str,
        public_key: &str,
        at_ms: i64,
    ) -> Result<String, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_keys (node, public_key, registered_at_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (node) DO NOTHING",
            )
            .bind(node)
            .bind(public_key)
            .bind(at_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("registering an audit key"))?;
        let (key,): (String,) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT public_key FROM audit_keys WHERE node = $1")
                .bind(node)
                .fetch_one(pool)
                .await
        })
        .map_err(query_err("reading an audit key"))?;
        Ok(key)
    }

    /// Every node with audit records or a registered key, by name, with its key if registered.
    pub async fn audit_nodes(&self) -> Result<Vec<(String, Option<String>)>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT n.node, k.public_key FROM \
                   (SELECT DISTINCT node FROM audit_records UNION SELECT node FROM audit_keys) n \
                 LEFT JOIN audit_keys k ON k.node = n.node ORDER BY n.node",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("listing the nodes of the audit trail"))
    }

    /// Keep `node`'s signed checkpoint of seq `seq` (its line); `false` if the store has it already.
    pub async fn audit_checkpoint_copy(&self, node: &str, seq: i64, line: &str) -> Result<bool, StoreError> {
        let added = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO audit_checkpoints (node, seq, line) VALUES ($1, $2, $3) \
                 ON CONFLICT (node, seq) DO NOTHING",
            )
            .bind(node)
            .bind(seq)
            .bind(line)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("copying an audit checkpoint"))?;
        Ok(added == 1)
    }

    /// `node`'s checkpoints (seq and line), by seq.
    pub async fn audit_checkpoints(&self, node: &str) -> Result<Vec<(i64, String)>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as("SELECT seq, line FROM audit_checkpoints WHERE node = $1 ORDER BY seq")
                .bind(node)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("reading a node's audit checkpoints"))
    }
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
