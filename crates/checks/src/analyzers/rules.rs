//! Content rules from the rules files: header, body, raw and URL regular expressions, compiled once.
//!
//! Patterns are `regex` crate syntax, matched in time linear in the text (no backtracking) by a
//! [`matcher::Matcher`], which builds only what "does it match" needs. Compiled automata are bounded
//! by [`REGEX_SIZE_LIMIT`], and the texts by the message limits, so a rule cannot be turned into a
//! denial of service by a 100 kB subject.

mod matcher;

use crate::rules_dir::{RuleDef, RuleKind, RulesError};
use crate::{Analyzer, Context};
use matcher::Matcher;
use message::MessageView;
use verdict::Finding;

/// Largest compiled program of one rule (bytes), and of its lazy DFA cache.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 2 << 20;

struct Rule {
    name: String,
    kind: RuleKind,
    header: Option<String>,
    description: String,
    matcher: Matcher,
}

/// All content rules, compiled.
pub struct RulesAnalyzer {
    rules: Vec<Rule>,
}

impl RulesAnalyzer {
    /// Compile `rules` (origin, definition); an invalid or oversized pattern names its file and rule.
    pub fn compile(rules: &[(String, RuleDef)]) -> Result<Self, RulesError> {
        let compiled = rules.iter().map(|(origin, r)| compile_one(origin, r)).collect::<Result<_, _>>()?;
        Ok(RulesAnalyzer { rules: compiled })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn compile_one(origin: &str, r: &RuleDef) -> Result<Rule, RulesError> {
    let rule_error =
        |message: String| RulesError::Rule { origin: origin.to_string(), name: r.name.clone(), message };
    if r.kind != RuleKind::Header && r.header.is_some() {
        return Err(rule_error("`header` is only for rules of type \"header\"".into()));
    }
    let matcher =
        Matcher::new(&r.pattern, REGEX_SIZE_LIMIT, DFA_SIZE_LIMIT).map_err(|e| rule_error(e.to_string()))?;
    Ok(Rule {
        name: r.name.clone(),
        kind: r.kind,
        header: r.header.clone(),
        description: r.description.clone(),
        matcher,
    })
}

impl Analyzer for RulesAnalyzer {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn analyze(&self, msg: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        for rule in &self.rules {
            if let Some(where_) = rule.matches(msg) {
                let what =
                    if rule.description.is_empty() { "rule matched" } else { rule.description.as_str() };
                out.push(Finding::new(rule.name.clone(), format!("{what} ({where_})")));
            }
        }
    }
}

impl Rule {
    /// Where the rule matched, if it did.
    fn matches(&self, msg: &MessageView) -> Option<String> {
        let re = &self.matcher;
        match self.kind {
            RuleKind::Raw => re.is_match(&msg.raw_head).then(|| "raw message".to_string()),
            RuleKind::Header => self.header_match(msg),
            RuleKind::Body => msg
                .texts
                .iter()
                .find(|t| re.is_match(t.text.as_bytes()))
                .map(|t| format!("text part {}", part(&t.path))),
            RuleKind::Url => {
                msg.urls.iter().any(|u| re.is_match(u.url.as_bytes())).then(|| "a URL".to_string())
            }
        }
    }

    fn header_match(&self, msg: &MessageView) -> Option<String> {
        let re = &self.matcher;
        match &self.header {
            Some(name) => {
                msg.header_all(name).any(|h| re.is_match(h.decoded.as_bytes())).then(|| format!("{name}:"))
            }
            None => msg
                .headers
                .iter()
                .find(|h| re.is_match(format!("{}: {}", h.name, h.decoded).as_bytes()))
                .map(|h| format!("{}:", super::headers::quote(&h.name))),
        }
    }
}

fn part(path: &str) -> &str {
    if path.is_empty() { "message" } else { path }
}

#[cfg(test)]
mod tests;
