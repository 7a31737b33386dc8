//! The fuzz harnesses, shared by the AFL targets in `src/bin/` and by `cargo test`, which replays the
//! committed corpora (and every crash found so far, as a regression test) through them.
//!
//! Each harness reads its first bytes as the "choices" (split points, driver answers) and the rest as
//! the input, so AFL explores both.

#![forbid(unsafe_code)]

use smtp_session::data::{DataDecoder, DataStatus};
use smtp_session::{Decision, Event, Session, SessionConfig, replies};
use std::sync::OnceLock;

/// Split `data` into (choices, input): the first byte says how many choice bytes follow.
fn split(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return (&[], &[]) };
    let n = (n as usize % 16).min(rest.len());
    rest.split_at(n)
}

/// Chunk sizes from the choices (1..=64, cycling).
fn chunks<'a>(input: &'a [u8], choices: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut i = 0usize;
    let mut rest = input;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = choices.get(i % choices.len().max(1)).map_or(rest.len(), |&c| c as usize % 64 + 1);
        i += 1;
        let (a, b) = rest.split_at(size.min(rest.len()));
        rest = b;
        Some(a)
    })
}

fn session_config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.our.test".into(),
        accepted_domains: vec!["our.test".into()],
        valid_recipients: vec![],
        max_message_size: 4096,
        max_recipients: 5,
        max_line_length: 512,
        max_errors: 20,
        max_messages: 5,
        starttls: true,
        require_tls: false,
    }
}

/// The SMTP session machine: arbitrary bytes in arbitrary splits, arbitrary driver answers. It must not
/// panic, never pass more content than the size limit, and keep its output drained.
pub fn smtp_session(data: &[u8]) {
    let (choices, input) = split(data);
    let cfg = session_config();
    let mut s = Session::new(cfg.clone());
    s.greet();
    let mut k = 0usize;
    let mut answer = || {
        k += 1;
        choices.get(k % choices.len().max(1)).copied().unwrap_or(0)
    };
    let mut content = 0u64;
    for chunk in chunks(input, choices) {
        s.feed(chunk);
        while let Some(ev) = s.poll() {
            match ev {
                Event::CheckSender | Event::CheckRecipient(_) | Event::DataStart => {
                    let d = if answer() % 3 == 0 {
                        Decision::Refuse(replies::policy_reject())
                    } else {
                        Decision::Accept
                    };
                    s.decide(d);
                }
                Event::Data(d) => content += d.len() as u64,
                Event::MessageEnd => {
                    let r = if answer() % 2 == 0 {
                        replies::queued("0123456789abcdef")
                    } else {
                        replies::rejected("X")
                    };
                    s.finish_message(r);
                    content = 0;
                }
                Event::DataAborted => content = 0,
                Event::StartTls => s.tls_started(),
                Event::Close => break,
            }
            assert!(content <= cfg.max_message_size, "content past the size limit");
        }
        let out = s.take_output();
        assert!(out.len() < 1 << 20, "unbounded output");
        if s.is_closed() {
            break;
        }
    }
    s.eof();
    while s.poll().is_some() {}
}

/// The DATA decoder (the smuggling boundary): decoding in any splits, re-offering what was not
/// consumed, gives the same verdict as decoding in one piece, and the same message when it ends. (After
/// a bad line ending the message is refused whole, so how much of it was passed on before does not
/// matter and is not compared.)
pub fn smuggling(data: &[u8]) {
    let (choices, input) = split(data);
    let whole = decode_all(std::iter::once(input));
    let pieces = decode_all(chunks(input, choices));
    assert_eq!(whole.0, pieces.0, "the decoder's verdict depends on how the input was split");
    if whole.0.as_deref() == Some("End") {
        assert_eq!(whole.1, pieces.1, "the message depends on how the input was split");
    }
}

fn decode_all<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Option<String>, Vec<u8>) {
    let mut d = DataDecoder::default();
    let (mut out, mut pending) = (Vec::new(), Vec::new());
    for piece in pieces {
        pending.extend_from_slice(piece);
        let (status, used) = d.decode(&pending, &mut out);
        assert!(used <= pending.len());
        pending.drain(..used);
        if status != DataStatus::NeedMore {
            return (Some(format!("{status:?}")), out);
        }
    }
    (None, out)
}

fn limits() -> message::MessageLimits {
    message::MessageLimits {
        max_depth: 16,
        max_parts: 100,
        max_urls: 50,
        ..message::MessageLimits::default()
    }
}

/// The MIME view: any bytes parse, within the limits.
pub fn mime(data: &[u8]) {
    let v = message::parse(data, &limits());
    assert!(v.parts.len() <= 101);
    assert!(v.urls.len() <= 50);
    let _ = v.text().count();
}

/// The verdict engine's synchronous analyzers (shipped rules, no network) over any message.
pub fn verdict(data: &[u8]) {
    static ENGINE: OnceLock<checks::Engine> = OnceLock::new();
    let engine = ENGINE.get_or_init(|| {
        let text = "data_dir = \"/nonexistent-portcullis-fuzz\"\nhostname = \"mx.our.test\"\n[auth]\nenabled = false\n[classifier]\nenabled = false\n";
        let config = config::load_str(text, "fuzz", &[]).expect("fuzz configuration");
        checks::Engine::from_config(&config).expect("engine without network")
    });
    let view = message::parse(data, engine.limits());
    let (rcpts, domains) = (vec!["b@our.test".to_string()], vec!["our.test".to_string()]);
    let ctx = checks::Context {
        client_ip: None,
        helo: "client.test",
        envelope_sender: "a@ext.test",
        recipients: &rcpts,
        tls: false,
        smtputf8: false,
        accepted_domains: &domains,
        hostname: "mx.our.test",
        own_received: 0,
        raw: data,
    };
    let findings = engine.run_sync(&view, &ctx, std::time::Instant::now());
    let _ = engine.decide(&findings);
}

/// Archive and attachment inspection: any bytes, under any declared name, stop within small limits
/// and report only members they looked at.
pub fn archive(data: &[u8]) {
    let (choices, input) = split(data);
    const NAMES: [&str; 8] =
        ["a.zip", "a.tar", "a.tar.gz", "a.docm", "a.pdf", "a.html", "a.7z", "invoice.pdf\u{202E}exe.zip"];
    let name = NAMES[choices.first().map_or(0, |&c| c as usize % NAMES.len())];
    let limits = inspect::Limits {
        max_depth: 3,
        max_entries: 50,
        max_entry_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
        max_time: std::time::Duration::from_secs(2),
        ..inspect::Limits::default()
    };
    let input = inspect::Input {
        name: Some(name),
        declared_type: "application/octet-stream",
        data: input,
        truncated: false,
    };
    let report = inspect::inspect(&input, &limits);
    assert!(report.files.len() <= limits.max_entries + 1, "more files reported than looked at");
}

/// The portal's parsers of what a browser or API client sends: a urlencoded form or query read as
/// fields (bounded), the quarantine search built from them, addresses, item ids, list names; and the
/// HTML preview's sanitiser, whose output must never carry script, handlers or frames.
pub fn portal_forms(data: &[u8]) {
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) {
        let fields = portal::extract::Fields(pairs.into_iter().take(portal::extract::MAX_FIELDS).collect());
        let _ = portal::web::quarantine::search_query(&fields);
        for (_, value) in &fields.0 {
            let _ = portal::accounts::parse_addresses(value);
            let _ = portal::web::settings::parse_list(value);
            let _ = quarantine::ItemId::parse(value);
        }
    }
    let html = String::from_utf8_lossy(data);
    check_sanitised(&portal::render::sanitize_html(&html));
}

/// The sanitiser's output carries no active markup. It escapes `<` in text, so every `<` opens a tag it
/// wrote: no tag may be one that runs, embeds or submits anything, no attribute may be a handler or a
/// style, and no link may use a scheme that runs or smuggles content.
pub fn check_sanitised(clean: &str) {
    const TAGS: [&str; 13] = [
        "script", "iframe", "frame", "form", "object", "embed", "style", "img", "svg", "math", "link",
        "meta", "base",
    ];
    for tag in clean.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("").to_ascii_lowercase();
        let name = tag.trim_start_matches('/').split([' ', '\t', '\n', '/']).next().unwrap_or("");
        assert!(!TAGS.contains(&name), "the sanitiser let <{name}> through: {clean}");
        // Attributes as the sanitiser serialises them: name="value", with `"` escaped inside values.
        let mut rest = tag.get(name.len() + usize::from(tag.starts_with('/'))..).unwrap_or("");
        while let Some((attr, after)) = rest.split_once("=\"") {
            let attr = attr.trim().rsplit([' ', '\t', '\n']).next().unwrap_or("");
            let (value, after) = after.split_once('"').unwrap_or((after, ""));
            assert!(!attr.starts_with("on") && attr != "style", "attribute {attr} let through: {clean}");
            if matches!(attr, "href" | "src" | "action" | "formaction" | "xlink:href") {
                let v = value.replace("&amp;", "&").trim().to_string();
                for scheme in ["javascript:", "vbscript:", "data:"] {
                    assert!(!v.starts_with(scheme), "a {scheme} link let through: {clean}");
                }
            }
            rest = after;
        }
    }
}
