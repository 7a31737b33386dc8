//! The subject prefix of tagged mail (`[actions] tag_subject_prefix`): the prefix written into the raw
//! message before the value of its `Subject:`, every other byte kept as it was.
//!
//! The prefix goes in front of the raw value, so encoded words (`=?utf-8?B?...?=`) stay exactly as
//! written and are separated from the prefix by a space, as RFC 2047 section 5 requires; a first line
//! that would pass 78 characters is folded right after the prefix. A subject that already starts with
//! the prefix (after decoding) is left alone, so a message tagged twice shows it once; a message
//! without a `Subject:` gets one at the end of its header block, with the message's own line ending.
//!
//! Rewriting `Subject:` breaks an original DKIM signature that covers it (nearly all do): a verifier
//! downstream of this gateway then sees `dkim=fail` for tagged mail. Verify before the rewrite (this
//! gateway's `Authentication-Results:` says what it found) or leave the prefix off.

use crate::encoded_word;
use crate::header_block::{self, HeaderBlock, RawField, unfolded};
use crate::limits::{Hits, MessageLimits};

/// A first line longer than this after the prefix is added is folded after it (RFC 5322 section
/// 2.1.1 recommends 78 characters).
const FOLD_AT: usize = 78;

/// Most `Subject:` fields given the prefix. RFC 5322 allows one; mail clients show the first (a few
/// the last), so a handful more are tagged too, and a message of 100,000 empty `Subject:` fields
/// cannot grow by the prefix 100,000 times.
const MAX_SUBJECT_FIELDS: usize = 16;

/// `raw` (a message as received) with `prefix` put before the value of each of its first
/// [`MAX_SUBJECT_FIELDS`] `Subject:` fields that does not already start with it, or with a
/// `Subject: <prefix>` field added at the end of the header block when there is none. `None` when
/// nothing changes: every subject starts with the prefix already, or the prefix is empty or holds
/// anything but printable ASCII (the configuration refuses such a prefix; it is checked again here
/// because it is written into a header).
pub fn with_subject_prefix(raw: &[u8], prefix: &str) -> Option<Vec<u8>> {
    if prefix.is_empty() || !prefix.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return None;
    }
    // Every field of the header block, not only the ones a verdict reads: a subject past the
    // parser's limits is still shown by mail clients. The scan is linear in the header block.
    let unbounded =
        MessageLimits { max_headers: usize::MAX, max_header_bytes: usize::MAX, ..Default::default() };
    let block = header_block::split(raw, 0..raw.len(), &unbounded, &mut Hits::default(), "header");
    let eol = line_ending(raw);
    let subjects: Vec<&RawField> =
        block.fields.iter().filter(|f| is_subject(&raw[f.name.clone()])).take(MAX_SUBJECT_FIELDS).collect();
    let mut out = Vec::with_capacity(raw.len() + MAX_SUBJECT_FIELDS * (prefix.len() + 4));
    let mut copied = 0;
    for f in &subjects {
        if starts_with_prefix(&raw[f.value.clone()], prefix) {
            continue;
        }
        out.extend_from_slice(&raw[copied..f.value.start]);
        out.extend_from_slice(&insertion(raw, f, prefix, eol));
        copied = f.value.start;
    }
    if subjects.is_empty() {
        copied = added_field(raw, &block, prefix, eol, &mut out);
    } else if copied == 0 {
        return None;
    }
    out.extend_from_slice(&raw[copied..]);
    Some(out)
}

/// `Subject`, or `Subject ` (a space before the colon is seen in the wild and read by clients).
fn is_subject(name: &[u8]) -> bool {
    name.strip_suffix(b" ").unwrap_or(name).eq_ignore_ascii_case(b"subject")
}

/// The subject already reads `prefix...` once unfolded and decoded.
fn starts_with_prefix(value: &[u8], prefix: &str) -> bool {
    encoded_word::decode(&unfolded(value)).text.starts_with(prefix)
}

/// The message's line ending, as its first line has it (CRLF when there is no line).
fn line_ending(raw: &[u8]) -> &'static [u8] {
    match memchr::memchr(b'\n', raw) {
        Some(i) if i == 0 || raw[i - 1] != b'\r' => b"\n",
        _ => b"\r\n",
    }
}

/// What goes right after the colon of `f`: a space, the prefix, and the break from the original
/// value (a space, or a fold when the first line would be too long).
fn insertion(raw: &[u8], f: &RawField, prefix: &str, eol: &[u8]) -> Vec<u8> {
    let value = &raw[f.value.clone()];
    let first_line = memchr::memchr2(b'\r', b'\n', value).map_or(value, |i| &value[..i]);
    let has_text = first_line.iter().any(|b| !b.is_ascii_whitespace());
    let starts_blank = value.first().is_some_and(|&b| matches!(b, b' ' | b'\t'));
    let line_len = f.value.start - f.name.start + first_line.len();
    let mut ins = Vec::with_capacity(prefix.len() + 4);
    ins.push(b' ');
    ins.extend_from_slice(prefix.as_bytes());
    if has_text && line_len + ins.len() + 1 > FOLD_AT {
        ins.extend_from_slice(eol);
    }
    if has_text && !starts_blank {
        ins.push(b' ');
    }
    ins
}

/// Copy the header block to `out` with `Subject: <prefix>` added at its end; where copying resumes.
fn added_field(raw: &[u8], block: &HeaderBlock, prefix: &str, eol: &[u8], out: &mut Vec<u8>) -> usize {
    out.extend_from_slice(&raw[..block.end]);
    if block.end > 0 && raw[block.end - 1] != b'\n' {
        // A header block that ends the message without a final line break.
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(b"Subject: ");
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(eol);
    block.end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(raw: &str) -> String {
        String::from_utf8(with_subject_prefix(raw.as_bytes(), "[SPAM]").expect("changed")).unwrap()
    }

    #[test]
    fn prefix_before_the_subject_and_nothing_else_changed() {
        let m = "Received: x\r\nSubject: Hello\r\nTo: a@b\r\n\r\nSubject: in the body\r\n";
        assert_eq!(tag(m), "Received: x\r\nSubject: [SPAM] Hello\r\nTo: a@b\r\n\r\nSubject: in the body\r\n");
        assert_eq!(tag("subject :Hi\n\nbody"), "subject : [SPAM] Hi\n\nbody");
        assert_eq!(tag("Subject:\r\n\r\nx"), "Subject: [SPAM]\r\n\r\nx");
        assert_eq!(tag("Subject:   \r\n\r\nx"), "Subject: [SPAM]   \r\n\r\nx");
    }

    #[test]
    fn already_prefixed_subjects_are_left_alone() {
        assert_eq!(with_subject_prefix(b"Subject: [SPAM] Hi\r\n\r\nx", "[SPAM]"), None);
        assert_eq!(with_subject_prefix(b"Subject: =?utf-8?Q?=5BSPAM=5D_Hi?=\r\n\r\nx", "[SPAM]"), None);
        let twice = tag("Subject: [SPAM] a\r\nSubject: b\r\n\r\n");
        assert_eq!(twice, "Subject: [SPAM] a\r\nSubject: [SPAM] b\r\n\r\n");
    }

    #[test]
    fn a_missing_subject_is_added_at_the_end_of_the_header_block() {
        assert_eq!(
            tag("From: a@b\r\nTo: c@d\r\n\r\nbody"),
            "From: a@b\r\nTo: c@d\r\nSubject: [SPAM]\r\n\r\nbody"
        );
        assert_eq!(tag("From: a@b\n\nbody\n"), "From: a@b\nSubject: [SPAM]\n\nbody\n");
        assert_eq!(tag("From: a@b"), "From: a@b\r\nSubject: [SPAM]\r\n");
        assert_eq!(tag("\r\nbody"), "Subject: [SPAM]\r\n\r\nbody");
        assert_eq!(tag(""), "Subject: [SPAM]\r\n");
        // A line that is not a field starts the body, as mail clients read it.
        assert_eq!(tag("From: a@b\r\nnot a field\r\n"), "From: a@b\r\nSubject: [SPAM]\r\nnot a field\r\n");
    }

    #[test]
    fn encoded_and_folded_subjects_stay_valid() {
        let m = "Subject: =?utf-8?B?w6lsw6lwaGFudA==?=\r\n =?utf-8?Q?_rose?=\r\n\r\nx";
        let t = tag(m);
        assert_eq!(t, "Subject: [SPAM] =?utf-8?B?w6lsw6lwaGFudA==?=\r\n =?utf-8?Q?_rose?=\r\n\r\nx");
        let view = crate::parse(t.as_bytes(), &MessageLimits::default());
        assert_eq!(view.subject.as_deref(), Some("[SPAM] éléphant rose"));
        assert_eq!(view.header("subject").unwrap().decoded, "[SPAM] éléphant rose");
        // A subject that starts on a continuation line keeps its fold.
        assert_eq!(tag("Subject:\r\n Hello\r\n\r\n"), "Subject: [SPAM]\r\n Hello\r\n\r\n");
    }

    #[test]
    fn long_first_lines_are_folded_after_the_prefix() {
        let long = "w".repeat(70);
        let t = tag(&format!("Subject: {long}\r\n\r\nx"));
        assert_eq!(t, format!("Subject: [SPAM]\r\n {long}\r\n\r\nx"));
        let t = tag(&format!("Subject:{long}\r\n\r\nx"));
        assert_eq!(t, format!("Subject: [SPAM]\r\n {long}\r\n\r\nx"));
        let view = crate::parse(t.as_bytes(), &MessageLimits::default());
        assert_eq!(view.subject, Some(format!("[SPAM] {long}")));
        for line in t.split("\r\n") {
            assert!(line.len() <= FOLD_AT, "{line}");
        }
    }

    #[test]
    fn hostile_prefixes_and_many_subjects_are_bounded() {
        assert_eq!(with_subject_prefix(b"Subject: a\r\n\r\n", "[X]\r\nBcc: v@x"), None);
        assert_eq!(with_subject_prefix(b"Subject: a\r\n\r\n", "[\u{e9}]"), None);
        assert_eq!(with_subject_prefix(b"Subject: a\r\n\r\n", ""), None);
        let many = "Subject: s\r\n".repeat(10_000) + "\r\nbody";
        let t = tag(&many);
        assert_eq!(t.matches("[SPAM]").count(), MAX_SUBJECT_FIELDS);
        assert_eq!(t.len(), many.len() + MAX_SUBJECT_FIELDS * " [SPAM]".len());
    }
}
