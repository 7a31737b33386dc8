//! HTML rendered to the text a reader sees, and its links with their visible text.
//!
//! A single forward pass: tags are skipped (with quoted attribute values honoured), `script`, `style`,
//! `head` and comments are dropped, block elements become line breaks, a few entities are decoded.
//! Nothing is fetched or executed; the input is only ever data. Searches for the end of a comment or a
//! `script` element run on a lower-cased copy and resume where they stopped, so the pass is linear.

use crate::urls;
use crate::view::Url;
use std::borrow::Cow;

/// Longest link text kept.
const MAX_LINK_TEXT: usize = 256;

pub(crate) struct Rendered {
    pub text: String,
    pub links: Vec<Url>,
}

/// Whether `<form` (any case) occurs in `markup`: a `<` search first, so text without markup (or
/// base64) costs one memchr pass.
pub fn has_form_tag(markup: &[u8]) -> bool {
    memchr::memchr_iter(b'<', markup)
        .any(|i| markup.get(i + 1..i + 5).is_some_and(|w| w.eq_ignore_ascii_case(b"form")))
}

/// Render `html`, keeping at most `max_text` bytes of text and `max_links` links.
pub(crate) fn render(html: &str, max_text: usize, max_links: usize) -> Rendered {
    let lower = html.to_ascii_lowercase();
    let (b, lb) = (html.as_bytes(), lower.as_bytes());
    let mut r = Rendered { text: String::new(), links: Vec::new() };
    let mut open_link: Option<(String, usize)> = None;
    let mut pos = 0;
    while pos < b.len() && r.text.len() < max_text {
        let Some(lt) = memchr::memchr(b'<', &b[pos..]).map(|i| pos + i) else {
            push_text(&mut r.text, &html[pos..]);
            break;
        };
        push_text(&mut r.text, &html[pos..lt]);
        if lb[lt..].starts_with(b"<!--") {
            pos = find(lb, lt + 4, b"-->").map_or(b.len(), |i| i + 3);
            continue;
        }
        let tag_end = tag_end(b, lt + 1);
        let tag = &html[lt + 1..tag_end.min(b.len())];
        pos = (tag_end + 1).min(b.len());
        let (closing, name) = tag_name(&lower[lt + 1..tag_end.min(b.len())]);
        match (closing, name) {
            (false, "script" | "style" | "head" | "title" | "template") => {
                let close = format!("</{name}");
                pos = find(lb, pos, close.as_bytes()).map_or(b.len(), |i| tag_end_after(b, i));
            }
            (false, "a") => {
                close_link(&mut r, &mut open_link, max_links);
                open_link = attribute(tag, "href").map(|h| (h, r.text.len()));
            }
            (true, "a") => close_link(&mut r, &mut open_link, max_links),
            (
                _,
                "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "table" | "ul"
                | "ol",
            ) if !r.text.ends_with('\n') && !r.text.is_empty() => r.text.push('\n'),
            (_, "td" | "th") => r.text.push(' '),
            _ => {}
        }
    }
    close_link(&mut r, &mut open_link, max_links);
    r
}

fn close_link(r: &mut Rendered, open: &mut Option<(String, usize)>, max_links: usize) {
    let Some((href, start)) = open.take() else { return };
    if r.links.len() >= max_links {
        return;
    }
    // The words joined by single spaces, built only as far as the bound cuts them.
    let mut text = String::new();
    for word in r.text.get(start..).unwrap_or("").split_whitespace() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(word);
        if text.len() > MAX_LINK_TEXT {
            break;
        }
    }
    text.truncate(crate::walk::floor_char_boundary(&text, MAX_LINK_TEXT));
    let url = href.trim().to_string();
    r.links.push(Url { host: urls::host(&url), url, text: Some(text) });
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay.get(from..)?, needle).map(|i| from + i)
}

/// The `>` that ends a tag starting at `from`, outside quoted attribute values (or the input's end).
fn tag_end(b: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    for (i, &c) in b.iter().enumerate().skip(from) {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return i,
            _ => {}
        }
    }
    b.len()
}

fn tag_end_after(b: &[u8], from: usize) -> usize {
    memchr::memchr(b'>', &b[from..]).map_or(b.len(), |i| from + i + 1)
}

/// Whether a tag closes, and its name (at most 16 ASCII letters and digits), from the lower-cased
/// text of the tag.
fn tag_name(lower_tag: &str) -> (bool, &str) {
    let (closing, rest) = match lower_tag.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, lower_tag),
    };
    let len = rest.bytes().take(16).take_while(u8::is_ascii_alphanumeric).count();
    (closing, &rest[..len])
}

/// The value of attribute `name` in a tag's text, entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name).map(|i| from + i) {
        from = i + name.len();
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = lower[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let start = tag.len() - rest.len() + 1;
        let v = tag[start..].trim_start();
        let value = match v.chars().next() {
            Some(q @ ('"' | '\'')) => v[1..].split(q).next().unwrap_or(""),
            _ => v.split(|c: char| c.is_ascii_whitespace()).next().unwrap_or(""),
        };
        return Some(decode_entities(value).into_owned());
    }
    None
}

/// Text between tags: entities decoded, runs of whitespace collapsed to one space.
fn push_text(out: &mut String, s: &str) {
    if s.is_empty() {
        return;
    }
    let decoded = decode_entities(s);
    let mut rest = decoded.as_ref();
    // Runs of text copied whole; each whitespace character is one space, unless the text so far
    // is empty or ends in a space or a line break.
    while let Some((at, len)) = next_space(rest) {
        out.push_str(&rest[..at]);
        if !out.is_empty() && !out.ends_with([' ', '\n']) {
            out.push(' ');
        }
        rest = &rest[at + len..];
    }
    out.push_str(rest);
}

/// Where the next whitespace character (`char::is_whitespace`) starts, and its length in bytes.
/// Bytes, not characters, are looked at until a non-ASCII one.
fn next_space(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii() {
            if matches!(b[i], b'\t'..=b'\r' | b' ') {
                return Some((i, 1));
            }
            i += 1;
        } else {
            let c = s[i..].chars().next()?;
            if c.is_whitespace() {
                return Some((i, c.len_utf8()));
            }
            i += c.len_utf8();
        }
    }
    None
}

/// The common named entities and numeric ones; anything else stays as written.
fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.char_indices().take(12).find(|&(_, c)| c == ';').map(|(j, _)| j);
        let decoded = end.and_then(|e| entity(&rest[1..e]).map(|c| (c, e + 1)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn entity(name: &str) -> Option<char> {
    let num = |s: &str, radix| u32::from_str_radix(s, radix).ok().and_then(char::from_u32);
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some(' '),
        n if n.starts_with("#x") || n.starts_with("#X") => num(&n[2..], 16),
        n if n.starts_with('#') => num(&n[1..], 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_links() {
        let r = render(
            "<html><head><title>t</title><style>p{}</style></head><body><p>Hello&nbsp;<b>you</b></p>\
             <a href=\"http://evil.test/x\">https://bank.test</a> <!-- <a href=x> --><script>var a='<a>';</script>Bye</body>",
            1000,
            10,
        );
        assert_eq!(r.text.trim(), "Hello you\nhttps://bank.test Bye");
        assert_eq!(r.links.len(), 1);
        assert_eq!(r.links[0].host, "evil.test");
        assert_eq!(r.links[0].text.as_deref(), Some("https://bank.test"));
    }

    #[test]
    fn whitespace_of_every_kind_collapses_to_one_space() {
        for space in ["\t", "\n", "\u{b}", "\u{c}", "\r", " ", "\u{a0}", "\u{2003}", "\u{3000}", " \u{85}\t"]
        {
            let r = render(&format!("<p>a{space}b{space}</p>{space}\u{e9}"), 100, 1);
            assert_eq!(r.text, "a b \n\u{e9}", "{space:?}");
        }
    }

    #[test]
    fn unclosed_constructs_end_the_input_without_looping() {
        for s in ["<a href='x", "<!-- never", "<script>never", "&#xFFFFFFFF; &amp"] {
            let _ = render(s, 100, 10);
        }
        let big = "<a href=x>".repeat(50_000) + &"<".repeat(50_000);
        let r = render(&big, 1 << 20, 100);
        assert_eq!(r.links.len(), 100);
    }
}
