//! One mail transaction over an open session: MAIL, RCPT..., DATA, content, final reply.
//!
//! With PIPELINING the envelope and DATA go out in one write and the replies are read in order
//! (RFC 2920); without it, one command at a time. Results are per recipient: a reply to RCPT decides
//! that recipient alone; a failure of MAIL or DATA, or of the content, decides the whole group.

use super::client::Connection;
use super::wire::WireError;
use crate::outcome::{Outcome, Problem};
use smtp_session::Reply;

/// The envelope of one transaction: the group of recipients bound for one next hop.
pub(crate) struct Transaction<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// Size as delivered (for `SIZE=`).
    pub size: u64,
    /// `BODY=8BITMIME` was declared when the message arrived.
    pub eight_bit: bool,
    /// The transaction cannot be carried without SMTPUTF8.
    pub needs_smtputf8: bool,
    /// The message as it is to be delivered (not yet dot-stuffed).
    pub content: &'a [u8],
}

/// What happened, and what may be done with the connection now.
pub(crate) struct TxResult {
    /// One per recipient, in order.
    pub outcomes: Vec<Outcome>,
    /// The session is in a clean state and may carry another transaction.
    pub reusable: bool,
    /// The connection failed before the next hop answered anything: on a reused connection this is
    /// an idle session that had died, and the group may be sent again over a fresh one.
    pub unanswered: bool,
}

/// Outcomes as they become known; the undecided are resolved at the end.
struct Progress<'a> {
    remote: &'a str,
    outcomes: Vec<Option<Outcome>>,
    /// Recipients the next hop accepted at RCPT, waiting for the DATA result.
    accepted: Vec<usize>,
    answered: bool,
}

impl Progress<'_> {
    fn decide_all_undecided(&mut self, outcome: Outcome) {
        for o in self.outcomes.iter_mut().filter(|o| o.is_none()) {
            *o = Some(outcome.clone());
        }
    }
    fn decide_accepted(&mut self, reply: &Reply) {
        let outcome = Outcome::from_reply(reply, self.remote);
        for &i in &self.accepted {
            self.outcomes[i] = Some(outcome.clone());
        }
    }
    fn rcpt_reply(&mut self, i: usize, reply: &Reply) {
        if reply.is_positive() {
            self.accepted.push(i);
        } else {
            self.outcomes[i] = Some(Outcome::from_reply(reply, self.remote));
        }
    }
}

/// Run one transaction. Never fails as a whole: every problem becomes recipients' outcomes.
pub(crate) async fn send(conn: &mut Connection, remote: &str, tx: &Transaction<'_>) -> TxResult {
    if let Some(problem) = precheck(conn, tx) {
        return TxResult {
            outcomes: vec![Outcome::Bounced(problem); tx.recipients.len()],
            reusable: true,
            unanswered: false,
        };
    }
    let mut p =
        Progress { remote, outcomes: vec![None; tx.recipients.len()], accepted: Vec::new(), answered: false };
    let result = if conn.caps.pipelining {
        pipelined(conn, tx, &mut p).await
    } else {
        one_at_a_time(conn, tx, &mut p).await
    };
    let (reusable, unanswered) = match result {
        Ok(reusable) => (reusable, false),
        Err(e) => {
            p.decide_all_undecided(Outcome::Deferred(wire_problem(&e, remote)));
            (false, !p.answered)
        }
    };
    // Anything still undecided here was left so by a protocol oddity; retry it later.
    p.decide_all_undecided(Outcome::Deferred(Problem::local(
        (4, 5, 0),
        "transaction ended without a result",
    )));
    TxResult {
        outcomes: p.outcomes.into_iter().map(|o| o.expect("all decided")).collect(),
        reusable,
        unanswered,
    }
}

/// Refusals that need no round trip: the next hop's size limit, SMTPUTF8 it does not offer, and
/// addresses that could not be sent as one command line.
fn precheck(conn: &Connection, tx: &Transaction<'_>) -> Option<Problem> {
    if let Some(limit) = conn.caps.size_limit.filter(|&l| tx.size > l) {
        return Some(Problem::local(
            (5, 3, 4),
            format!("message size {} exceeds the next hop's limit of {limit} bytes", tx.size),
        ));
    }
    if tx.needs_smtputf8 && !conn.caps.smtputf8 {
        return Some(Problem::local(
            (5, 6, 7),
            "the message needs SMTPUTF8, which the next hop does not support",
        ));
    }
    let unsendable = |a: &str| a.bytes().any(|b| b.is_ascii_control() || b == b'<' || b == b'>');
    if unsendable(tx.sender) || tx.recipients.iter().any(|r| unsendable(r)) {
        return Some(Problem::local((5, 1, 3), "an envelope address holds characters that cannot be sent"));
    }
    None
}

fn mail_command(conn: &Connection, tx: &Transaction<'_>) -> String {
    let mut cmd = format!("MAIL FROM:<{}>", tx.sender);
    if conn.caps.size {
        cmd.push_str(&format!(" SIZE={}", tx.size));
    }
    if tx.eight_bit && conn.caps.eight_bit_mime {
        cmd.push_str(" BODY=8BITMIME");
    }
    if tx.needs_smtputf8 && conn.caps.smtputf8 {
        cmd.push_str(" SMTPUTF8");
    }
    cmd.push_str("\r\n");
    cmd
}

/// Returns whether the session may carry another transaction.
async fn pipelined(
    conn: &mut Connection,
    tx: &Transaction<'_>,
    p: &mut Progress<'_>,
) -> Result<bool, WireError> {
    let mut commands = mail_command(conn, tx);
    for rcpt in tx.recipients {
        commands.push_str(&format!("RCPT TO:<{rcpt}>\r\n"));
    }
    commands.push_str("DATA\r\n");
    conn.wire.send(commands.as_bytes(), "sending MAIL, RCPT and DATA").await?;
    let mail = conn.wire.read_reply("after MAIL FROM").await?;
    p.answered = true;
    let mut rcpt_replies = Vec::with_capacity(tx.recipients.len());
    for _ in tx.recipients {
        rcpt_replies.push(conn.wire.read_reply("after RCPT TO").await?);
    }
    let data = conn.wire.read_reply("after DATA").await?;
    if !mail.is_positive() {
        p.decide_all_undecided(Outcome::from_reply(&mail, p.remote));
    } else {
        for (i, reply) in rcpt_replies.iter().enumerate() {
            p.rcpt_reply(i, reply);
        }
    }
    if !mail.is_positive() || p.accepted.is_empty() {
        if data.code == 354 {
            // RFC 2920 3.1: DATA accepted with nobody to deliver to; end it with an empty message.
            conn.wire.send(b".\r\n", "ending an empty DATA").await?;
            let _ = conn.wire.read_reply("after an empty DATA").await?;
        }
        return Ok(false);
    }
    data_and_content(conn, tx, p, data).await
}

async fn one_at_a_time(
    conn: &mut Connection,
    tx: &Transaction<'_>,
    p: &mut Progress<'_>,
) -> Result<bool, WireError> {
    conn.wire.send(mail_command(conn, tx).as_bytes(), "sending MAIL FROM").await?;
    let mail = conn.wire.read_reply("after MAIL FROM").await?;
    p.answered = true;
    if !mail.is_positive() {
        p.decide_all_undecided(Outcome::from_reply(&mail, p.remote));
        return Ok(false);
    }
    for (i, rcpt) in tx.recipients.iter().enumerate() {
        conn.wire.send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), "sending RCPT TO").await?;
        let reply = conn.wire.read_reply("after RCPT TO").await?;
        p.rcpt_reply(i, &reply);
    }
    if p.accepted.is_empty() {
        return Ok(false);
    }
    conn.wire.send(b"DATA\r\n", "sending DATA").await?;
    let data = conn.wire.read_reply("after DATA").await?;
    data_and_content(conn, tx, p, data).await
}

/// Act on the reply to DATA; on 354 send the content and read the final reply.
async fn data_and_content(
    conn: &mut Connection,
    tx: &Transaction<'_>,
    p: &mut Progress<'_>,
    data: Reply,
) -> Result<bool, WireError> {
    if data.code != 354 {
        if data.is_positive() {
            return Err(WireError::Protocol { stage: "after DATA", why: "DATA answered without 354" });
        }
        p.decide_accepted(&data);
        return Ok(false);
    }
    conn.wire.send_content(tx.content).await?;
    let last = conn.wire.read_reply("after the message content").await?;
    p.decide_accepted(&last);
    conn.transactions += 1;
    // After the final reply the session is back in its initial state: the next MAIL needs no RSET.
    Ok(last.code != 421)
}

fn wire_problem(e: &WireError, remote: &str) -> Problem {
    let status = match e {
        WireError::Protocol { .. } => (4, 5, 0),
        WireError::Timeout { .. } | WireError::Io { .. } | WireError::Closed { .. } => (4, 4, 2),
    };
    let mut p = Problem::local(status, format!("{remote}: {e}"));
    p.remote_mta = Some(remote.to_string());
    p
}
