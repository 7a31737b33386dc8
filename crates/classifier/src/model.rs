//! The model in memory: the weight vector and the totals, read by every verdict, changed by learning.

use crate::features;
use crate::logistic::{self, Tuning, Weights, sigmoid};
use crate::{Class, Learned, Settings, VersionMismatch};
use message::MessageView;
use std::sync::RwLock;

#[derive(Default)]
struct State {
    weights: Weights,
    spam: u64,
    ham: u64,
    /// The stored model is of another feature space: its weights were not loaded.
    stale: Option<VersionMismatch>,
}

/// What the classifier made of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Probability that the message is spam, 0 to 1 (the model's score, calibrated on training
    /// mail: see [`calibrated`]).
    pub probability: f64,
    /// The model's raw score (`b + w·x`; above 0 leans spam).
    pub score: f32,
    /// Distinct features in the message.
    pub features: usize,
}

/// The spam probability of a raw score. Thick-threshold training pushes learned mail to about
/// `±margin`, so raw scores read as logistic probabilities are too timid; this Platt scaling
/// (`sigmoid(A * score + B)`) is the maximum-likelihood fit to the scores of the benchmark's training
/// mail in 5-fold cross-validation and two older/newer splits (the older 30% and 50% learned, the
/// rest checked), pooled (`examples/eval.rs`, `DUMP`), never to test mail. Newer spam scores lower
/// than the spam a model learned from, hence the positive `B` (alone, the older/newer splits fit
/// about (2.65, 3.5), cross-validation (1.8, 1.0)).
pub fn calibrated(score: f32) -> f64 {
    sigmoid(CALIBRATION.0 * score + CALIBRATION.1)
}

const CALIBRATION: (f32, f32) = (2.3, 2.6);

/// The trained classifier: weights in memory, shared by every verdict (`classify` takes `&self`, so
/// put it in an `Arc`). Learning changes the weights in place, under a write lock held only for the
/// update itself.
pub struct Classifier {
    settings: Settings,
    tuning: Tuning,
    state: RwLock<State>,
}

impl Classifier {
    /// An untrained classifier (load weights with [`crate::load`] or learn).
    pub fn new(settings: Settings) -> Classifier {
        Classifier::with_tuning(settings, Tuning::default())
    }

    /// An untrained classifier with other learning constants (for tuning on training mail).
    pub fn with_tuning(settings: Settings, tuning: Tuning) -> Classifier {
        Classifier { settings, tuning, state: RwLock::new(State::default()) }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// How many spam and ham messages have been learned.
    pub fn learned(&self) -> (u64, u64) {
        let s = self.read();
        (s.spam, s.ham)
    }

    /// Enough spam and ham learned to say anything (`min_learned_spam`, `min_learned_ham`), in this
    /// build's feature space.
    pub fn ready(&self) -> bool {
        let s = self.read();
        s.stale.is_none()
            && s.spam >= self.settings.min_learned_spam
            && s.ham >= self.settings.min_learned_ham
    }

    /// Why the stored model was not loaded: it was learned in another feature space.
    pub fn stale(&self) -> Option<VersionMismatch> {
        self.read().stale
    }

    /// The features of a message (sorted distinct indices, at most `max_tokens` + 4-grams).
    pub fn features(&self, view: &MessageView) -> Vec<u32> {
        features::extract(view, self.settings.max_tokens)
    }

    /// Classify one message. `None` until enough has been learned.
    pub fn classify(&self, view: &MessageView) -> Option<Classification> {
        if !self.ready() {
            return None;
        }
        Some(self.classify_features(&features::extract_unordered(view, self.settings.max_tokens)))
    }

    /// Classify by features (distinct, in any order), ignoring the readiness gate.
    pub fn classify_features(&self, f: &[u32]) -> Classification {
        let score = self.read().weights.score(f, &self.tuning);
        Classification { probability: calibrated(score), score, features: f.len() }
    }

    /// Learn one message in memory only, as the store said it stood (`outcome`): what
    /// [`crate::Learner`] does together with the store, for tools and tests without one.
    pub fn learn(&self, f: &[u32], class: Class, outcome: Learned) {
        let changes = self.changes(&[(f, class, outcome)], &[]);
        self.apply(&changes, &[(class, outcome)]);
    }

    /// The weight changes learning `batch` makes, as `(index, delta)`, worked out on a copy of the
    /// current weights. Messages learned for the first time or moved to the other class are learned
    /// together with the `kept` ones (recently learned messages, so a batch of one class does not
    /// make the model forget the other), [`PASSES`] times over in a shuffled order; messages already
    /// learned as their class change nothing, and a batch of only those changes nothing at all.
    pub(crate) fn changes(
        &self,
        batch: &[(&[u32], Class, Learned)],
        kept: &[(&[u32], Class)],
    ) -> Vec<(u32, f32)> {
        let new = batch.iter().filter(|(_, _, o)| *o != Learned::AlreadyLearned).map(|(f, c, _)| (*f, *c));
        let examples: Vec<(&[u32], Class)> = new.chain(kept.iter().copied()).collect();
        if examples.len() == kept.len() {
            return Vec::new();
        }
        let before = self.read().weights.clone();
        let mut after = before.clone();
        logistic::train(&mut after, &examples, PASSES, &self.tuning);
        let (b, a) = (before.as_slice(), after.as_slice());
        a.iter()
            .zip(b)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i as u32, a - b))
            .collect()
    }

    /// Add weight changes and move the totals for what was learned.
    pub(crate) fn apply(&self, changes: &[(u32, f32)], learned: &[(Class, Learned)]) {
        let mut s = self.state.write().expect("classifier lock");
        s.weights.add(changes);
        for &(class, outcome) in learned {
            let (add, take) = match outcome {
                Learned::AlreadyLearned => continue,
                Learned::Added => (class, None),
                Learned::Moved => (class, Some(class.other())),
            };
            *total(&mut s, add) += 1;
            if let Some(c) = take {
                let t = total(&mut s, c);
                *t = t.saturating_sub(1);
            }
        }
    }

    /// Replace the weights, the totals and whether the stored model is stale (loading from the store).
    #[cfg(feature = "store")]
    pub(crate) fn replace(&self, weights: Weights, spam: u64, ham: u64, stale: Option<VersionMismatch>) {
        *self.state.write().expect("classifier lock") = State { weights, spam, ham, stale };
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("classifier lock")
    }
}

/// Passes over a batch of newly learned messages and the kept ones (tuned on training mail: one pass
/// leaves the first messages of a batch learned before the model knew the rest).
pub const PASSES: usize = 3;

/// Recently learned messages of each class whose features the store keeps, to be learned again with
/// each batch (tuned on training mail: learning a folder of spam, then a folder of ham, then comes
/// out as well as learning them interleaved; 0 would let the ham folder undo the spam one).
pub const KEEP: usize = 1000;

fn total(s: &mut State, c: Class) -> &mut u64 {
    match c {
        Class::Spam => &mut s.spam,
        Class::Ham => &mut s.ham,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier(min: u64) -> Classifier {
        Classifier::new(Settings { min_learned_spam: min, min_learned_ham: min, ..Settings::default() })
    }

    #[test]
    fn says_nothing_until_the_minimum_is_learned() {
        let c = classifier(2);
        let (spam, ham) = ([2u32, 4, 6], [8u32, 10, 12]);
        c.learn(&spam, Class::Spam, Learned::Added);
        c.learn(&ham, Class::Ham, Learned::Added);
        c.learn(&spam, Class::Spam, Learned::Added);
        assert!(!c.ready(), "one ham is below the minimum of two");
        assert_eq!(c.classify(&message::MessageView::default()), None);
        c.learn(&ham, Class::Ham, Learned::Added);
        assert!(c.ready());
        let s = c.classify_features(&[2, 4, 6, 98]);
        let h = c.classify_features(&[8, 10, 12]);
        assert!(s.probability > 0.8 && h.probability < 0.2, "{s:?} {h:?}");
        assert_eq!(s.features, 4);
    }

    #[test]
    fn moving_and_repeating_change_what_the_store_said() {
        let c = classifier(1);
        c.learn(&[1, 2], Class::Spam, Learned::Added);
        let w = c.read().weights.as_slice()[1];
        c.learn(&[1, 2], Class::Spam, Learned::AlreadyLearned);
        assert_eq!((c.learned(), c.read().weights.as_slice()[1]), ((1, 0), w));
        c.learn(&[1, 2, 3], Class::Ham, Learned::Moved);
        assert_eq!(c.learned(), (0, 1));
        assert!(c.classify_features(&[1, 2, 3]).score < 0.0);
    }
}
