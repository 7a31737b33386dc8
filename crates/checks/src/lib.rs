//! The analyzers that look at a message and say what they saw, and the engine that runs them.
//!
//! Owns: one analyzer per file under `analyzers/` (all with the [`Analyzer`] signature), the content
//! rules loaded from rules files ([`rules_dir`]), sender safelists and blocklists ([`SenderLists`]),
//! and the [`Engine`] that parses a message into its bounded view, runs the analyzers in a documented
//! order under a per-message deadline, and asks the policy for the verdict. Must not touch: the spool,
//! SMTP replies, SQL, or anything that acts on a verdict (the caller does).
//!
//! Network checks (SPF, DKIM, DMARC, DNS blocklists) and the classifier slot in as
//! [`AsyncAnalyzer`]s: they run after the synchronous analyzers, each under what is left of the
//! deadline, and their findings are scored with everything else.
//!
//! # Security
//! The message and the envelope are untrusted. Analyzers read only the bounded [`message::MessageView`]
//! (limits in `[verdict]`), never run anything, never build paths, SQL or markup from content, and
//! quote content in reasons only as data (the verdict headers sanitise it). Content rules are regular
//! expressions from the operator's rules files, compiled once with the `regex` crate (linear time, with
//! compiled-size limits), and matched only against bounded text. A check past the deadline is skipped
//! and leaves `DEADLINE_EXCEEDED`, so a slow check cannot hold a message indefinitely.

#![forbid(unsafe_code)]

pub mod analyzers;
pub mod auth_results;
mod context;
pub mod dns;
mod engine;
pub mod lists;
pub mod rules_dir;
pub mod sender_groups;

pub use analyzers::{Analyzer, AsyncAnalyzer, BoxFuture};
pub use context::Context;
pub use engine::{Engine, EngineError};
pub use lists::{SenderLists, StaticLists};
pub use verdict::{Action, Finding, Verdict};
