//! Symbols to score: per-symbol scores, composites, action thresholds, the action, and the headers that
//! explain the verdict.
//!
//! Owns: the [`Policy`] an operator configures (scores, composite symbol expressions, thresholds,
//! forced actions), [`decide`] (findings in, [`Verdict`] out), and rendering the verdict as header
//! fields ([`render`]). Must not touch: I/O, message parsing, the checks themselves. Analyzers say what
//! they saw as [`Finding`]s; only configuration says what that is worth (STYLE.md rule 5).
//!
//! # Security
//! Symbol names come from code and configuration; reasons may quote the message (a `From:` display
//! name, a subject) and so are attacker text. Reasons are never interpreted, and everything rendered
//! into a header field goes through [`render::sanitize`]: control characters (CR and LF included) and
//! non-ASCII become spaces or `?`, length is bounded, and long values are folded at spaces. The policy
//! is the operator's, but it is still bounded: composite expressions have a nesting limit and are
//! evaluated without recursion past it, and scores must be finite.

#![forbid(unsafe_code)]

mod decide;
mod expr;
mod policy;
pub mod render;

pub use decide::{ScoredSymbol, Verdict, decide};
pub use expr::{Expr, ExprError};
pub use policy::{
    Action, Composite, CompositeDef, Policy, PolicyBuilder, PolicyError, Removal, ScoreFile, Thresholds,
};

/// What an analyzer saw: a symbol (`SPF_FAIL`, `GTUBE`) and why, in words an operator can read; and,
/// when it is about one attachment, which one (so acting on it, as removing it, needs no second look).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub symbol: String,
    pub reason: String,
    /// The MIME part the finding is about, if it is about one.
    pub part: Option<Part>,
}

/// A MIME part of the message a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its path in the message view (`2`, `1.3`).
    pub path: String,
    /// Its name as shown to people (sanitised; attacker text).
    pub name: String,
}

impl Finding {
    pub fn new(symbol: impl Into<String>, reason: impl Into<String>) -> Self {
        Finding { symbol: symbol.into(), reason: reason.into(), part: None }
    }

    /// The same finding, about `part`.
    pub fn about(mut self, part: Part) -> Self {
        self.part = Some(part);
        self
    }
}

/// Whether `name` can be a symbol: 1 to 64 of `A-Z a-z 0-9 _`.
pub fn valid_symbol(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
