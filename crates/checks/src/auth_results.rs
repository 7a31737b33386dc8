//! The `Authentication-Results:` field (RFC 8601) this gateway adds to every delivered message, rendered
//! from the authentication findings.
//!
//! The SPF, DKIM, DMARC and ARC analyzers write each finding's reason as `props: comment`, where `props`
//! are the RFC 8601 properties of that result (`smtp.mailfrom=example.org`, `header.d=example.org
//! header.s=sel`) built by [`reason`], and the comment is words for people. [`header`] maps each
//! symbol to its method and result (`SPF_SOFTFAIL` is `spf=softfail`) and reads the properties back;
//! the format lives in this one file.
//!
//! # Security
//! Property values come from the message and the envelope. They are cut to the characters a DNS name or
//! an address can hold (no spaces, semicolons, parentheses or quotes), comments lose parentheses and
//! control characters, everything is length-bounded, and the whole value goes through the verdict
//! sanitiser, so a hostile domain cannot add a result, a field or a line.

use verdict::Finding;
use verdict::render::{HeaderField, sanitize};

/// The field name.
pub const FIELD: &str = "Authentication-Results";
/// Longest property value kept.
const MAX_PVALUE: usize = 255;
/// Longest comment kept.
const MAX_COMMENT: usize = 120;
/// Most results listed (one per DKIM signature, plus SPF, DMARC, ARC).
const MAX_RESULTS: usize = 24;

/// The method and RFC 8601 result a symbol stands for.
pub fn method_result(symbol: &str) -> Option<(&'static str, &'static str)> {
    Some(match symbol {
        "SPF_PASS" => ("spf", "pass"),
        "SPF_FAIL" => ("spf", "fail"),
        "SPF_SOFTFAIL" => ("spf", "softfail"),
        "SPF_NEUTRAL" => ("spf", "neutral"),
        "SPF_NONE" => ("spf", "none"),
        "SPF_TEMPERROR" => ("spf", "temperror"),
        "SPF_PERMERROR" => ("spf", "permerror"),
        "DKIM_ALLOW" => ("dkim", "pass"),
        "DKIM_REJECT" => ("dkim", "fail"),
        "DKIM_TEMPFAIL" => ("dkim", "temperror"),
        "DKIM_PERMFAIL" => ("dkim", "permerror"),
        "DKIM_NA" => ("dkim", "none"),
        "DMARC_POLICY_ALLOW" => ("dmarc", "pass"),
        "DMARC_POLICY_REJECT" | "DMARC_POLICY_QUARANTINE" | "DMARC_POLICY_SOFTFAIL" => ("dmarc", "fail"),
        "DMARC_NA" => ("dmarc", "none"),
        "DMARC_DNSFAIL" => ("dmarc", "temperror"),
        "DMARC_BAD_POLICY" => ("dmarc", "permerror"),
        "ARC_ALLOW" => ("arc", "pass"),
        "ARC_REJECT" => ("arc", "fail"),
        "ARC_NA" => ("arc", "none"),
        "ARC_DNSFAIL" => ("arc", "temperror"),
        _ => return None,
    })
}

/// The reason of an authentication finding: `props` (name, value) then a comment.
pub fn reason(props: &[(&str, &str)], comment: &str) -> String {
    let props: Vec<String> = props
        .iter()
        .map(|(k, v)| (k, pvalue(v)))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{}: {comment}", props.join(" "))
}

/// The `Authentication-Results:` field for `findings`, under our `hostname` (the authserv-id).
pub fn header(hostname: &str, findings: &[Finding]) -> HeaderField {
    let mut results: Vec<(usize, String)> = findings
        .iter()
        .filter_map(|f| {
            let (method, result) = method_result(&f.symbol)?;
            let order = ["spf", "dkim", "dmarc", "arc"].iter().position(|m| *m == method)?;
            Some((order, resinfo(method, result, &f.reason)))
        })
        .collect();
    results.sort_by_key(|(order, _)| *order);
    results.truncate(MAX_RESULTS);
    let mut value = pvalue(hostname);
    if results.is_empty() {
        value.push_str("; none");
    }
    for (_, r) in results {
        value.push_str(";\r\n\t");
        value.push_str(&r);
    }
    HeaderField { name: FIELD, value }
}

/// One `method=result props (comment)`.
fn resinfo(method: &str, result: &str, reason: &str) -> String {
    let (props, comment) = split_reason(reason);
    let mut out = format!("{method}={result}");
    for (k, v) in props {
        out.push_str(&format!(" {k}={v}"));
    }
    // No parentheses (a comment ends only where we end it) and no `;` (no result can start in one).
    let comment: String = sanitize(comment, MAX_COMMENT)
        .chars()
        .filter(|c| !matches!(c, '(' | ')' | '\\'))
        .map(|c| if c == ';' { ',' } else { c })
        .collect();
    if !comment.trim().is_empty() {
        out.push_str(&format!(" ({})", comment.trim()));
    }
    out
}

/// The properties and comment of a reason written by [`reason`]; a reason of another shape is all
/// comment.
fn split_reason(reason: &str) -> (Vec<(&str, String)>, &str) {
    let Some((head, comment)) = reason.split_once(": ") else { return (Vec::new(), reason) };
    let mut props = Vec::new();
    for item in head.split(' ').filter(|s| !s.is_empty()) {
        match item.split_once('=') {
            Some((k, v)) if is_property(k) => props.push((k, pvalue(v))),
            _ => return (Vec::new(), reason),
        }
    }
    (props, comment)
}

/// `ptype.property` with the property types RFC 8601 defines.
fn is_property(k: &str) -> bool {
    let Some((ptype, prop)) = k.split_once('.') else { return false };
    matches!(ptype, "smtp" | "header" | "body" | "policy")
        && !prop.is_empty()
        && prop.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A property value cut to what a domain name or address can hold (lower-case kept as given).
pub(crate) fn pvalue(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+' | '/' | '=' | ':'))
        .take(MAX_PVALUE)
        .collect()
}

/// The authserv-id of an `Authentication-Results:` value: the first token, without comments.
pub fn authserv_id(value: &str) -> String {
    let first = value.split(';').next().unwrap_or("");
    let mut depth = 0usize;
    let mut id = String::new();
    for c in first.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            c if depth == 0 && !c.is_whitespace() => id.push(c),
            c if depth == 0 && !id.is_empty() && c.is_whitespace() => break,
            _ => {}
        }
    }
    id.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_results_in_method_order() {
        let findings = vec![
            Finding::new("DMARC_POLICY_ALLOW", reason(&[("header.from", "example.org")], "aligned")),
            Finding::new("GTUBE", "not an authentication result"),
            Finding::new("SPF_PASS", reason(&[("smtp.mailfrom", "bounce@example.org")], "permitted")),
            Finding::new("DKIM_ALLOW", reason(&[("header.d", "example.org"), ("header.s", "s1")], "ok")),
            Finding::new("DKIM_REJECT", reason(&[("header.d", "other.example")], "bad body hash")),
            Finding::new("ARC_NA", reason(&[], "no ARC sets")),
        ];
        let h = header("mx.our.test", &findings);
        assert_eq!(
            h.to_line(),
            "Authentication-Results: mx.our.test;\r\n\tspf=pass smtp.mailfrom=bounce@example.org (permitted);\
             \r\n\tdkim=pass header.d=example.org header.s=s1 (ok);\r\n\tdkim=fail header.d=other.example \
             (bad body hash);\r\n\tdmarc=pass header.from=example.org (aligned);\r\n\tarc=none (no ARC sets)\r\n"
        );
    }

    #[test]
    fn nothing_checked_is_none() {
        assert_eq!(header("mx.our.test", &[]).to_line(), "Authentication-Results: mx.our.test; none\r\n");
    }

    #[test]
    fn hostile_values_cannot_add_results_or_lines() {
        let evil = "x.test; dkim=pass\r\nBcc: victim@x.test (";
        let findings = vec![
            Finding::new("SPF_FAIL", reason(&[("smtp.mailfrom", evil)], "comment ) ; dmarc=pass\r\nX: y")),
            Finding::new("DKIM_ALLOW", format!("header.d={evil}: free text")),
        ];
        let line = header("mx.our.test", &findings).to_line();
        assert_eq!(line.matches("\r\n").count(), line.matches("\r\n\t").count() + 1, "{line:?}");
        // Two results, so two `;`: after the authserv-id and between the results.
        assert_eq!(line.matches(';').count(), 2, "{line:?}");
        assert!(
            line.contains("\tdkim=pass (header.d=x.test, dkim=pass Bcc: victim@x.test : free text)"),
            "{line:?}"
        );
        assert!(line.contains("spf=fail smtp.mailfrom=x.testdkim=passBcc:victim@x.test"), "{line:?}");
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id(" mx.our.test; spf=pass"), "mx.our.test");
        assert_eq!(authserv_id("(comment) MX.Our.Test. 1; none"), "mx.our.test");
        assert_eq!(authserv_id("other.example; dkim=pass"), "other.example");
    }
}
