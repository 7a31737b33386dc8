//! Rules files: where they are read from, what they hold, and how `local/` overlays `default/`.
//!
//! A rules file is TOML with any of: `[[rule]]` content rules, `[scores]`, `[composites.NAME]` and
//! `[force_actions]` (the last three as in [`verdict::ScoreFile`]). Files are read in name order,
//! `default/` first, then `local/`. A local rule with the name of a shipped one replaces it; local
//! scores, composites and forced actions replace shipped ones of the same name. A rule's `weight` is
//! its symbol's score unless a `[scores]` entry of the same layer says otherwise.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use verdict::{Action, CompositeDef, PolicyBuilder, ScoreFile};

/// The shipped rules, built into the binary (the files in the repository's `rules/default/`).
pub const SHIPPED: &[(&str, &str)] = &[
    ("default/attachments.toml", include_str!("../../../rules/default/attachments.toml")),
    ("default/body.toml", include_str!("../../../rules/default/body.toml")),
    ("default/headers.toml", include_str!("../../../rules/default/headers.toml")),
    ("default/scores.toml", include_str!("../../../rules/default/scores.toml")),
    ("default/urls.toml", include_str!("../../../rules/default/urls.toml")),
];

/// Largest rules file read (they are the operator's, but a stray huge file should not be loaded).
const MAX_FILE: u64 = 4 << 20;

/// What a content rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// The decoded value of a header field (`header` names it; without it, every field as `Name: value`).
    Header,
    /// The decoded text of each text part (HTML rendered to text).
    Body,
    /// The raw message bytes (the first `max_text_size`).
    Raw,
    /// Each URL found in the text and HTML parts.
    Url,
}

/// One content rule as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// The symbol it emits.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RuleKind,
    /// For header rules: the field name (case-insensitive).
    #[serde(default)]
    pub header: Option<String>,
    /// A `regex` crate pattern; `(?i)` for case-insensitive matching.
    pub pattern: String,
    /// The symbol's score.
    #[serde(default)]
    pub weight: f64,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleDef>,
    scores: BTreeMap<String, f64>,
    composites: BTreeMap<String, CompositeDef>,
    force_actions: BTreeMap<String, Action>,
}

/// Why the rules could not be loaded; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read rules {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("rules file {origin} is larger than {MAX_FILE} bytes")]
    TooLarge { origin: String },
    #[error("invalid rules file {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("rules file {origin}: rule `{name}`: {message}")]
    Rule { origin: String, name: String, message: String },
    #[error(transparent)]
    Policy(#[from] verdict::PolicyError),
}

/// The content rules (by name, local ones having replaced shipped ones) and the policy builder with
/// every layer's scores applied.
pub struct Loaded {
    pub rules: Vec<(String, RuleDef)>,
    pub policy: PolicyBuilder,
}

/// Read the rules: `rules_dir` empty means the shipped rules plus `<data_dir>/rules/local`.
pub fn load(rules_dir: &Path, data_dir: &Path) -> Result<Loaded, RulesError> {
    let (default, local) = if rules_dir.as_os_str().is_empty() {
        let shipped = SHIPPED.iter().map(|(o, t)| (o.to_string(), t.to_string())).collect();
        (shipped, read_dir(&data_dir.join("rules/local"), false)?)
    } else {
        (read_dir(&rules_dir.join("default"), true)?, read_dir(&rules_dir.join("local"), false)?)
    };
    let mut loaded = Loaded { rules: Vec::new(), policy: PolicyBuilder::default() };
    for layer in [default, local] {
        apply_layer(&mut loaded, &layer)?;
    }
    Ok(loaded)
}

/// Apply one layer (all files of `default/` or of `local/`), in file name order.
pub fn apply_layer(loaded: &mut Loaded, files: &[(String, String)]) -> Result<(), RulesError> {
    let mut parsed = Vec::new();
    for (origin, text) in files {
        let f: RulesFile = toml::from_str(text)
            .map_err(|e| RulesError::Invalid { origin: origin.clone(), message: e.to_string() })?;
        parsed.push((origin, f));
    }
    let mut policy = std::mem::take(&mut loaded.policy);
    for (origin, f) in &parsed {
        for rule in &f.rule {
            if !verdict::valid_symbol(&rule.name) {
                let message = "not a symbol name (1 to 64 of A-Z, a-z, 0-9, _)".into();
                return Err(RulesError::Rule {
                    origin: origin.to_string(),
                    name: rule.name.clone(),
                    message,
                });
            }
            policy = policy.score(origin, &rule.name, rule.weight);
            match loaded.rules.iter_mut().find(|(_, r)| r.name == rule.name) {
                Some(slot) => *slot = (origin.to_string(), rule.clone()),
                None => loaded.rules.push((origin.to_string(), rule.clone())),
            }
        }
    }
    for (origin, f) in &parsed {
        let scores = ScoreFile {
            scores: f.scores.clone(),
            composites: f.composites.clone(),
            force_actions: f.force_actions.clone(),
        };
        policy = policy.layer(origin, &scores);
    }
    loaded.policy = policy;
    Ok(())
}

/// The `*.toml` files of a directory, by name. A missing directory is empty unless `required`.
fn read_dir(dir: &Path, required: bool) -> Result<Vec<(String, String)>, RulesError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Vec::new()),
        Err(source) => {
            return Err(RulesError::Read { path: dir.to_path_buf(), source });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let origin = p.display().to_string();
            let len =
                std::fs::metadata(&p).map_err(|source| RulesError::Read { path: p.clone(), source })?.len();
            if len > MAX_FILE {
                return Err(RulesError::TooLarge { origin });
            }
            let text =
                std::fs::read_to_string(&p).map_err(|source| RulesError::Read { path: p.clone(), source })?;
            Ok((origin, text))
        })
        .collect()
}
