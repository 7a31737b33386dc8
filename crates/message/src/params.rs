//! `Content-Type` and `Content-Disposition` values: the main value and its parameters, with RFC 2231
//! continuations and charsets, and the disagreements an attacker uses to show a scanner one thing and a
//! mail client another (two `boundary=`, `filename=` against `filename*=`).

use crate::encoded_word;

/// Most parameters read from one header value; more are ignored.
const MAX_PARAMS: usize = 64;

/// A parsed `type/subtype; name=value` header value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params {
    /// The main value, lower-case (`multipart/mixed`, `attachment`).
    pub value: String,
    /// Parameters (names lower-case), RFC 2231 forms assembled and decoded. Where a plain and an
    /// extended form disagree, the extended one is kept (as most mail clients do) and the name is
    /// listed in `disagreeing`.
    pub params: Vec<(String, String)>,
    /// Names given more than once in the same form (`boundary=a; boundary=b`).
    pub duplicated: Vec<String>,
    /// Names whose plain and RFC 2231 forms give different values.
    pub disagreeing: Vec<String>,
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One `name[*section][*]=value` as written.
struct Item {
    name: String,
    section: Option<u32>,
    extended: bool,
    value: String,
}

/// Parse an unfolded header value.
pub fn parse(value: &str) -> Params {
    let value = strip_comments(value);
    let mut parts = split_unquoted(&value, b';').into_iter();
    let main = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let items: Vec<Item> = parts.take(MAX_PARAMS).filter_map(|p| item(&p)).collect();
    let mut out = Params { value: main, ..Default::default() };
    let mut names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        assemble(name, &items, &mut out);
    }
    out
}

fn assemble(name: &str, items: &[Item], out: &mut Params) {
    let of_name = || items.iter().filter(move |i| i.name == name);
    let plain: Vec<&Item> = of_name().filter(|i| i.section.is_none() && !i.extended).collect();
    let single_ext: Vec<&Item> = of_name().filter(|i| i.section.is_none() && i.extended).collect();
    let mut sections: Vec<&Item> = of_name().filter(|i| i.section.is_some()).collect();
    sections.sort_by_key(|i| i.section);
    if plain.len() > 1 || single_ext.len() > 1 || sections.windows(2).any(|w| w[0].section == w[1].section) {
        out.duplicated.push(name.to_string());
    }
    let plain_value = plain.first().map(|i| decode_plain(&i.value));
    let extended_value = if let Some(i) = single_ext.first() {
        Some(decode_extended(&i.value))
    } else if !sections.is_empty() {
        Some(join_sections(&sections))
    } else {
        None
    };
    let value = match (plain_value, extended_value) {
        (Some(p), Some(e)) => {
            if p != e {
                out.disagreeing.push(name.to_string());
            }
            e
        }
        (Some(v), None) | (None, Some(v)) => v,
        (None, None) => return,
    };
    out.params.push((name.to_string(), value));
}

/// RFC 2231 continuations: the charset comes from section 0; `*`-marked sections are percent-encoded.
fn join_sections(sections: &[&Item]) -> String {
    let mut charset: Option<String> = None;
    let mut bytes = Vec::new();
    for (n, s) in sections.iter().enumerate() {
        if s.extended {
            let (raw, cs) = percent_section(&s.value, n == 0);
            if n == 0 {
                charset = cs;
            }
            bytes.extend_from_slice(&raw);
        } else {
            bytes.extend_from_slice(s.value.as_bytes());
        }
    }
    let charset = charset.unwrap_or_else(|| "utf-8".into());
    encoded_word::to_text(charset.as_bytes(), &bytes)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into())
}

/// `charset'language'percent-encoded` (the charset part only on the first section).
fn decode_extended(v: &str) -> String {
    let (bytes, charset) = percent_section(v, true);
    let charset = charset.unwrap_or_else(|| "utf-8".into());
    encoded_word::to_text(charset.as_bytes(), &bytes)
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into())
}

fn percent_section(v: &str, first: bool) -> (Vec<u8>, Option<String>) {
    let (charset, data) = match (first, v.splitn(3, '\'').collect::<Vec<_>>().as_slice()) {
        (true, [cs, _lang, data]) => (Some(cs.to_string()).filter(|c| !c.is_empty()), *data),
        _ => (None, v),
    };
    let b = data.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, charset)
}

/// A plain value may still carry RFC 2047 words (not allowed, but what clients decode).
fn decode_plain(v: &str) -> String {
    encoded_word::decode(v).text
}

fn item(p: &str) -> Option<Item> {
    let (name, value) = p.split_once('=')?;
    let name = name.trim().to_ascii_lowercase();
    let value = unquote(value.trim());
    let (base, rest) = name.split_once('*').unwrap_or((name.as_str(), ""));
    let (section, extended) = match rest {
        "" if name.ends_with('*') => (None, true),
        "" => (None, false),
        r => {
            let (num, star) = r.strip_suffix('*').map_or((r, false), |n| (n, true));
            (Some(num.parse::<u32>().ok()?), star)
        }
    };
    if base.is_empty() {
        return None;
    }
    Some(Item { name: base.to_string(), section, extended, value })
}

fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

/// Split on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: u8) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    for &b in s.as_bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == sep && !quoted => {
                out.push(String::from_utf8_lossy(&cur).into_owned());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(b);
    }
    out.push(String::from_utf8_lossy(&cur).into_owned());
    out
}

/// Remove `(comments)` outside quotes; nesting is counted, not recursed.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                continue;
            }
            _ => {}
        }
        if depth == 0 {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_quoted_and_comments() {
        let p = parse("Multipart/Mixed (a comment) ; boundary=\"b;1\"; charset=utf-8");
        assert_eq!(p.value, "multipart/mixed");
        assert_eq!(p.get("boundary"), Some("b;1"));
        assert_eq!(p.get("charset"), Some("utf-8"));
    }

    #[test]
    fn rfc2231_forms() {
        let p = parse("attachment; filename*=UTF-8''na%C3%AFve%20file.txt");
        assert_eq!(p.get("filename"), Some("naïve file.txt"));
        let p = parse("attachment; filename*0*=utf-8''a%20; filename*1=b.exe");
        assert_eq!(p.get("filename"), Some("a b.exe"));
        assert!(p.disagreeing.is_empty() && p.duplicated.is_empty());
    }

    #[test]
    fn differentials_are_named() {
        let p = parse("attachment; filename=\"invoice.pdf\"; filename*=utf-8''invoice.exe");
        assert_eq!(p.get("filename"), Some("invoice.exe"));
        assert_eq!(p.disagreeing, ["filename"]);
        let p = parse("multipart/mixed; boundary=a; boundary=b");
        assert_eq!(p.duplicated, ["boundary"]);
        assert_eq!(p.get("boundary"), Some("a"));
    }

    #[test]
    fn rfc2047_in_a_quoted_name() {
        let p = parse("application/octet-stream; name=\"=?utf-8?B?w6kuZXhl?=\"");
        assert_eq!(p.get("name"), Some("é.exe"));
    }
}
