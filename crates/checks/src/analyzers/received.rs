//! The `Received:` chain: hops that claim to be this gateway although we did not add them (a forged
//! trail, often to look internal), hops that do not parse, and loops.

use crate::{Analyzer, Context};
use message::MessageView;
use verdict::Finding;

/// More hops than this is a loop or a padded header (Postfix bounces at 50 hops as well).
const MAX_HOPS: usize = 50;

pub struct Received;

impl Analyzer for Received {
    fn name(&self) -> &'static str {
        "received"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let hops: Vec<&str> = msg.header_all("Received").map(|h| h.decoded.as_str()).collect();
        if hops.len() > MAX_HOPS {
            out.push(Finding::new("RECEIVED_TOO_MANY", format!("{} Received: fields", hops.len())));
        }
        let ours = ctx.hostname;
        let mut forged = None;
        let mut bad = 0;
        for (i, hop) in hops.iter().enumerate().skip(ctx.own_received) {
            if forged.is_none() && !ours.is_empty() && claims_host(hop, ours) {
                forged = Some(i + 1);
            }
            bad += usize::from(!parses(hop));
        }
        if let Some(n) = forged {
            out.push(Finding::new(
                "RECEIVED_FORGED_OURS",
                format!("Received: field {n} names this gateway ({}) but was not added by it", ctx.hostname),
            ));
        }
        if bad > 0 {
            out.push(Finding::new(
                "RECEIVED_UNPARSABLE",
                format!("{bad} Received: field(s) without `by` or a date after `;`"),
            ));
        }
    }
}

/// The hop says `by <our host>` (or `from <our host>`), in any case: only we may write that.
fn claims_host(hop: &str, ours: &str) -> bool {
    if !contains_ignore_case(hop.as_bytes(), ours.as_bytes()) {
        return false; // most hops: our name is nowhere in them
    }
    let mut words = hop.split(|c: char| c.is_whitespace() || c == '(' || c == ')').filter(|w| !w.is_empty());
    let mut previous = match words.next() {
        Some(w) => w,
        None => return false,
    };
    for w in words {
        let clause = previous.eq_ignore_ascii_case("by") || previous.eq_ignore_ascii_case("from");
        if clause && w.trim_end_matches(['.', ';']).eq_ignore_ascii_case(ours) {
            return true;
        }
        previous = w;
    }
    false
}

/// Whether `needle` (not empty) occurs in `hay`, ASCII letters in any case: a search for its first
/// byte in both cases, then a comparison there.
fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else { return true };
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    memchr::memchr2_iter(lower, upper, hay)
        .any(|i| hay.get(i..i + needle.len()).is_some_and(|w| w.eq_ignore_ascii_case(needle)))
}

/// RFC 5321 4.4: a trace field has a `by` clause and ends in `; date-time`. A field that is only a
/// comment and a date is well-formed too (RFC 5322's `received` needs no clause at all), and common:
/// qmail writes `(qmail 123 invoked from network); <date>`, Yahoo `(EGP: mail-8_1_0_1); <date>`.
fn parses(hop: &str) -> bool {
    let Some((clauses, date)) = hop.rsplit_once(';') else {
        return false;
    };
    let clauses = clauses.trim();
    let comment_only = clauses.starts_with('(') && clauses.ends_with(')');
    let has_by = clauses.split_whitespace().any(|w| w.eq_ignore_ascii_case("by"));
    (has_by || comment_only) && date.chars().any(|c| c.is_ascii_digit()) && date.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_and_names_in_any_case() {
        assert!(claims_host(
            "from x (x [192.0.2.1]) BY MX.Our.Test; Mon, 1 Jan 2024 00:00:00 +0000",
            "mx.our.test"
        ));
        assert!(claims_host("from mx.our.test. (helo) by relay.example", "mx.our.test"));
        assert!(!claims_host("from relay.example by mx.our.test.evil; Mon", "mx.our.test"));
        assert!(!claims_host("mx.our.test", "mx.our.test"));
        assert!(parses("from a BY b; Mon, 1 Jan 2024 00:00:00 +0000"));
        assert!(parses("(qmail 123 invoked from network); 1 Jan 2024 00:00:00 -0000"));
        assert!(!parses("from a to b; Mon, 1 Jan 2024 00:00:00 +0000"));
        assert!(!parses("from a by b"));
        assert!(contains_ignore_case(b"by MX.our.TEST;", b"mx.our.test"));
        assert!(!contains_ignore_case(b"by mx.our.tes", b"mx.our.test"));
    }
}
