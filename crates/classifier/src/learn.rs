//! Loading the weights from the store, and learning through it.
//!
//! Both go by the stored model's feature version: a model of another version is loaded without its
//! weights (the classifier is then not ready, see [`Classifier::stale`]), and the store refuses to
//! learn into it ([`LearnError::Stale`]) until [`reset`] clears it.

use crate::logistic::Weights;
use crate::{Class, Classifier, FEATURE_VERSION, Learned, Settings, VersionMismatch};
use std::sync::Arc;
use store::{Cleared, LearnItem, LearnOutcome, Store, StoreError};

// The store's format and the feature space are one and the same.
const _: () = assert!(store::weights::WEIGHTS == crate::features::DIM);

/// Why loading or learning failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("classifier store: {0}")]
    Store(StoreError),
    /// The stored model is of another feature space: nothing was learned.
    #[error("learning refused: {0}; {remedy}", remedy = VersionMismatch::REMEDY)]
    Stale(VersionMismatch),
}

impl From<StoreError> for LearnError {
    fn from(e: StoreError) -> LearnError {
        match e {
            StoreError::FeatureVersion { stored, expected } => {
                LearnError::Stale(VersionMismatch { stored, current: expected })
            }
            e => LearnError::Store(e),
        }
    }
}

/// A classifier holding the weights in the store.
pub async fn load(store: &Store, settings: Settings) -> Result<Classifier, LearnError> {
    let classifier = Classifier::new(settings);
    reload(&classifier, store).await?;
    Ok(classifier)
}

/// Replace `classifier`'s weights and totals with the store's (after learning elsewhere). They are
/// read first; verdicts wait only for the swap. The weights of a model of another feature space are
/// not read: the classifier keeps the totals, no weights, and says why ([`Classifier::stale`]).
pub async fn reload(classifier: &Classifier, store: &Store) -> Result<(), LearnError> {
    let stale = VersionMismatch::of(store.classifier_feature_version().await?);
    let totals = store.classifier_totals().await?;
    let weights = match stale {
        Some(_) => Weights::default(),
        None => Weights::from_vec(store.classifier_weights().await?).expect("the store has DIM weights"),
    };
    classifier.replace(weights, totals.spam, totals.ham, stale);
    Ok(())
}

/// Clear the stored model (weights, totals, learned messages and their kept features) and record
/// this build's [`FEATURE_VERSION`]: the way out of a model of another feature space, and a fresh
/// start for any other. Processes holding the model notice as they notice learning (the totals
/// change) and reload it.
pub async fn reset(store: &Store) -> Result<Cleared, LearnError> {
    Ok(store.classifier_reset(FEATURE_VERSION).await?)
}

/// One message to learn.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The message as received.
    pub raw: &'a [u8],
    /// Its fingerprint; `None`: [`crate::fingerprint`] of `raw`.
    pub fingerprint: Option<[u8; 32]>,
    pub class: Class,
}

/// Learns messages into the store and the shared in-memory classifier together. This is the
/// interface the quarantine and the portal call when people say "spam" or "not spam".
#[derive(Clone)]
pub struct Learner {
    store: Store,
    classifier: Arc<Classifier>,
}

impl Learner {
    /// A learner on `classifier`, which must hold the weights the store holds (a model shared with
    /// the verdict engine, itself from [`load`]): the changes it stores are worked out on it.
    pub fn new(store: Store, classifier: Arc<Classifier>) -> Learner {
        Learner { store, classifier }
    }

    /// A learner on its own copy of the stored model, loaded now: what a process that only learns
    /// (`portcullis learn`) starts from. Starting from an empty model instead would store changes
    /// worked out as if nothing had been learned, adding the rehearsed messages' weight a second time.
    pub async fn open(store: Store, settings: Settings) -> Result<Learner, LearnError> {
        let classifier = load(&store, settings).await?;
        Ok(Learner::new(store, Arc::new(classifier)))
    }

    pub fn classifier(&self) -> &Arc<Classifier> {
        &self.classifier
    }

    /// Learn one message as `class`: the same message twice counts once; learning it as the other
    /// class moves the model until it agrees.
    pub async fn learn(
        &self,
        raw: &[u8],
        fingerprint: [u8; 32],
        class: Class,
    ) -> Result<Learned, LearnError> {
        let sample = Sample { raw, fingerprint: Some(fingerprint), class };
        Ok(self.learn_batch(&[sample]).await?[0])
    }

    /// Learn many messages in one store transaction; one outcome per sample, in order. The weight
    /// changes are worked out inside the transaction (from what the store says each message was
    /// learned as, together with the kept recent messages), stored, and then added to the weights
    /// in memory.
    pub async fn learn_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<Learned>, LearnError> {
        let limits = &self.classifier.settings().limits;
        let items: Vec<LearnItem> = samples
            .iter()
            .map(|s| LearnItem {
                fingerprint: s.fingerprint.unwrap_or_else(|| crate::fingerprint(s.raw)),
                class: store_class(s.class),
                features: self.classifier.features(&message::parse(s.raw, limits)),
            })
            .collect();
        let mut changes = Vec::new();
        let outcomes = self
            .store
            .classifier_learn(&items, unix_now(), crate::KEEP, FEATURE_VERSION, |outcomes, kept| {
                let batch: Vec<(&[u32], Class, Learned)> = items
                    .iter()
                    .zip(samples)
                    .zip(outcomes)
                    .map(|((i, s), o)| (&i.features[..], s.class, learned(*o)))
                    .collect();
                // A message of this batch that was kept is learned as what the batch says it is.
                let kept: Vec<(&[u32], Class)> = kept
                    .iter()
                    .filter(|k| !items.iter().any(|i| i.fingerprint == k.fingerprint))
                    .map(|k| (&k.features[..], class_of(k.class)))
                    .collect();
                changes = self.classifier.changes(&batch, &kept);
                changes.clone()
            })
            .await?;
        let learned: Vec<Learned> = outcomes.into_iter().map(learned).collect();
        let moves: Vec<(Class, Learned)> =
            samples.iter().map(|s| s.class).zip(learned.iter().copied()).collect();
        self.classifier.apply(&changes, &moves);
        Ok(learned)
    }
}

fn class_of(c: store::Class) -> Class {
    match c {
        store::Class::Spam => Class::Spam,
        store::Class::Ham => Class::Ham,
    }
}

fn store_class(c: Class) -> store::Class {
    match c {
        Class::Spam => store::Class::Spam,
        Class::Ham => store::Class::Ham,
    }
}

fn learned(o: LearnOutcome) -> Learned {
    match o {
        LearnOutcome::Added => Learned::Added,
        LearnOutcome::Moved => Learned::Moved,
        LearnOutcome::AlreadyLearned => Learned::AlreadyLearned,
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
