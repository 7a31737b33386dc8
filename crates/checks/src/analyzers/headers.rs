//! Originator fields: missing or malformed `Date`, `Message-ID`, `From`; several `From`; `From` against
//! the envelope sender; display names that claim one of our domains; `Reply-To` elsewhere than `From`
//! (mailing lists aside); a subject that claims a reply the header does not show.

use crate::context::{domain_of, related_domains};
use crate::{Analyzer, Context};
use message::{Mailbox, MessageView};
use verdict::Finding;

/// Longest piece of attacker text quoted in a reason (the verdict headers sanitise it again).
const QUOTE: usize = 80;

pub struct Headers;

impl Analyzer for Headers {
    fn name(&self) -> &'static str {
        "headers"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        date(msg, out);
        message_id(msg, out);
        fake_reply(msg, out);
        if from(msg, out) {
            envelope_alignment(msg, ctx, out);
            display_name(msg, ctx, out);
            reply_to(msg, out);
        }
    }
}

fn date(msg: &MessageView, out: &mut Vec<Finding>) {
    match (msg.header("Date"), msg.date) {
        (None, _) => out.push(Finding::new("MISSING_DATE", "no Date: field")),
        (Some(h), None) => {
            out.push(Finding::new("INVALID_DATE", format!("Date: `{}` does not parse", quote(&h.decoded))))
        }
        _ => {}
    }
}

fn message_id(msg: &MessageView, out: &mut Vec<Finding>) {
    match (msg.header("Message-ID"), &msg.message_id) {
        (None, _) => out.push(Finding::new("MISSING_MID", "no Message-ID: field")),
        (Some(h), None) => out.push(Finding::new(
            "INVALID_MID",
            format!("Message-ID: `{}` is not <left@right>", quote(&h.decoded)),
        )),
        (Some(h), Some(_)) if !h.decoded.trim().starts_with('<') || !h.decoded.trim().ends_with('>') => {
            out.push(Finding::new("INVALID_MID", "Message-ID: without angle brackets"));
        }
        _ => {}
    }
}

/// The `From:` checks; true when there is exactly one usable From address to compare with.
fn from(msg: &MessageView, out: &mut Vec<Finding>) -> bool {
    let fields = msg.header_all("From").count();
    if fields == 0 {
        out.push(Finding::new("MISSING_FROM", "no From: field"));
        return false;
    }
    if fields > 1 || msg.from.len() > 1 {
        out.push(Finding::new(
            "MULTIPLE_FROM",
            format!("{fields} From: fields, {} addresses", msg.from.len()),
        ));
        return false;
    }
    if msg.from.first().and_then(Mailbox::domain).is_none() || !msg.from[0].address.contains('@') {
        let raw = msg.header("From").map(|h| h.decoded.as_str()).unwrap_or("");
        out.push(Finding::new("INVALID_FROM", format!("From: `{}` has no usable address", quote(raw))));
        return false;
    }
    true
}

fn envelope_alignment(msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let (Some(env), Some(hdr)) = (ctx.sender_domain(), msg.from[0].domain()) else {
        return;
    };
    if !related_domains(&env, &hdr) {
        out.push(Finding::new(
            "FROM_ENVELOPE_MISMATCH",
            format!("From: domain {} but envelope sender domain {env}", quote(&hdr)),
        ));
    }
}

/// A display name that shows one of our addresses or domains while the address is elsewhere (the
/// classic "ceo@ourdomain <attacker@elsewhere>").
fn display_name(msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
    let mb = &msg.from[0];
    let (Some(name), Some(addr_domain)) = (&mb.name, mb.domain()) else {
        return;
    };
    if ctx.is_our_domain(&addr_domain) {
        return;
    }
    let lower = name.to_ascii_lowercase();
    let claims_ours = lower
        .split(|c: char| {
            c.is_whitespace() || matches!(c, '<' | '>' | '"' | '(' | ')' | ',' | '\'' | '[' | ']')
        })
        .filter_map(|w| w.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.')))
        .any(|d| ctx.is_our_domain(d));
    if claims_ours {
        out.push(Finding::new(
            "FROM_DISPLAY_NAME_SPOOF",
            format!("display name `{}` claims one of our domains, address is at {addr_domain}", quote(name)),
        ));
    } else if name.contains('@')
        && domain_of(&lower).is_some_and(|d| d.contains('.') && !related_domains(&d, &addr_domain))
    {
        out.push(Finding::new(
            "FROM_DISPLAY_NAME_ADDRESS",
            format!("display name `{}` is another address", quote(name)),
        ));
    }
}

/// `Reply-To:` at another domain than `From:`. Mailing lists (RFC 2369/2919 `List-Id:`, `List-Post:`;
/// ezmlm and Yahoo Groups `Mailing-List:`) point replies at the list: that is their job, not a
/// diversion.
fn reply_to(msg: &MessageView, out: &mut Vec<Finding>) {
    let Some(from) = msg.from[0].domain() else { return };
    if is_list_mail(msg) {
        return;
    }
    if let Some(rt) = msg.reply_to.iter().filter_map(Mailbox::domain).find(|d| !related_domains(d, &from)) {
        out.push(Finding::new(
            "REPLYTO_DIFFERS",
            format!("Reply-To: domain {} differs from From: domain {from}", quote(&rt)),
        ));
    }
}

fn is_list_mail(msg: &MessageView) -> bool {
    ["List-Id", "List-Post", "Mailing-List"].iter().any(|h| msg.header(h).is_some())
}

/// A subject starting with a reply prefix (`Re:`, and `Aw:`, `Sv:`, `Antw:` of other languages) on a
/// message with neither `In-Reply-To:` nor `References:`: mail clients write one of them on a reply,
/// bulk mailers pretending to continue a conversation do not. Mailing lists aside (some list software
/// and digests drop the reference fields).
fn fake_reply(msg: &MessageView, out: &mut Vec<Finding>) {
    let Some(subject) = msg.header("Subject") else { return };
    if !has_reply_prefix(&subject.decoded)
        || msg.header("In-Reply-To").is_some()
        || msg.header("References").is_some()
        || is_list_mail(msg)
    {
        return;
    }
    out.push(Finding::new(
        "FAKE_REPLY",
        format!("Subject: `{}` is a reply without In-Reply-To: or References:", quote(&subject.decoded)),
    ));
}

fn has_reply_prefix(subject: &str) -> bool {
    let s = subject.trim_start();
    let word_end = s.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (word, rest) = s.split_at(word_end);
    // `Re[2]:` as some clients count replies.
    let rest = rest.strip_prefix('[').and_then(|r| r.split_once(']')).map_or(rest, |(_, r)| r);
    ["re", "aw", "sv", "antw"].iter().any(|p| word.eq_ignore_ascii_case(p))
        && rest.trim_start().starts_with(':')
}

/// Attacker text cut short for a reason.
pub(crate) fn quote(s: &str) -> String {
    s.chars().take(QUOTE).collect()
}

#[cfg(test)]
mod tests {
    use super::has_reply_prefix;

    #[test]
    fn reply_prefixes_are_recognised_in_their_usual_spellings() {
        for s in ["Re: lunch", "RE:lunch", " re : lunch", "Re[2]: lunch", "AW: Termin", "Sv: møte", "Antw: x"]
        {
            assert!(has_reply_prefix(s), "{s:?}");
        }
        for s in ["Regarding: lunch", "Rebate: 50%", "lunch re: friday", "Re lunch", "Re[2 lunch", ""] {
            assert!(!has_reply_prefix(s), "{s:?}");
        }
    }
}
