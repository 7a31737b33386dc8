//! URLs in plain text, and the host of a URL. Linear: one search per candidate, resuming after it.

use crate::view::Url;

/// Append the URLs in `text` to `out` until it holds `max` of them.
pub(crate) fn find(text: &str, max: usize, out: &mut Vec<Url>) {
    let lower = text.to_ascii_lowercase();
    let b = lower.as_bytes();
    const NEEDLES: [&str; 3] = ["http://", "https://", "www."];
    // The next occurrence of each needle, searched again only once passed: each byte is searched
    // at most once per needle.
    let mut next: [Option<usize>; 3] = NEEDLES.map(|n| memchr::memmem::find(b, n.as_bytes()));
    let mut pos = 0;
    while out.len() < max {
        for (slot, needle) in next.iter_mut().zip(NEEDLES) {
            if slot.is_some_and(|p| p < pos) {
                *slot = memchr::memmem::find(&b[pos..], needle.as_bytes()).map(|i| pos + i);
            }
        }
        let Some(start) = next.iter().flatten().copied().min() else {
            break;
        };
        // `www.` inside an `http://www.` was already taken with its scheme.
        let end = (start..b.len()).find(|&i| ends_url(b[i])).unwrap_or(b.len());
        let url = text[start..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')', ']', '\'', '"']);
        if url.len() > 7 {
            out.push(Url { url: url.to_string(), host: host(url), text: None });
        }
        pos = end.max(start + 1);
    }
}

fn ends_url(c: u8) -> bool {
    c.is_ascii_whitespace()
        || matches!(c, b'<' | b'>' | b'"' | b'`' | b'{' | b'}' | b'|' | b'\\' | b'^')
        || c < 0x20
}

/// The host of a URL, lower-case, without user info, port or trailing dot (empty if none).
pub fn host(url: &str) -> String {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None if url.to_ascii_lowercase().starts_with("www.") => url,
        None => return String::new(),
    };
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_urls_and_hosts() {
        let mut out = Vec::new();
        find("See https://User@Example.COM:8080/a?b. Or www.test.example/x, or http://[::1]/.", 10, &mut out);
        let hosts: Vec<&str> = out.iter().map(|u| u.host.as_str()).collect();
        assert_eq!(hosts, ["example.com", "www.test.example", "::1"]);
        assert_eq!(out[0].url, "https://User@Example.COM:8080/a?b");
    }

    #[test]
    fn bounded_count() {
        let mut out = Vec::new();
        find(&"http://a.example ".repeat(1000), 5, &mut out);
        assert_eq!(out.len(), 5);
    }
}
