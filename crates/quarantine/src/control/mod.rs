//! The mail plane's control protocol: the narrow local interface through which a portal running in
//! its own process (`serve --role portal`, its own user, no access to the spool) shows, releases,
//! deletes and learns held mail. Nothing else travels here: no search, no accounts, no settings.
//!
//! One exchange per connection: the portal sends one request line, the mail plane answers one line
//! and closes. A line is one JSON object and `\n`:
//!
//! ```text
//! {"op":"release","caller":{"account":{"name":"alice","token_id":null}},"item":"<22 chars>","learn_ham":false,"safelist_sender":false}
//! {"outcome":"done"}
//! {"op":"show","caller":{"digest_link":{"token":"..."}},"item":"<22 chars>"}
//! {"outcome":"message","base64":"..."}
//! {"outcome":"error","kind":"not_found","message":"no such quarantine item"}
//! ```
//!
//! This module is the protocol alone, without I/O: the types, their encoding, and the bounded line
//! framing both ends use ([`frame`], generic over the stream). [`server`] answers requests with the
//! [`Quarantine`](crate::Quarantine) of the mail plane; [`client`] is the portal's end.
//!
//! # Security
//! The portal is not trusted with authorization: a request names the caller, never its role or
//! addresses. The mail plane looks the account up again in the store (an unknown or disabled account
//! is refused) and runs the same operation a local caller would, which authorizes against the item's
//! owners and writes the tracking event and the audit record with that account as the actor. A digest
//! link's caller is the signed token itself, verified again (signature, expiry, its item and action).
//! Requests are bounded (`control.max_request_size`), parsed strictly (unknown fields refused), and
//! each exchange has a deadline (`control.timeout`). Answers are bounded by [`max_response_len`],
//! derived from `smtp.max_message_size` (the largest answer carries a held message): the mail plane
//! sends no longer answer, and the portal reads none.

pub mod client;
pub mod frame;
pub mod server;

use crate::reasons::NOT_AN_ACCOUNT;
use crate::{ActionOutcome, QuarantineError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Who asks the mail plane to act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Caller {
    /// A portal account, by name, through a session (`token_id` none) or an API token (its id).
    Account { name: String, token_id: Option<String> },
    /// A digest link: the signed token itself.
    DigestLink { token: String },
}

impl Caller {
    /// The caller a portal actor is on the socket: an account by name (a session, or an API token by
    /// its id). A digest link's actor does not carry its token: [`crate::Quarantine::redeem`] sends
    /// the token itself.
    pub fn of(actor: &crate::Actor) -> Result<Caller, QuarantineError> {
        match &actor.via {
            crate::Via::Portal => Ok(Caller::Account { name: actor.name.clone(), token_id: None }),
            crate::Via::ApiToken(id) => {
                Ok(Caller::Account { name: actor.name.clone(), token_id: Some(id.clone()) })
            }
            _ => Err(QuarantineError::Forbidden(NOT_AN_ACCOUNT)),
        }
    }
}

/// What the portal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// The held message's bytes (envelope excluded), for showing and downloading.
    Show,
    /// Release to delivery (with `learn_ham`, `safelist_sender`).
    Release,
    Delete,
    LearnSpam,
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: Op,
    pub caller: Caller,
    /// The item's id (checked strictly by the mail plane, never a file name).
    pub item: String,
    #[serde(default)]
    pub learn_ham: bool,
    #[serde(default)]
    pub safelist_sender: bool,
}

/// Why the mail plane refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Unknown item, or one the caller may not see (the same answer).
    NotFound,
    /// The caller may see the item but not do this to it, or the caller is not a valid account.
    Forbidden,
    /// The request was malformed or too large.
    BadRequest,
    /// The mail plane could not do it now (its store, its spool).
    Failed,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Done,
    AlreadyDone {
        status: String,
        by: Option<String>,
        at_ms: Option<i64>,
    },
    /// The held message (base64 of its bytes).
    Message {
        base64: String,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

impl Response {
    /// The answer for what a quarantine operation returned.
    pub fn of(result: Result<ActionOutcome, QuarantineError>) -> Response {
        match result {
            Ok(ActionOutcome::Done) => Response::Done,
            Ok(ActionOutcome::AlreadyDone { status, by, at_ms }) => {
                let by = by.map(|b| crate::bounded(&b, MAX_ANSWER_TEXT));
                Response::AlreadyDone { status: status.to_string(), by, at_ms }
            }
            Err(e) => Response::error(&e),
        }
    }

    /// The held message's bytes.
    pub fn message(bytes: &[u8]) -> Response {
        Response::Message { base64: STANDARD.encode(bytes) }
    }

    /// The answer for a failure; internal causes stay in the mail plane's log.
    pub fn error(e: &QuarantineError) -> Response {
        let (kind, message) = match e {
            QuarantineError::NotFound | QuarantineError::MissingFile => {
                (ErrorKind::NotFound, QuarantineError::NotFound.to_string())
            }
            QuarantineError::Forbidden(why) => (ErrorKind::Forbidden, (*why).to_string()),
            QuarantineError::BadQuery(why) => (ErrorKind::BadRequest, crate::bounded(why, MAX_ANSWER_TEXT)),
            other => {
                tracing::error!(error = %other, "a control request failed");
                (ErrorKind::Failed, "the mail plane could not carry this out; see its log".into())
            }
        };
        Response::Error { kind, message }
    }

    /// What an action's answer means to the portal.
    pub fn into_outcome(self) -> Result<ActionOutcome, QuarantineError> {
        match self {
            Response::Done => Ok(ActionOutcome::Done),
            Response::AlreadyDone { status, by, at_ms } => {
                let status = crate::Status::parse(&status)
                    .ok_or_else(|| unexpected(&format!("unknown status `{}`", status.escape_default())))?;
                Ok(ActionOutcome::AlreadyDone { status: status.as_str(), by, at_ms })
            }
            Response::Error { kind, message } => Err(error_of(kind, &message)),
            Response::Message { .. } => Err(unexpected("a message where an outcome was due")),
        }
    }

    /// What a `show` answer means to the portal.
    pub fn into_message(self) -> Result<Vec<u8>, QuarantineError> {
        match self {
            Response::Message { base64 } => {
                STANDARD.decode(base64.as_bytes()).map_err(|_| unexpected("a message that is not base64"))
            }
            Response::Error { kind, message } => Err(error_of(kind, &message)),
            _ => Err(unexpected("an outcome where a message was due")),
        }
    }
}

/// What the portal says for a refusal whose words are not one of [`crate::reasons`].
const REFUSED_ELSEWHERE: &str = "refused by the mail plane";

fn error_of(kind: ErrorKind, message: &str) -> QuarantineError {
    match kind {
        ErrorKind::NotFound => QuarantineError::NotFound,
        ErrorKind::Forbidden => {
            QuarantineError::Forbidden(crate::reasons::known(message).unwrap_or(REFUSED_ELSEWHERE))
        }
        ErrorKind::BadRequest => QuarantineError::BadQuery(crate::bounded(message, 200)),
        ErrorKind::Failed => QuarantineError::MailPlane(crate::bounded(message, 200)),
    }
}

fn unexpected(what: &str) -> QuarantineError {
    QuarantineError::MailPlane(format!("the mail plane's answer was not understood: {what}"))
}

/// Room for the header fields this gateway puts in front of a message it holds (`Received:`,
/// `Authentication-Results:`, the verdict's fields), beyond `smtp.max_message_size`. Each is bounded
/// to a few KiB (`Received:` by the longest SMTP line, 64 KiB at most).
pub const MAX_GATEWAY_HEADERS: u64 = 256 << 10;

/// Longest free text an answer carries: an error message, who changed an item (the rest is cut;
/// the mail plane's log has the cause of an error).
pub const MAX_ANSWER_TEXT: usize = 512;

/// Longest answer that carries no message: an outcome (a status, who, a time) or an error, its text
/// at most [`MAX_ANSWER_TEXT`] with each byte at most doubled by JSON's escapes (control characters
/// never reach it), with the field names.
const MAX_SMALL_ANSWER: u64 = 4 << 10;

/// The bytes of a `message` answer around its base64: `{"outcome":"message","base64":"` and `"}`.
const MESSAGE_FRAMING: u64 = 33;

/// The length of a `message` answer (without its `\n`) carrying `content_len` bytes: base64 takes 4
/// bytes for every 3, the last group padded.
fn message_answer_len(content_len: u64) -> u64 {
    content_len.div_ceil(3).saturating_mul(4).saturating_add(MESSAGE_FRAMING)
}

/// Longest answer line (without its `\n`) on a gateway whose largest message is `max_message_size`
/// (`smtp.max_message_size`): a held message, the gateway's own header fields included, in base64
/// with its framing, or any other answer, whichever is longer. Both ends derive it from the same
/// setting, so the mail plane never sends what the portal would refuse to read.
pub fn max_response_len(max_message_size: u64) -> usize {
    let held = max_message_size.saturating_add(MAX_GATEWAY_HEADERS);
    usize::try_from(message_answer_len(held).max(MAX_SMALL_ANSWER)).unwrap_or(usize::MAX)
}

/// Why a line is not a request or an answer.
#[derive(Debug, thiserror::Error)]
#[error("not a valid control line: {0}")]
pub struct DecodeError(String);

/// A message as one line: JSON and `\n`.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // Our own types always serialize.
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

/// A line (without its `\n`) as a request.
pub fn decode_request(line: &[u8]) -> Result<Request, DecodeError> {
    serde_json::from_slice(line).map_err(|e| DecodeError(e.to_string()))
}

/// A line (without its `\n`) as an answer.
pub fn decode_response(line: &[u8]) -> Result<Response, DecodeError> {
    serde_json::from_slice(line).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests;
