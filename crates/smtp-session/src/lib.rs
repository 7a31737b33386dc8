//! SMTP grammar and the server session state machine, with no I/O and no clock.
//!
//! Owns: command parsing, envelope address canonicalisation, DATA/BDAT framing, the session's states and
//! limits, and the one table of replies ([`replies`]). Must not touch: sockets, disk, DNS, time. The
//! driver (`smtp-server`) feeds bytes in and acts on [`Event`]s; it also applies deadlines, because this
//! crate has no clock ([`Session::deadline`] says which one applies).
//!
//! # Security
//! Every byte here comes from an unauthenticated client. Limits: command line length
//! (`max_line_length`, longer lines are discarded while they stream, never buffered), message size
//! (counted while content streams; nothing past the limit is passed on), recipients per message, errors
//! per session, messages per session. Only `<CRLF>.<CRLF>` ends DATA and bare CR or LF is refused in
//! commands and content (SMTP smuggling); input pipelined after STARTTLS is discarded (CVE-2011-0411);
//! addresses are canonicalised and relay tricks refused before any policy sees them, and shell and
//! expansion metacharacters never get into an accepted address.

#![forbid(unsafe_code)]

pub mod address;
pub mod command;
pub mod data;
mod reply;
mod session;

pub use address::{Address, AddressError};
pub use reply::{Reply, StatusCode, replies};
pub use session::{BodyType, Deadline, Decision, Event, Session, SessionConfig, Transaction};

#[cfg(test)]
mod session_tests;
