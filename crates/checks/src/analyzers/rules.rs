//! Content rules from the rules files: header, body, raw and URL regular expressions, compiled once.
//!
//! Patterns are `regex` crate syntax, matched in time linear in the text (no backtracking) by a
//! [`matcher::Matcher`], which builds only what "does it match" needs. Body rules, many of them
//! reading every text part, are [`gate`]d: a rule runs on a text only if the text holds one of the
//! literals its matches begin (or end) with, all rules' literals found in one pass. Raw rules are few
//! and read the message once: each finds its own literals (the `regex` crate's prefilter). Compiled
//! automata are bounded by [`REGEX_SIZE_LIMIT`], and the texts by the message limits, so a rule
//! cannot be turned into a denial of service by a 100 kB subject.

mod gate;
mod matcher;

use crate::rules_dir::{RuleDef, RuleKind, RulesError};
use crate::{Analyzer, Context};
use gate::{Gates, Opened};
use matcher::{Compiler, Matcher};
use message::MessageView;
use std::cell::RefCell;
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
    body: BodyRules,
}

/// The body rules: which of the analyzer's rules they are, and their gates.
struct BodyRules {
    members: Vec<usize>,
    gates: Gates,
}

thread_local! {
    /// [`Gates::open`]'s buffers, reused from message to message by the thread judging them.
    static OPENED: RefCell<Opened> = RefCell::new(Opened::default());
}

impl RulesAnalyzer {
    /// Compile `rules` (origin, definition); an invalid or oversized pattern names its file and rule.
    pub fn compile(rules: &[(String, RuleDef)]) -> Result<Self, RulesError> {
        let compiler = Compiler::new(REGEX_SIZE_LIMIT, DFA_SIZE_LIMIT);
        let mut rules: Vec<Rule> =
            rules.iter().map(|(origin, r)| compile_one(&compiler, origin, r)).collect::<Result<_, _>>()?;
        let members: Vec<usize> = (0..rules.len()).filter(|&i| rules[i].kind == RuleKind::Body).collect();
        // The literals are the gates' from here on: taken, not copied.
        let literals: Vec<_> = members.iter().map(|&i| (i, rules[i].matcher.literals.take())).collect();
        Ok(RulesAnalyzer { rules, body: BodyRules { members, gates: Gates::new(literals) } })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl BodyRules {
    /// Run the body rules on `text` (where their gates open, those not yet matched), noting where
    /// each matched first.
    fn run(
        &self,
        rules: &[Rule],
        text: &[u8],
        place: &dyn Fn() -> String,
        opened: &mut Opened,
        hits: &mut [Option<String>],
    ) {
        if self.members.iter().all(|&i| hits[i].is_some()) {
            return;
        }
        self.gates.open(text, rules.len(), opened);
        for &i in &self.members {
            if hits[i].is_some() {
                continue;
            }
            let m = &rules[i].matcher;
            let found = if opened.anywhere(i) {
                m.is_match(text)
            } else {
                opened.starts(i).any(|at| m.is_match_at(text, at))
            };
            if found {
                hits[i] = Some(place());
            }
        }
    }
}

fn compile_one(compiler: &Compiler, origin: &str, r: &RuleDef) -> Result<Rule, RulesError> {
    let rule_error =
        |message: String| RulesError::Rule { origin: origin.to_string(), name: r.name.clone(), message };
    if r.kind != RuleKind::Header && r.header.is_some() {
        return Err(rule_error("`header` is only for rules of type \"header\"".into()));
    }
    let matcher =
        compiler.compile(&r.pattern, r.kind == RuleKind::Body).map_err(|e| rule_error(e.to_string()))?;
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
        // Where each rule matched first, if it did.
        let mut hits: Vec<Option<String>> = vec![None; self.rules.len()];
        OPENED.with_borrow_mut(|opened| {
            for t in &msg.texts {
                let place = || format!("text part {}", part(&t.path));
                self.body.run(&self.rules, t.text.as_bytes(), &place, opened, &mut hits);
            }
        });
        for (rule, hit) in self.rules.iter().zip(hits.iter_mut()) {
            if rule.kind != RuleKind::Body {
                *hit = rule.matches(msg);
            }
        }
        for (rule, hit) in self.rules.iter().zip(hits) {
            if let Some(where_) = hit {
                let what =
                    if rule.description.is_empty() { "rule matched" } else { rule.description.as_str() };
                out.push(Finding::new(rule.name.clone(), format!("{what} ({where_})")));
            }
        }
    }
}

impl Rule {
    /// Where a raw, header or URL rule matched, if it did.
    fn matches(&self, msg: &MessageView) -> Option<String> {
        let re = &self.matcher;
        match self.kind {
            RuleKind::Header => self.header_match(msg),
            RuleKind::Url => {
                msg.urls.iter().any(|u| re.is_match(u.url.as_bytes())).then(|| "a URL".to_string())
            }
            RuleKind::Raw => re.is_match(&msg.raw_head).then(|| "raw message".to_string()),
            // Body rules run behind their gates ([`BodyRules::run`]), never here.
            RuleKind::Body => None,
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

impl RulesAnalyzer {
    /// Whether rule `index` matches `text`, behind its gate if it has one (for tests).
    #[cfg(test)]
    fn rule_matches(&self, index: usize, text: &[u8]) -> bool {
        let mut hits = vec![None; self.rules.len()];
        let mut scratch = Opened::default();
        if self.body.members.contains(&index) {
            self.body.run(&self.rules, text, &String::new, &mut scratch, &mut hits);
            return hits[index].is_some();
        }
        self.rules[index].matcher.is_match(text)
    }
}

fn part(path: &str) -> &str {
    if path.is_empty() { "message" } else { path }
}

#[cfg(test)]
mod tests;
