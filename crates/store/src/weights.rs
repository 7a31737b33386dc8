//! The classifier's tables: its weight vector in packed buckets, totals, the feature version the
//! weights were learned in, and learned messages by fingerprint (see the migrations
//! `0050_classifier_weights.sql` and `0304_classifier_feature_version.sql`).
//!
//! Learning is idempotent here, inside one write transaction per batch: the store says what each
//! message was learned as before (never, the same class, the other class) and hands over the kept
//! messages (the most recent of each class, with their features), the caller works out the weight
//! changes for that, and the store adds the changes to the stored buckets, records the messages
//! (keeping the features of the newest `keep` of each class) and moves the totals, all in the same
//! transaction. Changes are added to what is stored
//! (not written over it), so the gateway and `portcullis learn` learning at once both count, and two
//! processes cannot both count one message.
//!
//! The weights mean something only in the feature space they were learned in: every learning
//! transaction first checks the stored feature version against the caller's (recording it when
//! nothing was learned yet) and refuses another one, so a build with other features never adds its
//! changes to a model it cannot read. [`Store::classifier_reset`] is the way out: it empties the
//! model and records the caller's version.

use crate::{Exclusive, Store, StoreError, WriteTx, query_err};
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, HashMap};

/// Weights in the model: the stored format (the classifier's feature space must match).
pub const WEIGHTS: usize = 1 << 20;
/// Buckets the weights are stored in, and weights per bucket.
pub const BUCKETS: usize = 4096;
const PER_BUCKET: usize = WEIGHTS / BUCKETS;

/// What a message is learned as.
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

/// How many messages of each class are learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub spam: u64,
    pub ham: u64,
}

/// One message to learn: its fingerprint, its class and its features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnItem {
    pub fingerprint: [u8; 32],
    pub class: Class,
    /// Feature indices, sorted and distinct, each below [`WEIGHTS`].
    pub features: Vec<u32>,
}

/// A learned message whose features are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub fingerprint: [u8; 32],
    pub class: Class,
    pub features: Vec<u32>,
}

/// What [`Store::classifier_reset`] cleared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleared {
    /// The totals before.
    pub totals: Totals,
    /// Learned messages forgotten (their fingerprints, and the kept features among them).
    pub learned: u64,
    /// The feature version the model had (`None`: nothing had been learned).
    pub feature_version: Option<u32>,
}

/// What the store knew of a message when it was learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    /// Not seen before: the caller learns it.
    Added,
    /// It had been learned as the other class: the caller moves the model to this one.
    Moved,
    /// It had been learned as this class already: nothing changes.
    AlreadyLearned,
}

impl Store {
    /// How many messages of each class are learned.
    pub async fn classifier_totals(&self) -> Result<Totals, StoreError> {
        let (spam, ham): (i64, i64) = on_pool!(self, |pool| {
            sqlx::query_as("SELECT spam, ham FROM classifier_totals WHERE id = 1").fetch_one(pool).await
        })
        .map_err(query_err("reading classifier totals"))?;
        Ok(Totals { spam: spam.max(0) as u64, ham: ham.max(0) as u64 })
    }

    /// The feature version the stored weights were learned in: `None` when nothing was learned yet,
    /// `Some(0)` for a model learned before versions were recorded.
    pub async fn classifier_feature_version(&self) -> Result<Option<u32>, StoreError> {
        let (version,): (Option<i64>,) =
            on_pool!(self, |pool| { sqlx::query_as(FEATURE_VERSION).fetch_one(pool).await })
                .map_err(query_err("reading the classifier's feature version"))?;
        Ok(version.map(version_of))
    }

    /// The whole weight vector ([`WEIGHTS`] entries; buckets never written are zeros).
    pub async fn classifier_weights(&self) -> Result<Vec<f32>, StoreError> {
        let mut w = vec![0.0f32; WEIGHTS];
        on_pool!(self, |pool| {
            let mut rows =
                sqlx::query_as::<_, (i64, Vec<u8>)>("SELECT bucket, weights FROM classifier_weights")
                    .fetch(pool);
            while let Some((bucket, bytes)) = rows.try_next().await.map_err(query_err("reading weights"))? {
                let at = bucket_start(bucket)?;
                decode(bucket, &bytes, &mut w[at..at + PER_BUCKET])?;
            }
        });
        Ok(w)
    }

    /// What the message with `fingerprint` was learned as, if it was.
    pub async fn classifier_learned(&self, fingerprint: &[u8; 32]) -> Result<Option<Class>, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(LEARNED_CLASS).bind(&fingerprint[..]).fetch_optional(pool).await
        })
        .map_err(query_err("looking up a learned message"))?;
        Ok(row.map(|(c,)| Class::from_code(c)))
    }

    /// Learn a batch of messages in one transaction, idempotently. `changes` is called once, inside
    /// the transaction, with one outcome per item (in order; an item repeated in the batch counts
    /// once) and the messages whose features are kept (as they were before this batch), and returns
    /// the weight changes that learning makes, as `(index, delta)` pairs; they are added to the
    /// stored weights. `now` (Unix seconds) is recorded with each message, and the features of the
    /// newest `keep` messages of each class are kept. `feature_version` is the caller's feature
    /// space: a model learned in another is refused ([`StoreError::FeatureVersion`], nothing
    /// changed), and a store that learned nothing yet records it.
    pub async fn classifier_learn(
        &self,
        items: &[LearnItem],
        now: i64,
        keep: usize,
        feature_version: u32,
        changes: impl FnOnce(&[LearnOutcome], &[Kept]) -> Vec<(u32, f32)>,
    ) -> Result<Vec<LearnOutcome>, StoreError> {
        let mut tx = self.begin_write(Exclusive::Learning).await?;
        claim_feature_version(&mut tx, feature_version).await?;
        let mut seen: HashMap<[u8; 32], Class> = HashMap::new();
        let mut outcomes = Vec::with_capacity(items.len());
        let (mut spam, mut ham) = (0i64, 0i64);
        for item in items {
            let before = match seen.get(&item.fingerprint) {
                Some(c) => Some(*c),
                None => learned_in(&mut tx, &item.fingerprint).await?,
            };
            let outcome = match before {
                Some(c) if c == item.class => LearnOutcome::AlreadyLearned,
                Some(_) => LearnOutcome::Moved,
                None => LearnOutcome::Added,
            };
            if outcome != LearnOutcome::AlreadyLearned {
                let (s, h) = match item.class {
                    Class::Spam => (1, 0),
                    Class::Ham => (0, 1),
                };
                let undo = i64::from(outcome == LearnOutcome::Moved);
                spam += s - undo * h;
                ham += h - undo * s;
            }
            seen.insert(item.fingerprint, item.class);
            outcomes.push(outcome);
        }
        let kept = if outcomes.iter().any(|o| *o != LearnOutcome::AlreadyLearned) {
            read_kept(&mut tx).await?
        } else {
            Vec::new()
        };
        for (item, outcome) in items.iter().zip(&outcomes) {
            if *outcome != LearnOutcome::AlreadyLearned {
                record_learned(&mut tx, item, now).await?;
            }
        }
        let deltas = changes(&outcomes, &kept);
        add_weights(&mut tx, &deltas).await?;
        prune_kept(&mut tx, keep).await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(
                "UPDATE classifier_totals SET \
                   spam = CASE WHEN spam + $1 < 0 THEN 0 ELSE spam + $1 END, \
                   ham = CASE WHEN ham + $2 < 0 THEN 0 ELSE ham + $2 END \
                 WHERE id = 1",
            )
            .bind(spam)
            .bind(ham)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("updating classifier totals"))?;
        tx.commit("committing learned messages").await?;
        Ok(outcomes)
    }

    /// Forget the model: every weight, the totals, and every learned message with its kept features
    /// (so a message learned before counts as new again), and record `feature_version` as the
    /// version of the empty model, in one transaction taken like learning's. Returns what it cleared.
    pub async fn classifier_reset(&self, feature_version: u32) -> Result<Cleared, StoreError> {
        let mut tx = self.begin_write(Exclusive::Learning).await?;
        let (spam, ham, before): (i64, i64, Option<i64>) = on_tx!(&mut tx, |conn| {
            sqlx::query_as("SELECT spam, ham, feature_version FROM classifier_totals WHERE id = 1")
                .fetch_one(conn)
                .await
        })
        .map_err(query_err("reading the classifier model before clearing it"))?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM classifier_weights").execute(conn).await.map(|r| r.rows_affected())
        })
        .map_err(query_err("clearing the classifier weights"))?;
        let learned = on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM classifier_learned").execute(conn).await.map(|r| r.rows_affected())
        })
        .map_err(query_err("forgetting the learned messages"))?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("UPDATE classifier_totals SET spam = 0, ham = 0, feature_version = $1 WHERE id = 1")
                .bind(i64::from(feature_version))
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("recording the cleared model's feature version"))?;
        tx.commit("committing the cleared classifier model").await?;
        Ok(Cleared {
            totals: Totals { spam: spam.max(0) as u64, ham: ham.max(0) as u64 },
            learned,
            feature_version: before.map(version_of),
        })
    }
}

const FEATURE_VERSION: &str = "SELECT feature_version FROM classifier_totals WHERE id = 1";

/// A stored version as the caller's type (the column's CHECK keeps it at or above 0; a version past
/// `u32` is simply another version).
fn version_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Check, under the learning lock, that the stored model is in `feature_version`'s space, recording
/// it when nothing was learned yet.
async fn claim_feature_version(tx: &mut WriteTx, feature_version: u32) -> Result<(), StoreError> {
    let (stored,): (Option<i64>,) =
        on_tx!(&mut *tx, |conn| sqlx::query_as(FEATURE_VERSION).fetch_one(conn).await)
            .map_err(query_err("reading the classifier's feature version"))?;
    match stored.map(version_of) {
        Some(stored) if stored == feature_version => Ok(()),
        Some(stored) => Err(StoreError::FeatureVersion { stored, expected: feature_version }),
        None => {
            on_tx!(&mut *tx, |conn| {
                sqlx::query("UPDATE classifier_totals SET feature_version = $1 WHERE id = 1")
                    .bind(i64::from(feature_version))
                    .execute(conn)
                    .await
                    .map(|r| r.rows_affected())
            })
            .map_err(query_err("recording the classifier's feature version"))?;
            Ok(())
        }
    }
}

fn bucket_start(bucket: i64) -> Result<usize, StoreError> {
    usize::try_from(bucket)
        .ok()
        .filter(|b| *b < BUCKETS)
        .map(|b| b * PER_BUCKET)
        .ok_or(StoreError::Corrupt { bucket, why: "bucket number out of range" })
}

fn decode(bucket: i64, bytes: &[u8], into: &mut [f32]) -> Result<(), StoreError> {
    if bytes.len() != into.len() * 4 {
        return Err(StoreError::Corrupt { bucket, why: "weights blob is not 1,024 bytes" });
    }
    // Decoded first and checked after: two loops without an exit in them, which the compiler
    // vectorises (a million weights are read at every start).
    for (w, b) in into.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = f32::from_le_bytes(b.try_into().expect("4 bytes"));
    }
    if !into.iter().fold(true, |finite, w| finite & w.is_finite()) {
        return Err(StoreError::Corrupt { bucket, why: "a weight is not a finite number" });
    }
    Ok(())
}

fn encode(weights: &[f32]) -> Vec<u8> {
    weights.iter().flat_map(|w| w.to_le_bytes()).collect()
}

const LEARNED_CLASS: &str = "SELECT class FROM classifier_learned WHERE fingerprint = $1";

async fn learned_in(tx: &mut WriteTx, fingerprint: &[u8; 32]) -> Result<Option<Class>, StoreError> {
    let row: Option<(i64,)> =
        on_tx!(tx, |conn| sqlx::query_as(LEARNED_CLASS).bind(&fingerprint[..]).fetch_optional(conn).await)
            .map_err(query_err("looking up a learned message"))?;
    Ok(row.map(|(c,)| Class::from_code(c)))
}

async fn record_learned(tx: &mut WriteTx, item: &LearnItem, now: i64) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO classifier_learned (fingerprint, class, learned_at, features) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (fingerprint) DO UPDATE SET class = excluded.class, learned_at = excluded.learned_at, \
               features = excluded.features",
        )
        .bind(&item.fingerprint[..])
        .bind(item.class.code())
        .bind(now)
        .bind(encode_features(&item.features))
        .execute(conn)
        .await.map(|r| r.rows_affected())
    })
    .map_err(query_err("recording a learned message"))?;
    Ok(())
}

/// Every learned message whose features are kept.
async fn read_kept(tx: &mut WriteTx) -> Result<Vec<Kept>, StoreError> {
    let mut out = Vec::new();
    on_tx!(tx, |conn| {
        let mut rows = sqlx::query_as::<_, (Vec<u8>, i64, Vec<u8>)>(
            "SELECT fingerprint, class, features FROM classifier_learned WHERE features IS NOT NULL",
        )
        .fetch(conn);
        while let Some((fp, class, bytes)) =
            rows.try_next().await.map_err(query_err("reading kept messages"))?
        {
            let corrupt = |why| StoreError::Corrupt { bucket: -1, why };
            let fingerprint: [u8; 32] =
                fp.try_into().map_err(|_| corrupt("a fingerprint is not 32 bytes"))?;
            let features = decode_features(&bytes).ok_or_else(|| corrupt("kept features do not decode"))?;
            out.push(Kept { fingerprint, class: Class::from_code(class), features });
        }
    });
    Ok(out)
}

/// Forget the features of all but the newest `keep` messages of each class (messages learned at the
/// same second are told apart by fingerprint, which both databases order the same way).
async fn prune_kept(tx: &mut WriteTx, keep: usize) -> Result<(), StoreError> {
    for class in [Class::Spam, Class::Ham] {
        on_tx!(tx, |conn| {
            sqlx::query(
                "UPDATE classifier_learned SET features = NULL WHERE features IS NOT NULL AND class = $1 \
                 AND fingerprint NOT IN (SELECT fingerprint FROM classifier_learned \
                   WHERE features IS NOT NULL AND class = $1 ORDER BY learned_at DESC, fingerprint DESC LIMIT $2)",
            )
            .bind(class.code())
            .bind(i64::try_from(keep).unwrap_or(i64::MAX))
            .execute(conn)
            .await.map(|r| r.rows_affected())
        })
        .map_err(query_err("forgetting old kept features"))?;
    }
    Ok(())
}

/// Sorted feature indices as LEB128 varints of their differences (about two bytes a feature).
fn encode_features(features: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(features.len() * 2);
    let mut prev = 0u32;
    for &f in features {
        let mut d = f.wrapping_sub(prev);
        prev = f;
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The inverse of [`encode_features`]; `None` unless the indices are increasing and below [`WEIGHTS`].
fn decode_features(bytes: &[u8]) -> Option<Vec<u32>> {
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let (mut prev, mut d, mut shift) = (0u64, 0u64, 0u32);
    for (n, &b) in bytes.iter().enumerate() {
        if shift > 28 {
            return None;
        }
        d |= u64::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            let f = prev + d;
            if f >= WEIGHTS as u64 || (!out.is_empty() && d == 0) {
                return None;
            }
            out.push(f as u32);
            (prev, d, shift) = (f, 0, 0);
        } else if n + 1 == bytes.len() {
            return None;
        }
    }
    Some(out)
}

/// Add `deltas` to the stored weights: each bucket touched is read, changed and written once.
async fn add_weights(tx: &mut WriteTx, deltas: &[(u32, f32)]) -> Result<(), StoreError> {
    let mut by_bucket: BTreeMap<i64, Vec<(usize, f32)>> = BTreeMap::new();
    for &(i, d) in deltas {
        let i = i as usize;
        if i < WEIGHTS && d != 0.0 && d.is_finite() {
            by_bucket.entry((i / PER_BUCKET) as i64).or_default().push((i % PER_BUCKET, d));
        }
    }
    let mut current = read_buckets(tx, &by_bucket).await?;
    for (bucket, changes) in by_bucket {
        let mut w = current.remove(&bucket).unwrap_or_else(|| vec![0.0; PER_BUCKET]);
        for (at, d) in changes {
            w[at] += d;
        }
        on_tx!(&mut *tx, |conn| {
            sqlx::query(
                "INSERT INTO classifier_weights (bucket, weights) VALUES ($1, $2) \
                 ON CONFLICT (bucket) DO UPDATE SET weights = excluded.weights",
            )
            .bind(bucket)
            .bind(encode(&w))
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("writing a weight bucket"))?;
    }
    Ok(())
}

/// The stored contents of the buckets about to change: one query per bucket when few change, one
/// pass over the table when many do (a batch of many messages touches nearly all).
async fn read_buckets<T>(
    tx: &mut WriteTx,
    wanted: &BTreeMap<i64, T>,
) -> Result<HashMap<i64, Vec<f32>>, StoreError> {
    let mut out = HashMap::with_capacity(wanted.len());
    let mut keep = |bucket: i64, bytes: Vec<u8>| -> Result<(), StoreError> {
        if wanted.contains_key(&bucket) {
            let mut w = vec![0.0; PER_BUCKET];
            decode(bucket, &bytes, &mut w)?;
            out.insert(bucket, w);
        }
        Ok(())
    };
    if wanted.len() > BUCKETS / 8 {
        on_tx!(tx, |conn| {
            let mut rows =
                sqlx::query_as::<_, (i64, Vec<u8>)>("SELECT bucket, weights FROM classifier_weights")
                    .fetch(conn);
            while let Some((bucket, bytes)) =
                rows.try_next().await.map_err(query_err("reading weight buckets"))?
            {
                keep(bucket, bytes)?;
            }
        });
    } else {
        for &bucket in wanted.keys() {
            let row: Option<(Vec<u8>,)> = on_tx!(&mut *tx, |conn| {
                sqlx::query_as("SELECT weights FROM classifier_weights WHERE bucket = $1")
                    .bind(bucket)
                    .fetch_optional(conn)
                    .await
            })
            .map_err(query_err("reading a weight bucket"))?;
            if let Some((bytes,)) = row {
                keep(bucket, bytes)?;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_and_corruption_is_caught() {
        let w: Vec<f32> = (0..PER_BUCKET).map(|i| i as f32 * -0.5).collect();
        let mut back = vec![0.0; PER_BUCKET];
        decode(3, &encode(&w), &mut back).unwrap();
        assert_eq!(back, w);
        assert!(decode(3, &[0; 12], &mut back).is_err());
        assert!(decode(3, &encode(&vec![f32::NAN; PER_BUCKET]), &mut back).is_err());
        assert!(bucket_start(BUCKETS as i64).is_err() && bucket_start(-1).is_err());
        assert_eq!(bucket_start(1).unwrap(), PER_BUCKET);
    }

    #[test]
    fn kept_features_round_trip_and_bad_ones_are_refused() {
        let f = vec![0, 1, 127, 128, 300, 16_384, WEIGHTS as u32 - 1];
        let bytes = encode_features(&f);
        assert_eq!(decode_features(&bytes), Some(f));
        assert_eq!(decode_features(&[]), Some(vec![]));
        assert_eq!(decode_features(&encode_features(&[5, 5])), None, "repeated");
        assert_eq!(decode_features(&encode_features(&[WEIGHTS as u32])), None, "out of range");
        assert_eq!(decode_features(&[0x80]), None, "cut short");
        assert_eq!(decode_features(&[0xff; 6]), None, "too long");
    }
}
