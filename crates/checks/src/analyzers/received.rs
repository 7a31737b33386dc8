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
        let ours = ctx.hostname.to_ascii_lowercase();
        for (i, hop) in hops.iter().enumerate().skip(ctx.own_received) {
            let lower = hop.to_ascii_lowercase();
            if !ours.is_empty() && claims_host(&lower, &ours) {
                out.push(Finding::new(
                    "RECEIVED_FORGED_OURS",
                    format!(
                        "Received: field {} names this gateway ({}) but was not added by it",
                        i + 1,
                        ctx.hostname
                    ),
                ));
                break;
            }
        }
        let bad = hops.iter().skip(ctx.own_received).filter(|h| !parses(&h.to_ascii_lowercase())).count();
        if bad > 0 {
            out.push(Finding::new(
                "RECEIVED_UNPARSABLE",
                format!("{bad} Received: field(s) without `by` or a date after `;`"),
            ));
        }
    }
}

/// The hop says `by <our host>` (or `from <our host>`): only we may write that.
fn claims_host(hop: &str, ours: &str) -> bool {
    let words: Vec<&str> =
        hop.split(|c: char| c.is_whitespace() || c == '(' || c == ')').filter(|w| !w.is_empty()).collect();
    words.windows(2).any(|w| matches!(w[0], "by" | "from") && w[1].trim_end_matches(['.', ';']) == ours)
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
    let has_by = clauses.split_whitespace().any(|w| w == "by");
    (has_by || comment_only) && date.chars().any(|c| c.is_ascii_digit()) && date.contains(':')
}
