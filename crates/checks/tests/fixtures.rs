//! Every fixture in `tests/fixtures/*.eml` judged by the engine built from the default configuration
//! (shipped rules), and the engine's own behaviour: deadline, async checks, rules overlay, headers.
//!
//! A fixture starts with `# key: value` lines (removed before judging; line ends become CRLF):
//! `expect:` symbols that must appear, `not:` symbols that must not, `action:` the action,
//! `envelope-from:`, `rcpt:`, `smtputf8: yes`, `safelist:` / `blocklist:` sender entries.
//! The context has accepted domain `ours.test` and host name `mx.ours.test`.

use checks::{Action, Analyzer, AsyncAnalyzer, BoxFuture, Context, Engine, Finding};
use message::MessageView;
use std::path::Path;
use std::time::Duration;

struct Fixture {
    name: String,
    directives: Vec<(String, String)>,
    raw: Vec<u8>,
}

impl Fixture {
    fn read(path: &Path) -> Fixture {
        let bytes = std::fs::read(path).unwrap();
        let mut directives = Vec::new();
        let mut rest = &bytes[..];
        while rest.starts_with(b"#") {
            let end = rest.iter().position(|&b| b == b'\n').map_or(rest.len(), |i| i + 1);
            let line = String::from_utf8_lossy(&rest[1..end]).trim().to_string();
            if let Some((k, v)) = line.split_once(':').filter(|(k, _)| !k.contains(' ')) {
                directives.push((k.trim().to_string(), v.trim().to_string()));
            }
            rest = &rest[end..];
        }
        let mut raw = Vec::with_capacity(rest.len() + rest.len() / 20);
        for &b in rest {
            if b == b'\n' {
                raw.push(b'\r');
            }
            raw.push(b);
        }
        Fixture { name: path.file_name().unwrap().to_string_lossy().into(), directives, raw }
    }

    fn get(&self, key: &str) -> Vec<String> {
        self.directives
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(String::from).collect::<Vec<_>>())
            .collect()
    }

    fn engine(&self) -> Engine {
        // Network checks (DNS) are tested against a real name server: tests/test_auth.py.
        let mut text =
            String::from("data_dir = \"/nonexistent-portcullis-test\"\n[auth]\nenabled = false\n[verdict]\n");
        for (key, list) in [("safelist", "safelist"), ("blocklist", "blocklist")] {
            let entries: Vec<String> =
                self.get(key).iter().map(|s| format!("{{ sender = \"{s}\" }}")).collect();
            text.push_str(&format!("{list} = [{}]\n", entries.join(", ")));
        }
        let config = config::load_str(&text, &self.name, &[]).unwrap();
        Engine::from_config(&config).unwrap()
    }
}

fn context<'a>(f: &Fixture, sender: &'a str, rcpts: &'a [String], domains: &'a [String]) -> Context<'a> {
    Context {
        envelope_sender: sender,
        recipients: rcpts,
        accepted_domains: domains,
        hostname: "mx.ours.test",
        smtputf8: f.get("smtputf8").first().is_some_and(|v| v == "yes"),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_fixture_meets_its_expectations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.retain(|p| p.extension().is_some_and(|x| x == "eml"));
    paths.sort();
    assert!(paths.len() >= 10, "fixtures missing");
    let domains = vec!["ours.test".to_string()];
    let mut failures = Vec::new();
    for path in &paths {
        let f = Fixture::read(path);
        let sender = f.get("envelope-from").first().cloned().unwrap_or_default();
        let rcpts = f.get("rcpt");
        let verdict = f.engine().judge(&f.raw, &context(&f, &sender, &rcpts, &domains)).await;
        let names: Vec<&str> = verdict.symbols.iter().map(|s| s.name.as_str()).collect();
        for s in f.get("expect") {
            if !verdict.has(&s) {
                failures.push(format!("{}: expected {s}, got {names:?}", f.name));
            }
        }
        for s in f.get("not") {
            if verdict.has(&s) {
                failures.push(format!("{}: unexpected {s}, got {names:?}", f.name));
            }
        }
        if let Some(a) = f.get("action").first()
            && verdict.action.as_str() != a
        {
            failures.push(format!(
                "{}: action {} (score {:.2}), expected {a}; {names:?}",
                f.name, verdict.action, verdict.score
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A check that takes its time.
struct Slow(Duration);

impl Analyzer for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }
    fn analyze(&self, _: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        std::thread::sleep(self.0);
        out.push(Finding::new("SLOW_DONE", "finished"));
    }
}

struct Never;

impl Analyzer for Never {
    fn name(&self) -> &'static str {
        "never"
    }
    fn analyze(&self, _: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        out.push(Finding::new("NEVER", "should have been skipped"));
    }
}

/// Stands in for a DNS check: answers after a delay.
struct Dns(Duration, &'static str);

impl AsyncAnalyzer for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn analyze<'a>(&'a self, _: &'a MessageView, _: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(async move {
            tokio::time::sleep(self.0).await;
            vec![Finding::new(self.1, "looked up")]
        })
    }
}

fn default_policy() -> verdict::Policy {
    Engine::from_config(&config::load_str("", "t", &[]).unwrap()).unwrap().policy().clone()
}

#[tokio::test]
async fn checks_past_the_deadline_are_skipped_and_named() {
    let engine = Engine::new(Default::default(), default_policy(), Duration::from_millis(20))
        .with_analyzer(Box::new(Slow(Duration::from_millis(60))))
        .with_analyzer(Box::new(Never))
        .with_async_analyzer(Box::new(Dns(Duration::ZERO, "DNS_DONE")));
    let v = engine.judge(b"Subject: x\r\n\r\nbody\r\n", &Context::default()).await;
    assert!(v.has("SLOW_DONE") && v.has("DEADLINE_EXCEEDED") && !v.has("NEVER") && !v.has("DNS_DONE"));
    let reason = &v.symbols.iter().find(|s| s.name == "DEADLINE_EXCEEDED").unwrap().reason;
    assert!(reason.contains("never") && reason.contains("dns"), "{reason}");
    assert_eq!(v.action, Action::Tempfail, "shipped policy forces tempfail on a missed deadline");
}

#[tokio::test]
async fn async_checks_are_merged_or_cut_at_the_deadline() {
    let fast = Engine::new(Default::default(), default_policy(), Duration::from_secs(5))
        .with_async_analyzer(Box::new(Dns(Duration::from_millis(1), "DNS_DONE")));
    let v = fast.judge(b"Subject: x\r\n\r\nbody\r\n", &Context::default()).await;
    assert!(v.has("DNS_DONE") && !v.has("DEADLINE_EXCEEDED"));
    let slow = Engine::new(Default::default(), default_policy(), Duration::from_millis(20))
        .with_async_analyzer(Box::new(Dns(Duration::from_secs(30), "DNS_DONE")));
    let v = slow.judge(b"Subject: x\r\n\r\nbody\r\n", &Context::default()).await;
    assert!(!v.has("DNS_DONE") && v.has("DEADLINE_EXCEEDED"));
}

#[tokio::test]
async fn local_rules_replace_shipped_ones_and_rescore() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/default");
    std::fs::create_dir_all(dir.path().join("default")).unwrap();
    std::fs::create_dir_all(dir.path().join("local")).unwrap();
    for e in std::fs::read_dir(shipped).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join("default").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("local/site.toml"),
        "[scores]\nGTUBE = 5.0\n\n[[rule]]\nname = \"BODY_PHARMA\"\ntype = \"body\"\npattern = '(?i)\\bunpaid invoice\\b'\nweight = 0.25\n",
    )
    .unwrap();
    let text = format!("[verdict]\nrules_dir = \"{}\"\n", dir.path().display());
    let engine = Engine::from_config(&config::load_str(&text, "t", &[]).unwrap()).unwrap();
    let raw = b"From: a@example.org\r\nDate: Tue, 01 Jul 2025 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\nviagra! unpaid invoice XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let v = engine.judge(raw, &Context::default()).await;
    let score = |n: &str| v.symbols.iter().find(|s| s.name == n).map(|s| s.score);
    assert_eq!(score("GTUBE"), Some(5.0));
    assert_eq!(score("BODY_PHARMA"), Some(0.25), "the local rule replaced the shipped pattern and weight");
    assert!(!v.has("MISSING_FROM"));
    assert_eq!(v.action, Action::Tag, "{v:?}");
    std::fs::write(
        dir.path().join("local/bad.toml"),
        "[[rule]]\nname = \"X\"\ntype = \"body\"\npattern = \"(\"\n",
    )
    .unwrap();
    let err = Engine::from_config(&config::load_str(&text, "t", &[]).unwrap()).err().unwrap().to_string();
    assert!(err.contains("bad.toml") && err.contains("`X`"), "{err}");
}

#[tokio::test]
async fn thresholds_switched_off_in_configuration() {
    let config = config::load_str("[actions]\nquarantine = false\nreject = 500\n", "t", &[]).unwrap();
    let engine = Engine::from_config(&config).unwrap();
    let raw = b"Subject: x\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let v = engine.judge(raw, &Context::default()).await;
    assert_eq!(v.action, Action::Reject);
    let headers = engine.headers(&v);
    assert_eq!(headers[0].to_line(), format!("X-Spam-Score: {:.2}\r\n", v.score));
    assert!(headers.last().unwrap().value.starts_with("reject; score="));
}

#[tokio::test]
async fn verdict_headers_quote_attacker_text_safely() {
    let engine = Engine::from_config(&config::load_str("", "t", &[]).unwrap()).unwrap();
    let domains = vec!["ours.test".to_string()];
    let ctx = Context { envelope_sender: "x@evil.example", accepted_domains: &domains, ..Default::default() };
    let raw = "From: =?utf-8?q?ceo@ours.test=0D=0ABcc:_victim@x.test?= <x@evil.example>\r\nSubject: hi\r\n\r\nbody\r\n";
    let v = engine.judge(raw.as_bytes(), &ctx).await;
    assert!(v.has("FROM_DISPLAY_NAME_SPOOF"), "{v:?}");
    for h in engine.headers(&v) {
        let line = h.to_line();
        assert_eq!(line.matches("\r\n").count(), line.matches("\r\n\t").count() + 1, "{line:?}");
    }
}
