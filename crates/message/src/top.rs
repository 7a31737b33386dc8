//! The top-level header block: every field raw and decoded, and the originator fields parsed.

use crate::encoded_word;
use crate::header_block::{HeaderBlock, unfolded_from};
use crate::view::{Date, Header, Mailbox, MessageView};
use mail_parser::{Address, HeaderName, HeaderValue, MessageParser};
use std::borrow::Cow;

/// The view with its header fields filled in (parts are added by the walk).
pub(crate) fn read(raw: &[u8], block: &HeaderBlock) -> MessageView {
    let mut view = MessageView::default();
    view.headers.reserve_exact(block.fields.len());
    for f in &block.fields {
        let raw_value = &raw[f.value.clone()];
        let name = encoded_word::lossy(&raw[f.name.clone()]).trim_end().to_string();
        // Checked as UTF-8 once, for the raw value and the unfolded one.
        let valid = std::str::from_utf8(raw_value).ok();
        let unfolded = unfolded_from(raw_value, valid);
        // Without `=?` there is no encoded word: the decoded value is the unfolded one.
        let (decoded, bad_encoding) = if unfolded.contains("=?") {
            let d = encoded_word::decode(&unfolded);
            (d.text, d.malformed)
        } else {
            (unfolded, false)
        };
        view.headers.push(Header {
            name,
            raw: valid.map_or_else(|| String::from_utf8_lossy(raw_value).into_owned(), str::to_string),
            decoded,
            eight_bit: !raw_value.is_ascii(),
            bad_encoding,
        });
    }
    parse_fields(&kept_block(raw, block), &mut view);
    view
}

/// The fields [`parse_fields`] reads, names lower-case.
const PARSED_FIELDS: [&[u8]; 8] =
    [b"from", b"reply-to", b"to", b"sender", b"return-path", b"subject", b"date", b"message-id"];

/// The kept fields that [`parse_fields`] reads, as one header block for mail-parser, ending in an
/// empty line (without one mail-parser returns nothing). mail-parser reads each field on its own, so
/// leaving the others out (`Received:`, `DKIM-Signature:`, which it would parse into structures) only
/// saves the work.
fn kept_block(raw: &[u8], block: &HeaderBlock) -> Vec<u8> {
    let mut out = Vec::with_capacity(KEPT_BLOCK_CAPACITY);
    for f in &block.fields {
        let name = raw[f.name.clone()].trim_ascii_end();
        if PARSED_FIELDS.iter().any(|p| name.eq_ignore_ascii_case(p)) {
            out.extend_from_slice(&raw[f.name.start..f.value.end]);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Room for the kept fields of most messages at once (they grow past it like any vector).
const KEPT_BLOCK_CAPACITY: usize = 1024;

fn parse_fields(block: &[u8], view: &mut MessageView) {
    let Some(msg) = MessageParser::default().parse_headers(block) else {
        return;
    };
    for h in msg.headers() {
        match (&h.name, &h.value) {
            (HeaderName::From, HeaderValue::Address(a)) => view.from.extend(mailboxes(a)),
            (HeaderName::ReplyTo, HeaderValue::Address(a)) => view.reply_to.extend(mailboxes(a)),
            (HeaderName::To, HeaderValue::Address(a)) => view.to.extend(mailboxes(a)),
            (HeaderName::Sender, HeaderValue::Address(a)) if view.sender.is_none() => {
                view.sender = mailboxes(a).into_iter().next();
            }
            (HeaderName::ReturnPath, v) if view.return_path.is_none() => {
                view.return_path = text(v).map(|t| t.trim().trim_matches(['<', '>']).to_string());
            }
            (HeaderName::Subject, v) if view.subject.is_none() => view.subject = text(v),
            (HeaderName::Date, HeaderValue::DateTime(d)) if view.date.is_none() && d.is_valid() => {
                view.date = Some(Date { timestamp: d.to_timestamp() });
            }
            (HeaderName::MessageId, v) if view.message_id.is_none() => {
                view.message_id = text(v).filter(|id| id.contains('@'));
            }
            _ => {}
        }
    }
}

fn text(v: &HeaderValue<'_>) -> Option<String> {
    match v {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.first().map(Cow::to_string),
        _ => None,
    }
}

fn mailboxes(a: &Address<'_>) -> Vec<Mailbox> {
    a.iter()
        .map(|addr| Mailbox {
            name: addr.name().map(str::to_string).filter(|n| !n.is_empty()),
            address: addr.address().unwrap_or("").to_string(),
        })
        .collect()
}
