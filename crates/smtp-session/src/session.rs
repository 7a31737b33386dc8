//! The server side of one SMTP session as a state machine: bytes in, replies and events out.
//!
//! The driver feeds received bytes with [`Session::feed`], then calls [`Session::poll`] until it returns
//! `None`, handling each [`Event`]; events that need a decision (policy, spool) stop the machine until the
//! driver answers with [`Session::decide`] or [`Session::finish_message`]. Replies accumulate in an output
//! buffer the driver writes out with [`Session::take_output`] before it waits for more input, which gives
//! correct PIPELINING behaviour: replies in command order, nothing lost.

use crate::address::{self, Address, AddressError};
use crate::command::{self, Command};
use crate::data::{DataDecoder, DataStatus, LineEndingCheck};
use crate::reply::{Reply, replies};
use std::collections::VecDeque;

/// The limits and policy one session runs under.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our name, for the greeting and EHLO.
    pub hostname: String,
    /// Recipient domains we accept (lower-case, no trailing dot); everything else is relaying.
    pub accepted_domains: Vec<String>,
    /// Valid recipients (lower-case `local@domain`, or `@domain` for all of a domain); empty: every
    /// address in an accepted domain. Others get 550 5.1.1 at RCPT, so nothing is accepted then bounced.
    pub valid_recipients: Vec<String>,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_errors: u32,
    pub max_messages: u32,
    /// Offer STARTTLS (the driver has a certificate).
    pub starttls: bool,
    /// Refuse MAIL before TLS.
    pub require_tls: bool,
}

/// Something the driver must act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// MAIL passed syntax; answer with [`Session::decide`].
    CheckSender,
    /// RCPT passed syntax and relay policy; answer with [`Session::decide`].
    CheckRecipient(Address),
    /// Content is about to arrive (DATA, or the first BDAT chunk): open a spool file, then
    /// [`Session::decide`]. The envelope is [`Session::transaction`].
    DataStart,
    /// Message content, dot-unstuffed, in order.
    Data(Vec<u8>),
    /// The content is complete: commit or refuse it, then [`Session::finish_message`].
    MessageEnd,
    /// The content will not be completed (too big, bad line endings, timeout, disconnect): drop the spool file.
    DataAborted,
    /// Write out pending output, run the TLS handshake, then call [`Session::tls_started`].
    StartTls,
    /// Write out pending output and close the connection.
    Close,
}

/// A driver's answer to a check or to [`Event::DataStart`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Refuse(Reply),
}

/// Which deadline applies while the session waits for input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Waiting for a command line.
    Command,
    /// Waiting for message content.
    Data,
    /// Not waiting for the client (a decision is pending, or the session is closed).
    None,
}

/// `BODY=` of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

/// The envelope being built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    /// `None` is the null sender `<>`.
    pub sender: Option<Address>,
    pub recipients: Vec<Address>,
    pub body: BodyType,
    pub smtputf8: bool,
    /// `SIZE=` as declared.
    pub declared_size: Option<u64>,
    /// Content bytes received so far.
    pub size: u64,
}

#[derive(Debug)]
enum Phase {
    /// The greeting has not been sent.
    Fresh,
    Command,
    /// Discarding an over-long command line up to its end.
    LongLine,
    Data {
        decoder: DataDecoder,
        oversize: bool,
    },
    Bdat {
        remaining: u64,
        last: bool,
        discard: Option<Reply>,
        endings: LineEndingCheck,
    },
    Awaiting(Pending),
    Closed,
}

#[derive(Debug)]
enum Pending {
    Sender(Transaction),
    Recipient(Address),
    DataStart { bdat: Option<(u64, bool)> },
    Message,
}

/// One SMTP server session.
#[derive(Debug)]
pub struct Session {
    pub(crate) cfg: SessionConfig,
    phase: Phase,
    pub(crate) input: Vec<u8>,
    output: Vec<u8>,
    events: VecDeque<Event>,
    helo: Option<String>,
    esmtp: bool,
    tls: bool,
    txn: Option<Transaction>,
    /// A BDAT chunk of this transaction has been received (DATA is then out of sequence).
    bdat_used: bool,
    /// The BDAT transaction failed; later chunks are consumed and refused until RSET or a new MAIL.
    bdat_failed: bool,
    /// The driver has a spool file open for this transaction's content.
    content_open: bool,
    errors: u32,
    messages: u32,
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        Session {
            cfg,
            phase: Phase::Fresh,
            input: Vec::new(),
            output: Vec::new(),
            events: VecDeque::new(),
            helo: None,
            esmtp: false,
            tls: false,
            txn: None,
            bdat_used: false,
            bdat_failed: false,
            content_open: false,
            errors: 0,
            messages: 0,
        }
    }

    /// Send the greeting; input is processed only after this.
    pub fn greet(&mut self) {
        if matches!(self.phase, Phase::Fresh) {
            self.reply(replies::greeting(&self.cfg.hostname));
            self.phase = Phase::Command;
        }
    }

    /// The client talked before the greeting: refuse and close.
    pub fn refuse_early_talker(&mut self) {
        self.reply(replies::early_talker());
        self.close();
    }

    /// Bytes received from the client.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next event, or `None` when the session needs more input or a decision.
    pub fn poll(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(e);
            }
            if !self.step() {
                return None;
            }
        }
    }

    /// Replies to send, in order. The driver writes them before it waits for input.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The deadline that applies while waiting for input now.
    pub fn deadline(&self) -> Deadline {
        match self.phase {
            Phase::Fresh | Phase::Command | Phase::LongLine => Deadline::Command,
            Phase::Data { .. } | Phase::Bdat { .. } => Deadline::Data,
            Phase::Awaiting(_) | Phase::Closed => Deadline::None,
        }
    }

    /// Whether the session sits between transactions (so a shutdown would lose nothing).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Command | Phase::LongLine | Phase::Fresh) && self.txn.is_none()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The envelope of the transaction in progress.
    pub fn transaction(&self) -> Option<&Transaction> {
        self.txn.as_ref()
    }

    /// The name the client gave in HELO/EHLO (validated printable ASCII).
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub fn is_esmtp(&self) -> bool {
        self.esmtp
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The input deadline passed.
    pub fn timed_out(&mut self) {
        self.abort_content();
        self.reply(replies::timeout());
        self.close();
    }

    /// The client closed its side.
    pub fn eof(&mut self) {
        self.abort_content();
        self.close();
    }

    /// The server is stopping; call only when [`Session::is_idle`] or after the drain deadline.
    pub fn shutdown(&mut self) {
        self.abort_content();
        self.reply(replies::shutting_down());
        self.close();
    }

    /// The TLS handshake after STARTTLS succeeded: the session starts over (RFC 3207).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.esmtp = false;
        self.reset_transaction();
        self.input.clear();
    }

    /// Answer to [`Event::CheckSender`], [`Event::CheckRecipient`] or [`Event::DataStart`].
    pub fn decide(&mut self, decision: Decision) {
        let Phase::Awaiting(pending) = std::mem::replace(&mut self.phase, Phase::Command) else {
            debug_assert!(false, "decide() without a pending check");
            return;
        };
        match (pending, decision) {
            (Pending::Sender(txn), Decision::Accept) => {
                self.txn = Some(txn);
                self.reply(replies::sender_ok());
            }
            (Pending::Recipient(rcpt), Decision::Accept) => {
                if let Some(txn) = self.txn.as_mut()
                    && !txn.recipients.contains(&rcpt)
                {
                    txn.recipients.push(rcpt);
                }
                self.reply(replies::recipient_ok());
            }
            (Pending::DataStart { bdat: None }, Decision::Accept) => {
                self.content_open = true;
                self.reply(replies::start_data());
                self.phase = Phase::Data { decoder: DataDecoder::default(), oversize: false };
            }
            (Pending::DataStart { bdat: Some((size, last)) }, d) => {
                let discard = match d {
                    Decision::Accept => {
                        self.content_open = true;
                        None
                    }
                    Decision::Refuse(r) => {
                        self.bdat_failed = true;
                        Some(r)
                    }
                };
                self.start_bdat_chunk(size, last, discard);
            }
            (Pending::Sender(_) | Pending::Recipient(_) | Pending::DataStart { .. }, Decision::Refuse(r)) => {
                self.reply_error(r);
            }
            (Pending::Message, _) => debug_assert!(false, "use finish_message()"),
        }
    }

    /// Answer to [`Event::MessageEnd`]: the reply for the message (`250` only once it is safely stored).
    pub fn finish_message(&mut self, reply: Reply) {
        debug_assert!(matches!(self.phase, Phase::Awaiting(Pending::Message)));
        self.phase = Phase::Command;
        self.content_open = false;
        self.reset_transaction();
        self.messages += 1;
        self.reply(reply);
    }

    // ---- internals ----

    fn reply(&mut self, r: Reply) {
        r.write_to(&mut self.output);
    }

    /// A reply the client earned by doing something wrong: counts towards `max_errors`.
    fn reply_error(&mut self, r: Reply) {
        let counts = replies::is_client_error(&r);
        self.reply(r);
        if counts {
            self.errors += 1;
            if self.errors >= self.cfg.max_errors {
                self.reply(replies::too_many_errors());
                self.abort_content();
                self.close();
            }
        }
    }

    fn close(&mut self) {
        if !matches!(self.phase, Phase::Closed) {
            self.phase = Phase::Closed;
            self.input = Vec::new();
            self.events.push_back(Event::Close);
        }
    }

    /// Drop the transaction, telling the driver to drop its spool file if one is open.
    fn abort_content(&mut self) {
        self.drop_content();
        self.reset_transaction();
    }

    fn drop_content(&mut self) {
        drop_content(&mut self.content_open, &mut self.events);
    }

    fn reset_transaction(&mut self) {
        self.txn = None;
        self.bdat_used = false;
        self.bdat_failed = false;
    }

    fn await_decision(&mut self, pending: Pending, event: Event) {
        self.phase = Phase::Awaiting(pending);
        self.events.push_back(event);
    }

    /// Process some input; `false` if nothing could be done without more input or a decision.
    fn step(&mut self) -> bool {
        match self.phase {
            Phase::Fresh | Phase::Awaiting(_) | Phase::Closed => false,
            Phase::Command => self.step_command(),
            Phase::LongLine => self.step_long_line(),
            Phase::Data { .. } => self.step_data(),
            Phase::Bdat { .. } => self.step_bdat(),
        }
    }

    fn step_long_line(&mut self) -> bool {
        match memchr::memchr(b'\n', &self.input) {
            Some(i) => {
                self.input.drain(..=i);
                self.phase = Phase::Command;
                self.reply_error(replies::line_too_long());
                true
            }
            None => {
                self.input.clear();
                false
            }
        }
    }

    fn step_command(&mut self) -> bool {
        let Some(lf) = memchr::memchr(b'\n', &self.input) else {
            if self.input.len() >= self.cfg.max_line_length {
                self.input.clear();
                self.phase = Phase::LongLine;
                return true;
            }
            return false;
        };
        let line: Vec<u8> = self.input.drain(..=lf).collect();
        if line.len() > self.cfg.max_line_length {
            self.reply_error(replies::line_too_long());
            return true;
        }
        match line.strip_suffix(b"\r\n") {
            Some(body) if !body.contains(&b'\r') => self.handle_line(body),
            _ => self.reply_error(replies::bad_line_ending()),
        }
        true
    }

    fn handle_line(&mut self, line: &[u8]) {
        if line.iter().any(|&b| b == 0 || (b < 0x20 && b != b'\t') || b == 0x7f) {
            return self.reply_error(replies::bad_bytes());
        }
        match command::parse(line) {
            Command::Ehlo(name) => self.cmd_helo(name, true),
            Command::Helo(name) => self.cmd_helo(name, false),
            Command::Mail(arg) => self.cmd_mail(arg),
            Command::Rcpt(arg) => self.cmd_rcpt(arg),
            Command::Data => self.cmd_data(),
            Command::Bdat { size, last } => self.cmd_bdat(size, last),
            Command::Rset => {
                self.abort_content();
                self.reply(replies::ok());
            }
            Command::Noop => self.reply(replies::ok()),
            Command::Quit => {
                self.reply(replies::bye());
                self.abort_content();
                self.close();
            }
            Command::Help => self.reply(replies::help()),
            Command::Vrfy => self.reply(replies::cannot_vrfy()),
            Command::Expn => self.reply_error(replies::not_implemented("EXPN")),
            Command::Auth => self.reply_error(replies::not_implemented("AUTH")),
            Command::StartTls => self.cmd_starttls(),
            Command::Malformed("BDAT size [LAST]") => {
                // Without a size the chunk's bytes cannot be skipped: they would be read as commands.
                self.reply(replies::syntax("BDAT size [LAST]"));
                self.abort_content();
                self.close();
            }
            Command::Malformed(usage) => self.reply_error(replies::syntax(usage)),
            Command::Unknown => self.reply_error(replies::unrecognized()),
        }
    }

    fn cmd_helo(&mut self, name: &[u8], esmtp: bool) {
        if !name.iter().all(|b| b.is_ascii_graphic()) {
            return self.reply_error(replies::bad_bytes());
        }
        self.abort_content();
        self.helo = Some(String::from_utf8_lossy(name).into_owned());
        self.esmtp = esmtp;
        if !esmtp {
            return self.reply(replies::helo(&self.cfg.hostname));
        }
        let mut ext = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.cfg.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        if self.cfg.starttls && !self.tls {
            ext.push("STARTTLS".into());
        }
        ext.push("HELP".into());
        self.reply(replies::ehlo(&self.cfg.hostname, ext));
    }

    fn cmd_starttls(&mut self) {
        if self.tls {
            return self.reply_error(replies::bad_sequence("TLS already active"));
        }
        if !self.cfg.starttls {
            return self.reply_error(replies::not_implemented("STARTTLS"));
        }
        if self.helo.is_none() {
            return self.reply_error(replies::bad_sequence("Send EHLO first"));
        }
        self.reply(replies::ready_for_tls());
        // Anything pipelined after STARTTLS was sent in the clear: it must never be acted on (CVE-2011-0411).
        self.input.clear();
        self.events.push_back(Event::StartTls);
    }

    fn cmd_mail(&mut self, arg: &[u8]) {
        if self.helo.is_none() {
            return self.reply_error(replies::bad_sequence("Send HELO or EHLO first"));
        }
        if self.txn.is_some() {
            return self.reply_error(replies::bad_sequence("Nested MAIL command"));
        }
        if self.cfg.require_tls && !self.tls {
            return self.reply_error(replies::tls_required());
        }
        if self.messages >= self.cfg.max_messages {
            self.reply(replies::too_many_messages());
            return self.close();
        }
        let Some((inner, rest)) = address::split_path(arg) else {
            return self.reply_error(replies::syntax("MAIL FROM:<address> [parameters]"));
        };
        let mut txn = Transaction::default();
        let Some(params) = command::parameters(rest) else {
            return self.reply_error(replies::syntax("MAIL FROM:<address> [parameters]"));
        };
        if !params.is_empty() && !self.esmtp {
            return self.reply_error(replies::unsupported_parameter("(parameters need EHLO)"));
        }
        for (key, value) in &params {
            match (key.as_str(), value.as_deref()) {
                ("SIZE", Some(v)) => match v.parse::<u64>() {
                    Ok(n) if n > self.cfg.max_message_size => {
                        return self.reply_error(replies::message_too_big());
                    }
                    Ok(n) => txn.declared_size = Some(n),
                    Err(_) if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => {
                        return self.reply_error(replies::message_too_big());
                    }
                    Err(_) => return self.reply_error(replies::syntax("SIZE=<number>")),
                },
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => txn.body = BodyType::SevenBit,
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => txn.body = BodyType::EightBitMime,
                ("SMTPUTF8", None) => txn.smtputf8 = true,
                _ => return self.reply_error(replies::unsupported_parameter(key)),
            }
        }
        match address::parse_path(inner, txn.smtputf8) {
            Ok(sender) => {
                txn.sender = sender;
                self.await_decision(Pending::Sender(txn), Event::CheckSender);
            }
            Err(AddressError::NeedsUtf8) => self.reply_error(replies::need_utf8()),
            Err(e) => self.reply_error(replies::bad_sender(&e.describe())),
        }
    }

    fn cmd_rcpt(&mut self, arg: &[u8]) {
        let Some(txn) = &self.txn else {
            return self.reply_error(replies::bad_sequence("Need MAIL before RCPT"));
        };
        if self.bdat_used {
            return self.reply_error(replies::bad_sequence("RCPT after BDAT"));
        }
        if txn.recipients.len() >= self.cfg.max_recipients {
            return self.reply_error(replies::too_many_recipients());
        }
        let utf8 = txn.smtputf8;
        let Some((inner, rest)) = address::split_path(arg) else {
            return self.reply_error(replies::syntax("RCPT TO:<address>"));
        };
        match command::parameters(rest) {
            None => return self.reply_error(replies::syntax("RCPT TO:<address>")),
            Some(p) if !p.is_empty() => return self.reply_error(replies::unsupported_parameter(&p[0].0)),
            Some(_) => {}
        }
        match address::parse_path(inner, utf8) {
            Ok(Some(rcpt)) if self.cfg.accepted_domains.iter().any(|d| d == rcpt.domain()) => {
                if !self.is_valid_recipient(&rcpt) {
                    return self.reply_error(replies::unknown_user());
                }
                self.await_decision(Pending::Recipient(rcpt.clone()), Event::CheckRecipient(rcpt));
            }
            Ok(Some(_)) | Err(AddressError::RelayTrick(_)) => self.reply_error(replies::relay_denied()),
            Ok(None) => self.reply_error(replies::bad_recipient("the null address is not a recipient")),
            Err(AddressError::NeedsUtf8) => self.reply_error(replies::need_utf8()),
            Err(e) => self.reply_error(replies::bad_recipient(&e.describe())),
        }
    }

    fn is_valid_recipient(&self, rcpt: &Address) -> bool {
        let list = &self.cfg.valid_recipients;
        if list.is_empty() {
            return true;
        }
        let full = rcpt.to_string().to_lowercase();
        let domain = format!("@{}", rcpt.domain());
        list.iter().any(|v| *v == full || *v == domain)
    }

    /// Why content may not start now, if it may not.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(replies::bad_sequence("Need MAIL and RCPT first")),
            Some(t) if t.recipients.is_empty() => Some(replies::no_valid_recipients()),
            Some(_) => None,
        }
    }

    fn cmd_data(&mut self) {
        if self.bdat_used {
            return self.reply_error(replies::bad_sequence("DATA after BDAT"));
        }
        if let Some(r) = self.content_refusal() {
            return self.reply_error(r);
        }
        self.await_decision(Pending::DataStart { bdat: None }, Event::DataStart);
    }

    fn cmd_bdat(&mut self, size: u64, last: bool) {
        // The chunk's bytes follow whatever we answer, so every path below consumes them.
        let refusal = if self.bdat_failed {
            Some(replies::bad_sequence("BDAT transaction already failed; send RSET"))
        } else {
            self.content_refusal()
        };
        if let Some(r) = refusal {
            self.errors += u32::from(replies::is_client_error(&r));
            self.bdat_failed = true;
            return self.start_bdat_chunk(size, last, Some(r));
        }
        if !self.bdat_used {
            self.bdat_used = true;
            return self.await_decision(Pending::DataStart { bdat: Some((size, last)) }, Event::DataStart);
        }
        self.start_bdat_chunk(size, last, None);
    }

    fn start_bdat_chunk(&mut self, size: u64, last: bool, discard: Option<Reply>) {
        let endings = LineEndingCheck::default();
        self.phase = Phase::Bdat { remaining: size, last, discard, endings };
    }

    fn step_data(&mut self) -> bool {
        let Phase::Data { decoder, oversize } = &mut self.phase else { unreachable!() };
        let mut chunk = Vec::new();
        let (status, used) = decoder.decode(&self.input, &mut chunk);
        self.input.drain(..used);
        let txn = self.txn.as_mut().expect("DATA has a transaction");
        txn.size += chunk.len() as u64;
        if txn.size > self.cfg.max_message_size {
            // Keep reading to the end so the reply lands in sync, but store nothing more.
            *oversize = true;
            drop_content(&mut self.content_open, &mut self.events);
        } else if !chunk.is_empty() {
            self.events.push_back(Event::Data(chunk));
        }
        let oversize = *oversize;
        match status {
            DataStatus::NeedMore => used > 0 || !self.events.is_empty(),
            DataStatus::End if oversize => {
                self.phase = Phase::Command;
                self.reset_transaction();
                self.reply_error(replies::message_too_big());
                true
            }
            DataStatus::End => {
                self.await_decision(Pending::Message, Event::MessageEnd);
                true
            }
            DataStatus::BadLineEnding => {
                self.abort_content();
                self.reply(replies::bad_data_line_ending());
                self.close();
                true
            }
        }
    }

    fn step_bdat(&mut self) -> bool {
        let Phase::Bdat { remaining, last, discard, endings } = &mut self.phase else { unreachable!() };
        let take = (*remaining).min(self.input.len() as u64) as usize;
        if take > 0 {
            let chunk: Vec<u8> = self.input.drain(..take).collect();
            *remaining -= take as u64;
            if discard.is_none() {
                endings.feed(&chunk);
                let txn = self.txn.as_mut().expect("BDAT has a transaction");
                txn.size += take as u64;
                if txn.size > self.cfg.max_message_size {
                    *discard = Some(replies::message_too_big());
                    self.bdat_failed = true;
                    drop_content(&mut self.content_open, &mut self.events);
                } else {
                    self.events.push_back(Event::Data(chunk));
                }
            }
        }
        if *remaining > 0 {
            return take > 0;
        }
        // The whole chunk is in.
        let (last, discard) = (*last, discard.take());
        let clean = endings.is_clean(last);
        self.phase = Phase::Command;
        match discard {
            Some(r) => {
                if last {
                    self.reset_transaction();
                }
                self.reply_error(r);
            }
            None if !clean => {
                self.drop_content();
                self.bdat_failed = true;
                if last {
                    self.reset_transaction();
                }
                self.reply_error(replies::bad_bdat_line_ending());
            }
            None if last => self.await_decision(Pending::Message, Event::MessageEnd),
            None => {
                let n = self.txn.as_ref().map_or(0, |t| t.size);
                self.reply(replies::chunk_received(n));
            }
        }
        true
    }
}

/// Tell the driver to drop its spool file, once.
fn drop_content(content_open: &mut bool, events: &mut VecDeque<Event>) {
    if std::mem::take(content_open) {
        events.push_back(Event::DataAborted);
    }
}
