//! Header fields whose encoding is wrong: raw 8-bit bytes without SMTPUTF8 (RFC 6532 needs it), and
//! RFC 2047 encoded words that do not decode.

use crate::{Analyzer, Context};
use message::MessageView;
use verdict::Finding;

pub struct Encoding;

impl Analyzer for Encoding {
    fn name(&self) -> &'static str {
        "encoding"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        // Without an SMTP session (an offline scan) nobody knows whether SMTPUTF8 was asked for.
        if !ctx.smtputf8 && super::has_envelope(ctx) {
            let names = names(msg, |h| h.eight_bit);
            if !names.is_empty() {
                out.push(Finding::new(
                    "HEADER_8BIT_NO_SMTPUTF8",
                    format!("raw 8-bit bytes in {names} without SMTPUTF8"),
                ));
            }
        }
        let names = names(msg, |h| h.bad_encoding);
        if !names.is_empty() {
            out.push(Finding::new(
                "HEADER_BAD_RFC2047",
                format!("encoded words that do not decode in {names}"),
            ));
        }
    }
}

/// The first few field names matching `pred`, for a reason.
fn names(msg: &MessageView, pred: impl Fn(&message::Header) -> bool) -> String {
    let mut v: Vec<String> =
        msg.headers.iter().filter(|h| pred(h)).map(|h| super::headers::quote(&h.name)).collect();
    v.dedup();
    v.truncate(5);
    v.join(", ")
}
