//! Tokens from the normalised message view: what the classifier counts.
//!
//! Each token is a 64-bit key ([`crate::hash`]) in a namespace, so `free` in the subject, in the
//! body and in a display name are three different tokens. From the view:
//! - header field names (which fields a sender writes is a strong habit), and words of the fields
//!   that identify senders and software: `From:` (address, domain, display name), `Reply-To:`,
//!   `Return-Path:`, the `Message-ID:` domain, `X-Mailer:`/`User-Agent:`, list fields, the relays
//!   named in the first `Received:` fields, and the MIME types and character sets of the parts;
//! - subject words and adjacent subject word pairs;
//! - body words (plain text and rendered HTML) and sparse word pairs in a sliding window
//!   (orthogonal sparse bigrams, as rspamd and CRM114 use): each word paired with each of the
//!   previous [`WINDOW`] words, the distance part of the pair's key;
//! - URL hosts and their last two labels, attachment types and extensions, and a few shape
//!   features (HTML only, no text at all, limits reached).
//!
//! Filter verdict fields (`X-Spam-*`, `X-Portcullis-*`, ...) are never read: learning from a
//! previous verdict would only teach the classifier to agree with it.
//!
//! Work is bounded: at most `max_tokens` keys are produced per message (header and subject tokens
//! first, then URLs, then body text in order), and the view itself is bounded by the message limits.

use crate::hash::{key, pair};
use message::MessageView;

/// How many previous body words each word is paired with (1: adjacent pairs only). Tuned on
/// training mail: wider windows (2 to 4, as rspamd's 5) add pairs and work faster than they add
/// evidence at the training sizes operators have.
pub const WINDOW: usize = 1;
/// Words longer than this (in bytes) are cut to [`LONG_PREFIX`] bytes in their own namespace.
const MAX_WORD: usize = 32;
const LONG_PREFIX: usize = 10;
/// `Received:` fields read (the newest first) and words taken from each.
const RECEIVED_FIELDS: usize = 4;
const WORDS_PER_FIELD: usize = 24;

mod ns {
    pub const HEADER_NAME: u8 = b'h';
    pub const FROM_ADDR: u8 = b'f';
    pub const FROM_DOMAIN: u8 = b'F';
    pub const FROM_NAME: u8 = b'n';
    pub const REPLY_TO: u8 = b'r';
    pub const RETURN_PATH: u8 = b'p';
    pub const MESSAGE_ID: u8 = b'm';
    pub const MAILER: u8 = b'x';
    pub const LIST: u8 = b'l';
    pub const RECEIVED: u8 = b'R';
    pub const MIME: u8 = b'c';
    pub const SUBJECT: u8 = b's';
    pub const BODY: u8 = b'w';
    pub const LONG: u8 = b'L';
    pub const URL_HOST: u8 = b'u';
    pub const URL_DOMAIN: u8 = b'U';
    pub const URL_PATH: u8 = b'P';
    pub const ATTACHMENT: u8 = b'a';
    pub const SHAPE: u8 = b'k';
}

/// The token keys of `view`, in the order found (a key may repeat), at most `max_tokens` of them.
pub fn tokenize(view: &MessageView, max_tokens: usize) -> Vec<u64> {
    let mut t = Tokens { keys: Vec::with_capacity(max_tokens.min(4096)), max: max_tokens };
    headers(view, &mut t);
    subject(view, &mut t);
    urls_and_parts(view, &mut t);
    body(view, &mut t);
    t.keys
}

/// Keys collected so far, up to the bound.
struct Tokens {
    keys: Vec<u64>,
    max: usize,
}

impl Tokens {
    fn push(&mut self, k: u64) {
        if self.keys.len() < self.max {
            self.keys.push(k);
        }
    }
    fn text(&mut self, namespace: u8, text: &str) {
        self.push(key(namespace, text.as_bytes()));
    }
    fn full(&self) -> bool {
        self.keys.len() >= self.max
    }
    /// Each word of `text` (at most `limit`) in `namespace`.
    fn words(&mut self, namespace: u8, text: &str, limit: usize) {
        let mut n = 0;
        for_each_word(text, |w| {
            if n < limit {
                self.push(word_key(namespace, w));
                n += 1;
            }
        });
    }
}

/// Fields that carry another filter's verdict, or ours; never learned from.
fn is_verdict_field(lower_name: &str) -> bool {
    ["x-spam", "x-portcullis", "x-virus", "x-bogosity", "x-rspamd", "x-dspam", "x-crm114"]
        .iter()
        .any(|p| lower_name.starts_with(p))
}

fn headers(view: &MessageView, t: &mut Tokens) {
    let mut received = 0;
    for h in &view.headers {
        let name = h.name.to_ascii_lowercase();
        if is_verdict_field(&name) {
            continue;
        }
        t.text(ns::HEADER_NAME, &name);
        match name.as_str() {
            "received" if received < RECEIVED_FIELDS => {
                received += 1;
                t.words(ns::RECEIVED, &h.decoded, WORDS_PER_FIELD);
            }
            "x-mailer" | "user-agent" => {
                t.text(ns::MAILER, h.decoded.trim());
                t.words(ns::MAILER, &h.decoded, WORDS_PER_FIELD);
            }
            "list-id" | "precedence" | "x-mailing-list" | "mailing-list" => {
                t.words(ns::LIST, &h.decoded, WORDS_PER_FIELD)
            }
            "content-type" => t.words(ns::MIME, &h.decoded, 6),
            _ => {}
        }
    }
    senders(view, t);
    shape(view, t);
}

/// Shapes of header fields that mass-mailing software gets wrong or does its own way: how the
/// recipients are written, the `Date:` zone, the pattern of the `Message-ID:` local part.
fn shape(view: &MessageView, t: &mut Tokens) {
    let to = match view.to.len() {
        0 => "to:none",
        1 => "to:one",
        2..=5 => "to:few",
        _ => "to:many",
    };
    t.text(ns::SHAPE, to);
    if let Some(date) = view.header("date") {
        let zone = date.decoded.split_whitespace().last().unwrap_or("");
        t.text(ns::SHAPE, &format!("tz:{zone}"));
    }
    if let Some((local, _)) = view.message_id.as_deref().and_then(|m| m.rsplit_once('@')) {
        t.text(ns::SHAPE, &format!("mid:{}", char_classes(local)));
    }
    let from = view.from.first().and_then(|m| m.domain());
    let sender_domains = [
        (
            "rp",
            view.return_path.as_deref().and_then(|r| r.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase()),
        ),
        (
            "mid",
            view.message_id.as_deref().and_then(|m| m.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase()),
        ),
        ("rt", view.reply_to.first().and_then(|m| m.domain())),
    ];
    for (what, domain) in sender_domains {
        let relation = match (&from, &domain) {
            (Some(f), Some(d)) if last_labels(f, 2) == last_labels(d, 2) => "same",
            (Some(_), Some(_)) => "differs",
            _ => "absent",
        };
        t.text(ns::SHAPE, &format!("from-{what}:{relation}"));
    }
    let received = view.header_all("received").count();
    t.text(ns::SHAPE, &format!("received:{}", received.min(8)));
    if let Some(subject) = view.subject.as_deref() {
        let letters = subject.chars().filter(|c| c.is_alphabetic()).count();
        let upper = subject.chars().filter(|c| c.is_uppercase()).count();
        if letters >= 8 && upper * 10 >= letters * 7 {
            t.text(ns::SHAPE, "subject:caps");
        }
    }
}

/// A string's pattern: runs of digits, letters and other characters as `9`, `a` and the character
/// itself, at most 16 of them (`20021005123456.abc1@` -> `9.a9`).
fn char_classes(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let class = if c.is_ascii_digit() {
            '9'
        } else if c.is_alphabetic() {
            'a'
        } else {
            c
        };
        if !out.ends_with(class) && out.len() < 16 {
            out.push(class);
        }
    }
    out
}

fn senders(view: &MessageView, t: &mut Tokens) {
    for m in view.from.iter().take(4) {
        t.text(ns::FROM_ADDR, m.address.trim());
        if let Some(d) = m.domain() {
            t.text(ns::FROM_DOMAIN, &d);
        }
        if let Some(name) = &m.name {
            t.words(ns::FROM_NAME, name, 8);
        }
    }
    for m in view.reply_to.iter().take(4) {
        t.text(ns::REPLY_TO, m.domain().as_deref().unwrap_or(""));
    }
    if let Some(rp) = &view.return_path {
        t.text(ns::RETURN_PATH, rp.rsplit_once('@').map_or("", |(_, d)| d));
    }
    match view.message_id.as_deref().and_then(|m| m.rsplit_once('@')) {
        Some((_, d)) => t.text(ns::MESSAGE_ID, d),
        None => t.text(ns::SHAPE, "no-message-id"),
    }
}

fn subject(view: &MessageView, t: &mut Tokens) {
    let Some(s) = view.subject.as_deref() else {
        t.text(ns::SHAPE, "no-subject");
        return;
    };
    let mut prev: Option<u64> = None;
    let mut n = 0;
    for_each_word(s, |w| {
        if n >= 64 {
            return;
        }
        n += 1;
        let k = word_key(ns::SUBJECT, w);
        t.push(k);
        if let Some(p) = prev {
            t.push(pair(p, k, 1));
        }
        prev = Some(k);
    });
}

fn urls_and_parts(view: &MessageView, t: &mut Tokens) {
    for u in &view.urls {
        if u.host.is_empty() {
            continue;
        }
        t.text(ns::URL_HOST, &u.host);
        t.text(ns::URL_DOMAIN, last_labels(&u.host, 2));
        let path =
            u.url.split_once("://").map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
        t.words(ns::URL_PATH, path, 8);
    }
    let urls = match view.urls.len() {
        0 => "urls:0",
        1..=2 => "urls:few",
        3..=10 => "urls:some",
        _ => "urls:many",
    };
    t.text(ns::SHAPE, urls);
    for a in &view.attachments {
        t.text(ns::ATTACHMENT, &a.declared_type);
        if let Some(ext) = a.filename.as_deref().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e) {
            t.text(ns::ATTACHMENT, ext);
        }
        if let Some(d) = a.detected_type {
            t.text(ns::ATTACHMENT, d);
        }
    }
    for p in view.parts.iter().take(32) {
        t.text(ns::MIME, &p.content_type);
        t.text(ns::MIME, &p.transfer_encoding);
    }
    if view.texts.is_empty() {
        t.text(ns::SHAPE, "no-text");
    } else if view.texts.iter().all(|p| p.html) {
        t.text(ns::SHAPE, "html-only");
    }
    for hit in &view.limit_hits {
        t.text(ns::SHAPE, hit.limit.symbol());
    }
}

fn body(view: &MessageView, t: &mut Tokens) {
    // recent[0] is the word before this one, recent[1] the one before that, ...
    let mut recent = [0u64; WINDOW];
    let mut seen = 0usize;
    for part in &view.texts {
        if t.full() {
            return;
        }
        for_each_word(&part.text, |w| {
            let k = word_key(ns::BODY, w);
            t.push(k);
            for (d, &prev) in recent.iter().take(seen).enumerate() {
                t.push(pair(prev, k, d as u64 + 1));
            }
            recent.copy_within(0..WINDOW - 1, 1);
            recent[0] = k;
            seen += 1;
        });
    }
}

/// The key of one word: long words are cut and kept in their own namespace, so a run of base64 or
/// a CJK sentence without spaces becomes one recognisable token instead of a unique one.
fn word_key(namespace: u8, w: &[u8]) -> u64 {
    if w.len() > MAX_WORD {
        let mut cut = LONG_PREFIX;
        while cut < w.len() && (w[cut] & 0xc0) == 0x80 {
            cut += 1;
        }
        return key(ns::LONG, &w[..cut]);
    }
    key(namespace, w)
}

/// Bytes that make up words: letters, digits, any non-ASCII (UTF-8) byte, and `$ ' - _ . @ %`.
fn word_byte(b: u8) -> bool {
    WORD_BYTES[usize::from(b)]
}

/// [`word_byte`] for each byte value: one load per byte of text, where the test it stands for takes
/// several comparisons.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || c >= 0x80
            || matches!(c, b'$' | b'\'' | b'-' | b'_' | b'.' | b'@' | b'%');
        b += 1;
    }
    table
};

/// Each word of `text`, with punctuation trimmed from both ends; words of one byte are skipped.
pub(crate) fn for_each_word(text: &str, mut f: impl FnMut(&[u8])) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && !word_byte(bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && word_byte(bytes[i]) {
            i += 1;
        }
        let w = trim_word(&bytes[start..i]);
        if w.len() >= 2 {
            f(w);
        }
    }
}

fn trim_word(mut w: &[u8]) -> &[u8] {
    let edge = |b: u8| matches!(b, b'\'' | b'-' | b'_' | b'.' | b'@' | b'%');
    while let [first, rest @ ..] = w {
        if !edge(*first) {
            break;
        }
        w = rest;
    }
    while let [rest @ .., last] = w {
        if !edge(*last) {
            break;
        }
        w = rest;
    }
    w
}

/// The last `n` labels of a host name (`mail.example.com`, 2: `example.com`).
fn last_labels(host: &str, n: usize) -> &str {
    let mut dots = host.rmatch_indices('.').skip(n - 1);
    match dots.next() {
        Some((i, _)) => &host[i + 1..],
        None => host,
    }
}

#[cfg(test)]
mod tests;
