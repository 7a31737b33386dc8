//! The portal's end of the control socket: one connection per request, under `control.timeout`,
//! the answer read up to [`super::max_response_len`] of `smtp.max_message_size`. A mail plane that is down, slow or answering
//! nonsense is [`QuarantineError::MailPlane`], never a hang or a panic.

use super::frame::read_line;
use super::{Caller, Op, Request, Response, decode_response, encode};
use crate::{ActionOutcome, DigestReport, QuarantineError, QueueListing, ReleaseOptions};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};

/// Where the mail plane listens, and how long and how much the portal waits for.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
    max_response: usize,
    timeout: Duration,
}

impl Client {
    /// The client `[control]` of `config` describes.
    pub fn from_config(config: &config::Config) -> Client {
        let c = &config.control;
        Client {
            socket: c.socket_path(&config.data_dir),
            max_response: super::max_response_len(config.smtp.max_message_size.0),
            timeout: c.timeout.get(),
        }
    }

    /// The held message's bytes, shown to `caller`.
    pub async fn show(&self, caller: Caller, item: &str) -> Result<Vec<u8>, QuarantineError> {
        self.exchange(&Request::new(Op::Show, caller, item)).await?.into_message()
    }

    /// The delivery queue, for an admin `caller`.
    pub async fn queue_list(&self, caller: Caller) -> Result<QueueListing, QuarantineError> {
        self.exchange(&Request::new(Op::QueueList, caller, "")).await?.into_listing()
    }

    /// Retry every deferred message now, for an admin `caller`.
    pub async fn queue_retry(&self, caller: Caller) -> Result<(), QuarantineError> {
        self.exchange(&Request::new(Op::QueueRetry, caller, "")).await?.into_done()
    }

    /// Delete the queued message `queue_id`, for an admin `caller`.
    pub async fn queue_delete(&self, caller: Caller, queue_id: &str) -> Result<(), QuarantineError> {
        self.exchange(&Request::new(Op::QueueDelete, caller, queue_id)).await?.into_done()
    }

    /// Send the digests now, for an admin `caller`.
    pub async fn send_digests(&self, caller: Caller) -> Result<DigestReport, QuarantineError> {
        self.exchange(&Request::new(Op::SendDigests, caller, "")).await?.into_digests()
    }

    /// Carry out `op` (anything but [`Op::Show`]) on `item` for `caller`.
    pub async fn act(
        &self,
        caller: Caller,
        op: Op,
        item: &str,
        opts: ReleaseOptions,
    ) -> Result<ActionOutcome, QuarantineError> {
        let request = Request {
            learn_ham: opts.learn_ham,
            safelist_sender: opts.safelist_sender,
            ..Request::new(op, caller, item)
        };
        self.exchange(&request).await?.into_outcome()
    }

    async fn exchange(&self, request: &Request) -> Result<Response, QuarantineError> {
        let socket = self.socket.display();
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|e| unavailable(format!("connecting to {socket}: {e}")))?;
            let mut stream = BufReader::new(stream);
            stream
                .get_mut()
                .write_all(&encode(request))
                .await
                .map_err(|e| unavailable(format!("writing to {socket}: {e}")))?;
            let line = read_line(&mut stream, self.max_response)
                .await
                .map_err(|e| unavailable(format!("the answer on {socket}: {e}")))?;
            decode_response(&line).map_err(|e| unavailable(format!("the answer on {socket}: {e}")))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| unavailable(format!("no answer on {socket} within control.timeout")))?
    }
}

fn unavailable(why: String) -> QuarantineError {
    QuarantineError::MailPlane(why)
}
