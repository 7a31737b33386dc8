//! The bounded MIME view of one message: headers, text, URLs and attachments, read under named limits.
//!
//! Owns: turning raw message bytes into the one normalised [`MessageView`] every check reads: header
//! fields (raw and decoded), the originator and recipient fields parsed, text parts decoded to UTF-8,
//! HTML rendered to text with its links, URLs with their hosts, attachments with names and types, and
//! the MIME defects that let two parsers disagree; and the one change the gateway makes to a message's
//! own bytes, the subject prefix of tagged mail (`subject`). Must not touch: I/O of any kind (no files, network,
//! clock), scoring (checks turn the view into symbols).
//!
//! The MIME structure is walked here, iteratively (see `walk` for why not by the library);
//! mail-parser 0.11.9 parses the top-level field grammars (addresses, dates, message ids, `Subject`)
//! and supplies the transfer and charset decoders.
//!
//! # Security
//! Every byte is attacker-controlled. [`parse`] never fails and never panics on any input; it reads
//! under [`MessageLimits`] (nesting depth, parts, header fields and bytes per header block, decoded
//! bytes per part and in total, URLs, text bytes). A message that reaches a limit is not an error: the
//! view lists the [`LimitHit`]s and holds what was read up to them, so it is judged on that (and the
//! hits become symbols). There is no recursion over message structure, so nesting cannot overflow the
//! stack; every scan resumes where the previous one stopped, so header bombs (a 1 MB line, 50,000
//! fields, 1 MB of folded continuations) cost linear time. Nothing here interprets content: HTML is
//! never executed and links are never fetched.

#![forbid(unsafe_code)]

mod decode;
pub mod encoded_word;
mod header_block;
mod html;
mod limits;
pub mod params;
mod subject;
mod top;
mod urls;
mod view;
mod walk;

pub use html::has_form_tag;
pub use limits::{Limit, LimitHit, MessageLimits};
pub use subject::with_subject_prefix;
pub use urls::host as url_host;
pub use view::{Attachment, Date, Defect, Header, Mailbox, MessageView, PartInfo, TextPart, Url};

/// Read `raw` (a message as received, CRLF or LF line ends) into a bounded view. Never fails. A
/// leading mbox `From ` separator line (files exported from mailboxes have one; mail over SMTP never
/// does) is not part of the message and is skipped.
pub fn parse(raw: &[u8], limits: &MessageLimits) -> MessageView {
    let raw = skip_mbox_from(raw);
    let mut hits = limits::Hits::default();
    let block = header_block::split(raw, 0..raw.len(), limits, &mut hits, "header");
    let mut view = top::read(raw, &block);
    let mut walker = walk::Walker::new(limits);
    walker.hits = hits;
    walker.walk(raw, &block);
    let walked = walker.out;
    view.raw_size = raw.len();
    view.raw_head = raw[..raw.len().min(limits.max_text_bytes)].to_vec();
    view.parts = walked.parts;
    view.texts = walked.texts;
    view.html = walked.html;
    view.urls = walked.urls;
    view.attachments = walked.attachments;
    view.limit_hits = walker.hits.0;
    view
}

/// `raw` without a leading mbox `From sender date` line. A field line has its colon before any
/// space (`From: x`), so it is never taken for one.
fn skip_mbox_from(raw: &[u8]) -> &[u8] {
    if !raw.starts_with(b"From ") {
        return raw;
    }
    match memchr::memchr(b'\n', raw) {
        Some(nl) => &raw[nl + 1..],
        None => raw,
    }
}

#[cfg(test)]
mod tests;
