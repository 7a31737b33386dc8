//! Settings of the statistical classifier (`[classifier]`) and of the embedded store (`[store]`).

use serde::{Deserialize, Serialize};

/// The trainable Bayes classifier.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Use the classifier in verdicts (it says nothing until it has been trained).
    pub enabled: bool,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig { enabled: true }
    }
}

/// Where quarantine metadata, users, tracking and classifier state are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite` (embedded, in the data directory).
    pub backend: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { backend: "sqlite".into() }
    }
}
