//! Per-user sender lists, digest preferences and progress, and the single-use marks of digest tokens.

use crate::{Store, StoreError, query_err};

/// Which sender list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderList {
    Safe,
    Block,
}

impl SenderList {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderList::Safe => "safe",
            SenderList::Block => "block",
        }
    }
    pub fn parse(s: &str) -> Option<SenderList> {
        [SenderList::Safe, SenderList::Block].into_iter().find(|l| l.as_str() == s)
    }
}

/// One entry: `sender` (an address or a domain, lower-case) is on `owner`'s `list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderListEntry {
    pub owner: String,
    pub list: SenderList,
    pub sender: String,
    pub created_at_ms: i64,
    pub created_by: String,
}

/// A recipient's digest preferences and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestPrefs {
    pub enabled: bool,
    /// Items held after this are new for the next digest.
    pub last_digest_ms: i64,
}

impl Default for DigestPrefs {
    fn default() -> Self {
        DigestPrefs { enabled: true, last_digest_ms: 0 }
    }
}

fn entry(row: (String, String, String, i64, String)) -> Option<SenderListEntry> {
    let (owner, list, sender, created_at_ms, created_by) = row;
    Some(SenderListEntry { owner, list: SenderList::parse(&list)?, sender, created_at_ms, created_by })
}

impl Store {
    /// Put `e.sender` on `e.owner`'s list. Idempotent: `false` if it was there already.
    pub async fn sender_list_add(&self, e: &SenderListEntry) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| { sqlx::query(
            "INSERT INTO sender_lists (owner, list, sender, created_at_ms, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (owner, list, sender) DO NOTHING",
        )
        .bind(&e.owner)
        .bind(e.list.as_str())
        .bind(&e.sender)
        .bind(e.created_at_ms)
        .bind(&e.created_by)
        .execute(pool).await.map(|r| r.rows_affected()) })
        .map_err(query_err("adding a sender list entry"))?;
        Ok(done == 1)
    }

    /// Take `sender` off `owner`'s list; `false` if it was not there.
    pub async fn sender_list_remove(
        &self,
        owner: &str,
        list: SenderList,
        sender: &str,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM sender_lists WHERE owner = $1 AND list = $2 AND sender = $3")
                .bind(owner)
                .bind(list.as_str())
                .bind(sender)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("removing a sender list entry"))?;
        Ok(done == 1)
    }

    /// One owner's entries, by list then sender.
    pub async fn sender_list_entries(&self, owner: &str) -> Result<Vec<SenderListEntry>, StoreError> {
        let rows: Vec<(String, String, String, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT owner, list, sender, created_at_ms, created_by FROM sender_lists WHERE owner = $1 \
             ORDER BY list, sender",
            )
            .bind(owner)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("reading sender lists"))?;
        Ok(rows.into_iter().filter_map(entry).collect())
    }

    /// The entry that puts `sender` (an address, lower-case) or its domain on `owner`'s `list`, if any:
    /// what the verdict's lists analyzer asks.
    pub async fn sender_list_find(
        &self,
        list: SenderList,
        sender: &str,
        owner: &str,
    ) -> Result<Option<SenderListEntry>, StoreError> {
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        let row: Option<(String, String, String, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT owner, list, sender, created_at_ms, created_by FROM sender_lists \
             WHERE owner = $1 AND list = $2 AND (sender = $3 OR sender = $4) ORDER BY sender DESC LIMIT 1",
            )
            .bind(owner)
            .bind(list.as_str())
            .bind(sender)
            .bind(domain)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("looking up a sender list"))?;
        Ok(row.and_then(entry))
    }

    /// Every entry (for an in-memory copy the verdict reads without waiting on the database).
    pub async fn sender_list_all(&self) -> Result<Vec<SenderListEntry>, StoreError> {
        let rows: Vec<(String, String, String, i64, String)> = on_pool!(self, |pool| { sqlx::query_as(
            "SELECT owner, list, sender, created_at_ms, created_by FROM sender_lists ORDER BY owner, list, sender",
        )
        .fetch_all(pool).await })
        .map_err(query_err("reading sender lists"))?;
        Ok(rows.into_iter().filter_map(entry).collect())
    }

    /// `address`'s digest preferences (the defaults if none are stored).
    pub async fn digest_prefs(&self, address: &str) -> Result<DigestPrefs, StoreError> {
        let row: Option<(i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT enabled, last_digest_ms FROM digest_prefs WHERE address = $1")
                .bind(address)
                .fetch_optional(pool)
                .await
        })
        .map_err(query_err("reading digest preferences"))?;
        Ok(row.map_or_else(DigestPrefs::default, |(e, l)| DigestPrefs { enabled: e != 0, last_digest_ms: l }))
    }

    /// Turn digests on or off for `address`.
    pub async fn digest_set_enabled(&self, address: &str, enabled: bool) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO digest_prefs (address, enabled, last_digest_ms) VALUES ($1, $2, 0) \
             ON CONFLICT (address) DO UPDATE SET enabled = $2",
            )
            .bind(address)
            .bind(i64::from(enabled))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("writing digest preferences"))?;
        Ok(())
    }

    /// Record that `address` has had a digest of everything held up to `until_ms`.
    pub async fn digest_mark_sent(&self, address: &str, until_ms: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO digest_prefs (address, enabled, last_digest_ms) VALUES ($1, 1, $2) \
             ON CONFLICT (address) DO UPDATE SET last_digest_ms = $2",
            )
            .bind(address)
            .bind(until_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("recording a digest"))?;
        Ok(())
    }

    /// Mark a digest token's nonce used. Atomic: `true` for the first caller only.
    pub async fn digest_token_use(
        &self,
        nonce: &str,
        now_ms: i64,
        expires_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO digest_tokens_used (nonce, used_at_ms, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (nonce) DO NOTHING",
            )
            .bind(nonce)
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("marking a digest token used"))?;
        Ok(done == 1)
    }

    /// Give a nonce back (the action it was used for failed inside the gateway, not by the user).
    pub async fn digest_token_unuse(&self, nonce: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM digest_tokens_used WHERE nonce = $1")
                .bind(nonce)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("releasing a digest token mark"))?;
        Ok(())
    }

    /// Drop marks of tokens that have expired anyway.
    pub async fn digest_tokens_purge(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM digest_tokens_used WHERE expires_at_ms < $1")
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("purging digest token marks"))?;
        Ok(done)
    }
}
