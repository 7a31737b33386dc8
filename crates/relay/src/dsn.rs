//! Delivery status notifications (RFC 3464 in a RFC 6522 `multipart/report`), built by hand.
//!
//! Three parts: a short human-readable explanation, the `message/delivery-status` report (one block
//! per failed recipient), and the original message's headers (`text/rfc822-headers`, at most
//! [`MAX_ORIGINAL_HEADERS`], cut where a header field starts). Everything that came from a next hop or
//! from the message is cleaned first: no control characters (so no CR/LF injection into the DSN's own
//! fields), each piece cut to [`MAX_TEXT`]. Addresses that need UTF-8 switch the report to the RFC 6533
//! `message/global-delivery-status` form.

use crate::outcome::{Diagnostic, Problem};
use spool::{Envelope, QueuedMessage};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// Bound on the copy of the original headers.
pub(crate) const MAX_ORIGINAL_HEADERS: usize = 64 * 1024;
/// Bound on any one piece of remote or message text placed in a DSN field (well under the 998-octet
/// line limit, with room for the field name).
pub(crate) const MAX_TEXT: usize = 900;

/// One failed recipient, for the report.
pub(crate) struct Failed<'a> {
    pub recipient: &'a str,
    pub problem: &'a Problem,
}

/// Whether a DSN may be sent about `envelope`: never to the null sender, never about a bounce.
pub(crate) fn wanted(envelope: &Envelope) -> bool {
    !envelope.sender.is_empty() && !envelope.is_bounce
}

/// The DSN's envelope and content.
pub(crate) fn build(
    host: &str,
    msg: &QueuedMessage,
    content: &[u8],
    failed: &[Failed<'_>],
    now_ms: u64,
) -> (Envelope, Vec<u8>) {
    let host = clean(host, false);
    let utf8 = !msg.envelope.sender.is_ascii() || failed.iter().any(|f| !f.recipient.is_ascii());
    let headers = original_headers(content);
    let boundary = boundary_not_in(&headers);
    let mut out = top_headers(&host, &msg.envelope.sender, &boundary, utf8, now_ms).into_bytes();
    out.extend_from_slice(human_part(&host, &boundary, failed, utf8).as_bytes());
    out.extend_from_slice(report_part(&host, &boundary, msg, failed, utf8).as_bytes());
    let eight_bit = !headers.is_ascii();
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Description: Undelivered message headers\r\n").as_bytes(),
    );
    out.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n");
    if eight_bit {
        out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&headers);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let envelope = Envelope {
        sender: String::new(),
        recipients: vec![msg.envelope.sender.clone()],
        received_at: now_ms,
        smtputf8: utf8,
        eight_bit: utf8 || eight_bit,
        is_bounce: true,
        ..Default::default()
    };
    (envelope, out)
}

fn top_headers(host: &str, sender: &str, boundary: &str, utf8: bool, now_ms: u64) -> String {
    let report_type = if utf8 { "global-delivery-status" } else { "delivery-status" };
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\n\
         To: <{to}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{now_ms}.{rand:016x}@{host}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type={report_type};\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a delivery status notification in MIME format.\r\n\
         \r\n",
        to = clean_address(sender, utf8),
        date = rfc2822(now_ms),
        rand = rand::random::<u64>(),
    )
}

fn human_part(host: &str, boundary: &str, failed: &[Failed<'_>], utf8: bool) -> String {
    let charset = if utf8 { "utf-8" } else { "us-ascii" };
    let mut s = format!(
        "--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset={charset}\r\n\r\n\
         This is the mail system at {host}.\r\n\r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         It was not delivered to the addresses below, for the reasons given.\r\n\r\n"
    );
    for f in failed {
        s.push_str(&format!(
            "<{}>: {}\r\n",
            clean_address(f.recipient, utf8),
            clean(&f.problem.reason(), false)
        ));
    }
    s.push_str("\r\n");
    s
}

fn report_part(host: &str, boundary: &str, msg: &QueuedMessage, failed: &[Failed<'_>], utf8: bool) -> String {
    let part_type = if utf8 { "message/global-delivery-status" } else { "message/delivery-status" };
    let mut s = format!(
        "--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: {part_type}\r\n\r\n\
         Reporting-MTA: dns; {host}\r\n\
         X-Portcullis-Queue-ID: {id}\r\n\
         Arrival-Date: {arrival}\r\n",
        id = msg.id,
        arrival = rfc2822(msg.envelope.received_at),
    );
    for f in failed {
        let address_type = if f.recipient.is_ascii() { "rfc822" } else { "utf-8" };
        let p = f.problem;
        s.push_str(&format!(
            "\r\nFinal-Recipient: {address_type}; {}\r\nAction: failed\r\nStatus: {}\r\n",
            clean_address(f.recipient, utf8),
            p.status
        ));
        if let Some(remote) = &p.remote_mta {
            s.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(remote, false)));
        }
        let (kind, text) = match &p.diagnostic {
            Diagnostic::Smtp(reply) => ("smtp", reply),
            Diagnostic::Local(why) => ("X-Portcullis", why),
        };
        s.push_str(&format!("Diagnostic-Code: {kind}; {}\r\n", clean(text, false)));
    }
    s.push_str("\r\n");
    s
}

/// Text safe for one header field or line: control characters (CR and LF included, and Unicode line
/// separators) become spaces, non-ASCII becomes `?` unless `keep_utf8`, and the result is cut to
/// [`MAX_TEXT`] bytes.
pub(crate) fn clean(text: &str, keep_utf8: bool) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for c in text.chars() {
        let c = match c {
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => ' ',
            c if !c.is_ascii() && !keep_utf8 => '?',
            c => c,
        };
        if out.len() + c.len_utf8() > MAX_TEXT {
            out.push_str("...");
            break;
        }
        out.push(c);
    }
    out
}

/// An envelope address for a DSN field: cleaned, and without angle brackets that could end `<...>`.
fn clean_address(address: &str, utf8: bool) -> String {
    clean(address, utf8).replace(['<', '>'], "?")
}

/// The original header section, line endings made CRLF, NULs dropped, at most
/// [`MAX_ORIGINAL_HEADERS`] bytes, cut where a header field starts.
pub(crate) fn original_headers(content: &[u8]) -> Vec<u8> {
    let section = header_section(content);
    // Normalising only ever grows a line by one byte, so twice the bound is enough to look at.
    let section = &section[..section.len().min(2 * MAX_ORIGINAL_HEADERS)];
    let mut h = Vec::with_capacity(section.len() + 2);
    let mut i = 0;
    while i < section.len() {
        match section[i] {
            b'\r' if section.get(i + 1) == Some(&b'\n') => {
                h.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => h.extend_from_slice(b"\r\n"),
            0 => {}
            b => h.push(b),
        }
        i += 1;
    }
    if !h.is_empty() && !h.ends_with(b"\r\n") {
        h.extend_from_slice(b"\r\n");
    }
    if h.len() > MAX_ORIGINAL_HEADERS {
        let cut = field_starts(&h).take_while(|&p| p <= MAX_ORIGINAL_HEADERS).last().unwrap_or(0);
        h.truncate(cut);
    }
    h
}

/// The header section of a message: up to and including the CRLF before the blank line.
pub(crate) fn header_section(content: &[u8]) -> &[u8] {
    match content.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &content[..p + 2],
        None => content,
    }
}

/// Offsets where a new header field starts (after a CRLF, not a folded continuation).
fn field_starts(h: &[u8]) -> impl Iterator<Item = usize> + '_ {
    (2..=h.len()).filter(move |&p| &h[p - 2..p] == b"\r\n" && !matches!(h.get(p), Some(b' ' | b'\t')))
}

/// A random boundary that occurs nowhere in the copied headers.
fn boundary_not_in(headers: &[u8]) -> String {
    loop {
        let b = format!("=_portcullis_{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
        if !headers.windows(b.len()).any(|w| w == b.as_bytes()) {
            return b;
        }
    }
}

fn rfc2822(unix_ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp((unix_ms / 1000) as i64)
        .ok()
        .and_then(|t| t.format(&Rfc2822).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_session::Reply;

    #[test]
    fn remote_text_cannot_inject_fields() {
        let hostile = "550 no\r\nAction: delivered\r\n\u{2028}Status: 2.0.0\u{0}";
        let c = clean(hostile, false);
        assert!(!c.contains(['\r', '\n', '\0']), "{c:?}");
        assert!(clean(&"x".repeat(5000), false).len() <= MAX_TEXT + 3);
        assert_eq!(clean("jörg", false), "j?rg");
        assert_eq!(clean("jörg", true), "jörg");
        assert_eq!(clean_address("a>b@c", false), "a?b@c");
    }

    #[test]
    fn original_headers_are_bounded_and_cut_at_a_field() {
        let msg = b"Subject: x\r\nX-A: 1\r\n\tfolded\r\n\r\nbody\r\n";
        assert_eq!(original_headers(msg), b"Subject: x\r\nX-A: 1\r\n\tfolded\r\n");
        assert_eq!(original_headers(b"A: 1\nB: 2\rC: \0 3"), b"A: 1\r\nB: 2\r\nC:  3\r\n");
        let mut big = Vec::new();
        for i in 0..10_000 {
            big.extend_from_slice(
                format!("X-Filler-{i}: {}\r\n\t{}\r\n", "y".repeat(20), "z".repeat(10)).as_bytes(),
            );
        }
        big.extend_from_slice(b"\r\nbody");
        let h = original_headers(&big);
        assert!(h.len() <= MAX_ORIGINAL_HEADERS && h.len() > MAX_ORIGINAL_HEADERS - 100, "{}", h.len());
        assert!(h.ends_with(b"z\r\n"));
        assert!(h.starts_with(b"X-Filler-0:"));
    }

    #[test]
    fn boundaries_avoid_the_content() {
        let b = boundary_not_in(b"--=_portcullis_");
        assert!(b.starts_with("=_portcullis_") && b.len() > 40);
    }

    #[test]
    fn builds_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = spool::Spool::open(dir.path()).unwrap();
        let env = Envelope {
            sender: "s@ext.test".into(),
            recipients: vec!["a@x.test".into(), "b@x.test".into()],
            received_at: 1_700_000_000_000,
            ..Default::default()
        };
        let mut inc = spool.create(&env).unwrap();
        inc.write(b"Subject: hello\r\n\r\nbody\r\n").unwrap();
        let id = inc.commit(b"", spool::Queue::Active).unwrap();
        let msg = spool.load(spool::Queue::Active, &id).unwrap();
        let reply = Reply::from_peer(550, vec!["5.1.1 no such user\r\nInjected: yes".into()]);
        let problem = Problem::from_reply(&reply, "mx.x.test");
        let (denv, text) = build(
            "gw.test",
            &msg,
            b"Subject: hello\r\n\r\nbody\r\n",
            &[Failed { recipient: "b@x.test", problem: &problem }],
            1_700_000_100_000,
        );
        assert_eq!((denv.sender.as_str(), denv.is_bounce), ("", true));
        assert_eq!(denv.recipients, vec!["s@ext.test".to_string()]);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Final-Recipient: rfc822; b@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Remote-MTA: dns; mx.x.test\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  Injected: yes\r\n"));
        assert!(!text.contains("\r\nInjected"));
        assert!(text.contains("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"));
        assert!(text.contains("Arrival-Date: Tue, 14 Nov 2023"));
        assert!(!text.contains("a@x.test"));
    }
}
