use super::*;
use message::MessageLimits;

fn toks(raw: &str) -> Vec<u64> {
    tokenize(&message::parse(raw.as_bytes(), &MessageLimits::default()), 10_000)
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_word(text, |w| out.push(String::from_utf8_lossy(w).into_owned()));
    out
}

#[test]
fn words_keep_prices_contractions_and_domains_and_drop_punctuation() {
    assert_eq!(
        words("Don't miss: $1,000 at www.example.com... -- (now!) a é-mail"),
        ["Don't", "miss", "$1", "000", "at", "www.example.com", "now", "é-mail"]
    );
    assert!(words("- . ' a").is_empty());
}

#[test]
fn namespaces_keep_subject_body_and_sender_apart() {
    let t = toks("From: Cheap Meds <x@pharma.example>\nSubject: cheap\n\ncheap pills\n");
    assert!(t.contains(&key(ns::SUBJECT, b"cheap")));
    assert!(t.contains(&key(ns::BODY, b"cheap")));
    assert!(t.contains(&key(ns::FROM_NAME, b"cheap")));
    assert!(t.contains(&key(ns::FROM_DOMAIN, b"pharma.example")));
    assert!(t.contains(&key(ns::HEADER_NAME, b"subject")));
}

#[test]
fn sparse_pairs_span_the_window_but_not_beyond() {
    let t = toks("Subject: x\n\none two three four five six\n");
    let w = |s: &str| key(ns::BODY, s.as_bytes());
    assert!(t.contains(&pair(w("one"), w("two"), 1)));
    assert!(t.contains(&pair(w("two"), w("three"), 1)));
    assert!(!t.contains(&pair(w("one"), w("three"), 2)), "three is past the window");
    assert!(!t.contains(&pair(w("two"), w("one"), 1)), "order is part of the pair");
}

#[test]
fn html_urls_and_attachments_give_tokens() {
    let raw = "Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\
               Content-Type: text/html\n\n<p>Click <a href=\"http://win.prize.example/x\">here</a></p>\n--b\n\
               Content-Type: application/zip; name=\"a.zip\"\n\nPK\n--b--\n";
    let t = toks(raw);
    assert!(t.contains(&key(ns::BODY, b"click")));
    assert!(t.contains(&key(ns::URL_HOST, b"win.prize.example")));
    assert!(t.contains(&key(ns::URL_DOMAIN, b"prize.example")));
    assert!(t.contains(&key(ns::ATTACHMENT, b"zip")));
    assert!(t.contains(&key(ns::SHAPE, b"html-only")));
}

#[test]
fn verdict_fields_are_ignored_and_long_words_are_cut() {
    let t = toks(
        "X-Spam-Status: Yes, score=99\nSubject: x\n\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa2\n",
    );
    assert!(!t.contains(&key(ns::HEADER_NAME, b"x-spam-status")));
    assert!(t.contains(&key(ns::LONG, b"aaaaaaaaaa")));
}

#[test]
fn work_is_bounded_by_max_tokens() {
    let body: String = (0..5000).map(|i| format!("w{i} ")).collect();
    let view = message::parse(format!("Subject: x\n\n{body}\n").as_bytes(), &MessageLimits::default());
    let t = tokenize(&view, 300);
    assert!(t.len() <= 300 && t.len() > 200, "{}", t.len());
    assert!(t.contains(&key(ns::HEADER_NAME, b"subject")), "headers come first");
}
