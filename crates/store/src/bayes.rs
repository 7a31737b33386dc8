//! The classifier's tables: token counts, totals, and learned messages by fingerprint.
//!
//! Token counts are stored in 4,096 buckets by key (see `bucket` and the migration), so loading a
//! million tokens reads 4,096 rows, and a learning batch rewrites each bucket it touches once.
//! Learning is idempotent here, inside one write transaction per batch: a message already learned
//! as the same class changes nothing, one learned as the other class has its tokens moved, and two
//! processes learning at once (the gateway and `portcullis learn`) cannot both count a message.

use crate::{Store, StoreError, bucket, query_err};
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, HashMap};

/// What a message was learned as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    fn code(self) -> i64 {
        match self {
            Class::Spam => 1,
            Class::Ham => 0,
        }
    }
    fn from_code(code: i64) -> Class {
        if code == 1 { Class::Spam } else { Class::Ham }
    }
}

/// One token's counts: in how many learned spam and ham messages it appeared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCount {
    pub token: u64,
    pub spam: u32,
    pub ham: u32,
}

/// How many messages of each class the counts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub spam: u64,
    pub ham: u64,
}

/// One message to learn: its fingerprint, its class and its distinct token keys.
#[derive(Debug, Clone)]
pub struct LearnItem {
    pub fingerprint: [u8; 32],
    pub class: Class,
    /// Distinct token keys (a key listed twice is counted twice).
    pub tokens: Vec<u64>,
}

/// What learning one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// Not seen before: its tokens were counted.
    Added,
    /// It had been learned as the other class: its tokens were moved to this one.
    Moved,
    /// It had been learned as this class already: nothing changed.
    AlreadyLearned,
}

/// Count deltas for one batch, gathered before writing so each token is written once.
#[derive(Default)]
struct Deltas {
    tokens: HashMap<u64, (i64, i64)>,
    spam: i64,
    ham: i64,
}

impl Deltas {
    fn add(&mut self, item: &LearnItem, sign: i64) {
        let (s, h) = match item.class {
            Class::Spam => (sign, 0),
            Class::Ham => (0, sign),
        };
        self.spam += s;
        self.ham += h;
        for &t in &item.tokens {
            let e = self.tokens.entry(t).or_default();
            e.0 += s;
            e.1 += h;
        }
    }

    /// Account for `item` given what it was learned as before (`None`: never).
    fn learn(&mut self, item: &LearnItem, before: Option<Class>) -> LearnOutcome {
        match before {
            Some(c) if c == item.class => LearnOutcome::AlreadyLearned,
            Some(_) => {
                let other = Class::from_code(1 - item.class.code());
                self.add(&LearnItem { class: other, ..item.clone() }, -1);
                self.add(item, 1);
                LearnOutcome::Moved
            }
            None => {
                self.add(item, 1);
                LearnOutcome::Added
            }
        }
    }
}

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

impl Store {
    /// How many messages of each class have been learned.
    pub async fn bayes_totals(&self) -> Result<Totals, StoreError> {
        let (spam, ham): (i64, i64) = sqlx::query_as("SELECT spam, ham FROM bayes_totals WHERE id = 1")
            .fetch_one(self.pool())
            .await
            .map_err(query_err("reading classifier totals"))?;
        Ok(Totals { spam: spam.max(0) as u64, ham: ham.max(0) as u64 })
    }

    /// Every token's counts, handed to `each` one at a time (the table may be large).
    pub async fn bayes_tokens(&self, mut each: impl FnMut(TokenCount)) -> Result<(), StoreError> {
        let mut rows =
            sqlx::query_as::<_, (i64, Vec<u8>)>("SELECT bucket, counts FROM bayes_tokens").fetch(self.pool());
        while let Some((bucket, counts)) = rows.try_next().await.map_err(query_err("reading tokens"))? {
            let tokens = bucket::decode(&counts).map_err(|why| StoreError::Corrupt { bucket, why })?;
            tokens.into_iter().for_each(&mut each);
        }
        Ok(())
    }

    /// What the message with `fingerprint` was learned as, if it was.
    pub async fn bayes_learned(&self, fingerprint: &[u8; 32]) -> Result<Option<Class>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT class FROM bayes_learned WHERE fingerprint = $1")
            .bind(&fingerprint[..])
            .fetch_optional(self.pool())
            .await
            .map_err(query_err("looking up a learned message"))?;
        Ok(row.map(|(c,)| Class::from_code(c)))
    }

    /// Learn a batch of messages in one transaction, idempotently. Returns one outcome per item, in
    /// order; the caller applies the same changes to its in-memory counts. `now` (Unix seconds) is
    /// recorded with each learned message.
    pub async fn bayes_learn(&self, items: &[LearnItem], now: i64) -> Result<Vec<LearnOutcome>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut deltas = Deltas::default();
        let mut seen: HashMap<[u8; 32], Class> = HashMap::new();
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let before = match seen.get(&item.fingerprint) {
                Some(c) => Some(*c),
                None => learned_in(&mut tx, &item.fingerprint).await?,
            };
            let outcome = deltas.learn(item, before);
            if outcome != LearnOutcome::AlreadyLearned {
                record_learned(&mut tx, item, now).await?;
            }
            seen.insert(item.fingerprint, item.class);
            outcomes.push(outcome);
        }
        write_deltas(&mut tx, &deltas).await?;
        tx.commit().await.map_err(query_err("committing learned messages"))?;
        Ok(outcomes)
    }
}

async fn learned_in(tx: &mut Tx, fingerprint: &[u8; 32]) -> Result<Option<Class>, StoreError> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT class FROM bayes_learned WHERE fingerprint = $1")
        .bind(&fingerprint[..])
        .fetch_optional(&mut **tx)
        .await
        .map_err(query_err("looking up a learned message"))?;
    Ok(row.map(|(c,)| Class::from_code(c)))
}

async fn record_learned(tx: &mut Tx, item: &LearnItem, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO bayes_learned (fingerprint, class, learned_at) VALUES ($1, $2, $3) \
         ON CONFLICT (fingerprint) DO UPDATE SET class = excluded.class, learned_at = excluded.learned_at",
    )
    .bind(&item.fingerprint[..])
    .bind(item.class.code())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(query_err("recording a learned message"))?;
    Ok(())
}

async fn write_deltas(tx: &mut Tx, d: &Deltas) -> Result<(), StoreError> {
    let mut by_bucket: BTreeMap<i64, Vec<(u64, i64, i64)>> = BTreeMap::new();
    for (&token, &(spam, ham)) in &d.tokens {
        if spam != 0 || ham != 0 {
            by_bucket.entry(bucket::of(token)).or_default().push((token, spam, ham));
        }
    }
    let mut current = read_buckets(tx, &by_bucket).await?;
    for (bucket, mut changes) in by_bucket {
        changes.sort_unstable_by_key(|c| c.0);
        let now = current.remove(&bucket).unwrap_or_default();
        write_bucket(tx, bucket, &bucket::merge(&now, &changes)).await?;
    }
    sqlx::query(
        "UPDATE bayes_totals SET \
           spam = CASE WHEN spam + $1 < 0 THEN 0 ELSE spam + $1 END, \
           ham = CASE WHEN ham + $2 < 0 THEN 0 ELSE ham + $2 END \
         WHERE id = 1",
    )
    .bind(d.spam)
    .bind(d.ham)
    .execute(&mut **tx)
    .await
    .map_err(query_err("updating classifier totals"))?;
    Ok(())
}

/// The current contents of the buckets about to change: one query per bucket when few change, one
/// pass over the table when many do (a batch of many messages touches nearly all).
async fn read_buckets<T>(
    tx: &mut Tx,
    wanted: &BTreeMap<i64, T>,
) -> Result<HashMap<i64, Vec<TokenCount>>, StoreError> {
    let mut out = HashMap::with_capacity(wanted.len());
    let mut keep = |bucket: i64, bytes: Vec<u8>| -> Result<(), StoreError> {
        if wanted.contains_key(&bucket) {
            let tokens = bucket::decode(&bytes).map_err(|why| StoreError::Corrupt { bucket, why })?;
            out.insert(bucket, tokens);
        }
        Ok(())
    };
    if wanted.len() as i64 > bucket::COUNT / 8 {
        let mut rows =
            sqlx::query_as::<_, (i64, Vec<u8>)>("SELECT bucket, counts FROM bayes_tokens").fetch(&mut **tx);
        while let Some((bucket, bytes)) = rows.try_next().await.map_err(query_err("reading token buckets"))? {
            keep(bucket, bytes)?;
        }
    } else {
        for &bucket in wanted.keys() {
            let row: Option<(Vec<u8>,)> = sqlx::query_as("SELECT counts FROM bayes_tokens WHERE bucket = $1")
                .bind(bucket)
                .fetch_optional(&mut **tx)
                .await
                .map_err(query_err("reading a token bucket"))?;
            if let Some((bytes,)) = row {
                keep(bucket, bytes)?;
            }
        }
    }
    Ok(out)
}

async fn write_bucket(tx: &mut Tx, bucket: i64, tokens: &[TokenCount]) -> Result<(), StoreError> {
    let query = if tokens.is_empty() {
        sqlx::query("DELETE FROM bayes_tokens WHERE bucket = $1").bind(bucket)
    } else {
        sqlx::query(
            "INSERT INTO bayes_tokens (bucket, counts) VALUES ($1, $2) \
             ON CONFLICT (bucket) DO UPDATE SET counts = excluded.counts",
        )
        .bind(bucket)
        .bind(bucket::encode(tokens))
    };
    query.execute(&mut **tx).await.map_err(query_err("writing a token bucket"))?;
    Ok(())
}
