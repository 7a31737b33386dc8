//! From findings to a verdict: merge, apply composites, score, pick the action.

use crate::Finding;
use crate::policy::{Action, Policy, Removal};
use std::collections::{BTreeMap, HashSet};

/// Longest reason kept per symbol (several findings of one symbol have their reasons joined).
const MAX_REASON: usize = 512;

/// One symbol in a verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredSymbol {
    pub name: String,
    pub score: f64,
    pub reason: String,
}

/// The outcome for one message: total score, action, and every symbol that contributed (or was seen).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub action: Action,
    /// Highest score first, then by name.
    pub symbols: Vec<ScoredSymbol>,
}

impl Verdict {
    pub fn has(&self, symbol: &str) -> bool {
        self.symbols.iter().any(|s| s.name == symbol)
    }
}

/// Score `findings` under `policy`. Unknown symbols score 0 but are still listed, so an operator
/// sees every check's opinion. The action is the thresholds' action, raised (never lowered) by any
/// forced action of a symbol present (order: accept, tag, quarantine, tempfail, reject).
pub fn decide(findings: &[Finding], policy: &Policy) -> Verdict {
    let mut present: BTreeMap<String, String> = BTreeMap::new();
    for f in findings {
        let reason = present.entry(f.symbol.clone()).or_default();
        if reason.len() < MAX_REASON {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&f.reason);
            reason.truncate(floor(reason, MAX_REASON));
        }
    }
    let (matched, zeroed) = apply_composites(policy, &mut present);
    let mut symbols: Vec<ScoredSymbol> = present
        .into_iter()
        .map(|(name, reason)| {
            let score = if zeroed.contains(&name) { 0.0 } else { policy.score(&name) };
            let reason = matched.get(&name).cloned().unwrap_or(reason);
            ScoredSymbol { name, score, reason }
        })
        .collect();
    symbols.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    let score = symbols.iter().map(|s| s.score).sum::<f64>();
    let forced = symbols.iter().filter_map(|s| policy.force.get(&s.name)).copied().max();
    let action = policy.thresholds.action(score).max(forced.unwrap_or(Action::Accept));
    Verdict { score, action, symbols }
}

/// Add the composites that hold and remove (or zero) what they consumed. Composites see every symbol
/// present before any removal, and may use each other: they are evaluated until none is added (at
/// most once per composite). Returns each matched composite's reason, and the symbols to score 0.
fn apply_composites(
    policy: &Policy,
    present: &mut BTreeMap<String, String>,
) -> (BTreeMap<String, String>, HashSet<String>) {
    let mut matched: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..=policy.composites.len() {
        let names: HashSet<&str> =
            present.keys().map(String::as_str).chain(matched.keys().map(String::as_str)).collect();
        let new: Vec<(String, String)> = policy
            .composites
            .iter()
            .filter(|c| !matched.contains_key(&c.name) && c.expr.eval(&names))
            .map(|c| (c.name.clone(), composite_reason(c, &names)))
            .collect();
        if new.is_empty() {
            break;
        }
        matched.extend(new);
    }
    let mut removed = HashSet::new();
    let mut zeroed = HashSet::new();
    for c in policy.composites.iter().filter(|c| matched.contains_key(&c.name)) {
        for s in c.expr.positive_symbols() {
            match c.removal {
                Removal::Remove => removed.insert(s.to_string()),
                Removal::RemoveWeight => zeroed.insert(s.to_string()),
                Removal::Leave => false,
            };
        }
    }
    present.retain(|name, _| !removed.contains(name) || matched.contains_key(name));
    for (name, reason) in &matched {
        present.insert(name.clone(), reason.clone());
    }
    (matched, zeroed)
}

fn composite_reason(c: &crate::Composite, names: &HashSet<&str>) -> String {
    let mut used: Vec<&str> = c.expr.positive_symbols().into_iter().filter(|s| names.contains(s)).collect();
    used.sort_unstable();
    used.dedup();
    let what = if c.description.is_empty() { "composite" } else { c.description.as_str() };
    format!("{what} ({})", used.join(" & "))
}

fn floor(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PolicyBuilder, ScoreFile, Thresholds};

    fn policy(toml_text: &str, t: Thresholds) -> Policy {
        let file: ScoreFile = toml::from_str(toml_text).unwrap();
        PolicyBuilder::default().layer("test", &file).thresholds(t).build().unwrap()
    }

    fn defaults() -> Thresholds {
        Thresholds { tag: Some(4.0), quarantine: Some(8.0), reject: None }
    }

    fn f(s: &str) -> Finding {
        Finding::new(s, format!("saw {s}"))
    }

    #[test]
    fn scores_sum_and_unknown_symbols_are_listed_at_zero() {
        let p = policy("[scores]\nA = 2.5\nB = 1.0\n", defaults());
        let v = decide(&[f("A"), f("B"), f("NEW"), f("A")], &p);
        assert_eq!(v.score, 3.5);
        assert_eq!(v.action, Action::Accept);
        let names: Vec<&str> = v.symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["A", "B", "NEW"]);
        assert_eq!(v.symbols[0].reason, "saw A; saw A");
        assert_eq!(v.symbols[2].score, 0.0);
    }

    #[test]
    fn thresholds_pick_the_highest_reached_and_can_be_off() {
        let t = Thresholds { tag: Some(4.0), quarantine: Some(8.0), reject: Some(15.0) };
        assert_eq!(t.action(3.9), Action::Accept);
        assert_eq!(t.action(4.0), Action::Tag);
        assert_eq!(t.action(8.0), Action::Quarantine);
        assert_eq!(t.action(1000.0), Action::Reject);
        let off = Thresholds { tag: None, quarantine: Some(8.0), reject: None };
        assert_eq!(off.action(5.0), Action::Accept);
        assert_eq!(off.action(1000.0), Action::Quarantine);
        assert_eq!(Thresholds::default().action(1e9), Action::Accept);
        assert_eq!(off.lowest(), Some(8.0));
    }

    #[test]
    fn composites_add_their_symbol_and_consume_the_others() {
        let p = policy(
            r#"
[scores]
SPF_FAIL = 2.0
DKIM_ALLOW = -1.0
A = 1.0
B = 1.0
C = 1.0
[composites.FORGED]
expression = "SPF_FAIL & !DKIM_ALLOW"
score = 6.0
[composites.ABC]
expression = "(A | B) & C"
score = 3.0
removal = "leave"
[composites.ON_FORGED]
expression = "FORGED & C"
score = 1.0
removal = "remove_weight"
"#,
            defaults(),
        );
        let v = decide(&[f("SPF_FAIL"), f("C"), f("A")], &p);
        assert!(v.has("FORGED") && !v.has("SPF_FAIL"), "{v:?}");
        assert!(v.has("ABC") && v.has("A") && v.has("ON_FORGED"));
        let c = v.symbols.iter().find(|s| s.name == "C").unwrap();
        assert_eq!(c.score, 0.0, "remove_weight keeps C listed at 0");
        // FORGED 6 (kept although ON_FORGED consumed it with remove_weight: 0), ABC 3, A 1, ON_FORGED 1.
        assert_eq!(v.score, 0.0 + 3.0 + 1.0 + 1.0);
        assert_eq!(v.action, Action::Tag);
        let v = decide(&[f("SPF_FAIL"), f("DKIM_ALLOW")], &p);
        assert!(!v.has("FORGED") && v.has("SPF_FAIL"));
        assert_eq!(v.score, 1.0);
    }

    #[test]
    fn forced_actions_only_raise() {
        let p = policy(
            "[scores]\nSAFE = -100.0\n[force_actions]\nDEADLINE_EXCEEDED = \"tempfail\"\n",
            defaults(),
        );
        let v = decide(&[f("DEADLINE_EXCEEDED"), f("SAFE")], &p);
        assert_eq!(v.action, Action::Tempfail);
        let p = policy("[scores]\nX = 9.0\n[force_actions]\nX = \"tag\"\n", defaults());
        assert_eq!(decide(&[f("X")], &p).action, Action::Quarantine);
    }

    #[test]
    fn later_layers_override_and_errors_name_the_origin() {
        let base: ScoreFile = toml::from_str("[scores]\nA = 1.0\n").unwrap();
        let local: ScoreFile = toml::from_str("[scores]\nA = 5.0\n").unwrap();
        let p = PolicyBuilder::default().layer("default", &base).layer("local", &local).build().unwrap();
        assert_eq!(p.score("A"), 5.0);
        let bad: ScoreFile = toml::from_str("[composites.X]\nexpression = \"A &\"\n").unwrap();
        let err = PolicyBuilder::default().layer("local/x.toml", &bad).build().unwrap_err();
        assert!(err.to_string().contains("local/x.toml") && err.to_string().contains("`X`"), "{err}");
        let nan = PolicyBuilder::default().score("f", "A", f64::NAN).build();
        assert!(nan.is_err());
        assert!(toml::from_str::<ScoreFile>("[scores]\nA = 1.0\n[typo]\n").is_err());
    }
}
