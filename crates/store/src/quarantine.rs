//! The quarantine index: items held in the spool's `quarantine/` queue, their owners, search, and the
//! status changes that release, delete or expire them.
//!
//! A status change is a claim: `UPDATE ... WHERE id = $1 AND status = 'held'` succeeds for exactly one
//! caller, however many processes try at once, so a release moves and delivers a message once.
//!
//! Search is keyset-paged, newest first, and always driven by an index: by owner address (end users,
//! or a recipient filter), by sender address or domain, by a word of the subject (an admin's subject
//! search, and a user's when the word is rarer than the user's mailbox: see
//! [`Store::quarantine_search`]), or by time. The other filters are the same constant predicate in every statement
//! (`$n IS NULL OR ...`), so no SQL is ever assembled from input. A page's rows come with their owners
//! from the same statement (one correlated `string_agg` per row), not one query per row.
//!
//! # Subject search
//! The words of every subject (see [`subject_words`]) are kept in `quarantine_words`, written in the
//! item's own transaction. A search text matches an item when the item's lower-cased subject contains
//! the lower-cased text literally (`%` and `_` are not wildcards) **and** the text's longest word is a
//! whole word of the subject: `invoice` finds "Your INVOICE #42" but not "invoices" or "reinvoice";
//! `ice 42` does not find "invoice 42" ("ice" is not a word there). Words are the runs of characters
//! between ASCII spaces, punctuation and controls (`re:invoice` is two words, `übersee` one); words
//! longer than [`MAX_WORD_CHARS`] are compared by their first [`MAX_WORD_CHARS`] characters, and only the
//! first [`MAX_SUBJECT_WORDS`] distinct words of a subject are indexed. A text with no word at all (only
//! punctuation) is matched literally along the scope's index, which over a whole large quarantine reads
//! every item: such searches are slow, and rare.

use crate::{Exclusive, Store, StoreError, WriteTx, query_err};

/// Which quarantine an item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuarantineKind {
    Spam,
    Virus,
    Policy,
}

impl QuarantineKind {
    pub const ALL: [QuarantineKind; 3] =
        [QuarantineKind::Spam, QuarantineKind::Virus, QuarantineKind::Policy];
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineKind::Spam => "spam",
            QuarantineKind::Virus => "virus",
            QuarantineKind::Policy => "policy",
        }
    }
    pub fn parse(s: &str) -> Option<QuarantineKind> {
        QuarantineKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemStatus {
    Held,
    Released,
    Deleted,
    Expired,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 4] =
        [ItemStatus::Held, ItemStatus::Released, ItemStatus::Deleted, ItemStatus::Expired];
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Held => "held",
            ItemStatus::Released => "released",
            ItemStatus::Deleted => "deleted",
            ItemStatus::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<ItemStatus> {
        ItemStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One quarantine item as stored. Text fields are data from the message (bounded by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRow {
    pub id: String,
    pub queue_id: String,
    pub kind: QuarantineKind,
    pub sender: String,
    pub sender_domain: String,
    pub from_header: String,
    pub subject: String,
    pub message_id: String,
    pub score: f64,
    /// JSON array of `{"name", "score", "reason"}`.
    pub symbols_json: String,
    pub received_at_ms: i64,
    pub held_at_ms: i64,
    pub size: i64,
    pub sha256: String,
    pub status: ItemStatus,
    pub status_by: Option<String>,
    pub status_at_ms: Option<i64>,
    /// The node whose spool holds the message's file (`cluster.node_name`; empty: not recorded).
    pub holder: String,
    /// Envelope recipients, lower-case, sorted.
    pub owners: Vec<String>,
}

/// What search starts from (the index that drives the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemScope {
    /// Items owned by this address (lower-case).
    Owner(String),
    /// Items from this envelope sender address (lower-case).
    Sender(String),
    /// Items from any sender in this domain (lower-case).
    SenderDomain(String),
    /// Every item, newest first.
    All,
}

/// Most distinct words of one subject kept in the word index (the first ones): bounds the index rows
/// one item writes (subjects are at most 998 characters).
pub const MAX_SUBJECT_WORDS: usize = 64;
/// Longest word kept in the word index, in characters; longer words are cut to this (and so are the
/// words searched for, so they still meet).
pub const MAX_WORD_CHARS: usize = 64;
/// Items indexed per transaction when indexing the words of items stored before the word index.
const WORDS_BACKFILL_BATCH: i64 = 500;

/// The words of a subject as the word index keeps them: `text` lower-cased, split at every ASCII
/// character that is not a letter or digit, each word cut to [`MAX_WORD_CHARS`] characters, duplicates
/// dropped, at most the first [`MAX_SUBJECT_WORDS`]. The same function cuts a search text.
pub fn subject_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let folded = text.to_lowercase();
    for word in folded.split(|c: char| c.is_ascii() && !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()) {
        let word: String = word.chars().take(MAX_WORD_CHARS).collect();
        if !words.contains(&word) {
            words.push(word);
            if words.len() == MAX_SUBJECT_WORDS {
                break;
            }
        }
    }
    words
}

/// The word of a search text looked up in the word index: its longest (the first of the longest),
/// being the most selective. `None`: the text has no word.
fn search_word(text: &str) -> Option<String> {
    subject_words(text).into_iter().rev().max_by_key(|w| w.chars().count())
}

/// Filters applied in every scope. `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemFilter {
    pub kind: Option<QuarantineKind>,
    pub status: Option<ItemStatus>,
    /// Text the subject must contain (see "Subject search" above: literally, ignoring case, and with
    /// the text's longest word a whole word of the subject).
    pub subject_contains: Option<String>,
    pub received_from_ms: Option<i64>,
    pub received_before_ms: Option<i64>,
    /// Leave out virus items (for people who may not see them).
    pub exclude_virus: bool,
    /// Keyset cursor: only items older than this `(received_at_ms, id)`.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// The predicate shared by every search statement: $1 kind, $2 status, $3 subject pattern, $4 from,
/// $5 before, $6 exclude virus (0/1), $7 and $8 the cursor, $9 the limit; $10 the scope's value; $11
/// the subject word (in the statements the word does not drive, see [`word_filter!`]).
macro_rules! filters {
    () => {
        " AND ($1 IS NULL OR i.kind = $1) \
          AND ($2 IS NULL OR i.status = $2) \
          AND ($3 IS NULL OR i.subject_fold LIKE $3 ESCAPE '\\') \
          AND ($4 IS NULL OR i.received_at_ms >= $4) \
          AND ($5 IS NULL OR i.received_at_ms < $5) \
          AND ($6 = 0 OR i.kind <> 'virus') \
          AND ($7 IS NULL OR i.received_at_ms < $7 OR (i.received_at_ms = $7 AND i.id < $8)) "
    };
}

/// The subject word $11, looked up on `quarantine_words`' key by the item's time `$at` and id `$id`, for
/// the statements another index drives. Written against the driving index's own columns, it is checked
/// there, before the item's row is read (a user's search reads only the matching items' rows). Not in
/// the statements the word drives: there it would count the word twice and make PostgreSQL's planner
/// think the search more selective than it is (and sort instead of walking).
macro_rules! word_filter {
    ($at:literal, $id:literal) => {
        concat!(
            " AND ($11 IS NULL OR EXISTS (SELECT 1 FROM quarantine_words sw WHERE sw.word = $11 \
              AND sw.received_at_ms = ",
            $at,
            " AND sw.item_id = ",
            $id,
            ")) "
        )
    };
}

/// Newest first, one page (the order of the search indexes, read backwards).
macro_rules! newest {
    () => {
        "ORDER BY i.received_at_ms DESC, i.id DESC LIMIT $9"
    };
}

macro_rules! columns {
    () => {
        "SELECT i.id, i.queue_id, i.kind, i.sender, i.sender_domain, i.from_header, i.subject, \
         i.message_id, i.score, i.symbols, i.received_at_ms, i.held_at_ms, i.size, i.sha256, i.status, \
         i.status_by, i.status_at_ms, i.holder, \
         (SELECT string_agg(ow.address, '\n') FROM quarantine_owners ow \
          WHERE ow.item_id = i.id) AS owners "
    };
}

pub(crate) const SEARCH_OWNER: &str = concat!(
    columns!(),
    "FROM quarantine_owners o JOIN quarantine_items i ON i.id = o.item_id WHERE o.address = $10 \
     AND ($4 IS NULL OR o.received_at_ms >= $4) AND ($5 IS NULL OR o.received_at_ms < $5) \
     AND ($7 IS NULL OR o.received_at_ms <= $7)",
    filters!(),
    word_filter!("o.received_at_ms", "o.item_id"),
    "ORDER BY o.received_at_ms DESC, o.item_id DESC LIMIT $9"
);
pub(crate) const SEARCH_SENDER: &str = concat!(
    columns!(),
    "FROM quarantine_items i WHERE i.sender = $10",
    filters!(),
    word_filter!("i.received_at_ms", "i.id"),
    newest!()
);
pub(crate) const SEARCH_DOMAIN: &str = concat!(
    columns!(),
    "FROM quarantine_items i WHERE i.sender_domain = $10",
    filters!(),
    word_filter!("i.received_at_ms", "i.id"),
    newest!()
);
pub(crate) const SEARCH_ALL: &str = concat!(
    columns!(),
    "FROM quarantine_items i WHERE $10 IS NULL",
    filters!(),
    word_filter!("i.received_at_ms", "i.id"),
    newest!()
);

/// The items whose subject has the word $11 and that `$scope` (a condition on the word's row `w`)
/// admits, newest first, straight off `quarantine_words`' key.
macro_rules! word_driven {
    ($scope:literal) => {
        concat!(
            columns!(),
            "FROM quarantine_words w JOIN quarantine_items i ON i.id = w.item_id WHERE w.word = $11 AND ",
            $scope,
            " AND ($4 IS NULL OR w.received_at_ms >= $4) AND ($5 IS NULL OR w.received_at_ms < $5) \
             AND ($7 IS NULL OR w.received_at_ms <= $7)",
            filters!(),
            "ORDER BY w.received_at_ms DESC, w.item_id DESC LIMIT $9"
        )
    };
}

/// Every item whose subject has the word $11 (an admin's subject search).
pub(crate) const SEARCH_WORD: &str = word_driven!("$10 IS NULL");
/// The items of owner $10 whose subject has the word $11, driven by the word (when it is rarer than the
/// owner's mailbox): each of the word's rows is checked on `quarantine_owners`' key before the item's
/// row is read.
pub(crate) const SEARCH_WORD_OWNER: &str = word_driven!(
    "EXISTS (SELECT 1 FROM quarantine_owners so WHERE so.address = $10 \
     AND so.received_at_ms = w.received_at_ms AND so.item_id = w.item_id)"
);

/// How many of an owner's items, and of a word's, are counted (at most) to choose which drives a user's
/// subject-word search. Counting reads index entries only; this bounds it to a few milliseconds. When
/// both the mailbox and the word reach it, the owner drives (the word then checked on its key).
pub const SEARCH_DRIVER_COUNT_LIMIT: i64 = 5_000;
/// How many (up to `$2`) items owner `$1` has.
const COUNT_OWNED: &str =
    "SELECT count(*) FROM (SELECT 1 FROM quarantine_owners WHERE address = $1 LIMIT $2) AS owned";
/// How many (up to `$2`) items have word `$1` in their subject.
const COUNT_WITH_WORD: &str =
    "SELECT count(*) FROM (SELECT 1 FROM quarantine_words WHERE word = $1 LIMIT $2) AS with_word";

/// `text`, lower-cased, as a LIKE pattern matching it anywhere, literally (escape character `\`). It is
/// compared with a lower-cased column, so the match ignores case the same way on both databases
/// (SQLite's LIKE folds ASCII case, PostgreSQL's does not).
pub fn like_contains(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The columns of [`columns!`], as both databases return them.
#[derive(sqlx::FromRow)]
struct ItemColumns {
    id: String,
    queue_id: String,
    kind: String,
    sender: String,
    sender_domain: String,
    from_header: String,
    subject: String,
    message_id: String,
    score: f64,
    symbols: String,
    received_at_ms: i64,
    held_at_ms: i64,
    size: i64,
    sha256: String,
    status: String,
    status_by: Option<String>,
    status_at_ms: Option<i64>,
    holder: String,
    /// Owner addresses, one per line (addresses never hold a line break), in no particular order (sorted
    /// here: an `ORDER BY` inside the aggregate costs SQLite a temporary b-tree per row); `None`: none.
    owners: Option<String>,
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort_unstable();
    v
}

impl TryFrom<ItemColumns> for ItemRow {
    type Error = StoreError;
    fn try_from(c: ItemColumns) -> Result<ItemRow, StoreError> {
        let bad = |why| StoreError::Corrupt { bucket: -1, why };
        Ok(ItemRow {
            kind: QuarantineKind::parse(&c.kind).ok_or_else(|| bad("unknown quarantine kind"))?,
            status: ItemStatus::parse(&c.status).ok_or_else(|| bad("unknown quarantine status"))?,
            id: c.id,
            queue_id: c.queue_id,
            sender: c.sender,
            sender_domain: c.sender_domain,
            from_header: c.from_header,
            subject: c.subject,
            message_id: c.message_id,
            score: c.score,
            symbols_json: c.symbols,
            received_at_ms: c.received_at_ms,
            held_at_ms: c.held_at_ms,
            size: c.size,
            sha256: c.sha256,
            status_by: c.status_by,
            status_at_ms: c.status_at_ms,
            holder: c.holder,
            owners: c.owners.map(|o| sorted(o.split('\n').map(str::to_string).collect())).unwrap_or_default(),
        })
    }
}

/// Write the words of an item's subject to the word index, inside the transaction that writes (or
/// marks) the item.
async fn insert_words(
    tx: &mut WriteTx,
    id: &str,
    received_at_ms: i64,
    subject: &str,
) -> Result<(), StoreError> {
    for word in subject_words(subject) {
        on_tx!(&mut *tx, |conn| {
            sqlx::query(
                "INSERT INTO quarantine_words (word, received_at_ms, item_id) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&word)
            .bind(received_at_ms)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|_| ())
        })
        .map_err(query_err("indexing a quarantine subject's words"))?;
    }
    Ok(())
}

impl Store {
    /// Index a held message. Idempotent by queue id: `false` (and nothing written) if it is indexed
    /// already. The row and its owners are written in one transaction.
    pub async fn quarantine_insert(&self, item: &ItemRow) -> Result<bool, StoreError> {
        self.quarantine_insert_with_body(item, None).await
    }

    /// [`Store::quarantine_insert`], and with `body` (its SHA-256 in hex, and the bytes) also the
    /// message's body in `quarantine_bodies`, in the same transaction: a shared store never has a held
    /// item that other nodes cannot read.
    pub async fn quarantine_insert_with_body(
        &self,
        item: &ItemRow,
        body: Option<(&str, &[u8])>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        let inserted = on_tx!(&mut tx, |conn| {
            sqlx::query(
            "INSERT INTO quarantine_items (id, queue_id, kind, sender, sender_domain, from_header, subject, \
             subject_fold, message_id, score, symbols, received_at_ms, held_at_ms, size, sha256, status, \
             status_by, status_at_ms, holder, words_indexed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 1) \
             ON CONFLICT (queue_id) DO NOTHING",
        )
        .bind(&item.id)
        .bind(&item.queue_id)
        .bind(item.kind.as_str())
        .bind(&item.sender)
        .bind(&item.sender_domain)
        .bind(&item.from_header)
        .bind(&item.subject)
        .bind(item.subject.to_lowercase())
        .bind(&item.message_id)
        .bind(item.score)
        .bind(&item.symbols_json)
        .bind(item.received_at_ms)
        .bind(item.held_at_ms)
        .bind(item.size)
        .bind(&item.sha256)
        .bind(item.status.as_str())
        .bind(&item.status_by)
        .bind(item.status_at_ms)
        .bind(&item.holder)
        .execute(conn)
        .await.map(|r| r.rows_affected())
        })
        .map_err(query_err("indexing a quarantined message"))?
            == 1;
        if inserted {
            for owner in &item.owners {
                on_tx!(&mut tx, |conn| {
                    sqlx::query(
                        "INSERT INTO quarantine_owners (address, received_at_ms, item_id) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(owner)
                    .bind(item.received_at_ms)
                    .bind(&item.id)
                    .execute(conn)
                    .await.map(|r| r.rows_affected())
                })
                .map_err(query_err("recording a quarantine owner"))?;
            }
            insert_words(&mut tx, &item.id, item.received_at_ms, &item.subject).await?;
            if let Some((sha256, bytes)) = body {
                on_tx!(&mut tx, |conn| {
                    sqlx::query("INSERT INTO quarantine_bodies (item_id, sha256, body) VALUES ($1, $2, $3)")
                        .bind(&item.id)
                        .bind(sha256)
                        .bind(bytes)
                        .execute(conn)
                        .await
                        .map(|r| r.rows_affected())
                })
                .map_err(query_err("storing a quarantined body"))?;
            }
        }
        tx.commit("committing a quarantine item").await?;
        Ok(inserted)
    }

    /// One item by its opaque id, with its owners.
    pub async fn quarantine_get(&self, id: &str) -> Result<Option<ItemRow>, StoreError> {
        const Q: &str = concat!(columns!(), "FROM quarantine_items i WHERE i.id = $1");
        let row: Option<ItemColumns> =
            on_pool!(self, |pool| sqlx::query_as(Q).bind(id).fetch_optional(pool).await)
                .map_err(query_err("reading a quarantine item"))?;
        row.map(ItemRow::try_from).transpose()
    }

    /// One item by the queue id of its spool file, with its owners.
    pub async fn quarantine_by_queue_id(&self, queue_id: &str) -> Result<Option<ItemRow>, StoreError> {
        const Q: &str = concat!(columns!(), "FROM quarantine_items i WHERE i.queue_id = $1");
        let row: Option<ItemColumns> =
            on_pool!(self, |pool| sqlx::query_as(Q).bind(queue_id).fetch_optional(pool).await)
                .map_err(query_err("reading a quarantine item"))?;
        row.map(ItemRow::try_from).transpose()
    }

    /// A page of items in `scope` matching `filter`, newest first, with their owners.
    pub async fn quarantine_search(
        &self,
        scope: &ItemScope,
        filter: &ItemFilter,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let word = filter.subject_contains.as_deref().and_then(search_word);
        let (sql, value) = match (scope, word.as_deref()) {
            (ItemScope::Owner(a), Some(w)) if self.word_is_rarer_than_mailbox(w, a).await? => {
                (SEARCH_WORD_OWNER, Some(a.as_str()))
            }
            (ItemScope::Owner(a), _) => (SEARCH_OWNER, Some(a.as_str())),
            (ItemScope::Sender(s), _) => (SEARCH_SENDER, Some(s.as_str())),
            (ItemScope::SenderDomain(d), _) => (SEARCH_DOMAIN, Some(d.as_str())),
            (ItemScope::All, Some(_)) => (SEARCH_WORD, None),
            (ItemScope::All, None) => (SEARCH_ALL, None),
        };
        self.search_with(sql, value, filter).await
    }

    /// One page of search statement `sql` (one of the `SEARCH_*`) with the scope's value `value`.
    pub(crate) async fn search_with(
        &self,
        sql: &'static str,
        value: Option<&str>,
        filter: &ItemFilter,
    ) -> Result<Vec<ItemRow>, StoreError> {
        let word = filter.subject_contains.as_deref().and_then(search_word);
        // A text that is one whole word is matched by the word index alone: its `LIKE` would only make
        // the search look more selective to PostgreSQL's planner than it is.
        let pattern = filter
            .subject_contains
            .as_deref()
            .filter(|text| word.as_deref() != Some(text.to_lowercase().as_str()))
            .map(like_contains);
        let rows: Vec<ItemColumns> = on_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(filter.kind.map(QuarantineKind::as_str))
                .bind(filter.status.map(ItemStatus::as_str))
                .bind(pattern.as_deref())
                .bind(filter.received_from_ms)
                .bind(filter.received_before_ms)
                .bind(i64::from(filter.exclude_virus))
                .bind(filter.before.as_ref().map(|b| b.0))
                .bind(filter.before.as_ref().map(|b| b.1.as_str()))
                .bind(i64::from(filter.limit))
                .bind(value)
                .bind(word.as_deref())
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("searching the quarantine"))?;
        rows.into_iter().map(ItemRow::try_from).collect()
    }

    /// Whether fewer items have `word` in their subject than `owner` owns, counting each side up to
    /// [`SEARCH_DRIVER_COUNT_LIMIT`] (the word only up to one more than the mailbox): a user's subject
    /// search then walks the word's items and checks the owner, instead of walking the mailbox and
    /// checking the word. Both return the same page; this only picks the shorter walk.
    pub(crate) async fn word_is_rarer_than_mailbox(
        &self,
        word: &str,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let owned = self.count_up_to(COUNT_OWNED, owner, SEARCH_DRIVER_COUNT_LIMIT).await?;
        let with_word = self.count_up_to(COUNT_WITH_WORD, word, owned + 1).await?;
        Ok(with_word < owned)
    }

    /// The count of one of [`COUNT_OWNED`], [`COUNT_WITH_WORD`] for `key`, up to `limit`.
    async fn count_up_to(&self, sql: &'static str, key: &str, limit: i64) -> Result<i64, StoreError> {
        let (n,): (i64,) =
            on_pool!(self, |pool| sqlx::query_as(sql).bind(key).bind(limit).fetch_one(pool).await)
                .map_err(query_err("counting a subject search's candidates"))?;
        Ok(n)
    }

    /// Index the subject words of items stored before the word index existed (migration 0303), in
    /// transactions of [`WORDS_BACKFILL_BATCH`] items, until none is left; returns how many were done.
    /// Run whenever the store is migrated: finding none left is one read of an empty partial index.
    /// Safe to run on several nodes at once (every write is idempotent) and to interrupt (each batch
    /// commits its items' words and their mark together).
    pub(crate) async fn index_pending_subject_words(&self) -> Result<u64, StoreError> {
        let mut done = 0;
        loop {
            let mut tx = self.begin_write(Exclusive::No).await?;
            let batch: Vec<(String, i64, String)> = on_tx!(&mut tx, |conn| {
                sqlx::query_as(
                    "SELECT id, received_at_ms, subject FROM quarantine_items WHERE words_indexed = 0 \
                     ORDER BY id LIMIT $1",
                )
                .bind(WORDS_BACKFILL_BATCH)
                .fetch_all(&mut *conn)
                .await
            })
            .map_err(query_err("finding quarantine items whose subject words are not indexed"))?;
            if batch.is_empty() {
                tx.rollback("ending the search for items to index").await?;
                return Ok(done);
            }
            for (id, received_at_ms, subject) in &batch {
                insert_words(&mut tx, id, *received_at_ms, subject).await?;
                on_tx!(&mut tx, |conn| {
                    sqlx::query("UPDATE quarantine_items SET words_indexed = 1 WHERE id = $1")
                        .bind(id)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                })
                .map_err(query_err("marking a quarantine item's subject words indexed"))?;
            }
            tx.commit("committing a batch of indexed subject words").await?;
            done += batch.len() as u64;
        }
    }

    /// Move an item from `from` to `to`, recording who and when. `true` for exactly one caller; `false`
    /// when the item is not (or no longer) in `from`.
    pub async fn quarantine_set_status(
        &self,
        id: &str,
        from: ItemStatus,
        to: ItemStatus,
        by: Option<&str>,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE quarantine_items SET status = $3, status_by = $4, status_at_ms = $5 \
                 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(by)
            .bind(if to == ItemStatus::Held { None } else { Some(at_ms) })
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("changing a quarantine item's status"))?;
        Ok(done == 1)
    }

    /// Queue ids of every held item (for reconciling the index with the spool).
    pub async fn quarantine_held_queue_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT queue_id FROM quarantine_items WHERE status = 'held'")
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("listing held quarantine items"))?;
        Ok(rows.into_iter().map(|(q,)| q).collect())
    }

    /// Held items of `kind` received before `before_ms`, oldest first (retention).
    pub async fn quarantine_held_before(
        &self,
        kind: QuarantineKind,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, queue_id FROM quarantine_items WHERE status = 'held' AND kind = $1 \
                 AND received_at_ms < $2 ORDER BY received_at_ms, id LIMIT $3",
            )
            .bind(kind.as_str())
            .bind(before_ms)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("finding expired quarantine items"))
    }

    /// Held items of `kind`, oldest first, with their sizes (size caps), and the total held size.
    pub async fn quarantine_held_sizes(
        &self,
        kind: QuarantineKind,
        limit: u32,
    ) -> Result<(i64, Vec<(String, String, i64)>), StoreError> {
        // SUM of a BIGINT is NUMERIC on PostgreSQL: cast it back.
        let (total,): (Option<i64>,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT CAST(SUM(size) AS BIGINT) FROM quarantine_items WHERE status = 'held' AND kind = $1",
            )
            .bind(kind.as_str())
            .fetch_one(pool)
            .await
        })
        .map_err(query_err("adding up quarantine sizes"))?;
        let oldest = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, queue_id, size FROM quarantine_items WHERE status = 'held' AND kind = $1 \
                 ORDER BY received_at_ms, id LIMIT $2",
            )
            .bind(kind.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("finding the oldest quarantine items"))?;
        Ok((total.unwrap_or(0), oldest))
    }

    /// Owner addresses with items held (not virus) after `since_ms` and at or before `until_ms`.
    pub async fn quarantine_digest_addresses(
        &self,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT o.address FROM quarantine_items i JOIN quarantine_owners o ON o.item_id = i.id \
                 WHERE i.held_at_ms > $1 AND i.held_at_ms <= $2 AND i.status = 'held' AND i.kind <> 'virus' \
                 ORDER BY o.address",
            )
            .bind(since_ms)
            .bind(until_ms)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("finding digest recipients"))?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Items (not virus) still held for `address`, held after `since_ms` and at or before `until_ms`,
    /// newest first, at most `limit`; and how many there are in all.
    pub async fn quarantine_digest_items(
        &self,
        address: &str,
        since_ms: i64,
        until_ms: i64,
        limit: u32,
    ) -> Result<(Vec<ItemRow>, i64), StoreError> {
        const Q: &str = concat!(
            columns!(),
            "FROM quarantine_owners o JOIN quarantine_items i ON i.id = o.item_id WHERE o.address = $1 \
             AND i.held_at_ms > $2 AND i.held_at_ms <= $3 AND i.status = 'held' AND i.kind <> 'virus' \
             ORDER BY i.received_at_ms DESC, i.id DESC LIMIT $4"
        );
        let rows: Vec<ItemColumns> = on_pool!(self, |pool| {
            sqlx::query_as(Q)
                .bind(address)
                .bind(since_ms)
                .bind(until_ms)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("listing digest items"))?;
        let (count,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM quarantine_owners o JOIN quarantine_items i ON i.id = o.item_id \
                 WHERE o.address = $1 AND i.held_at_ms > $2 AND i.held_at_ms <= $3 AND i.status = 'held' \
                 AND i.kind <> 'virus'",
            )
            .bind(address)
            .bind(since_ms)
            .bind(until_ms)
            .fetch_one(pool)
            .await
        })
        .map_err(query_err("counting digest items"))?;
        let items = rows.into_iter().map(ItemRow::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok((items, count))
    }
}

#[cfg(test)]
#[path = "quarantine_tests.rs"]
pub(crate) mod tests;
