//! The operator's policy: what each symbol is worth, which combinations mean more, and which score
//! leads to which action.

use crate::expr::{Expr, ExprError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// What happens to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Delivered as it is.
    Accept,
    /// Delivered with `X-Spam-*` headers (and the subject prefix, if configured).
    Tag,
    /// Held in quarantine, where a person can release it.
    Quarantine,
    /// Refused for now (451 4.7.1); the client retries later.
    Tempfail,
    /// Refused (550 5.7.1) at the end of DATA, so nothing is bounced.
    Reject,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Tempfail => "tempfail",
            Action::Reject => "reject",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Scores from which an action applies; `None` switches that action off. The highest reached wins.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    pub tag: Option<f64>,
    pub quarantine: Option<f64>,
    pub reject: Option<f64>,
}

impl Thresholds {
    /// The action a score leads to.
    pub fn action(&self, score: f64) -> Action {
        let reached = |t: Option<f64>| t.is_some_and(|t| score >= t);
        if reached(self.reject) {
            Action::Reject
        } else if reached(self.quarantine) {
            Action::Quarantine
        } else if reached(self.tag) {
            Action::Tag
        } else {
            Action::Accept
        }
    }

    /// The lowest threshold that is on (what `X-Spam-Status` reports as `required`).
    pub fn lowest(&self) -> Option<f64> {
        [self.tag, self.quarantine, self.reject].into_iter().flatten().reduce(f64::min)
    }
}

/// What a composite does to the symbols it consumed (those its expression needs present).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Removal {
    /// Consumed symbols disappear: only the composite counts (rspamd's `remove_all`).
    #[default]
    Remove,
    /// Consumed symbols stay listed with score 0 (rspamd's `remove_weight`).
    RemoveWeight,
    /// Consumed symbols keep their scores.
    Leave,
}

/// A composite as written in a scores file: `[composites.NAME]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompositeDef {
    /// The symbol expression, e.g. `SPF_FAIL & !DKIM_ALLOW`.
    pub expression: String,
    /// The composite's score (a `[scores]` entry of the same name also sets it).
    #[serde(default)]
    pub score: Option<f64>,
    #[serde(default)]
    pub removal: Removal,
    #[serde(default)]
    pub description: String,
}

/// One scores file (`rules/default/scores.toml` and friends): scores, composites, forced actions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoreFile {
    pub scores: BTreeMap<String, f64>,
    pub composites: BTreeMap<String, CompositeDef>,
    /// Symbols whose presence forces at least this action whatever the score (e.g. `DEADLINE_EXCEEDED =
    /// "tempfail"`).
    pub force_actions: BTreeMap<String, Action>,
}

/// A composite, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite {
    pub name: String,
    pub expr: Expr,
    pub removal: Removal,
    pub description: String,
}

/// Why a policy could not be built. Each names the symbol and the file it came from.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error("{origin}: `{name}` is not a symbol name (1 to 64 of A-Z, a-z, 0-9, _)")]
    BadName { origin: String, name: String },
    #[error("{origin}: score of `{name}` must be a finite number")]
    BadScore { origin: String, name: String },
    #[error("{origin}: composite `{name}`: {source}")]
    BadExpression { origin: String, name: String, source: ExprError },
    #[error("thresholds: `{name}` must be a finite number")]
    BadThreshold { name: &'static str },
}

/// Scores, composites, thresholds and forced actions, ready for [`crate::decide`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub(crate) scores: HashMap<String, f64>,
    pub(crate) composites: Vec<Composite>,
    pub(crate) thresholds: Thresholds,
    pub(crate) force: HashMap<String, Action>,
}

impl Policy {
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }
    /// The configured score of `symbol` (0 when it has none).
    pub fn score(&self, symbol: &str) -> f64 {
        self.scores.get(symbol).copied().unwrap_or(0.0)
    }
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }
    pub fn composites(&self) -> &[Composite] {
        &self.composites
    }
}

/// Layers of scores files applied in order: a later layer replaces what an earlier one said about the
/// same symbol or composite (this is how `rules/local` overrides `rules/default`).
#[derive(Debug, Default)]
pub struct PolicyBuilder {
    policy: Policy,
    errors: Vec<PolicyError>,
}

impl PolicyBuilder {
    /// Set one symbol's score (a rule's weight; `origin` names where it came from for errors).
    pub fn score(mut self, origin: &str, name: &str, score: f64) -> Self {
        if !crate::valid_symbol(name) {
            self.errors.push(PolicyError::BadName { origin: origin.into(), name: name.into() });
        } else if !score.is_finite() {
            self.errors.push(PolicyError::BadScore { origin: origin.into(), name: name.into() });
        } else {
            self.policy.scores.insert(name.to_string(), score);
        }
        self
    }

    /// Apply one scores file; `origin` names it in errors.
    pub fn layer(mut self, origin: &str, file: &ScoreFile) -> Self {
        for (name, def) in &file.composites {
            self = self.composite(origin, name, def);
        }
        for (name, score) in &file.scores {
            self = self.score(origin, name, *score);
        }
        for (name, action) in &file.force_actions {
            if crate::valid_symbol(name) {
                self.policy.force.insert(name.clone(), *action);
            } else {
                self.errors.push(PolicyError::BadName { origin: origin.into(), name: name.clone() });
            }
        }
        self
    }

    fn composite(mut self, origin: &str, name: &str, def: &CompositeDef) -> Self {
        let expr = match Expr::parse(&def.expression) {
            Ok(e) => e,
            Err(source) => {
                let (origin, name) = (origin.into(), name.into());
                self.errors.push(PolicyError::BadExpression { origin, name, source });
                return self;
            }
        };
        if let Some(score) = def.score {
            self = self.score(origin, name, score);
        }
        let c = Composite {
            name: name.to_string(),
            expr,
            removal: def.removal,
            description: def.description.clone(),
        };
        match self.policy.composites.iter_mut().find(|c| c.name == name) {
            Some(existing) => *existing = c,
            None => self.policy.composites.push(c),
        }
        self
    }

    pub fn thresholds(mut self, t: Thresholds) -> Self {
        for (name, v) in [("tag", t.tag), ("quarantine", t.quarantine), ("reject", t.reject)] {
            if v.is_some_and(|v| !v.is_finite()) {
                self.errors.push(PolicyError::BadThreshold { name });
            }
        }
        self.policy.thresholds = t;
        self
    }

    /// The policy, or the first error met.
    pub fn build(self) -> Result<Policy, PolicyError> {
        match self.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(self.policy),
        }
    }
}
