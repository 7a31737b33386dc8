//! Loading the counts from the store, and learning through it.

use crate::model::{CountMap, Counts};
use crate::{Class, Classifier, Learned, Settings};
use std::sync::Arc;
use store::{LearnItem, LearnOutcome, Store, StoreError};

/// Why loading or learning failed.
#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("classifier store: {0}")]
    Store(#[from] StoreError),
}

/// A classifier holding every count in the store.
pub async fn load(store: &Store, settings: Settings) -> Result<Classifier, LearnError> {
    let totals = store.bayes_totals().await?;
    let mut tokens = Vec::new();
    store.bayes_tokens(|t| tokens.push((t.token, Counts { spam: t.spam, ham: t.ham }))).await?;
    // Sized before filling: the store hands keys over in order, and filling a small table in key
    // order would pile every key into its first slots before each growth.
    let mut counts = CountMap::with_capacity(tokens.len());
    for (key, c) in tokens {
        *counts.entry(key) = c;
    }
    let classifier = Classifier::new(settings);
    classifier.replace(counts, totals.spam, totals.ham);
    Ok(classifier)
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
    pub fn new(store: Store, classifier: Arc<Classifier>) -> Learner {
        Learner { store, classifier }
    }

    pub fn classifier(&self) -> &Arc<Classifier> {
        &self.classifier
    }

    /// Learn one message as `class`: the same message twice counts once; learning it as the other
    /// class moves its tokens.
    pub async fn learn(
        &self,
        raw: &[u8],
        fingerprint: [u8; 32],
        class: Class,
    ) -> Result<Learned, LearnError> {
        let sample = Sample { raw, fingerprint: Some(fingerprint), class };
        Ok(self.learn_batch(&[sample]).await?[0])
    }

    /// Learn many messages in one store transaction; one outcome per sample, in order.
    pub async fn learn_batch(&self, samples: &[Sample<'_>]) -> Result<Vec<Learned>, LearnError> {
        let items: Vec<LearnItem> = samples.iter().map(|s| self.item(s)).collect();
        let outcomes = self.store.bayes_learn(&items, unix_now()).await?;
        let mut learned = Vec::with_capacity(outcomes.len());
        for (item, outcome) in items.iter().zip(outcomes) {
            let outcome = match outcome {
                LearnOutcome::Added => Learned::Added,
                LearnOutcome::Moved => Learned::Moved,
                LearnOutcome::AlreadyLearned => Learned::AlreadyLearned,
            };
            let class = if item.class == store::Class::Spam { Class::Spam } else { Class::Ham };
            self.classifier.apply(&item.tokens, class, outcome);
            learned.push(outcome);
        }
        Ok(learned)
    }

    fn item(&self, s: &Sample<'_>) -> LearnItem {
        let view = message::parse(s.raw, &self.classifier.settings().limits);
        LearnItem {
            fingerprint: s.fingerprint.unwrap_or_else(|| crate::fingerprint(s.raw)),
            class: match s.class {
                Class::Spam => store::Class::Spam,
                Class::Ham => store::Class::Ham,
            },
            tokens: self.classifier.tokens(&view),
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
