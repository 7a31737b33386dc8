//! Content rules from the rules files: header, body, raw and URL regular expressions, compiled once.
//!
//! The `regex` crate matches in time linear in the text (no backtracking), compiled programs are
//! bounded by [`REGEX_SIZE_LIMIT`], and the texts are bounded by the message limits, so a rule cannot
//! be turned into a denial of service by a 100 kB subject.

use crate::rules_dir::{RuleDef, RuleKind, RulesError};
use crate::{Analyzer, Context};
use message::MessageView;
use regex::RegexBuilder;
use regex::bytes::RegexBuilder as BytesRegexBuilder;
use verdict::Finding;

/// Largest compiled program of one rule (bytes), and of its lazy DFA cache.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
const DFA_SIZE_LIMIT: usize = 2 << 20;

enum Matcher {
    Text(regex::Regex),
    Bytes(regex::bytes::Regex),
}

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
    let err = |e: regex::Error| RulesError::Rule {
        origin: origin.to_string(),
        name: r.name.clone(),
        message: e.to_string(),
    };
    let matcher = if r.kind == RuleKind::Raw {
        Matcher::Bytes(
            BytesRegexBuilder::new(&r.pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(DFA_SIZE_LIMIT)
                .build()
                .map_err(err)?,
        )
    } else {
        Matcher::Text(
            RegexBuilder::new(&r.pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(DFA_SIZE_LIMIT)
                .build()
                .map_err(err)?,
        )
    };
    if r.kind != RuleKind::Header && r.header.is_some() {
        let message = "`header` is only for rules of type \"header\"".into();
        return Err(RulesError::Rule { origin: origin.to_string(), name: r.name.clone(), message });
    }
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
        match (&self.matcher, self.kind) {
            (Matcher::Bytes(re), _) => re.is_match(&msg.raw_head).then(|| "raw message".to_string()),
            (Matcher::Text(re), RuleKind::Header) => self.header_match(re, msg),
            (Matcher::Text(re), RuleKind::Body) => msg
                .texts
                .iter()
                .find(|t| re.is_match(&t.text))
                .map(|t| format!("text part {}", part(&t.path))),
            (Matcher::Text(re), _) => {
                msg.urls.iter().any(|u| re.is_match(&u.url)).then(|| "a URL".to_string())
            }
        }
    }

    fn header_match(&self, re: &regex::Regex, msg: &MessageView) -> Option<String> {
        match &self.header {
            Some(name) => msg.header_all(name).any(|h| re.is_match(&h.decoded)).then(|| format!("{name}:")),
            None => msg
                .headers
                .iter()
                .find(|h| re.is_match(&format!("{}: {}", h.name, h.decoded)))
                .map(|h| format!("{}:", super::headers::quote(&h.name))),
        }
    }
}

fn part(path: &str) -> &str {
    if path.is_empty() { "message" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: RuleKind, pattern: &str) -> (String, RuleDef) {
        let r = RuleDef {
            name: "R".into(),
            kind,
            header: None,
            pattern: pattern.into(),
            weight: 1.0,
            description: String::new(),
        };
        ("t.toml".into(), r)
    }

    #[test]
    fn oversized_and_invalid_patterns_are_refused_with_their_origin() {
        let err = RulesAnalyzer::compile(&[def(RuleKind::Body, "(a")]).err().unwrap().to_string();
        assert!(err.contains("t.toml") && err.contains("`R`"), "{err}");
        let huge = RulesAnalyzer::compile(&[def(RuleKind::Body, "\\w{1000}\\w{1000}\\w{1000}")]);
        assert!(huge.is_err(), "compiled size is bounded");
    }

    #[test]
    fn a_hundred_kilobyte_subject_is_matched_in_one_pass() {
        let rules = RulesAnalyzer::compile(&[(
            "t".into(),
            RuleDef {
                name: "NESTED".into(),
                kind: RuleKind::Header,
                header: Some("Subject".into()),
                pattern: "(a+)+$b".into(),
                weight: 1.0,
                description: String::new(),
            },
        )])
        .unwrap();
        let raw = format!("Subject: {}!\r\n\r\nx", "a".repeat(100_000));
        let msg = message::parse(raw.as_bytes(), &Default::default());
        let mut out = Vec::new();
        rules.analyze(&msg, &Context::default(), &mut out);
        assert!(out.is_empty());
    }
}
