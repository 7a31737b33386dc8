//! Scripted sessions: bytes in, replies and events out, with the driver's answers simulated.

use crate::*;

fn cfg() -> SessionConfig {
    SessionConfig {
        hostname: "mx.our.test".into(),
        accepted_domains: vec!["our.test".into()],
        valid_recipients: vec![],
        max_message_size: 1000,
        max_recipients: 3,
        max_line_length: 512,
        max_errors: 5,
        max_messages: 3,
        starttls: true,
        require_tls: false,
    }
}

#[derive(Default)]
struct Driver {
    out: String,
    current: Vec<u8>,
    messages: Vec<(Transaction, Vec<u8>)>,
    aborted: usize,
    closed: bool,
    tls_requests: usize,
}

struct Harness {
    s: Session,
    d: Driver,
}

impl Harness {
    fn new(cfg: SessionConfig) -> Harness {
        let mut s = Session::new(cfg);
        s.greet();
        let mut h = Harness { s, d: Driver::default() };
        h.pump();
        h
    }

    /// Feed bytes, answer every event as an accepting driver would, return the replies written.
    fn send(&mut self, bytes: &[u8]) -> String {
        self.s.feed(bytes);
        self.pump()
    }

    fn pump(&mut self) -> String {
        while let Some(ev) = self.s.poll() {
            match ev {
                Event::CheckSender | Event::CheckRecipient(_) => self.s.decide(Decision::Accept),
                Event::DataStart => {
                    self.d.current.clear();
                    self.s.decide(Decision::Accept)
                }
                Event::Data(b) => self.d.current.extend_from_slice(&b),
                Event::MessageEnd => {
                    let t = self.s.transaction().unwrap().clone();
                    self.d.messages.push((t, std::mem::take(&mut self.d.current)));
                    self.s.finish_message(replies::queued("Q1"));
                }
                Event::DataAborted => {
                    self.d.current.clear();
                    self.d.aborted += 1
                }
                Event::StartTls => {
                    self.d.tls_requests += 1;
                    self.s.tls_started();
                }
                Event::Close => self.d.closed = true,
            }
        }
        let out = String::from_utf8(self.s.take_output()).unwrap();
        self.d.out.push_str(&out);
        out
    }

    fn codes(&mut self, bytes: &[u8]) -> Vec<String> {
        self.send(bytes)
            .lines()
            .filter(|l| l.as_bytes().get(3) == Some(&b' '))
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn started() -> Harness {
    let mut h = Harness::new(cfg());
    h.send(b"EHLO client.test\r\n");
    h
}

#[test]
fn greeting_and_ehlo() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.d.out, "220 mx.our.test ESMTP Portcullis\r\n");
    let ehlo = h.send(b"EHLO client.test\r\n");
    for ext in
        ["PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "STARTTLS"]
    {
        assert!(
            ehlo.contains(&format!("250-{ext}\r\n")) || ehlo.contains(&format!("250 {ext}\r\n")),
            "{ext}"
        );
    }
}

#[test]
fn a_whole_pipelined_transaction() {
    let mut h = started();
    let codes = h.codes(
        b"MAIL FROM:<a@ext.test> SIZE=100\r\nRCPT TO:<b@our.test>\r\nRCPT TO:<c@OUR.test.>\r\nDATA\r\n\
          Subject: hi\r\n\r\n..x\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(codes, ["250 2.1.0", "250 2.1.5", "250 2.1.5", "354 End", "250 2.0.0", "221 2.0.0"]);
    let (txn, body) = &h.d.messages[0];
    assert_eq!(txn.sender.as_ref().unwrap().to_string(), "a@ext.test");
    let rcpts: Vec<String> = txn.recipients.iter().map(|r| r.to_string()).collect();
    assert_eq!(rcpts, ["b@our.test", "c@our.test"]);
    assert_eq!(body, b"Subject: hi\r\n\r\n.x\r\n");
    assert!(h.d.closed);
}

#[test]
fn sequence_errors() {
    let mut h = Harness::new(SessionConfig { max_errors: 10, ..cfg() });
    assert_eq!(h.codes(b"MAIL FROM:<a@b.test>\r\n"), ["503 5.5.1"]);
    h.send(b"HELO c\r\n");
    assert_eq!(h.codes(b"RCPT TO:<b@our.test>\r\n"), ["503 5.5.1"]);
    assert_eq!(h.codes(b"DATA\r\n"), ["503 5.5.1"]);
    h.send(b"MAIL FROM:<>\r\n");
    assert_eq!(h.codes(b"MAIL FROM:<>\r\n"), ["503 5.5.1"]);
    assert_eq!(h.codes(b"DATA\r\n"), ["554 5.5.1"]);
}

#[test]
fn relay_attempts_are_denied() {
    let mut h = started();
    h.send(b"MAIL FROM:<a@ext.test>\r\n");
    for rcpt in [
        "<v@ext.test>",
        "<\"v@ext.test\">",
        "<v%ext.test@our.test>",
        "<ext.test!v@our.test>",
        "<@our.test:v@ext.test>",
        "<v@ext.test@our.test>",
        "<v@[127.0.0.1]>",
    ] {
        let codes = h.codes(format!("RCPT TO:{rcpt}\r\n").as_bytes());
        assert!(codes == ["550 5.7.1"] || codes[0].starts_with("501"), "{rcpt}: {codes:?}");
        h.s = {
            // Reset the error counter between probes by starting a fresh session.
            let mut s = Session::new(cfg());
            s.greet();
            s
        };
        h.pump();
        h.send(b"EHLO c\r\nMAIL FROM:<a@ext.test>\r\n");
    }
}

#[test]
fn shell_metacharacters_in_envelope() {
    for sender in ["<;touch /tmp/x;>", "<`id`@a.test>", "<$(id)@a.test>"] {
        let mut h = started();
        assert_eq!(h.codes(format!("MAIL FROM:{sender}\r\n").as_bytes()), ["501 5.1.7"], "{sender}");
        assert_eq!(h.codes(b"MAIL FROM:<ok@a.test>\r\n"), ["250 2.1.0"]);
    }
    let mut h = started();
    h.send(b"MAIL FROM:<a@b.test>\r\n");
    let codes = h.codes(b"RCPT TO:<${run{/bin/sh -c id}}@our.test>\r\n");
    assert!(codes == ["501 5.1.3"] || codes == ["550 5.7.1"], "{codes:?}");
}

#[test]
fn control_bytes_and_bare_line_endings_in_commands() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.codes(b"EHLO a\x00b\r\n"), ["501 5.5.2"]);
    assert_eq!(h.codes(b"EHLO a\rb\r\n"), ["501 5.5.2"]);
    assert_eq!(h.codes(b"EHLO a\n"), ["501 5.5.2"]);
    assert_eq!(h.codes("EHLO caf\u{e9}\r\n".as_bytes()), ["501 5.5.2"]);
    assert_eq!(h.codes(b"EHLO ok.test\r\n"), ["250 HELP"]);
}

#[test]
fn long_lines_are_discarded_while_streaming() {
    let mut h = started();
    let mut line = b"MAIL FROM:<".to_vec();
    line.extend(std::iter::repeat_n(b'a', 10_000));
    // Sent in pieces: nothing is replied until the line ends, and the buffer never holds it all.
    for piece in line.chunks(700) {
        assert_eq!(h.send(piece), "");
        assert!(h.s.input.len() < 1024);
    }
    assert_eq!(h.codes(b"@x.test>\r\n"), ["500 5.5.2"]);
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test>\r\n"), ["250 2.1.0"]);
}

#[test]
fn recipient_limit() {
    let mut h = started();
    h.send(b"MAIL FROM:<a@x.test>\r\n");
    let codes = h.codes(b"RCPT TO:<r1@our.test>\r\nRCPT TO:<r2@our.test>\r\nRCPT TO:<r3@our.test>\r\nRCPT TO:<r4@our.test>\r\n");
    assert_eq!(codes, ["250 2.1.5", "250 2.1.5", "250 2.1.5", "452 4.5.3"]);
    h.send(b"DATA\r\nx\r\n.\r\n");
    assert_eq!(h.d.messages[0].0.recipients.len(), 3);
}

#[test]
fn error_limit_closes() {
    let mut h = Harness::new(cfg());
    let codes = h.codes(b"X1\r\nX2\r\nX3\r\nX4\r\nX5\r\nX6\r\n");
    assert_eq!(codes, ["500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"]);
    assert!(h.d.closed);
    assert_eq!(h.send(b"NOOP\r\n"), "");
}

#[test]
fn oversize_is_refused_after_the_end_and_nothing_kept() {
    let mut h = started();
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test> SIZE=99999999999\r\n"), ["552 5.3.4"]);
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test> SIZE=99999999999999999999999\r\n"), ["552 5.3.4"]);
    h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\n");
    let line = [b'x'; 98].iter().chain(b"\r\n").copied().collect::<Vec<u8>>();
    for _ in 0..50 {
        h.send(&line);
    }
    assert_eq!(h.codes(b".\r\n"), ["552 5.3.4"]);
    assert!(h.d.messages.is_empty());
    assert_eq!(h.d.aborted, 1);
    // The session goes on.
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test>\r\n"), ["250 2.1.0"]);
}

#[test]
fn smuggling_never_yields_two_messages() {
    for payload in [
        &b"a\n.\nMAIL FROM:<x@y.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nsmuggled\r\n.\r\n"[..],
        b"a\r\n.\nMAIL FROM:<x@y.test>\r\n",
        b"a\n.\r\nMAIL FROM:<x@y.test>\r\n",
        b"a\r.\r\nMAIL FROM:<x@y.test>\r\n",
        b"a\r\n.\rMAIL FROM:<x@y.test>\r\n",
        b"a\r.\rMAIL FROM:<x@y.test>\r\n",
        b"a\r\n.\r\r\n",
    ] {
        let mut h = started();
        h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\n");
        let codes = h.codes(payload);
        assert_eq!(codes, ["550 5.5.2"], "{payload:?}");
        assert!(h.d.closed && h.d.messages.is_empty() && h.d.aborted == 1, "{payload:?}");
    }
    // A NUL before the dot keeps the dot inside the message.
    let mut h = started();
    h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\n");
    let codes = h.codes(b"a\r\n\x00.\r\nMAIL FROM:<x@y.test>\r\n.\r\n");
    assert_eq!(codes, ["250 2.0.0"]);
    assert_eq!(h.d.messages.len(), 1);
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut h = started();
    let codes = h.codes(b"STARTTLS\r\nMAIL FROM:<x@y.test>\r\n");
    assert_eq!(codes, ["220 2.0.0"]);
    assert_eq!(h.d.tls_requests, 1);
    // After the handshake the session starts over: RCPT has no MAIL to follow.
    assert_eq!(h.codes(b"RCPT TO:<b@our.test>\r\n"), ["503 5.5.1"]);
    let ehlo = h.send(b"EHLO c\r\n");
    assert!(!ehlo.contains("STARTTLS"));
    assert_eq!(h.codes(b"STARTTLS\r\n"), ["503 5.5.1"]);
}

#[test]
fn require_tls() {
    let mut h = Harness::new(SessionConfig { require_tls: true, ..cfg() });
    h.send(b"EHLO c\r\n");
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test>\r\n"), ["530 5.7.0"]);
}

#[test]
fn bdat_chunks() {
    let mut h = started();
    let codes =
        h.codes(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nBDAT 4\r\nab\r\nBDAT 3 LAST\r\nc\r\n");
    assert_eq!(codes, ["250 2.1.0", "250 2.1.5", "250 2.0.0", "250 2.0.0"]);
    assert_eq!(h.d.messages[0].1, b"ab\r\nc\r\n");
    // BDAT with a bare LF is refused but its bytes are consumed: nothing inside runs as a command.
    let codes = h
        .codes(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nBDAT 13 LAST\r\nx\nQUIT\r\nabc\r\nNOOP\r\n");
    assert_eq!(codes, ["250 2.1.0", "250 2.1.5", "550 5.5.2", "250 2.0.0"]);
    assert_eq!(h.d.messages.len(), 1);
    // BDAT without a transaction still consumes its bytes.
    assert_eq!(h.codes(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), ["503 5.5.1", "250 2.0.0"]);
    assert!(!h.d.closed);
    // DATA after BDAT is out of sequence; a bad size closes (the bytes cannot be skipped).
    h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nBDAT 2\r\nab");
    assert_eq!(h.codes(b"DATA\r\n"), ["503 5.5.1"]);
    assert_eq!(h.codes(b"BDAT x\r\n"), ["501 5.5.4"]);
    assert!(h.d.closed);
}

#[test]
fn bdat_oversize() {
    let mut h = started();
    h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\n");
    let mut input = b"BDAT 2000 LAST\r\n".to_vec();
    input.extend([b'x'; 2000]);
    assert_eq!(h.codes(&input), ["552 5.3.4"]);
    assert!(h.d.messages.is_empty());
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test>\r\n"), ["250 2.1.0"]);
}

#[test]
fn message_limit_per_session() {
    let mut h = started();
    for _ in 0..3 {
        h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\nx\r\n.\r\n");
    }
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test>\r\n"), ["421 4.7.0"]);
    assert!(h.d.closed);
}

#[test]
fn timeout_mid_data_aborts() {
    let mut h = started();
    h.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@our.test>\r\nDATA\r\npartial");
    assert_eq!(h.s.deadline(), Deadline::Data);
    h.s.timed_out();
    assert_eq!(h.codes(b""), ["421 4.4.2"]);
    assert_eq!(h.d.aborted, 1);
    assert!(h.d.messages.is_empty() && h.d.closed);
}

#[test]
fn misc_commands() {
    let mut h = started();
    assert_eq!(
        h.codes(b"NOOP\r\nHELP\r\nVRFY root\r\nEXPN list\r\nRSET\r\n"),
        ["250 2.0.0", "214 2.0.0", "252 2.5.0", "502 5.5.1", "250 2.0.0"]
    );
    assert_eq!(h.codes(b"MAIL FROM:<a@x.test> RET=FULL\r\n"), ["555 5.5.4"]);
    assert_eq!(h.codes(b"MAIL FROM:<\xc3\xbc@x.test>\r\n"), ["553 5.6.7"]);
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut h = started();
    // Non-ASCII is refused as a control-byte matter unless it is inside a path with SMTPUTF8.
    h.s.cfg.max_errors = 50;
    let r = h.codes("MAIL FROM:<j\u{f6}rg@x.test> SMTPUTF8\r\n".as_bytes());
    assert_eq!(r, ["250 2.1.0"]);
    let r = h.codes("RCPT TO:<j\u{f6}rg@our.test>\r\n".as_bytes());
    assert_eq!(r, ["250 2.1.5"]);
}

#[test]
fn unknown_recipients_are_refused_at_rcpt() {
    let mut h = Harness::new(SessionConfig { valid_recipients: vec!["known@our.test".into()], ..cfg() });
    h.send(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    assert_eq!(h.codes(b"RCPT TO:<Known@OUR.test>\r\n"), ["250 2.1.5"]);
    assert_eq!(h.codes(b"RCPT TO:<other@our.test>\r\n"), ["550 5.1.1"]);
    let mut h = Harness::new(SessionConfig { valid_recipients: vec!["@our.test".into()], ..cfg() });
    h.send(b"EHLO c\r\nMAIL FROM:<a@x.test>\r\n");
    assert_eq!(h.codes(b"RCPT TO:<any@our.test>\r\n"), ["250 2.1.5"]);
}

mod never_panics {
    //! Properties that always run: any bytes, in any splits, with any answers from the driver, never
    //! panic the session machine, and its buffers stay bounded.
    use crate::*;
    use proptest::prelude::*;

    fn small_cfg() -> SessionConfig {
        SessionConfig {
            hostname: "mx.our.test".into(),
            accepted_domains: vec!["our.test".into()],
            valid_recipients: vec![],
            max_message_size: 2000,
            max_recipients: 3,
            max_line_length: 512,
            max_errors: 50,
            max_messages: 5,
            starttls: true,
            require_tls: false,
        }
    }

    /// Input that is mostly SMTP, so the machine gets past the greeting and into DATA and BDAT.
    fn chunk() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            Just(b"EHLO c\r\n".to_vec()),
            Just(b"MAIL FROM:<a@b.test>\r\n".to_vec()),
            Just(b"RCPT TO:<x@our.test>\r\n".to_vec()),
            Just(b"DATA\r\n".to_vec()),
            Just(b"BDAT 5 LAST\r\nhello".to_vec()),
            Just(b"\r\n.\r\n".to_vec()),
            Just(b"\n.\n".to_vec()),
            Just(b"STARTTLS\r\n".to_vec()),
            Just(b"RSET\r\n".to_vec()),
            "[ -~]{0,600}\r\n".prop_map(String::into_bytes),
        ]
    }

    fn answer(pick: u8) -> Decision {
        match pick % 3 {
            0 => Decision::Accept,
            1 => Decision::Refuse(replies::policy_reject()),
            _ => Decision::Refuse(replies::rejected("TEST")),
        }
    }

    fn run(chunks: &[Vec<u8>], picks: &[u8]) {
        let cfg = small_cfg();
        let mut s = Session::new(cfg.clone());
        s.greet();
        let mut k = 0usize;
        let mut pick = || {
            k += 1;
            picks.get(k % picks.len().max(1)).copied().unwrap_or(0)
        };
        let mut content = 0u64;
        for c in chunks {
            s.feed(c);
            while let Some(ev) = s.poll() {
                match ev {
                    Event::CheckSender | Event::CheckRecipient(_) | Event::DataStart => {
                        s.decide(answer(pick()))
                    }
                    Event::Data(d) => content += d.len() as u64,
                    Event::MessageEnd => {
                        let ok = pick() % 2 == 0;
                        s.finish_message(if ok {
                            replies::queued("0123456789abcdef")
                        } else {
                            replies::rejected("X")
                        });
                        content = 0;
                    }
                    Event::DataAborted => content = 0,
                    Event::StartTls => s.tls_started(),
                    Event::Close => break,
                }
                assert!(content <= cfg.max_message_size, "content passed the size limit");
            }
            let _ = s.take_output();
            // Whatever is left waiting is at most one command line (long lines are discarded as they stream).
            assert!(s.input.len() <= cfg.max_line_length + 200, "input buffer grew to {}", s.input.len());
            if s.is_closed() {
                break;
            }
        }
        s.eof();
        while s.poll().is_some() {}
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_input_any_answers(chunks in proptest::collection::vec(chunk(), 0..40), picks in proptest::collection::vec(any::<u8>(), 1..16)) {
            run(&chunks, &picks);
        }

        #[test]
        fn any_address_text(s in "\\PC{0,300}", raw in proptest::collection::vec(any::<u8>(), 0..300), utf8 in any::<bool>()) {
            let _ = Address::parse(&s);
            if let Some((inner, _params)) = address::split_path(&raw) {
                let _ = address::parse_path(inner, utf8);
            }
            let _ = address::parse_path(&raw, utf8);
        }
    }
}
