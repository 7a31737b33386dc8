//! Settings of the verdict engine: action thresholds (`[actions]`) and the engine itself (`[verdict]`).

use serde::{Deserialize, Serialize};

/// Score thresholds that turn a message's score into an action. A threshold left out (or set to
/// `false`) is switched off. The highest threshold reached wins.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// Score from which a message is delivered tagged (`X-Spam-*` headers, optional subject prefix).
    pub tag: Option<f64>,
    /// Score from which a message is held in quarantine.
    pub quarantine: Option<f64>,
    /// Score from which a message is refused with 550 5.7.1 at the end of DATA.
    pub reject: Option<f64>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            tag: Some(4.0),
            quarantine: Some(8.0),
            reject: None,
        }
    }
}

/// The verdict engine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictConfig {
    /// Judge messages at all (off: every message is accepted unjudged).
    pub enabled: bool,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig { enabled: true }
    }
}
