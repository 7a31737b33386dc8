//! The trainable classifier: online logistic regression on hashed binary features, weights in
//! memory, learning that writes through to the store.
//!
//! Owns: the features of the normalised [`message::MessageView`] ([`features`]: the tokens of
//! [`tokenize`] (header, sender, subject and body words, adjacent word pairs, URL hosts, MIME
//! shape) and byte 4-grams of the body as sent (the first 12 KB), hashed into 2^20 indices), the model
//! ([`logistic`]: a weight vector, thick-threshold logistic-loss SGD), the in-memory classifier
//! ([`Classifier`]), message [`fingerprint`]s, and, with the `store` feature, loading the weights
//! from the store at start ([`load`]) and learning idempotently ([`Learner`]). Must not touch: SQL
//! (the `store` crate has it), symbols and scores (the `bayes` analyzer in `checks` turns a
//! [`Classification`] into a symbol; configuration scores it), the spool.
//!
//! Verdicts read only memory: weights are loaded once, and learning updates the store and then
//! memory (one transaction per batch), so a verdict never waits on the database.
//!
//! Why logistic regression and not the naive Bayes counts it replaced: on cross-validated training
//! mail it reaches far fewer false positives at the same false negatives (see
//! `bench/RESULTS-classifier.md`), as in the TREC spam tracks; it needs no token counts, only a fixed
//! weight vector (4 MB), so memory, load time and work per message do not grow with what is learned.
//!
//! # Security
//! Everything read is attacker text. Work per message is bounded by `max_tokens` (token keys) plus
//! [`features::NGRAM_BYTES`] (4-grams) on top of the message view's own limits, and learning one
//! message takes at most [`logistic::Tuning::max_steps`] steps per pass; features are hashed and
//! never kept as text, so the store holds no message content. An attacker can move the weights only
//! through what operators and users choose to learn; learning is idempotent per message, so
//! repeating a message (or a user clicking "spam" many times) counts once. The classifier says
//! nothing until `min_learned_spam` and `min_learned_ham` messages are learned, nor with a stored model
//! learned in another feature space ([`FEATURE_VERSION`], [`VersionMismatch`]).

#![forbid(unsafe_code)]

pub mod features;
mod fingerprint;
pub mod hash;
#[cfg(feature = "store")]
mod learn;
pub mod logistic;
mod model;
pub mod tokenize;

pub use features::VERSION as FEATURE_VERSION;
pub use fingerprint::fingerprint;
#[cfg(feature = "store")]
pub use learn::{LearnError, Learner, Sample, load, reload, reset};
pub use model::{Classification, Classifier, KEEP, PASSES, calibrated};

use message::MessageLimits;

/// A stored model learned in another feature space than this build's [`FEATURE_VERSION`]: its
/// weights do not fit the features this build extracts, so it is neither judged with nor learned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionMismatch {
    /// The stored model's version (0: learned before versions were recorded).
    pub stored: u32,
    /// This build's ([`FEATURE_VERSION`]).
    pub current: u32,
}

impl VersionMismatch {
    /// What to do about it, for messages that name the mismatch.
    pub const REMEDY: &'static str =
        "clear the model with `portcullis learn --reset`, then learn spam and ham again";

    /// The mismatch of a model stored with `stored` (`None`: nothing learned yet, nothing to mismatch).
    pub fn of(stored: Option<u32>) -> Option<VersionMismatch> {
        stored
            .filter(|v| *v != FEATURE_VERSION)
            .map(|stored| VersionMismatch { stored, current: FEATURE_VERSION })
    }
}

impl std::fmt::Display for VersionMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unknown = if self.stored == 0 { " (unknown: learned before versions were recorded)" } else { "" };
        write!(
            f,
            "the classifier model in the store was learned with feature version {}{unknown}, but this build \
             extracts version {}: the stored weights do not fit its features",
            self.stored, self.current
        )
    }
}

/// What a message is learned as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    pub fn other(self) -> Class {
        match self {
            Class::Spam => Class::Ham,
            Class::Ham => Class::Spam,
        }
    }
}

/// What learning one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Counted for the first time.
    Added,
    /// It had been learned as the other class; the model was moved to this one.
    Moved,
    /// Learned as this class before: nothing changed.
    AlreadyLearned,
}

/// The classifier's settings (from `[classifier]`, and the message limits from `[verdict]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub min_learned_spam: u64,
    pub min_learned_ham: u64,
    pub max_tokens: usize,
    /// Limits for parsing messages that are learned (the verdict engine parses with the same).
    pub limits: MessageLimits,
}

impl Default for Settings {
    fn default() -> Self {
        let c = config::ClassifierConfig::default();
        Settings {
            min_learned_spam: c.min_learned_spam,
            min_learned_ham: c.min_learned_ham,
            max_tokens: c.max_tokens,
            limits: MessageLimits::default(),
        }
    }
}

impl Settings {
    pub fn from_config(config: &config::Config) -> Settings {
        let (c, v) = (&config.classifier, &config.verdict);
        let size = |b: config::ByteSize| usize::try_from(b.0).unwrap_or(usize::MAX);
        Settings {
            min_learned_spam: c.min_learned_spam,
            min_learned_ham: c.min_learned_ham,
            max_tokens: c.max_tokens,
            limits: MessageLimits {
                max_depth: v.max_mime_depth,
                max_parts: v.max_mime_parts,
                max_headers: v.max_headers,
                max_header_bytes: size(v.max_header_size),
                max_part_bytes: size(v.max_part_size),
                max_decoded_bytes: size(v.max_decoded_size),
                max_urls: v.max_urls,
                max_text_bytes: size(v.max_text_size),
            },
        }
    }
}
