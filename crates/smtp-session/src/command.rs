//! The command grammar: one line (CRLF removed) in, one [`Command`] out. No state, no policy.

/// A parsed command line. Arguments borrow from the line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    Ehlo(&'a [u8]),
    Helo(&'a [u8]),
    /// `MAIL FROM:` and everything after the colon.
    Mail(&'a [u8]),
    /// `RCPT TO:` and everything after the colon.
    Rcpt(&'a [u8]),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
    Auth,
    /// A known verb used wrongly; the usage to show.
    Malformed(&'static str),
    Unknown,
}

/// Parse one command line.
pub fn parse(line: &[u8]) -> Command<'_> {
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let arg_is_empty = arg.iter().all(|&b| b == b' ');
    let no_arg = |cmd: Command<'static>, usage: &'static str| {
        if arg_is_empty { cmd } else { Command::Malformed(usage) }
    };
    match verb.to_ascii_uppercase().as_slice() {
        b"EHLO" => helo_arg(arg).map_or(Command::Malformed("EHLO domain"), Command::Ehlo),
        b"HELO" => helo_arg(arg).map_or(Command::Malformed("HELO domain"), Command::Helo),
        b"MAIL" => prefixed(arg, b"FROM:").map_or(Command::Malformed("MAIL FROM:<address>"), Command::Mail),
        b"RCPT" => prefixed(arg, b"TO:").map_or(Command::Malformed("RCPT TO:<address>"), Command::Rcpt),
        b"DATA" => no_arg(Command::Data, "DATA"),
        b"BDAT" => bdat(arg).unwrap_or(Command::Malformed("BDAT size [LAST]")),
        b"RSET" => no_arg(Command::Rset, "RSET"),
        b"NOOP" => Command::Noop,
        b"QUIT" => no_arg(Command::Quit, "QUIT"),
        b"HELP" => Command::Help,
        b"VRFY" => Command::Vrfy,
        b"EXPN" => Command::Expn,
        b"STARTTLS" => no_arg(Command::StartTls, "STARTTLS"),
        b"AUTH" => Command::Auth,
        _ => Command::Unknown,
    }
}

fn helo_arg(arg: &[u8]) -> Option<&[u8]> {
    let arg = arg.trim_ascii();
    // The first word is the client's name; some clients add more, which we ignore.
    let name = arg.split(|&b| b == b' ').next().unwrap_or_default();
    (!name.is_empty()).then_some(name)
}

fn prefixed<'a>(arg: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (arg.len() >= prefix.len() && arg[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &arg[prefix.len()..])
}

fn bdat(arg: &[u8]) -> Option<Command<'static>> {
    let text = std::str::from_utf8(arg).ok()?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let size_word = words.next()?;
    if size_word.len() > 19 || !size_word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = size_word.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some(Command::Bdat { size, last })
}

/// ESMTP parameters after a path: `KEY[=VALUE]` words.
pub fn parameters(rest: &[u8]) -> Option<Vec<(String, Option<String>)>> {
    let text = std::str::from_utf8(rest).ok()?;
    text.split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let (k, v) = match w.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (w, None),
            };
            let key_ok = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            key_ok.then(|| (k.to_ascii_uppercase(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs() {
        assert_eq!(parse(b"ehlo client.test"), Command::Ehlo(b"client.test"));
        assert_eq!(parse(b"HELO"), Command::Malformed("HELO domain"));
        assert_eq!(parse(b"MAIL FROM:<a@b>"), Command::Mail(b"<a@b>"));
        assert_eq!(parse(b"mail from: <a@b>"), Command::Mail(b" <a@b>"));
        assert_eq!(parse(b"RCPT TO:<a@b> X=1"), Command::Rcpt(b"<a@b> X=1"));
        assert_eq!(parse(b"RCPT <a@b>"), Command::Malformed("RCPT TO:<address>"));
        assert_eq!(parse(b"DATA"), Command::Data);
        assert_eq!(parse(b"DATA x"), Command::Malformed("DATA"));
        assert_eq!(parse(b"BDAT 100 LAST"), Command::Bdat { size: 100, last: true });
        assert_eq!(parse(b"BDAT 0"), Command::Bdat { size: 0, last: false });
        assert_eq!(parse(b"BDAT -1"), Command::Malformed("BDAT size [LAST]"));
        assert_eq!(parse(b"BDAT 99999999999999999999"), Command::Malformed("BDAT size [LAST]"));
        assert_eq!(parse(b"BDAT 1 LAST x"), Command::Malformed("BDAT size [LAST]"));
        assert_eq!(parse(b"STARTTLS"), Command::StartTls);
        assert_eq!(parse(b"XYZZY"), Command::Unknown);
        assert_eq!(parse(b""), Command::Unknown);
    }

    #[test]
    fn params() {
        assert_eq!(
            parameters(b" SIZE=100 smtputf8").unwrap(),
            vec![("SIZE".into(), Some("100".into())), ("SMTPUTF8".into(), None)]
        );
        assert!(parameters(b" =x").is_none());
    }
}
