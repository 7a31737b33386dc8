//! Message tracking: what the gateway received (or generated), and every event in each message's life.
//!
//! Search is keyset-paged, newest first, and driven by an index (recipient, sender, Message-ID, client
//! address, queue id, verdict or time); the other filters are one constant predicate, as in
//! [`crate::quarantine`]. Events are appended in batches and read back in the order they happened.

use crate::{Exclusive, Store, StoreError, query_err};

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

/// The columns of [`columns!`], as both databases return them.
#[derive(sqlx::FromRow)]
struct MessageColumns {
    queue_id: String,
    received_at_ms: i64,
    sender: String,
    subject: String,
    message_id: String,
    client_ip: String,
    verdict: String,
    score: f64,
}

impl From<MessageColumns> for TrackedMessage {
    fn from(c: MessageColumns) -> TrackedMessage {
        TrackedMessage {
            queue_id: c.queue_id,
            received_at_ms: c.received_at_ms,
            sender: c.sender,
            recipients: Vec::new(),
            subject: c.subject,
            message_id: c.message_id,
            client_ip: c.client_ip,
            verdict: c.verdict,
            score: c.score,
        }
    }
}

impl Store {
    /// Record a message and its recipients. Idempotent by queue id: `false` if it was recorded already.
    pub async fn tracking_record_message(&self, m: &TrackedMessage) -> Result<bool, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        let inserted = on_tx!(&mut tx, |conn| sqlx::query(
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
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))
        .map_err(query_err("recording a tracked message"))?
            == 1;
        if inserted {
            for r in &m.recipients {
                on_tx!(&mut tx, |conn| {
                    sqlx::query(
                        "INSERT INTO tracking_recipients (address, received_at_ms, queue_id) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(r)
                    .bind(m.received_at_ms)
                    .bind(&m.queue_id)
                    .execute(conn)
                    .await.map(|r| r.rows_affected())
                })
                .map_err(query_err("recording a tracked recipient"))?;
            }
        }
        tx.commit("committing a tracked message").await?;
        Ok(inserted)
    }

    /// Append events (one transaction for the batch).
    pub async fn tracking_add_events(&self, events: &[TrackingEventRow]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(Exclusive::No).await?;
        for e in events {
            on_tx!(&mut tx, |conn| {
                sqlx::query(
                    "INSERT INTO tracking_events (queue_id, at_ms, kind, actor, details) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&e.queue_id)
                .bind(e.at_ms)
                .bind(&e.kind)
                .bind(&e.actor)
                .bind(&e.details_json)
                .execute(conn)
                .await.map(|r| r.rows_affected())
            })
            .map_err(query_err("recording a tracking event"))?;
        }
        tx.commit("committing tracking events").await
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
        let rows: Vec<MessageColumns> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(filter.subject_contains.as_deref().map(crate::quarantine::like_contains))
                .bind(filter.received_from_ms)
                .bind(filter.received_before_ms)
                .bind(filter.before.as_ref().map(|b| b.0))
                .bind(filter.before.as_ref().map(|b| b.1.as_str()))
                .bind(i64::from(filter.limit))
                .bind(value)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("searching message tracking"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut m = TrackedMessage::from(row);
            m.recipients = self.tracking_recipients(&m.queue_id).await?;
            out.push(m);
        }
        Ok(out)
    }

    async fn tracking_recipients(&self, queue_id: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT address FROM tracking_recipients WHERE queue_id = $1 ORDER BY address")
                .bind(queue_id)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("reading tracked recipients"))?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Every event of one message, in the order they happened.
    pub async fn tracking_events(&self, queue_id: &str) -> Result<Vec<TrackingEventRow>, StoreError> {
        let rows: Vec<(String, i64, String, String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT queue_id, at_ms, kind, actor, details FROM tracking_events WHERE queue_id = $1 \
                 ORDER BY at_ms, seq",
            )
            .bind(queue_id)
            .fetch_all(pool)
            .await
        })
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
        let mut tx = self.begin_write(Exclusive::No).await?;
        let mut gone = 0;
        for (sql, counts) in [
            (
                "DELETE FROM tracking_events WHERE queue_id IN \
                 (SELECT queue_id FROM tracking_messages WHERE received_at_ms < $1)",
                false,
            ),
            ("DELETE FROM tracking_recipients WHERE received_at_ms < $1", false),
            ("DELETE FROM tracking_messages WHERE received_at_ms < $1", true),
            (
                "DELETE FROM tracking_events WHERE at_ms < $1 \
                 AND queue_id NOT IN (SELECT queue_id FROM tracking_messages)",
                false,
            ),
        ] {
            let done = on_tx!(&mut tx, |conn| sqlx::query(sql)
                .bind(before_ms)
                .execute(conn)
                .await
                .map(|r| r.rows_affected()))
            .map_err(query_err("purging tracking"))?;
            if counts {
                gone = done;
            }
        }
        tx.commit("committing a tracking purge").await?;
        Ok(gone)
    }
}
