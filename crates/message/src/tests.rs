//! Whole-parse tests: structure, defects and every limit, including the THREATS.md bombs.

use crate::*;

fn limits() -> MessageLimits {
    MessageLimits::default()
}

fn hit(v: &MessageView, l: Limit) -> bool {
    v.limit_hits.iter().any(|h| h.limit == l)
}

#[test]
fn simple_message_fields() {
    let m = b"From: \"Alice A.\" <alice@example.org>\r\nTo: bob@example.com\r\nReply-To: other@else.test\r\n\
Subject: =?utf-8?q?Caf=C3=A9?=\r\nDate: Tue, 1 Jul 2025 10:00:00 +0000\r\nMessage-ID: <abc@example.org>\r\n\
Return-Path: <bounce@example.org>\r\n\r\nHello, see https://shop.example/x\r\n";
    let v = parse(m, &limits());
    assert_eq!(v.from, [Mailbox { name: Some("Alice A.".into()), address: "alice@example.org".into() }]);
    assert_eq!(v.from[0].domain().as_deref(), Some("example.org"));
    assert_eq!(v.reply_to[0].address, "other@else.test");
    assert_eq!(v.subject.as_deref(), Some("Café"));
    assert_eq!(v.header("subject").unwrap().decoded, "Café");
    assert_eq!(v.message_id.as_deref(), Some("abc@example.org"));
    assert_eq!(v.return_path.as_deref(), Some("bounce@example.org"));
    assert_eq!(v.date.unwrap().timestamp, 1_751_364_000);
    assert_eq!(v.texts.len(), 1);
    assert_eq!(v.urls[0].host, "shop.example");
    assert!(v.limit_hits.is_empty());
}

#[test]
fn multipart_text_html_and_attachment() {
    let m = b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\npreamble\r\n--outer\r\n\
Content-Type: multipart/alternative; boundary=inner\r\n\r\n--inner\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\r\nh=E9llo\r\n--inner\r\nContent-Type: text/html\r\n\r\n\
<p>Pay <a href=\"http://evil.test/\">paypal.com</a></p>\r\n--inner--\r\n--outer\r\n\
Content-Type: application/octet-stream; name=\"x.bin\"\r\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.exe\r\n\
Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAA=\r\n--outer--\r\nepilogue\r\n";
    let v = parse(m, &limits());
    let paths: Vec<&str> = v.parts.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["", "1", "1.1", "1.2", "2"]);
    assert_eq!(v.texts[0].text, "héllo");
    assert!(v.texts[1].html && v.texts[1].text.contains("Pay paypal.com"));
    assert_eq!(
        v.html.as_deref(),
        Some("<p>Pay <a href=\"http://evil.test/\">paypal.com</a></p>"),
        "the source, for previews"
    );
    assert_eq!(v.urls[0].host, "evil.test");
    assert_eq!(v.urls[0].text.as_deref(), Some("paypal.com"));
    let a = &v.attachments[0];
    assert_eq!(a.filename.as_deref(), Some("résumé.exe"));
    assert_eq!(a.declared_type, "application/octet-stream");
    assert_eq!(a.detected_type, Some("application/vnd.microsoft.portable-executable"));
    assert!(v.parts.iter().all(|p| p.defects.is_empty()), "{:?}", v.parts);
}

#[test]
fn mime_differentials_are_defects() {
    let m = b"Content-Type: multipart/mixed; boundary=a\r\nContent-Type: text/plain\r\n\
Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n--a\r\n\
Content-Type: application/pdf; boundary=x; boundary=y\r\n\
Content-Disposition: attachment; filename=\"a.pdf\"; filename*=utf-8''a.exe\r\n\r\nxx\r\n--a\r\nno end\r\n";
    let v = parse(m, &limits());
    let d = |i: usize| v.parts[i].defects.clone();
    assert!(d(0).contains(&Defect::DuplicateContentType));
    assert!(d(0).contains(&Defect::DuplicateTransferEncoding));
    assert!(d(0).contains(&Defect::MissingClosingBoundary));
    assert!(d(1).contains(&Defect::FilenameMismatch));
    assert!(d(1).contains(&Defect::DuplicateParameter));
    assert_eq!(v.attachments[0].filename.as_deref(), Some("a.exe"));
}

fn nested_multiparts(n: usize) -> Vec<u8> {
    let mut m = Vec::new();
    for i in 0..n {
        m.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"Content-Type: text/plain\r\n\r\ndeepest\r\n");
    for i in (0..n).rev() {
        m.extend_from_slice(format!("--b{i}--\r\n").as_bytes());
    }
    m
}

#[test]
fn a_thousand_nested_multiparts_stop_at_the_depth_limit() {
    let v = parse(&nested_multiparts(1000), &limits());
    assert!(hit(&v, Limit::Depth));
    assert_eq!(v.parts.iter().map(|p| p.depth).max(), Some(limits().max_depth));
    assert!(v.texts.is_empty(), "nothing below the limit is read: {:?}", v.texts);
    let shallow = parse(&nested_multiparts(5), &limits());
    assert_eq!(shallow.texts[0].text, "deepest");
    assert!(shallow.limit_hits.is_empty());
}

#[test]
fn deeply_enclosed_messages_plain_and_base64_do_not_overflow() {
    let mut inner = Vec::new();
    for _ in 0..100_000 {
        inner.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    inner.extend_from_slice(b"Subject: x\r\n\r\nhi\r\n");
    let v = parse(&inner, &limits());
    assert!(hit(&v, Limit::Depth));
    assert_eq!(v.parts.len(), limits().max_depth + 1);
    // The case that aborts mail-parser 0.11.9: the same nesting inside a base64 message/rfc822.
    let mut m = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n".to_vec();
    m.extend_from_slice(base64(&inner).as_bytes());
    let v = parse(&m, &limits());
    assert!(hit(&v, Limit::Depth));
    assert_eq!(v.parts[1].path, "1");
}

#[test]
fn part_count_is_bounded_and_missing_boundaries_are_linear() {
    // 20,000 parts each declaring a boundary that never appears: quadratic in mail-parser 0.11.9.
    let mut m = b"Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n".to_vec();
    for i in 0..20_000 {
        m.extend_from_slice(
            format!("--p\r\nContent-Type: multipart/mixed; boundary=\"zz{i}\"\r\n\r\nx\r\n").as_bytes(),
        );
    }
    m.extend_from_slice(b"--p--\r\n");
    let v = parse(&m, &limits());
    assert!(hit(&v, Limit::Parts));
    assert_eq!(v.parts.len(), limits().max_parts);
    assert!(v.parts[1].defects.contains(&Defect::BoundaryNotFound));
    let many = MessageLimits { max_parts: 100_000, ..limits() };
    let v = parse(&m, &many);
    assert_eq!(v.parts.len(), 20_001);
}

#[test]
fn one_megabyte_header_line() {
    let mut m = b"Subject: ".to_vec();
    m.extend(std::iter::repeat_n(b'a', 1 << 20));
    m.extend_from_slice(b"\r\nFrom: a@b.example\r\n\r\nbody\r\n");
    let v = parse(&m, &limits());
    assert!(hit(&v, Limit::HeaderBytes));
    assert_eq!(v.headers.len(), 1);
    assert_eq!(v.headers[0].raw.len(), limits().max_header_bytes - "Subject:".len());
    assert_eq!(v.texts[0].text.trim(), "body", "the body is still read");
    // With room for it, the whole line is read (and parsed by mail-parser) in one pass.
    let roomy = MessageLimits { max_header_bytes: 4 << 20, ..limits() };
    let v = parse(&m, &roomy);
    assert!(v.limit_hits.is_empty());
    assert_eq!(v.subject.as_ref().map(String::len), Some(1 << 20));
    assert_eq!(v.from[0].address, "a@b.example");
}

#[test]
fn fifty_thousand_headers() {
    let mut m = Vec::new();
    for i in 0..50_000 {
        m.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    m.extend_from_slice(b"From: a@b.example\r\n\r\nbody\r\n");
    let v = parse(&m, &limits());
    assert!(hit(&v, Limit::Headers));
    assert_eq!(v.headers.len(), limits().max_headers);
    assert!(v.from.is_empty(), "From came after the limit");
    let roomy = MessageLimits { max_headers: 100_000, max_header_bytes: 4 << 20, ..limits() };
    let v = parse(&m, &roomy);
    assert_eq!(v.headers.len(), 50_001);
    assert_eq!(v.from[0].address, "a@b.example");
}

#[test]
fn one_megabyte_of_folded_continuations() {
    let mut m = b"Subject: start".to_vec();
    for _ in 0..(1 << 20) / 4 {
        m.extend_from_slice(b"\r\n x");
    }
    m.extend_from_slice(b"\r\nTo: c@d.example\r\n\r\nbody\r\n");
    let v = parse(&m, &limits());
    assert!(hit(&v, Limit::HeaderBytes));
    let roomy = MessageLimits { max_header_bytes: 4 << 20, ..limits() };
    let v = parse(&m, &roomy);
    assert!(v.limit_hits.is_empty());
    assert_eq!(v.headers.len(), 2);
    assert!(v.subject.as_deref().unwrap().ends_with("x x"));
    assert_eq!(v.to[0].address, "c@d.example");
}

#[test]
fn decoded_text_and_url_limits() {
    let body = "http://u.example/ ".repeat(1000);
    let m = format!("Subject: x\r\n\r\n{body}");
    let small = MessageLimits { max_text_bytes: 1000, max_urls: 10, ..limits() };
    let v = parse(m.as_bytes(), &small);
    assert!(hit(&v, Limit::TextBytes) && hit(&v, Limit::Urls));
    assert!(v.texts[0].text.len() <= 1000 && v.texts[0].truncated);
    assert_eq!(v.urls.len(), 10);
    let m = b"Content-Type: application/octet-stream\r\n\r\n0123456789";
    let v = parse(m, &MessageLimits { max_part_bytes: 4, ..limits() });
    assert!(hit(&v, Limit::PartBytes));
    assert_eq!((v.attachments[0].size, v.attachments[0].data.as_slice()), (10, &b"0123"[..]));
}

#[test]
fn garbage_never_panics() {
    for m in [
        &b""[..],
        b"\r\n",
        b"no colon at all",
        b"A:\r\n\r\n",
        b"\xff\xfe: \xff\r\n\r\n\xff",
        b"Content-Type: multipart/x; boundary=\r\n\r\n--\r\n",
    ] {
        let _ = parse(m, &limits());
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        let n = u32::from(c[0]) << 16
            | u32::from(*c.get(1).unwrap_or(&0)) << 8
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= c.len() { T[(n >> (18 - 6 * k)) as usize & 63] as char } else { '=' });
        }
        if i % 19 == 18 {
            out.push_str("\r\n");
        }
    }
    out
}

/// Mutations of a rich message (bytes flipped, cut, duplicated) never panic and keep every bound.
#[test]
fn mutated_messages_never_panic_and_stay_bounded() {
    let seed: &[u8] = b"From: \"A\" <a@b.example>\r\nSubject: =?utf-8?B?w6k=?=\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n\
--x\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaQ0KDQpoaQ==\r\n\
--x\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<a href=3D'http://h.example/'>t=E9</a>\r\n\
--x\r\nContent-Disposition: attachment; filename*0*=utf-8''a%20; filename*1=b.exe\r\n\r\nMZ\r\n--x--\r\n";
    let small = MessageLimits { max_depth: 3, max_parts: 8, max_urls: 4, max_text_bytes: 64, ..limits() };
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    for _ in 0..3000 {
        let mut m = seed.to_vec();
        for _ in 0..1 + next() % 8 {
            let i = next() % m.len();
            match next() % 4 {
                0 => m[i] = (next() % 256) as u8,
                1 => m.truncate(i.max(1)),
                2 => {
                    let piece = m[i..m.len().min(i + 40)].to_vec();
                    m.splice(i..i, piece);
                }
                _ => m.insert(i, [b'\n', b'-', b'=', b'<', b'?'][next() % 5]),
            }
        }
        let v = parse(&m, &small);
        assert!(v.parts.len() <= small.max_parts);
        assert!(v.parts.iter().all(|p| p.depth <= small.max_depth));
        assert!(v.urls.len() <= small.max_urls);
        assert!(v.texts.iter().map(|t| t.text.len()).sum::<usize>() <= small.max_text_bytes);
    }
}

mod never_panics {
    //! `parse` never panics and stays within its limits, on any bytes and on MIME-shaped noise.
    use crate::{MessageLimits, parse};
    use proptest::prelude::*;

    fn limits() -> MessageLimits {
        MessageLimits { max_depth: 8, max_parts: 50, max_urls: 20, ..MessageLimits::default() }
    }

    fn mime_piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Content-Type: multipart/mixed; boundary=b\r\n".to_string()),
            Just("Content-Type: message/rfc822\r\n".to_string()),
            Just("Content-Transfer-Encoding: base64\r\n".to_string()),
            Just("Content-Transfer-Encoding: quoted-printable\r\n".to_string()),
            Just("Content-Disposition: attachment; filename*=UTF-8''%E2%80%AEfdp.exe\r\n".to_string()),
            Just("Subject: =?utf-8?b?w6k=?= =?x?q?bad?=\r\n".to_string()),
            Just("\r\n".to_string()),
            Just("--b\r\n".to_string()),
            Just("--b--\r\n".to_string()),
            Just("<a href=\"http://x.test/\">y</a>\r\n".to_string()),
            "\\PC{0,80}\r\n",
            "[ -~]{0,80}\n",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn any_bytes(raw in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let v = parse(&raw, &limits());
            prop_assert!(v.parts.len() <= 50 + 1);
            prop_assert!(v.urls.len() <= 20);
        }

        #[test]
        fn mime_shaped_noise(pieces in proptest::collection::vec(mime_piece(), 0..120)) {
            let raw = pieces.concat().into_bytes();
            let v = parse(&raw, &limits());
            prop_assert!(v.parts.len() <= 50 + 1);
        }
    }
}

#[test]
fn a_leading_mbox_from_line_is_skipped() {
    let raw =
        b"From someone@example.com  Thu Aug 22 13:17:22 2002\nFrom: a@example.com\nSubject: hi\n\nbody\n";
    let v = parse(raw, &limits());
    assert_eq!(v.subject.as_deref(), Some("hi"));
    assert_eq!(v.from.len(), 1);
    assert!(v.parts.iter().all(|p| p.defects.is_empty()), "{:?}", v.parts);
    assert!(v.raw_head.starts_with(b"From: a@"));
    // `From:` itself is a field, never a separator.
    assert_eq!(parse(b"From: a@example.com\n\nx\n", &limits()).from.len(), 1);
}
