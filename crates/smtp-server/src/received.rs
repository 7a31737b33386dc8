//! The `Received:` header this gateway adds (RFC 5321 4.4), with every client-supplied part escaped.

use std::net::IpAddr;

/// Keep only characters that cannot change the header's structure: a HELO name is the client's word.
fn clean(text: &str) -> String {
    text.chars()
        .take(255)
        .map(|c| if c.is_ascii_alphanumeric() || ".-_:[]".contains(c) { c } else { '?' })
        .collect()
}

/// `Received: from HELO ([IP]) by HOST (Portcullis) with PROTO id ID [for <RCPT>]; DATE`.
#[allow(clippy::too_many_arguments)]
pub fn received_header(
    helo: Option<&str>,
    ip: IpAddr,
    hostname: &str,
    esmtp: bool,
    tls: bool,
    utf8: bool,
    id: &str,
    single_recipient: Option<&str>,
    now: time::OffsetDateTime,
) -> String {
    let proto = match (utf8, esmtp, tls) {
        (true, _, true) => "UTF8SMTPS",
        (true, _, false) => "UTF8SMTP",
        (false, true, true) => "ESMTPS",
        (false, true, false) => "ESMTP",
        (false, false, true) => "SMTPS",
        (false, false, false) => "SMTP",
    };
    let date = now
        .format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    let from = clean(helo.unwrap_or("unknown"));
    let mut h = format!(
        "Received: from {from} ([{ip}])\r\n\tby {} (Portcullis) with {proto} id {id}",
        clean(hostname)
    );
    if let Some(rcpt) = single_recipient {
        // Recipients are canonical addresses without control characters; angle brackets keep them apart.
        let rcpt: String = rcpt.chars().filter(|c| !c.is_control() && *c != '>' && *c != '<').collect();
        h.push_str(&format!("\r\n\tfor <{rcpt}>"));
    }
    h.push_str(&format!(";\r\n\t{date}\r\n"));
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_client_text() {
        let h = received_header(
            Some("evil\r\nX-Injected: yes(;)"),
            "192.0.2.1".parse().unwrap(),
            "mx.our.test",
            true,
            true,
            false,
            "0123456789abcdef",
            Some("a@our.test"),
            time::OffsetDateTime::UNIX_EPOCH,
        );
        assert!(h.starts_with("Received: from evil??X-Injected:?yes??? ([192.0.2.1])\r\n\tby mx.our.test"));
        assert!(h.contains("with ESMTPS id 0123456789abcdef\r\n\tfor <a@our.test>;\r\n\t"));
        assert!(h.ends_with("+0000\r\n"));
        assert_eq!(h.matches("\r\n").count(), h.matches("\r\n\t").count() + 1);
    }
}
