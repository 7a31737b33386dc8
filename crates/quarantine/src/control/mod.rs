//! The mail plane's control protocol: the narrow local interface through which a portal running in
//! its own process (`serve --role portal`, its own user, no access to the spool) shows, releases,
//! deletes and learns held mail, and, for an administrator, lists the delivery queue, has it retried,
//! deletes a queued message and sends the digests now ([`crate::delivery_queue`]). Nothing else
//! travels here: no search, no accounts, no settings.
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
//! {"op":"queue_list","caller":{"account":{"name":"root","token_id":null}}}
//! {"outcome":"queue","total":1,"messages":[{"id":"...","sender":"a@b.example","pending":["c@our.test"],"more_pending":0,"attempts":1,"next_attempt_ms":0,"size":812}]}
//! {"op":"queue_delete","caller":{"account":{"name":"root","token_id":null}},"item":"<queue id>"}
//! {"op":"send_digests","caller":{"account":{"name":"root","token_id":null}}}
//! {"outcome":"digests","sent":2,"items":5}
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
//! owners and writes the tracking event and the audit record with that account as the actor. The
//! queue and digest operations are for an account the store has as an enabled admin, and nobody else
//! (a digest link never). A digest link's caller is the signed token itself, verified again
//! (signature, expiry, its item and action). Each operation takes exactly the fields it needs.
//! Requests are bounded (`control.max_request_size`), parsed strictly (unknown fields refused), and
//! each exchange has a deadline (`control.timeout`). Answers are bounded by [`max_response_len`],
//! derived from `smtp.max_message_size` (the largest answer carries a held message): the mail plane
//! sends no longer answer, and the portal reads none.

pub mod client;
pub mod frame;
pub mod server;

use crate::delivery_queue::{MAX_LISTED_RECIPIENTS, MAX_LISTED_TEXT, MAX_QUEUE_LISTED, QueueEntry};
use crate::reasons::NOT_AN_ACCOUNT;
use crate::{ActionOutcome, DigestReport, QuarantineError, QueueListing};
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
    /// The delivery queue's first messages and its total (admins).
    QueueList,
    /// Retry every deferred message now (admins).
    QueueRetry,
    /// Delete the queued message `item` names by its queue id (admins).
    QueueDelete,
    /// Send the digests now, as the schedule would (admins).
    SendDigests,
}

impl Op {
    /// Whether `item` names something: a quarantine item's id, or for [`Op::QueueDelete`] a queue id.
    fn names_one(self) -> bool {
        !matches!(self, Op::QueueList | Op::QueueRetry | Op::SendDigests)
    }
}

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub op: Op,
    pub caller: Caller,
    /// The quarantine item's id, or the queue id for [`Op::QueueDelete`] (checked strictly by the
    /// mail plane, never a file name); empty for the operations that name nothing.
    #[serde(default)]
    pub item: String,
    #[serde(default)]
    pub learn_ham: bool,
    #[serde(default)]
    pub safelist_sender: bool,
}

impl Request {
    /// A request for `op` by `caller` on `item` (empty for what names nothing) with no options.
    pub fn new(op: Op, caller: Caller, item: &str) -> Request {
        Request { op, caller, item: item.to_string(), learn_ham: false, safelist_sender: false }
    }

    /// Each operation takes what it needs and nothing else: an `item` when it names one, the
    /// release options for [`Op::Release`] alone.
    fn check(&self) -> Result<(), DecodeError> {
        if self.op.names_one() == self.item.is_empty() {
            let why =
                if self.item.is_empty() { "the operation names no item" } else { "an item it does not take" };
            return Err(DecodeError(why.into()));
        }
        if self.op != Op::Release && (self.learn_ham || self.safelist_sender) {
            return Err(DecodeError("release options on another operation".into()));
        }
        Ok(())
    }
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
    /// The delivery queue: its first messages and how many there are.
    Queue {
        total: u64,
        messages: Vec<QueueEntry>,
    },
    /// Digests sent now, and the items they listed.
    Digests {
        sent: u64,
        items: u64,
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

    /// The answer for an operation that returns nothing.
    pub fn of_unit(result: Result<(), QuarantineError>) -> Response {
        result.map_or_else(|e| Response::error(&e), |()| Response::Done)
    }

    /// The answer for a queue listing.
    pub fn of_listing(result: Result<QueueListing, QuarantineError>) -> Response {
        match result {
            Ok(l) => Response::Queue { total: l.total, messages: l.messages },
            Err(e) => Response::error(&e),
        }
    }

    /// The answer for a digest run.
    pub fn of_digests(result: Result<DigestReport, QuarantineError>) -> Response {
        match result {
            Ok(r) => Response::Digests { sent: r.sent as u64, items: r.items as u64 },
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
            other => Err(other.refusal("an outcome")),
        }
    }

    /// What a `show` answer means to the portal.
    pub fn into_message(self) -> Result<Vec<u8>, QuarantineError> {
        match self {
            Response::Message { base64 } => {
                STANDARD.decode(base64.as_bytes()).map_err(|_| unexpected("a message that is not base64"))
            }
            other => Err(other.refusal("a message")),
        }
    }

    /// What the answer to an operation that returns nothing means to the portal.
    pub fn into_done(self) -> Result<(), QuarantineError> {
        match self {
            Response::Done => Ok(()),
            other => Err(other.refusal("done")),
        }
    }

    /// What a `queue_list` answer means to the portal.
    pub fn into_listing(self) -> Result<QueueListing, QuarantineError> {
        match self {
            Response::Queue { messages, .. } if messages.len() > MAX_QUEUE_LISTED => {
                Err(unexpected("a listing longer than the protocol allows"))
            }
            Response::Queue { total, messages } => Ok(QueueListing { total, messages }),
            other => Err(other.refusal("a listing")),
        }
    }

    /// What a `send_digests` answer means to the portal.
    pub fn into_digests(self) -> Result<DigestReport, QuarantineError> {
        match self {
            Response::Digests { sent, items } => Ok(DigestReport {
                sent: usize::try_from(sent).unwrap_or(usize::MAX),
                items: usize::try_from(items).unwrap_or(usize::MAX),
            }),
            other => Err(other.refusal("a digest report")),
        }
    }

    /// The error an answer other than the one `due` is: the mail plane's own refusal, or an answer
    /// not understood.
    fn refusal(self, due: &str) -> QuarantineError {
        match self {
            Response::Error { kind, message } => error_of(kind, &message),
            _ => unexpected(&format!("another answer where {due} was due")),
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

/// Longest answer that carries neither a message nor a listing: an outcome (a status, who, a time),
/// a count of digests, or an error, its text at most [`MAX_ANSWER_TEXT`] with each byte at most
/// doubled by JSON's escapes (control characters never reach it), with the field names.
const MAX_SMALL_ANSWER: u64 = 4 << 10;

/// Bytes of one listed message besides its strings: field names, numbers, punctuation.
const QUEUE_ENTRY_FRAME: u64 = 256;
/// Bytes of a `queue` answer besides its messages.
const QUEUE_ANSWER_FRAME: u64 = 64;
/// Longest `queue` answer: [`MAX_QUEUE_LISTED`] messages, each with its id, sender and
/// [`MAX_LISTED_RECIPIENTS`] recipients at their longest ([`MAX_LISTED_TEXT`], every byte at most
/// doubled by JSON's escapes, with quotes and a comma).
const MAX_QUEUE_ANSWER: u64 = QUEUE_ANSWER_FRAME
    + MAX_QUEUE_LISTED as u64
        * (QUEUE_ENTRY_FRAME + (2 + MAX_LISTED_RECIPIENTS as u64) * (2 * MAX_LISTED_TEXT as u64 + 3));

/// The bytes of a `message` answer around its base64: `{"outcome":"message","base64":"` and `"}`.
const MESSAGE_FRAMING: u64 = 33;

/// The length of a `message` answer (without its `\n`) carrying `content_len` bytes: base64 takes 4
/// bytes for every 3, the last group padded.
fn message_answer_len(content_len: u64) -> u64 {
    content_len.div_ceil(3).saturating_mul(4).saturating_add(MESSAGE_FRAMING)
}

/// Longest answer line (without its `\n`) on a gateway whose largest message is `max_message_size`
/// (`smtp.max_message_size`): a held message, the gateway's own header fields included, in base64
/// with its framing, or any other answer (the queue's listing the longest of them), whichever is
/// longer. Both ends derive it from the same setting, so the mail plane never sends what the portal
/// would refuse to read.
pub fn max_response_len(max_message_size: u64) -> usize {
    let held = max_message_size.saturating_add(MAX_GATEWAY_HEADERS);
    let longest = message_answer_len(held).max(MAX_SMALL_ANSWER).max(MAX_QUEUE_ANSWER);
    usize::try_from(longest).unwrap_or(usize::MAX)
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

/// A line (without its `\n`) as a request, with exactly the fields its operation takes.
pub fn decode_request(line: &[u8]) -> Result<Request, DecodeError> {
    let request: Request = serde_json::from_slice(line).map_err(|e| DecodeError(e.to_string()))?;
    request.check()?;
    Ok(request)
}

/// A line (without its `\n`) as an answer.
pub fn decode_response(line: &[u8]) -> Result<Response, DecodeError> {
    serde_json::from_slice(line).map_err(|e| DecodeError(e.to_string()))
}

#[cfg(test)]
mod tests;
