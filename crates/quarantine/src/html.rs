//! A tiny HTML builder for digests: markup comes only from `'static` strings written here, and every
//! other piece of text goes through [`Html::text`], which escapes it. Mail content therefore cannot
//! become markup, attributes or script, whatever it holds.

/// HTML under construction.
#[derive(Debug, Default)]
pub(crate) struct Html(String);

impl Html {
    /// Markup written in this crate (never built from data: the `'static` bound keeps it that way).
    pub(crate) fn markup(&mut self, m: &'static str) -> &mut Html {
        self.0.push_str(m);
        self
    }

    /// Untrusted text, escaped for both element content and quoted attribute values.
    pub(crate) fn text(&mut self, t: &str) -> &mut Html {
        self.0.push_str(&escape(t));
        self
    }

    pub(crate) fn finish(self) -> String {
        self.0
    }
}

/// `t` with `& < > " '` as character references, and control and bidirectional-override characters
/// (which can make text read as something else) replaced by U+FFFD.
pub(crate) fn escape(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + t.len() / 8);
    for c in neutral(t).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `t` with control characters and bidirectional controls replaced, for text shown to people.
pub(crate) fn neutral(t: &str) -> String {
    t.chars()
        .map(|c| match c {
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
                '\u{FFFD}'
            }
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_become_markup() {
        let mut h = Html::default();
        h.markup("<a href=\"").text("https://p.test/digest/a\"onmouseover='x'").markup("\">");
        h.text("<img src=x onerror=alert(1)> & \u{202E}fdp.exe \u{0}");
        let out = h.finish();
        assert_eq!(
            out,
            "<a href=\"https://p.test/digest/a&quot;onmouseover=&#39;x&#39;\">&lt;img src=x onerror=alert(1)&gt; &amp; \u{FFFD}fdp.exe \u{FFFD}"
        );
        assert_eq!(escape("x' UNION SELECT \"1\" --"), "x&#39; UNION SELECT &quot;1&quot; --");
    }
}
