//! The rules analyzer: limits, and every shipped rule against its examples and the `regex` crate.

use super::*;

fn def(kind: RuleKind, pattern: &str) -> (String, RuleDef) {
    let r = RuleDef {
        name: "R".into(),
        kind,
        header: None,
        pattern: pattern.into(),
        weight: 1.0,
        description: String::new(),
    };
    ("t.toml".into(), r)
}

#[test]
fn oversized_and_invalid_patterns_are_refused_with_their_origin() {
    let err = RulesAnalyzer::compile(&[def(RuleKind::Body, "(a")]).err().unwrap().to_string();
    assert!(err.contains("t.toml") && err.contains("`R`"), "{err}");
    let huge = RulesAnalyzer::compile(&[def(RuleKind::Body, "\\w{1000}\\w{1000}\\w{1000}")]);
    assert!(huge.is_err(), "compiled size is bounded");
}

#[test]
fn a_hundred_kilobyte_subject_is_matched_in_one_pass() {
    let rules = RulesAnalyzer::compile(&[(
        "t".into(),
        RuleDef {
            name: "NESTED".into(),
            kind: RuleKind::Header,
            header: Some("Subject".into()),
            pattern: "(a+)+$b".into(),
            weight: 1.0,
            description: String::new(),
        },
    )])
    .unwrap();
    let raw = format!("Subject: {}!\r\n\r\nx", "a".repeat(100_000));
    let msg = message::parse(raw.as_bytes(), &Default::default());
    let mut out = Vec::new();
    rules.analyze(&msg, &Context::default(), &mut out);
    assert!(out.is_empty());
}

/// The shipped rules, compiled, and as written (in the same order).
fn shipped() -> (RulesAnalyzer, Vec<RuleDef>) {
    let loaded = crate::rules_dir::load(std::path::Path::new(""), std::path::Path::new("/nonexistent"))
        .expect("the shipped rules load");
    let compiled = RulesAnalyzer::compile(&loaded.rules).expect("the shipped rules compile");
    (compiled, loaded.rules.into_iter().map(|(_, r)| r).collect())
}

/// Each shipped rule, a text it must match and a near miss it must not (the text the rule reads: a
/// header value, a text part, a URL, the raw message).
fn examples() -> Vec<(&'static str, String, String)> {
    let pairs = [
        ("BODY_LOTTERY", "Dear friend, you have won a car!", "you have wonderful news"),
        ("BODY_ADVANCE_FEE", "a fund of 10.5 million US dollars", "a fund of 10.5 millions of dollars"),
        ("BODY_PHARMA", "cheap VIAGRA here", "photos of viagrafalls"),
        ("BODY_VERIFY_ACCOUNT", "Please verify your account information", "verify your account later"),
        ("BODY_ACCOUNT_SUSPENDED", "Your mailbox has been suspended.", "Your mailbox has been moved."),
        ("SUBJ_ALL_CAPS", "ACCOUNT SECURITY NOTICE 2025", "ACCOUNT SECURITY NOTICe 2025"),
        ("SUBJ_URGENT", "Re: URGENT reply needed", "Re: urgently needed"),
        ("SUBJ_MONEY", "$1,500,000 for you", "$1500 for you"),
        ("MAILER_BULK", "Atomic Mail Sender 9", "Atom Mailer"),
        (
            "X_PHP_SCRIPT",
            "Subject: x\r\nX-PHP-Originating-Script: 1000:form.php\r\n",
            "X-PHP-Scripts: no\r\n",
        ),
        ("BODY_REMOVE_LIST", "To be removed from our list, reply", "I removed the list"),
        ("BODY_NOT_SPAM", "This message is not spam: you signed up", "This message is not about spam"),
        ("BODY_OPTED_IN", "You have opted in to receive offers", "You have opted out"),
        ("BODY_MAKE_MONEY", "Earn $5,000 a week from home", "Earn interest on savings"),
        ("BODY_LOANS_DEBT", "Lower your monthly payments today", "Lower the volume"),
        ("BODY_HEALTH_OFFER", "Lose 30 pounds in a month", "Lose the thread"),
        ("BODY_ACT_NOW", "Limited time offer, order today", "Time to order the book"),
        ("BODY_ADULT", "free xxx videos", "xxx-xxxx phone"),
        ("BODY_CASINO", "Play blackjack at our online casino", "Casino Royale was on TV"),
        ("BODY_BULK_EMAIL", "20 million email addresses on CD", "Your email address is private"),
        ("BODY_STOCK_PROMO", "Our stock pick of the week", "stock prices fell"),
        ("BODY_DEAR_GENERIC", "Dear Friend,\nI am writing", "My dear friend Anna"),
        ("BODY_DEAR_ADDRESS", "Hello bob@example.org,\nspecial offer", "Hello Bob, see bob@example.org"),
        ("BODY_CONFIDENTIAL_DEAL", "This is strictly confidential", "Confidential draft"),
        ("BODY_EXCLAIM", "Buy now!!!", "Really!!"),
        ("BODY_CREDIT_CARDS", "We accept Visa, MasterCard and checks", "Visa application"),
        ("BODY_SEO", "Get top search engine rankings", "search engine results"),
        ("BODY_INSURANCE", "Compare life insurance quotes", "Life insurance paperwork"),
        ("BODY_GUARANTEED", "Guaranteed results in days", "It is guaranteed by the warranty"),
        ("BODY_SENT_BY_ADVERTISER", "This offer is brought to you by ACME", "This is brought up by"),
        ("SUBJ_DOLLAR", "Only $19.95", "Costs in USD"),
        ("SUBJ_FREE", "Your FREE gift", "Freedom of speech"),
        ("SUBJ_ADV", "ADV: cheap ink", "Advice: cheap ink"),
        ("SUBJ_TRAILING_ID", "Great offer        x7Yq2", "Re: bug 1234"),
        ("TO_UNDISCLOSED", "undisclosed-recipients:;", "team@example.org"),
        ("PRIORITY_HIGH", "1 (Highest)", "3 (Normal)"),
        ("URL_IP_HOST", "http://192.0.2.55/login", "http://192.0.2.example/"),
        ("URL_USERINFO", "http://bank.example@phish.example/", "http://phish.example/?u=a@b"),
        ("URL_SHORTENER", "https://bit.ly/x", "https://bit.lyrics.example/x"),
        ("URL_PUNYCODE", "http://xn--pple-43d.example/", "http://example.com/xn--pple"),
    ];
    let mut all: Vec<_> =
        pairs.iter().map(|(n, hit, miss)| (*n, hit.to_string(), miss.to_string())).collect();
    // 400 characters apart (two bytes each) is in reach, 401 is not: the gap counts characters.
    all.push(("BODY_SEXTORTION", sextortion(400), sextortion(401)));
    all
}

/// "webcam" and "Bitcoin" `gap` characters apart, most of them two bytes long.
fn sextortion(gap: usize) -> String {
    format!("I have a video from your webcam {}\nBitcoin, or else.", "é".repeat(gap - 2))
}

#[test]
fn every_shipped_rule_matches_its_example_and_not_its_near_miss() {
    let (rules, _) = shipped();
    let examples = examples();
    let mut names: Vec<&str> = rules.rules.iter().map(|r| r.name.as_str()).collect();
    let mut covered: Vec<&str> = examples.iter().map(|(name, _, _)| *name).collect();
    names.sort_unstable();
    covered.sort_unstable();
    assert_eq!(names, covered, "every shipped rule has an example here");
    for (name, hit, miss) in &examples {
        let i = rules.rules.iter().position(|r| r.name == *name).expect("listed");
        assert!(rules.rule_matches(i, hit.as_bytes()), "{name} must match {hit:?}");
        assert!(!rules.rule_matches(i, miss.as_bytes()), "{name} must not match {miss:?}");
    }
}

/// BODY_SEXTORTION as it was written before its gap counted characters by their lead bytes.
const SEXTORTION_BEFORE: &str = r"(?is)(?-u:\b)(bitcoin|btc)(?-u:\b).{0,400}(?-u:\b)(webcam|recorded you|video of you|your contacts)(?-u:\b)|(?-u:\b)(webcam|recorded you|video of you)(?-u:\b).{0,400}(?-u:\b)(bitcoin|btc)(?-u:\b)";

/// What texts are made of below: the rules' words in several cases (and with the Unicode case folds
/// `ſ` for s and the Kelvin sign for k), digits of other scripts, separators, and runs of 1-, 2-, 3-
/// and 4-byte characters that reach the rules' bounds.
const PIECES: &[&str] = &[
    "bitcoin",
    "BTC",
    "Bitcoin",
    "webcam",
    "WebCam",
    "recorded you",
    "video of you",
    "your contacts",
    "your contact\u{17f}",
    "you have won",
    "been selected",
    "claim your prize",
    "viagra",
    "ciaLis",
    "next of kin",
    "10",
    "\u{663}",
    "\u{ff11}",
    "2.5",
    " million ",
    "twenty",
    "US ",
    "dollars",
    "usd",
    "verify your account now",
    "your account has been suspended",
    "ACCOUNT",
    "NOTICE",
    "\u{c4}",
    "\u{df}",
    "\u{1c5}",
    "a",
    "Z",
    " ",
    "\n",
    "\t",
    "\u{a0}",
    "re: ",
    "urgent",
    "Important",
    "$",
    "1,000,000",
    "eur 12345",
    "mass mail",
    "http://",
    "https://",
    "ftp://",
    "192.0.2.1",
    "xn--",
    "bit.ly/",
    "@",
    "/",
    ".",
    ":",
    "X-PHP-Script:",
    "\u{212a}",
    "_",
    "-",
    "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
    "xxxxxxxxxx",
    "\u{20ac}\u{20ac}\u{20ac}\u{20ac}\u{20ac}",
    "\u{1f600}\u{1f600}\u{1f600}\u{1f600}\u{1f600}",
    "\u{e9}",
    "\u{20ac}",
    "\u{1f600}",
    "to be removed from",
    "TO BE REMOVED",
    "reply with \"remove\"",
    "this is not spam",
    "you opted in to receive",
    "make money",
    "Work From Home",
    "bad credit",
    "weight loss",
    "act now",
    "ORDER TODAY",
    "online casino",
    "bulk email",
    "stock pick",
    "Dear Friend",
    "dear ",
    "bob@example.org",
    "strictly confidential",
    "!!!",
    "!",
    "we accept visa",
    "guaranteed results",
    "life insurance quotes",
    "search engine placement",
    "brought to you by",
    "xxx videos",
    "ta\u{17f}k",
    "a\u{212a}t now",
    "<!-- x -->",
    "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n",
    "ADV:",
    "$19",
    "FREE",
    "Free",
    "undisclosed",
    "1 (Highest)",
    "      x7Yq2",
];

/// How often a piece is repeated when it makes a long run (one piece in [`RUN_ODDS`]), so that a text
/// of a few dozen pieces reaches the rules' 400-character gap.
const RUN: usize = 40;
const RUN_ODDS: u8 = 5;

/// The `regex` crate's answer for a shipped rule.
enum Reference {
    Text(regex::Regex),
    Bytes(regex::bytes::Regex),
}

impl Reference {
    fn is_match(&self, text: &str) -> bool {
        match self {
            Reference::Text(re) => re.is_match(text),
            Reference::Bytes(re) => re.is_match(text.as_bytes()),
        }
    }
}

/// The shipped rules, and the `regex` crate's compilation of each (as rules were compiled before).
static SHIPPED: std::sync::LazyLock<(RulesAnalyzer, Vec<Reference>)> = std::sync::LazyLock::new(|| {
    let (rules, defs) = shipped();
    let references = defs
        .iter()
        .map(|r| {
            let pattern = if r.name == "BODY_SEXTORTION" { SEXTORTION_BEFORE } else { &r.pattern };
            match r.kind {
                RuleKind::Raw => Reference::Bytes(regex::bytes::Regex::new(pattern).unwrap()),
                _ => Reference::Text(regex::Regex::new(pattern).unwrap()),
            }
        })
        .collect();
    (rules, references)
});

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Every shipped rule, behind its literal gate, says what the `regex` crate says of it alone
    /// (BODY_SEXTORTION: of the pattern it had before), on texts made of the rules' own words.
    #[test]
    fn shipped_rules_match_as_the_regex_crate_did(
        pieces in proptest::collection::vec((0..PIECES.len(), 0..RUN_ODDS), 0..48)
    ) {
        let text: String =
            pieces.iter().map(|&(i, odds)| PIECES[i].repeat(if odds == 0 { RUN } else { 1 })).collect();
        let (rules, references) = &*SHIPPED;
        for (i, (rule, reference)) in rules.rules.iter().zip(references).enumerate() {
            proptest::prop_assert_eq!(
                rules.rule_matches(i, text.as_bytes()),
                reference.is_match(&text),
                "{} on {:?}", rule.name, text
            );
        }
    }
}

#[test]
fn gates_list_folded_literals_or_none() {
    let lits = |p: &str| {
        gate::literals(&regex_syntax::parse(p).unwrap()).map(|mut l| {
            l.needles.sort();
            (l.needles, l.at_start)
        })
    };
    assert_eq!(
        lits(r"(?i)(?-u:\b)(act now|Order (now|immediately))(?-u:\b)"),
        Some((vec![b"act now".to_vec(), b"order immedi".to_vec(), b"order now".to_vec()], true)),
        "literals cut to their first 12 bytes"
    );
    assert_eq!(
        lits(r"(?i)KEY"),
        Some((vec![b"key".to_vec()], true)),
        "case variants and the Kelvin sign fold to k"
    );
    assert_eq!(
        lits(r"(?i)(\d+|ten) million dollars"),
        Some((vec![b"lion dollars".to_vec()], false)),
        "matches that begin in many ways: the literal they end with, cut to its last 12 bytes"
    );
    for ungated in [r"(?i)^\s*\w+", r"[a-zA-Z]<!--[a-z]", r"caf\u{e9}", r"(?s).*x", r"x?"] {
        assert_eq!(lits(ungated), None, "{ungated}");
    }
    let mut folded = Vec::new();
    gate::fold("Ta\u{17f}K \u{212a}\u{e9}".as_bytes(), &mut folded);
    assert_eq!(folded, "task k\u{e9}".as_bytes());
}

/// A literal found more often than [`gate::MAX_STARTS`] times opens its rule over the whole text
/// (one search) instead of recording every place: the rule still finds the one real match at the end.
#[test]
fn a_literal_found_too_often_opens_its_rule_everywhere() {
    let rules = RulesAnalyzer::compile(&[def(RuleKind::Body, r"(?i)act now(?-u:\b)")]).unwrap();
    let text = format!("{}ACT NOW.", "act nowx ".repeat(200));
    let mut opened = Opened::default();
    rules.body.gates.open(text.as_bytes(), 1, &mut opened);
    assert!(opened.anywhere(0));
    assert!(opened.starts(0).count() <= gate::MAX_STARTS as usize);
    assert!(rules.rule_matches(0, text.as_bytes()));
    let few = format!("{}ACT NOW.", "act nowx ".repeat(3));
    rules.body.gates.open(few.as_bytes(), 1, &mut opened);
    assert!(!opened.anywhere(0) && opened.starts(0).count() == 4);
    assert!(rules.rule_matches(0, few.as_bytes()));
    assert!(!rules.rule_matches(0, "act nowx ".repeat(200).as_bytes()));
}
