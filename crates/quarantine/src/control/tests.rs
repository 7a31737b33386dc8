//! The protocol without I/O: encoding, strict decoding, and the bounded line framing.

use super::frame::{FrameError, read_line};
use super::*;

fn release(caller: Caller) -> Request {
    Request { op: Op::Release, caller, item: "a".repeat(22), learn_ham: true, safelist_sender: false }
}

#[test]
fn requests_and_answers_round_trip_as_one_line() {
    let r = release(Caller::Account { name: "alice".into(), token_id: Some("7".into()) });
    let line = encode(&r);
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
    assert_eq!(decode_request(&line[..line.len() - 1]).unwrap(), r);
    let text = String::from_utf8(line).unwrap();
    assert!(
        text.starts_with(r#"{"op":"release","caller":{"account":{"name":"alice","token_id":"7"}}"#),
        "{text}"
    );
    for answer in [
        Response::Done,
        Response::AlreadyDone { status: "released".into(), by: Some("bob".into()), at_ms: Some(5) },
        Response::message(b"Subject: x\r\n\r\nbody\n"),
        Response::Error { kind: ErrorKind::NotFound, message: "no such quarantine item".into() },
    ] {
        let line = encode(&answer);
        assert_eq!(decode_response(&line[..line.len() - 1]).unwrap(), answer);
    }
    assert_eq!(Response::message(b"\x00\xffraw").into_message().unwrap(), b"\x00\xffraw");
}

#[test]
fn a_request_with_anything_unexpected_is_refused() {
    for bad in [
        &b"not json"[..],
        b"{}",
        br#"{"op":"release","caller":{"account":{"name":"a","token_id":null}},"item":"x","role":"admin"}"#,
        br#"{"op":"release","caller":{"account":{"name":"a","token_id":null,"role":"admin"}},"item":"x"}"#,
        br#"{"op":"expire","caller":{"account":{"name":"a","token_id":null}},"item":"x"}"#,
        br#"{"op":"show","caller":{"system":{}},"item":"x"}"#,
        b"\xff\xfe",
    ] {
        assert!(decode_request(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn answers_become_the_quarantines_own_outcomes_and_errors() {
    let already = Response::AlreadyDone { status: "deleted".into(), by: None, at_ms: None };
    assert_eq!(
        already.into_outcome().unwrap(),
        ActionOutcome::AlreadyDone { status: "deleted", by: None, at_ms: None }
    );
    let forbidden = Response::error(&QuarantineError::Forbidden(crate::reasons::ADMIN_RELEASES));
    assert!(matches!(
        forbidden.into_outcome(),
        Err(QuarantineError::Forbidden(why)) if why == crate::reasons::ADMIN_RELEASES
    ));
    let odd = Response::Error { kind: ErrorKind::Forbidden, message: "<script>".into() };
    assert!(matches!(odd.into_outcome(), Err(QuarantineError::Forbidden("refused by the mail plane"))));
    assert!(matches!(Response::Done.into_message(), Err(QuarantineError::MailPlane(_))));
    let bogus = Response::AlreadyDone { status: "eaten".into(), by: None, at_ms: None };
    assert!(matches!(bogus.into_outcome(), Err(QuarantineError::MailPlane(_))));
    // An internal failure says nothing about its cause to the portal.
    let failed = Response::error(&QuarantineError::Learn("secret path /var/x".into()));
    assert!(!format!("{failed:?}").contains("/var/x"));
}

#[tokio::test]
async fn a_line_is_bounded_while_it_is_read() {
    let mut r = tokio::io::BufReader::with_capacity(8, &b"0123456789\nrest"[..]);
    assert!(matches!(read_line(&mut r, 5).await, Err(FrameError::TooLong(5))));
    let mut r = tokio::io::BufReader::with_capacity(4, &b"0123456789\nnext\n"[..]);
    assert_eq!(read_line(&mut r, 10).await.unwrap(), b"0123456789");
    assert_eq!(read_line(&mut r, 10).await.unwrap(), b"next");
    assert!(matches!(read_line(&mut r, 10).await, Err(FrameError::Closed)));
    let mut r = &b"no newline"[..];
    assert!(matches!(read_line(&mut r, 100).await, Err(FrameError::Closed)));
}

#[test]
fn the_answer_limit_is_the_largest_held_message_in_base64_with_its_framing() {
    for max_message_size in [4u64 << 20, (4 << 20) + 1, (4 << 20) + 2, (4 << 20) + 3] {
        let held = max_message_size + MAX_GATEWAY_HEADERS;
        let line = encode(&Response::message(&vec![0xff; held as usize]));
        // The largest held message fills the limit exactly (the line's `\n` not counted).
        assert_eq!(line.len() - 1, max_response_len(max_message_size), "{max_message_size}");
        assert_eq!(message_answer_len(held), (line.len() - 1) as u64);
        let one_more = encode(&Response::message(&vec![0; held as usize + 3]));
        assert!(one_more.len() - 1 > max_response_len(max_message_size));
    }
    // Below about 2.7 MiB the longest listing is the longest answer.
    for small in [0, 1, 1 << 20] {
        assert_eq!(max_response_len(small) as u64, MAX_QUEUE_ANSWER);
    }
    // 25 MiB (the default) takes a third more and a little; nothing overflows.
    let default = max_response_len(25 << 20) as u64;
    assert!(default > (25 << 20) * 4 / 3 && default < (26 << 20) * 4 / 3, "{default}");
    assert_eq!(max_response_len(u64::MAX), usize::MAX);
}

#[test]
fn every_answer_without_a_message_fits_the_smallest_limit() {
    let text = "\"".repeat(4 * MAX_ANSWER_TEXT);
    for answer in [
        Response::of(Ok(ActionOutcome::AlreadyDone {
            status: "released",
            by: Some(text.clone()),
            at_ms: Some(i64::MIN),
        })),
        Response::error(&QuarantineError::BadQuery(text.clone())),
    ] {
        let len = encode(&answer).len() as u64 - 1;
        assert!(len <= MAX_SMALL_ANSWER, "{len}");
    }
    assert!(max_response_len(0) as u64 >= MAX_SMALL_ANSWER);
}

fn root() -> Caller {
    Caller::Account { name: "root".into(), token_id: None }
}

fn entry(text: &str, recipients: usize) -> QueueEntry {
    QueueEntry {
        id: text.into(),
        sender: text.into(),
        pending: vec![text.to_string(); recipients],
        more_pending: u64::MAX,
        attempts: u32::MAX,
        next_attempt_ms: u64::MAX,
        size: u64::MAX,
    }
}

#[test]
fn the_admin_operations_travel_as_one_line_each_way() {
    for (request, line) in [
        (
            Request::new(Op::QueueList, root(), ""),
            r#"{"op":"queue_list","caller":{"account":{"name":"root","token_id":null}}"#,
        ),
        (Request::new(Op::QueueRetry, root(), ""), r#"{"op":"queue_retry","#),
        (Request::new(Op::QueueDelete, root(), "0123456789abcdef"), r#"{"op":"queue_delete","#),
        (Request::new(Op::SendDigests, root(), ""), r#"{"op":"send_digests","#),
    ] {
        let encoded = encode(&request);
        assert!(String::from_utf8_lossy(&encoded).starts_with(line), "{}", String::from_utf8_lossy(&encoded));
        assert_eq!(decode_request(&encoded[..encoded.len() - 1]).unwrap(), request);
    }
    // The item may be left out where there is none.
    let short = br#"{"op":"queue_list","caller":{"account":{"name":"root","token_id":null}}}"#;
    assert_eq!(decode_request(short).unwrap(), Request::new(Op::QueueList, root(), ""));
    let listing = QueueListing { total: 7, messages: vec![entry("a@b.example", 2)] };
    let digests = DigestReport { sent: 2, items: 5 };
    for answer in [Response::of_listing(Ok(listing.clone())), Response::of_digests(Ok(digests.clone()))] {
        let line = encode(&answer);
        assert_eq!(decode_response(&line[..line.len() - 1]).unwrap(), answer);
    }
    assert_eq!(Response::of_listing(Ok(listing.clone())).into_listing().unwrap(), listing);
    assert_eq!(Response::of_digests(Ok(digests.clone())).into_digests().unwrap(), digests);
    assert!(Response::of_unit(Ok(())).into_done().is_ok());
}

#[test]
fn each_operation_takes_exactly_the_fields_it_needs() {
    let caller = r#""caller":{"account":{"name":"root","token_id":null}}"#;
    for bad in [
        format!(r#"{{"op":"queue_list",{caller},"item":"x"}}"#),
        format!(r#"{{"op":"queue_retry",{caller},"item":"x"}}"#),
        format!(r#"{{"op":"send_digests",{caller},"item":"x"}}"#),
        format!(r#"{{"op":"queue_delete",{caller}}}"#),
        format!(r#"{{"op":"queue_delete",{caller},"item":""}}"#),
        format!(r#"{{"op":"show",{caller}}}"#),
        format!(r#"{{"op":"release",{caller}}}"#),
        format!(r#"{{"op":"queue_list",{caller},"learn_ham":true}}"#),
        format!(r#"{{"op":"delete",{caller},"item":"x","safelist_sender":true}}"#),
        format!(r#"{{"op":"queue_list",{caller},"limit":100000}}"#),
        format!(r#"{{"op":"queue_flush_everything",{caller}}}"#),
    ] {
        assert!(decode_request(bad.as_bytes()).is_err(), "{bad}");
    }
    let ok = format!(r#"{{"op":"release",{caller},"item":"x","learn_ham":true,"safelist_sender":true}}"#);
    assert!(decode_request(ok.as_bytes()).is_ok());
}

#[test]
fn admin_answers_become_the_quarantines_own_results_and_errors() {
    let refused = Response::error(&QuarantineError::Forbidden(crate::reasons::ADMINS_ONLY));
    assert!(matches!(
        refused.clone().into_listing(),
        Err(QuarantineError::Forbidden(why)) if why == crate::reasons::ADMINS_ONLY
    ));
    assert!(matches!(refused.clone().into_done(), Err(QuarantineError::Forbidden(_))));
    assert!(matches!(refused.into_digests(), Err(QuarantineError::Forbidden(_))));
    let gone = Response::error(&QuarantineError::NotFound);
    assert!(matches!(gone.into_done(), Err(QuarantineError::NotFound)));
    // An answer of another kind is not understood.
    assert!(matches!(Response::Done.into_listing(), Err(QuarantineError::MailPlane(_))));
    assert!(matches!(Response::message(b"x").into_done(), Err(QuarantineError::MailPlane(_))));
    assert!(matches!(Response::Done.into_digests(), Err(QuarantineError::MailPlane(_))));
    let listing = QueueListing { total: 1, messages: vec![entry("x", 0); MAX_QUEUE_LISTED + 1] };
    assert!(matches!(Response::of_listing(Ok(listing)).into_listing(), Err(QuarantineError::MailPlane(_))));
}

#[test]
fn the_longest_listing_fits_the_answer_limit() {
    let longest = "\"".repeat(MAX_LISTED_TEXT);
    let messages = vec![entry(&longest, MAX_LISTED_RECIPIENTS); MAX_QUEUE_LISTED];
    let line = encode(&Response::of_listing(Ok(QueueListing { total: u64::MAX, messages })));
    let len = line.len() as u64 - 1;
    assert!(len <= MAX_QUEUE_ANSWER, "{len} > {MAX_QUEUE_ANSWER}");
    assert!(max_response_len(0) as u64 >= MAX_QUEUE_ANSWER);
}
