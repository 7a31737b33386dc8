//! The model in memory: token counts and totals, read by every verdict, changed by learning.

use crate::combine::{self, Tuning};
use crate::table::TokenTable;
use crate::tokenize::tokenize;
use crate::{Class, Learned, Settings};
use message::MessageView;
use std::sync::RwLock;

/// In how many learned spam and ham messages a token appeared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub spam: u32,
    pub ham: u32,
}

pub(crate) type CountMap = TokenTable;

#[derive(Default)]
struct State {
    counts: CountMap,
    spam: u64,
    ham: u64,
}

/// What the classifier made of one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification {
    /// Probability that the message is spam, 0 to 1.
    pub probability: f64,
    /// Tokens whose evidence was combined.
    pub significant: usize,
    /// Distinct tokens in the message.
    pub tokens: usize,
}

/// The trained classifier: counts in memory, shared by every verdict (`classify` takes `&self`, so
/// put it in an `Arc`). Learning changes the counts in place, under a write lock held only for the
/// update itself.
pub struct Classifier {
    settings: Settings,
    tuning: Tuning,
    state: RwLock<State>,
}

impl Classifier {
    /// An untrained classifier (load counts with [`crate::load`] or learn).
    pub fn new(settings: Settings) -> Classifier {
        Classifier { settings, tuning: Tuning::default(), state: RwLock::new(State::default()) }
    }

    /// An untrained classifier with other combining constants (for tuning on training mail).
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

    /// How many distinct tokens have counts.
    pub fn token_count(&self) -> usize {
        self.read().counts.iter().filter(|(_, c)| c.spam > 0 || c.ham > 0).count()
    }

    /// Enough spam and ham learned to say anything (`min_learned_spam`, `min_learned_ham`).
    pub fn ready(&self) -> bool {
        let (spam, ham) = self.learned();
        spam >= self.settings.min_learned_spam && ham >= self.settings.min_learned_ham
    }

    /// The distinct token keys of a message, at most `max_tokens`.
    pub fn tokens(&self, view: &MessageView) -> Vec<u64> {
        tokenize(view, self.settings.max_tokens)
    }

    /// Classify one message. `None` until enough has been learned, or when no token in the message
    /// carries evidence either way.
    pub fn classify(&self, view: &MessageView) -> Option<Classification> {
        if !self.ready() {
            return None;
        }
        self.classify_tokens(&self.tokens(view))
    }

    /// Classify by token keys (as [`Classifier::tokens`] gives them), ignoring the readiness gate.
    pub fn classify_tokens(&self, tokens: &[u64]) -> Option<Classification> {
        let mut fs = Vec::with_capacity(tokens.len());
        {
            let s = self.read();
            for k in tokens {
                if let Some(c) = s.counts.get(*k) {
                    let t = &self.tuning;
                    let strength = if crate::hash::is_pair(*k) { t.pair_strength } else { t.strength };
                    fs.extend(combine::token_probability(c.spam, c.ham, s.spam, s.ham, strength, t));
                }
            }
        }
        let (probability, significant) = combine::combine(&mut fs, &self.tuning)?;
        Some(Classification { probability, significant, tokens: tokens.len() })
    }

    /// Apply what the store did when a message with these tokens was learned as `class`.
    pub fn apply(&self, tokens: &[u64], class: Class, outcome: Learned) {
        let sign: &[(Class, i64)] = match outcome {
            Learned::AlreadyLearned => return,
            Learned::Added => &[(class, 1)],
            Learned::Moved => &[(class.other(), -1), (class, 1)],
        };
        let mut s = self.state.write().expect("classifier lock");
        for &(c, d) in sign {
            bump_total(&mut s, c, d);
            for &k in tokens {
                let e = s.counts.entry(k);
                let slot = match c {
                    Class::Spam => &mut e.spam,
                    Class::Ham => &mut e.ham,
                };
                *slot = slot.saturating_add_signed(d as i32);
            }
        }
    }

    /// Replace every count and the totals (loading from the store).
    pub(crate) fn replace(&self, counts: CountMap, spam: u64, ham: u64) {
        *self.state.write().expect("classifier lock") = State { counts, spam, ham };
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("classifier lock")
    }
}

fn bump_total(s: &mut State, c: Class, d: i64) {
    let t = match c {
        Class::Spam => &mut s.spam,
        Class::Ham => &mut s.ham,
    };
    *t = t.saturating_add_signed(d);
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
        // Even keys: words (odd keys are word pairs, weighed apart).
        let spam = [2, 4, 6];
        let ham = [8, 10, 12];
        c.apply(&spam, Class::Spam, Learned::Added);
        c.apply(&ham, Class::Ham, Learned::Added);
        c.apply(&spam, Class::Spam, Learned::Added);
        assert!(!c.ready(), "one ham is below the minimum of two");
        assert_eq!(c.classify(&message::MessageView::default()), None);
        c.apply(&ham, Class::Ham, Learned::Added);
        assert!(c.ready());
        let s = c.classify_tokens(&[2, 4, 6, 98]).unwrap();
        let h = c.classify_tokens(&[8, 10, 12]).unwrap();
        assert!(s.probability > 0.8 && h.probability < 0.2, "{s:?} {h:?}");
        assert_eq!((s.significant, s.tokens), (3, 4));
        assert_eq!(c.classify_tokens(&[98]), None, "unknown tokens carry no evidence");
    }

    #[test]
    fn moving_and_repeating_change_counts_as_the_store_did() {
        let c = classifier(1);
        c.apply(&[1, 2], Class::Spam, Learned::Added);
        c.apply(&[1, 2], Class::Spam, Learned::AlreadyLearned);
        assert_eq!((c.learned(), c.token_count()), ((1, 0), 2));
        c.apply(&[1, 2, 3], Class::Ham, Learned::Moved);
        assert_eq!(c.learned(), (0, 1));
        assert_eq!(c.read().counts.get(1), Some(Counts { spam: 0, ham: 1 }));
        assert_eq!(c.read().counts.get(3), Some(Counts { spam: 0, ham: 1 }));
    }
}
