//! Making mail content safe to show. Templates escape HTML; this module does what escaping cannot:
//! bidirectional controls (which reorder what a reader sees: `inv\u{202E}fdp.exe` looks like
//! `invexe.pdf`) and other control characters are shown as visible markers, and HTML bodies are
//! sanitised for the sandboxed preview.

use std::collections::HashSet;

/// Most bytes of an HTML body sanitised for a preview (the rest is cut, and the page says so).
pub const MAX_PREVIEW_HTML: usize = 512 * 1024;

/// Whether `c` changes the direction text is shown in.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// One-line text from mail (a name, a subject, a file name) as it may be shown: bidi controls as a
/// visible `[U+202E]`, other control characters (line breaks included) as U+FFFD.
pub fn display_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("[U+{:04X}]", c as u32));
        } else if c.is_control() {
            out.push('\u{FFFD}');
        } else {
            out.push(c);
        }
    }
    out
}

/// Multi-line text (a text body, a header block): as [`display_text`], keeping line breaks and tabs.
pub fn display_block(s: &str) -> String {
    s.split('\n')
        .map(|line| line.split('\t').map(display_text).collect::<Vec<_>>().join("\t"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTML body as the preview shows it: no script, style, form, frame, embed or media elements, no
/// event handler or style attributes, no remote images (an image keeps only its `alt` text), and links
/// that cannot open anything from the sandbox. The result goes into `<iframe sandbox srcdoc>` under the
/// page's CSP, so even a sanitiser bug could not fetch a remote resource or run a script.
pub fn sanitize_html(html: &str) -> String {
    let cut = if html.len() > MAX_PREVIEW_HTML {
        let mut end = MAX_PREVIEW_HTML;
        while !html.is_char_boundary(end) {
            end -= 1;
        }
        &html[..end]
    } else {
        html
    };
    let schemes: HashSet<&str> = ["http", "https", "mailto"].into_iter().collect();
    ammonia::Builder::default()
        .rm_tags(["img"])
        .add_tags(["span"])
        .url_schemes(schemes)
        .link_rel(Some("noopener noreferrer nofollow"))
        .strip_comments(true)
        .clean(cut)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_and_controls_are_visible() {
        assert_eq!(display_text("inv\u{202E}fdp.exe"), "inv[U+202E]fdp.exe");
        assert_eq!(display_text("a\r\nb\u{0}"), "a\u{FFFD}\u{FFFD}b\u{FFFD}");
        assert_eq!(display_block("a\n\u{2067}b\tc"), "a\n[U+2067]b\tc");
    }

    #[test]
    fn html_is_sanitised() {
        let hostile = r#"<p onclick="x()">Hi<script>window.__pwned=1</script><iframe src="http://127.0.0.1:9/f"></iframe>
<form action="http://127.0.0.1:9/"><input name=a></form><img src="http://127.0.0.1:9/i.png" alt="pic">
<div style="background:url(http://127.0.0.1:9/bg)">x</div><style>body{background:url(http://127.0.0.1:9/s)}</style>
<a href="javascript:alert(1)">j</a><a href="https://example.com/">ok</a><svg onload="x()"></svg></p>"#;
        let clean = sanitize_html(hostile);
        for bad in [
            "<script",
            "__pwned",
            "<iframe",
            "<form",
            "<input",
            "<img",
            "url(",
            "<style",
            "javascript:",
            "onload",
            "onclick",
            "127.0.0.1",
        ] {
            assert!(!clean.contains(bad), "{bad} survived: {clean}");
        }
        assert!(clean.contains("Hi") && clean.contains("href=\"https://example.com/\""), "{clean}");
        assert!(clean.contains("noopener"));
    }
}
