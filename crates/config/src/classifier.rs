//! Settings of the statistical classifier (`[classifier]`).

use serde::{Deserialize, Serialize};

/// The trainable Bayes classifier.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Use the classifier in verdicts (it says nothing until it has been trained).
    pub enabled: bool,
    /// Spam messages that must be learned before the classifier says anything.
    pub min_learned_spam: u64,
    /// Ham messages that must be learned before the classifier says anything.
    pub min_learned_ham: u64,
    /// Most tokens taken from one message (header and subject tokens first, then URLs, then the
    /// body in order); bounds the work per message.
    pub max_tokens: usize,
    /// Messages learned per store transaction by `portcullis learn`.
    pub learn_batch: usize,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            enabled: true,
            min_learned_spam: 200,
            min_learned_ham: 200,
            max_tokens: 6000,
            learn_batch: 500,
        }
    }
}

impl ClassifierConfig {
    /// Value rules, checked when the classifier is built (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_tokens == 0 || self.max_tokens > 1_000_000 {
            return Err(("classifier.max_tokens", "must be between 1 and 1000000".into()));
        }
        if self.learn_batch == 0 || self.learn_batch > 100_000 {
            return Err(("classifier.learn_batch", "must be between 1 and 100000".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifier_settings_default_and_check() {
        let c: ClassifierConfig = toml::from_str("min_learned_spam = 5\nmax_tokens = 100\n").unwrap();
        assert_eq!((c.min_learned_spam, c.min_learned_ham, c.max_tokens), (5, 200, 100));
        assert!(c.check().is_ok());
        let bad = ClassifierConfig { max_tokens: 0, ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "classifier.max_tokens");
        let bad = ClassifierConfig { learn_batch: 0, ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "classifier.learn_batch");
        assert!(toml::from_str::<ClassifierConfig>("min_learned = 1\n").is_err());
    }
}
