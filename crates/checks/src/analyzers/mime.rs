//! Limits the message reached and MIME defects: the places where two parsers could see two different
//! messages (THREATS.md "MIME differentials"). Every defect kind is its own symbol. Also text sent in
//! base64 although it is plain ASCII (`MIME_BASE64_TEXT`, as SpamAssassin's rule of that name): it
//! hides the words from filters that read the raw message. Some legitimate generators encode every
//! UTF-8 part in base64 as well, so the symbol is a weak sign (scored low), never a verdict alone.

use crate::{Analyzer, Context};
use message::{Defect, MessageView};
use std::collections::BTreeMap;
use verdict::Finding;

pub struct Mime;

impl Analyzer for Mime {
    fn name(&self) -> &'static str {
        "mime"
    }

    fn analyze(&self, msg: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        for hit in &msg.limit_hits {
            out.push(Finding::new(hit.limit.symbol(), hit.to_string()));
        }
        let mut seen: BTreeMap<Defect, Vec<&str>> = BTreeMap::new();
        for part in &msg.parts {
            for d in &part.defects {
                seen.entry(*d).or_default().push(if part.path.is_empty() { "message" } else { &part.path });
            }
        }
        for (defect, paths) in seen {
            let (symbol, what) = describe(defect);
            let shown: Vec<&str> = paths.iter().take(5).copied().collect();
            out.push(Finding::new(symbol, format!("{what} (part {})", shown.join(", "))));
        }
        if let Some(path) = base64_ascii_text(msg) {
            let part = if path.is_empty() { "message" } else { path };
            out.push(Finding::new(
                "MIME_BASE64_TEXT",
                format!("text sent base64-encoded although it is plain ASCII (part {part})"),
            ));
        }
    }
}

/// The first text part sent in base64 whose text is ASCII (and not empty), if there is one.
fn base64_ascii_text(msg: &MessageView) -> Option<&str> {
    msg.texts
        .iter()
        .find(|t| t.base64 && !t.text.trim().is_empty() && t.text.is_ascii())
        .map(|t| t.path.as_str())
}

fn describe(d: Defect) -> (&'static str, &'static str) {
    match d {
        Defect::DuplicateContentType => ("MIME_DUPLICATE_CONTENT_TYPE", "more than one Content-Type"),
        Defect::DuplicateTransferEncoding => {
            ("MIME_DUPLICATE_CTE", "more than one Content-Transfer-Encoding")
        }
        Defect::DuplicateParameter => ("MIME_DUPLICATE_PARAMETER", "a MIME parameter given twice"),
        Defect::FilenameMismatch => ("MIME_FILENAME_MISMATCH", "filename= and filename*= disagree"),
        Defect::MissingClosingBoundary => {
            ("MIME_MISSING_CLOSING_BOUNDARY", "multipart without its closing boundary")
        }
        Defect::BoundaryNotFound => ("MIME_BOUNDARY_NOT_FOUND", "multipart whose boundary never appears"),
        Defect::MissingBoundary => ("MIME_MISSING_BOUNDARY", "multipart without a boundary parameter"),
        Defect::BadTransferEncoding => ("MIME_BAD_TRANSFER_ENCODING", "invalid base64 or quoted-printable"),
        Defect::UnknownTransferEncoding => ("MIME_UNKNOWN_CTE", "unknown Content-Transfer-Encoding"),
        Defect::MalformedHeaderLine => {
            ("MIME_MALFORMED_HEADER_LINE", "a header block line that is not a field")
        }
        Defect::MixedLineEndings => ("MIME_MIXED_LINE_ENDINGS", "boundary lines with both CRLF and bare LF"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbols(raw: &str) -> Vec<String> {
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let mut out = Vec::new();
        Mime.analyze(&view, &Context::default(), &mut out);
        out.into_iter().map(|f| f.symbol).collect()
    }

    #[test]
    fn base64_text_only_when_the_text_is_ascii() {
        let part = |cte: &str, body: &str| {
            format!(
                "From: a@b.test\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}\r\n--b--\r\n"
            )
        };
        // "Buy cheap meds now" and "Grüße aus Köln" in base64.
        assert_eq!(symbols(&part("base64", "QnV5IGNoZWFwIG1lZHMgbm93")), ["MIME_BASE64_TEXT"]);
        assert!(
            symbols(&part("BASE64", "QnV5IGNoZWFwIG1lZHMgbm93")).contains(&"MIME_BASE64_TEXT".to_string())
        );
        assert!(symbols(&part("base64", "R3LDvMOfZSBhdXMgS8O2bG4=")).is_empty());
        assert!(symbols(&part("7bit", "Buy cheap meds now")).is_empty());
        let attachment = "From: a@b.test\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n";
        assert!(symbols(attachment).is_empty());
    }
}
