//! The verdict as header fields: `X-Spam-Score`, `X-Spam-Flag` and `X-Spam-Status` (for tagged and
//! quarantined mail) and `X-Portcullis-Verdict`. (The subject prefix of tagged mail is written into
//! the message itself: `message::with_subject_prefix`.)
//!
//! Each value returned is ready to write after `Name: ` and before the final CRLF: sanitised
//! ([`sanitize`]), bounded, and folded with CRLF + tab where a line would pass 78 characters.

use crate::{Action, Verdict};

/// Longest value of one rendered header field, before folding; symbols past it are summarised.
pub const MAX_HEADER_VALUE: usize = 2048;
/// Lines are folded before this many characters (RFC 5322 recommends 78).
const FOLD_AT: usize = 78;

/// One header field to add to a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: &'static str,
    pub value: String,
}

impl HeaderField {
    /// `Name: value\r\n`, as written into the message.
    pub fn to_line(&self) -> String {
        format!("{}: {}\r\n", self.name, self.value)
    }
}

/// The verdict header fields for `verdict`, given the tag threshold reported as `required`.
pub fn headers(verdict: &Verdict, required: Option<f64>) -> Vec<HeaderField> {
    let mut out = vec![field("X-Spam-Score", &format!("{:.2}", verdict.score))];
    if matches!(verdict.action, Action::Tag | Action::Quarantine) {
        out.push(field("X-Spam-Flag", "YES"));
        let tests: Vec<&str> = verdict.symbols.iter().map(|s| s.name.as_str()).collect();
        let required = required.map_or_else(|| "off".to_string(), |r| format!("{r:.2}"));
        let status = format!("Yes, score={:.2} required={required} tests={}", verdict.score, tests.join(","));
        out.push(field("X-Spam-Status", &status));
    }
    let mut summary = format!("{}; score={:.2};", verdict.action, verdict.score);
    for (i, s) in verdict.symbols.iter().enumerate() {
        let item = format!(" {}({:.2})", sanitize(&s.name, 64), s.score);
        if summary.len() + item.len() > MAX_HEADER_VALUE - 16 {
            summary.push_str(&format!(" +{} more", verdict.symbols.len() - i));
            break;
        }
        summary.push_str(&item);
    }
    out.push(field("X-Portcullis-Verdict", &summary));
    out
}

fn field(name: &'static str, value: &str) -> HeaderField {
    HeaderField { name, value: fold(name.len() + 2, &sanitize(value, MAX_HEADER_VALUE)) }
}

/// Make untrusted text safe for a header value: control characters (CR, LF, NUL, tabs...) become
/// spaces, non-ASCII becomes `?`, runs of spaces collapse, and the result is cut at `max` bytes
/// (marked with `...`).
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        if out.len() >= max {
            out.truncate(max.saturating_sub(3));
            out.push_str("...");
            return out;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// Fold a sanitised value at spaces (and after commas, for `tests=A,B,C`) so no line passes
/// [`FOLD_AT`] characters where a break is possible; `first` is the length already taken on the first
/// line (`Name: `).
fn fold(first: usize, value: &str) -> String {
    let mut out = String::with_capacity(value.len() + value.len() / FOLD_AT * 3);
    let mut line = first;
    for (i, word) in value.split(' ').enumerate() {
        for (j, piece) in word.split_inclusive(',').enumerate() {
            let sep = if j > 0 {
                ""
            } else if i > 0 {
                " "
            } else {
                ""
            };
            let first_piece = i == 0 && j == 0;
            if !first_piece && line + sep.len() + piece.len() > FOLD_AT {
                out.push_str("\r\n\t");
                line = 1;
            } else {
                out.push_str(sep);
                line += sep.len();
            }
            out.push_str(piece);
            line += piece.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScoredSymbol;

    fn verdict(action: Action, n: usize) -> Verdict {
        let symbols = (0..n)
            .map(|i| ScoredSymbol {
                name: format!("SYMBOL_NUMBER_{i}"),
                score: 1.0,
                reason: "r\r\nBcc: x".into(),
            })
            .collect();
        Verdict { score: n as f64, action, symbols }
    }

    fn unfolded_lines_ok(value: &str) {
        for (i, line) in value.split("\r\n").enumerate() {
            assert!(!line.contains(['\r', '\n']));
            assert!(i == 0 || line.starts_with('\t'), "continuation lines start with a tab");
            assert!(line.len() <= FOLD_AT, "{line:?}");
        }
    }

    #[test]
    fn tagged_mail_gets_spam_headers_and_the_verdict() {
        let h = headers(&verdict(Action::Tag, 3), Some(4.0));
        let names: Vec<&str> = h.iter().map(|f| f.name).collect();
        assert_eq!(names, ["X-Spam-Score", "X-Spam-Flag", "X-Spam-Status", "X-Portcullis-Verdict"]);
        assert_eq!(h[0].value, "3.00");
        assert!(h[2].value.starts_with("Yes, score=3.00 required=4.00 tests=SYMBOL_NUMBER_0,"));
        let v = h[3].value.replace("\r\n\t", " ");
        assert_eq!(v, "tag; score=3.00; SYMBOL_NUMBER_0(1.00) SYMBOL_NUMBER_1(1.00) SYMBOL_NUMBER_2(1.00)");
        let accepted = headers(&verdict(Action::Accept, 1), Some(4.0));
        assert_eq!(accepted.len(), 2, "no flag or status on accepted mail");
    }

    #[test]
    fn long_verdicts_are_bounded_and_folded() {
        let h = headers(&verdict(Action::Quarantine, 500), None);
        for f in &h {
            assert!(f.value.replace("\r\n\t", "").len() <= MAX_HEADER_VALUE, "{}", f.name);
            unfolded_lines_ok(&f.value);
        }
        assert!(h[3].value.contains("more"));
    }

    #[test]
    fn attacker_text_cannot_break_out_of_a_header() {
        let s = sanitize("Hi\r\nBcc: victim@x.test\0\u{202e}é", 100);
        assert_eq!(s, "Hi Bcc: victim@x.test ??");
        assert_eq!(sanitize(&"x".repeat(500), 10), "xxxxxxx...");
        let line =
            HeaderField { name: "X-Spam-Status", value: fold(15, &sanitize(&"word ".repeat(100), 2048)) }
                .to_line();
        assert_eq!(line.matches("\r\n").count(), line.matches("\r\n\t").count() + 1);
    }
}
