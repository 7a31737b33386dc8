//! Message tracking: what the gateway received (or generated), and every event in each message's life.
//!
//! Search is keyset-paged, newest first, and driven by an index (recipient, sender, Message-ID, client
//! address, queue id, verdict or time); the other filters are one constant predicate, as in
//! [`crate::quarantine`]. Events are appended in batches and read back in the order they happened.

use crate::{Store, StoreError, query_err};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// One tracked message. Text is data from the message or envelope, bounded by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedMessage {
    pub queue_id: String,
    pub received_at_ms: i64,
    /// Envelope sender, lower-case (empty for the null sender).
    pub sender: String,
    /// Envelope recipients, lower-case (filled in by reads).
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: String,
    /// The client's IP address as text (empty for generated mail).
    pub client_ip: String,
    /// The verdict's action (`accept`, `tag`, `quarantine`, `reject`, `tempfail`, or `local`).
    pub verdict: String,
    pub score: f64,
}

/// One event of a message's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingEventRow {
    pub queue_id: String,
    pub at_ms: i64,
    /// `received`, `verdict`, `quarantined`, `released`, `deleted`, `expired`, `delivered`, `deferred`,
    /// `bounced`, `dsn_queued`, `learned`, `safelisted`.
    pub kind: String,
    pub actor: String,
    /// A JSON object of short details.
    pub details_json: String,
}

/// What tracking search starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingScope {
    Recipient(String),
    Sender(String),
    MessageId(String),
    ClientIp(String),
    QueueId(String),
    Verdict(String),
    All,
}

/// Filters applied in every scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackingFilter {
    /// Lower-case text that must occur in the subject, literally.
    pub subject_contains: Option<String>,
    pub received_from_ms: Option<i64>,
    pub received_before_ms: Option<i64>,
    /// Keyset cursor: only messages older than this `(received_at_ms, queue_id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// Newest first, one page.
macro_rules! newest {
    () => {
        "ORDER BY m.received_at_ms DESC, m.queue_id DESC LIMIT $6"
    };
}

macro_rules! columns {
    () => {
        "SELECT m.queue_id, m.received_at_ms, m.sender, m.subject, m.message_id, m.client_ip, m.verdict, \
         m.score "
    };
}

/// $1 subject pattern, $2 from, $3 before, $4 and $5 the cursor, $6 the limit; $7 the scope's value.
macro_rules! filters {
    () => {
        " AND ($1 IS NULL OR m.subject_fold LIKE $1 ESCAPE '\\') \
          AND ($2 IS NULL OR m.received_at_ms >= $2) \
          AND ($3 IS NULL OR m.received_at_ms < $3) \
          AND ($4 IS NULL OR m.received_at_ms < $4 OR (m.received_at_ms = $4 AND m.queue_id < $5)) "
    };
}

pub(crate) const BY_RECIPIENT: &str = concat!(
    columns!(),
    "FROM tracking_recipients r JOIN tracking_messages m ON m.queue_id = r.queue_id WHERE r.address = $7 \
     AND ($2 IS NULL OR r.received_at_ms >= $2) AND ($4 IS NULL OR r.received_at_ms <= $4)",
    filters!(),
    "ORDER BY r.received_at_ms DESC, r.queue_id DESC LIMIT $6"
);
pub(crate) const BY_SENDER: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE m.sender = $7", filters!(), newest!());
pub(crate) const BY_MESSAGE_ID: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE m.message_id = $7", filters!(), newest!());
pub(crate) const BY_CLIENT: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE m.client_ip = $7", filters!(), newest!());
pub(crate) const BY_QUEUE_ID: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE m.queue_id = $7", filters!(), newest!());
pub(crate) const BY_VERDICT: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE m.verdict = $7", filters!(), newest!());
pub(crate) const ALL: &str =
    concat!(columns!(), "FROM tracking_messages m WHERE $7 IS NULL", filters!(), newest!());

fn message_from_row(r: &SqliteRow) -> Result<TrackedMessage, sqlx::Error> {
    Ok(TrackedMessage {
        queue_id: r.try_get("queue_id")?,
        received_at_ms: r.try_get("received_at_ms")?,
        sender: r.try_get("sender")?,
        recipients: Vec::new(),
        subject: r.try_get("subject")?,
        message_id: r.try_get("message_id")?,
        client_ip: r.try_get("client_ip")?,
        verdict: r.try_get("verdict")?,
        score: r.try_get("score")?,
    })
}

impl Store {
    /// Record a message and its recipients. Idempotent by queue id: `false` if it was recorded already.
    pub async fn tracking_record_message(&self, m: &TrackedMessage) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO tracking_messages (queue_id, received_at_ms, sender, subject, subject_fold, \
             message_id, client_ip, verdict, score) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (queue_id) DO NOTHING",
        )
        .bind(&m.queue_id)
        .bind(m.received_at_ms)
        .bind(&m.sender)
        .bind(&m.subject)
        .bind(m.subject.to_lowercase())
        .bind(&m.message_id)
        .bind(&m.client_ip)
        .bind(&m.verdict)
        .bind(m.score)
        .execute(&mut *tx)
        .await
        .map_err(query_err("recording a tracked message"))?
        .rows_affected()
            == 1;
        if inserted {
            for r in &m.recipients {
                sqlx::query(
                    "INSERT INTO tracking_recipients (address, received_at_ms, queue_id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(r)
                .bind(m.received_at_ms)
                .bind(&m.queue_id)
                .execute(&mut *tx)
                .await
                .map_err(query_err("recording a tracked recipient"))?;
            }
        }
        tx.commit().await.map_err(query_err("committing a tracked message"))?;
        Ok(inserted)
    }

    /// Append events (one transaction for the batch).
    pub async fn tracking_add_events(&self, events: &[TrackingEventRow]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO tracking_events (queue_id, at_ms, kind, actor, details) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&e.queue_id)
            .bind(e.at_ms)
            .bind(&e.kind)
            .bind(&e.actor)
            .bind(&e.details_json)
            .execute(&mut *tx)
            .await
            .map_err(query_err("recording a tracking event"))?;
        }
        tx.commit().await.map_err(query_err("committing tracking events"))
    }

    /// A page of tracked messages in `scope` matching `filter`, newest first, with their recipients.
    pub async fn tracking_search(
        &self,
        scope: &TrackingScope,
        filter: &TrackingFilter,
    ) -> Result<Vec<TrackedMessage>, StoreError> {
        let (sql, value) = match scope {
            TrackingScope::Recipient(v) => (BY_RECIPIENT, Some(v.as_str())),
            TrackingScope::Sender(v) => (BY_SENDER, Some(v.as_str())),
            TrackingScope::MessageId(v) => (BY_MESSAGE_ID, Some(v.as_str())),
            TrackingScope::ClientIp(v) => (BY_CLIENT, Some(v.as_str())),
            TrackingScope::QueueId(v) => (BY_QUEUE_ID, Some(v.as_str())),
            TrackingScope::Verdict(v) => (BY_VERDICT, Some(v.as_str())),
            TrackingScope::All => (ALL, None),
        };
        let rows = sqlx::query(sql)
            .bind(filter.subject_contains.as_deref().map(crate::quarantine::like_contains))
            .bind(filter.received_from_ms)
            .bind(filter.received_before_ms)
            .bind(filter.before.as_ref().map(|b| b.0))
            .bind(filter.before.as_ref().map(|b| b.1.as_str()))
            .bind(i64::from(filter.limit))
            .bind(value)
            .fetch_all(self.pool())
            .await
            .map_err(query_err("searching message tracking"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut m = message_from_row(row).map_err(query_err("decoding a tracked message"))?;
            m.recipients = self.tracking_recipients(&m.queue_id).await?;
            out.push(m);
        }
        Ok(out)
    }

    async fn tracking_recipients(&self, queue_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT address FROM tracking_recipients WHERE queue_id = $1 ORDER BY address")
                .bind(queue_id)
                .fetch_all(self.pool())
                .await
                .map_err(query_err("reading tracked recipients"))?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Every event of one message, in the order they happened.
    pub async fn tracking_events(&self, queue_id: &str) -> Result<Vec<TrackingEventRow>, StoreError> {
        let rows: Vec<(String, i64, String, String, String)> = sqlx::query_as(
            "SELECT queue_id, at_ms, kind, actor, details FROM tracking_events WHERE queue_id = $1 \
             ORDER BY at_ms, seq",
        )
        .bind(queue_id)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("reading tracking events"))?;
        Ok(rows
            .into_iter()
            .map(|(queue_id, at_ms, kind, actor, details_json)| TrackingEventRow {
                queue_id,
                at_ms,
                kind,
                actor,
                details_json,
            })
            .collect())
    }

    /// Forget messages received before `before_ms`, with their recipients and events. Returns how many
    /// messages went.
    pub async fn tracking_purge(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM tracking_events WHERE queue_id IN \
             (SELECT queue_id FROM tracking_messages WHERE received_at_ms < $1)",
            "DELETE FROM tracking_recipients WHERE received_at_ms < $1",
        ] {
            sqlx::query(sql)
                .bind(before_ms)
                .execute(&mut *tx)
                .await
                .map_err(query_err("purging tracking"))?;
        }
        let gone = sqlx::query("DELETE FROM tracking_messages WHERE received_at_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err("purging tracking"))?
            .rows_affected();
        sqlx::query("DELETE FROM tracking_events WHERE at_ms < $1 AND queue_id NOT IN (SELECT queue_id FROM tracking_messages)")
            .bind(before_ms)
            .execute(&mut *tx)
            .await
            .map_err(query_err("purging tracking"))?;
        tx.commit().await.map_err(query_err("committing a tracking purge"))?;
        Ok(gone)
    }
}
