//! Aggregates for the admin console's dashboard, read from the tracking and quarantine tables (their
//! owners write them; this module only counts). Every query is bounded by a time window and a limit.

use crate::{Store, StoreError, query_err};

/// Counts in one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowBucket {
    /// Start of the bucket, Unix milliseconds.
    pub start_ms: i64,
    /// Received and accepted (delivered as is or tagged).
    pub accepted: u64,
    /// Refused at the end of DATA (when the gateway tracks refusals).
    pub rejected: u64,
    pub quarantined: u64,
    /// Delivery events (one per recipient delivered).
    pub delivered: u64,
}

/// Most rows read to count symbols.
const SYMBOL_ROWS: i64 = 5_000;

impl Store {
    /// Mail flow from `since_ms` in `buckets` buckets of `bucket_ms`.
    pub async fn dashboard_flow(
        &self,
        since_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<Vec<FlowBucket>, StoreError> {
        let bucket_ms = bucket_ms.max(1);
        let mut out: Vec<FlowBucket> = (0..buckets)
            .map(|i| FlowBucket { start_ms: since_ms + i as i64 * bucket_ms, ..Default::default() })
            .collect();
        let verdicts: Vec<(i64, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT (received_at_ms - $1) / $2 AS b, verdict, COUNT(*) FROM tracking_messages \
             WHERE received_at_ms >= $1 GROUP BY b, verdict",
            )
            .bind(since_ms)
            .bind(bucket_ms)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("counting verdicts for the dashboard"))?;
        let events: Vec<(i64, String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT (at_ms - $1) / $2 AS b, kind, COUNT(*) FROM tracking_events \
             WHERE at_ms >= $1 AND kind = 'delivered' GROUP BY b, kind",
            )
            .bind(since_ms)
            .bind(bucket_ms)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("counting deliveries for the dashboard"))?;
        for (b, what, n) in verdicts.into_iter().chain(events) {
            let Some(bucket) = usize::try_from(b).ok().and_then(|b| out.get_mut(b)) else { continue };
            let n = n.max(0) as u64;
            match what.as_str() {
                "accept" | "tag" => bucket.accepted += n,
                "reject" => bucket.rejected += n,
                "quarantine" => bucket.quarantined += n,
                "delivered" => bucket.delivered += n,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The `limit` envelope senders with the most messages since `since_ms`.
    pub async fn dashboard_top_senders(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT sender, COUNT(*) AS n FROM tracking_messages WHERE received_at_ms >= $1 \
             GROUP BY sender ORDER BY n DESC, sender LIMIT $2",
            )
            .bind(since_ms)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("counting senders for the dashboard"))?;
        Ok(rows.into_iter().map(|(s, n)| (s, n.max(0) as u64)).collect())
    }

    /// The symbol lists (JSON text) of the latest quarantined items since `since_ms` (at most 5,000).
    pub async fn dashboard_recent_symbols(&self, since_ms: i64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT symbols FROM quarantine_items WHERE received_at_ms >= $1 \
             ORDER BY received_at_ms DESC LIMIT $2",
            )
            .bind(since_ms)
            .bind(SYMBOL_ROWS)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("reading symbols for the dashboard"))?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{TestDb, store_test};
    use crate::{TrackedMessage, TrackingEventRow};

    store_test!(empty_tables_give_zero_buckets, flow_and_senders_count_the_same_on_both_backends);

    async fn empty_tables_give_zero_buckets(db: TestDb) {
        let store = db.store.clone();
        let flow = store.dashboard_flow(1_000, 100, 3).await.unwrap();
        assert_eq!(flow.len(), 3);
        assert_eq!(flow[2].start_ms, 1_200);
        assert!(flow.iter().all(|b| b.accepted + b.delivered == 0));
        assert!(store.dashboard_top_senders(0, 10).await.unwrap().is_empty());
        assert!(store.dashboard_recent_symbols(0).await.unwrap().is_empty());
    }

    async fn flow_and_senders_count_the_same_on_both_backends(db: TestDb) {
        let store = db.store.clone();
        let message = |n: u8, at: i64, sender: &str, verdict: &str| TrackedMessage {
            queue_id: format!("{n:016x}"),
            received_at_ms: at,
            sender: sender.into(),
            recipients: vec!["b@our.test".into()],
            subject: String::new(),
            message_id: String::new(),
            client_ip: String::new(),
            verdict: verdict.into(),
            score: 0.0,
        };
        for (n, at, sender, verdict) in [
            (1, 1_000, "z@ext.test", "accept"),
            (2, 1_099, "Y@ext.test", "tag"),
            (3, 1_100, "z@ext.test", "quarantine"),
            (4, 1_250, "a@ext.test", "reject"),
            (5, 900, "z@ext.test", "accept"),
        ] {
            store.tracking_record_message(&message(n, at, sender, verdict)).await.unwrap();
        }
        let delivered = TrackingEventRow {
            queue_id: format!("{:016x}", 1),
            at_ms: 1_150,
            kind: "delivered".into(),
            actor: "relay".into(),
            details_json: "{}".into(),
        };
        store.tracking_add_events(&[delivered]).await.unwrap();
        let flow = store.dashboard_flow(1_000, 100, 3).await.unwrap();
        let counts: Vec<_> =
            flow.iter().map(|b| (b.accepted, b.quarantined, b.rejected, b.delivered)).collect();
        assert_eq!(counts, [(2, 0, 0, 0), (0, 1, 0, 1), (0, 0, 1, 0)]);
        // Ties are broken by sender, byte-wise: "Y" sorts before "a" on both databases.
        let top = store.dashboard_top_senders(1_000, 3).await.unwrap();
        assert_eq!(
            top,
            [("z@ext.test".to_string(), 2), ("Y@ext.test".to_string(), 1), ("a@ext.test".to_string(), 1)]
        );
    }
}
