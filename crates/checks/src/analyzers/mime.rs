//! Limits the message reached and MIME defects: the places where two parsers could see two different
//! messages (THREATS.md "MIME differentials"). Every defect kind is its own symbol.

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
    }
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
