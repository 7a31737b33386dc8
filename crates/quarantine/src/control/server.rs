//! The mail plane's end: one connection, one request, one answer, under the connection's deadline.
//! The caller is looked up again in the store and the request runs as the same [`Quarantine`]
//! operation a local caller would use (authorization, tracking and audit included). A digest run,
//! once started, finishes even if the connection's deadline passes (its claims are not undone).

use super::frame::{FrameError, read_line};
use super::{Caller, ErrorKind, MAX_ANSWER_TEXT, Op, Request, Response, decode_request, encode};
use crate::reasons::{NOT_AN_ACCOUNT, NOT_THIS_LINK};
use crate::token::DigestAction;
use crate::{Actor, Quarantine, QuarantineError, ReleaseOptions, Role};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// The limits of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `control.max_request_size`.
    pub max_request: usize,
    /// Longest answer sent ([`super::max_response_len`]); a longer one becomes an error answer.
    pub max_response: usize,
    /// `control.timeout`.
    pub timeout: Duration,
}

impl Limits {
    /// The limits `config` gives (`[control]`, and `smtp.max_message_size` for answers).
    pub fn from_config(config: &config::Config) -> Limits {
        Limits {
            max_request: usize::try_from(config.control.max_request_size.0).unwrap_or(usize::MAX),
            max_response: super::max_response_len(config.smtp.max_message_size.0),
            timeout: config.control.timeout.get(),
        }
    }
}

/// Serve one connection: read one request line (at most `limits.max_request` bytes), answer it, close.
/// A request too long or not understood gets an error answer; a connection past `limits.timeout` is
/// dropped. Never panics on what the peer sends.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(q: &Quarantine, stream: S, limits: Limits) {
    let exchange = async {
        let mut stream = BufReader::new(stream);
        let answer = match read_line(&mut stream, limits.max_request).await {
            Ok(line) => match decode_request(&line) {
                Ok(request) => q.answer(&request).await,
                Err(e) => bad_request(e.to_string()),
            },
            Err(FrameError::TooLong(max)) => bad_request(format!("the request is longer than {max} bytes")),
            Err(e) => {
                tracing::debug!(error = %e, "control connection ended without a request");
                return;
            }
        };
        let stream = stream.get_mut();
        if let Err(e) = stream.write_all(&bounded_answer(&answer, limits.max_response)).await {
            tracing::debug!(error = %e, "could not answer a control request");
        }
        let _ = stream.shutdown().await;
    };
    if tokio::time::timeout(limits.timeout, exchange).await.is_err() {
        tracing::warn!(timeout = ?limits.timeout, "a control connection passed its deadline; closed");
    }
}

fn bad_request(message: String) -> Response {
    Response::Error { kind: ErrorKind::BadRequest, message: crate::bounded(&message, MAX_ANSWER_TEXT) }
}

/// `answer` as a line, or an error line when it would be longer than `max` (a held message larger
/// than `smtp.max_message_size` allows, if the setting was lowered after it was held).
fn bounded_answer(answer: &Response, max: usize) -> Vec<u8> {
    let line = encode(answer);
    if line.len() <= max.saturating_add(1) {
        return line;
    }
    tracing::error!(len = line.len(), max, "a control answer is longer than the socket carries; not sent");
    let message = "the answer is longer than smtp.max_message_size allows; see the mail plane's log".into();
    encode(&Response::Error { kind: ErrorKind::Failed, message })
}

impl Quarantine {
    /// Carry out one control request (see [`super`]).
    pub async fn answer(&self, request: &Request) -> Response {
        let actor = match self.caller_actor(request).await {
            Ok(a) => a,
            Err(e) => return Response::error(&e),
        };
        let id = request.item.as_str();
        match request.op {
            Op::Show => match self.held_bytes(&actor, id).await {
                Ok((_, bytes)) => Response::message(&bytes),
                Err(e) => Response::error(&e),
            },
            Op::Release => {
                let opts =
                    ReleaseOptions { learn_ham: request.learn_ham, safelist_sender: request.safelist_sender };
                Response::of(self.release(&actor, id, opts).await)
            }
            Op::Delete => Response::of(self.delete(&actor, id).await),
            Op::LearnSpam => Response::of(self.learn_spam(&actor, id).await),
            Op::QueueList => Response::of_listing(self.queue_list(&actor).await),
            Op::QueueRetry => Response::of_unit(self.queue_retry(&actor).await),
            Op::QueueDelete => Response::of_unit(self.queue_delete(&actor, id).await),
            Op::SendDigests => Response::of_digests(self.digests_to_the_end(actor).await),
        }
    }

    /// Send the digests now for `actor` in a task of its own, so a deadline that drops this
    /// connection does not cut a run between a digest's claim and its queueing.
    async fn digests_to_the_end(&self, actor: Actor) -> Result<crate::DigestReport, QuarantineError> {
        let q = self.clone();
        tokio::spawn(async move { q.send_digests_now(&actor).await })
            .await
            .map_err(|e| QuarantineError::Task("the digest run", e.to_string()))?
    }

    /// The actor a request acts as: the account as the store has it now (the queue and digest
    /// operations then check it is an admin), or the digest link's recipient once its token checks
    /// out for this item and operation (a link shows nothing: its page needs only the index's
    /// subject; and it never reaches the queue or digests).
    async fn caller_actor(&self, request: &Request) -> Result<Actor, QuarantineError> {
        match &request.caller {
            Caller::Account { name, token_id } => {
                let account = self.store().account_by_name(name).await?;
                let account =
                    account.filter(|a| !a.disabled).ok_or(QuarantineError::Forbidden(NOT_AN_ACCOUNT))?;
                let addresses = self.store().account_addresses(account.id).await?;
                let role = match account.role {
                    store::Role::Admin => Role::Admin,
                    store::Role::Helpdesk => Role::Helpdesk,
                    store::Role::User => Role::User,
                };
                Ok(match token_id {
                    Some(t) => Actor::api(account.name, role, addresses, t.clone()),
                    None => Actor::new(account.name, role, addresses),
                })
            }
            Caller::DigestLink { token } => {
                let claims = self.peek(token).map_err(|_| QuarantineError::Forbidden(NOT_THIS_LINK))?;
                let allowed = match (request.op, claims.action) {
                    (Op::Delete, DigestAction::Delete) => true,
                    (Op::Release, DigestAction::Release) => !request.learn_ham && !request.safelist_sender,
                    (Op::Release, DigestAction::ReleaseAndSafelist) => !request.learn_ham,
                    _ => false,
                };
                if !allowed || claims.item.as_str() != request.item {
                    return Err(QuarantineError::Forbidden(NOT_THIS_LINK));
                }
                Ok(Actor::digest_link(&claims.recipient, &claims.token_id()))
            }
        }
    }
}
