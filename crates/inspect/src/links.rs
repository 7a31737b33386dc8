//! Links that deceive: text showing one domain while the link goes to another, address literals and
//! odd ports, lookalike hosts (punycode, mixed scripts, UTS 39 confusable skeletons) of our domains
//! and of protected brands, shorteners and redirectors (listed, never followed), `data:` and
//! `javascript:` links, and HTML forms that post elsewhere. Pure: nothing is fetched or resolved.

use std::net::IpAddr;
use unicode_security::MixedScript;

/// What the link checks compare against. Build it once ([`LinkSettings::new`] works out each
/// protected name's confusable skeletons, most of the work of comparing a host with it) and reuse it.
#[derive(Debug, Clone, Default)]
pub struct LinkSettings {
    /// Domains whose lookalikes matter: ours (accepted domains) and protected brands (`paypal.com`).
    protected: Vec<Protected>,
    /// Whether hosts are compared with the protected names for lookalikes (the costly part).
    lookalikes: bool,
    /// Hosts of URL shorteners (`bit.ly`), lower case.
    shorteners: Vec<String>,
    /// Open redirectors, `host` or `host/path-prefix` (`www.google.com/url`), lower case.
    redirectors: Vec<String>,
}

/// A protected name and what lookalike checks compare with, worked out once.
#[derive(Debug, Clone)]
struct Protected {
    /// The name, lower-case, and with a dot after it (a host that has it is in a subdomain).
    name: String,
    name_dot: String,
    /// The skeleton of its last two labels.
    skeleton: String,
    /// Its first label (the brand) when at least 4 characters long, and that label's skeleton.
    brand: Option<(String, String)>,
}

impl LinkSettings {
    /// Settings from the configured names, as written: each is trimmed and lower-cased here.
    pub fn new(protected: &[String], shorteners: &[String], redirectors: &[String]) -> LinkSettings {
        let protected = protected
            .iter()
            .map(|p| {
                let name = p.trim().to_lowercase();
                let brand = name.split('.').next().unwrap_or("");
                Protected {
                    skeleton: skeleton(&registrable(&name)),
                    brand: (brand.len() >= 4).then(|| (brand.to_string(), skeleton(brand))),
                    name_dot: format!("{name}."),
                    name,
                }
            })
            .collect();
        let lower = |v: &[String]| v.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
        let (shorteners, redirectors) = (lower(shorteners), lower(redirectors));
        LinkSettings { protected, lookalikes: true, shorteners, redirectors }
    }

    /// The same settings without lookalike checks (the protected names still count as protected
    /// when a link's text shows one).
    pub fn without_lookalikes(&self) -> LinkSettings {
        LinkSettings { lookalikes: false, ..self.clone() }
    }

    /// Whether `name` (lower case) is one of the protected names or a host of one.
    fn protects(&self, name: &str) -> bool {
        self.protected.iter().any(|p| related_lower(name, &p.name))
    }
}

/// One kind of deceptive link. Each is one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkKind {
    TextMismatch,
    /// Text showing one domain while the link goes to the sender's own (the `From:` domain), the
    /// shown domain not protected: a newsletter's tracked link (`clicks.news.example/c?...` under
    /// the text `shop.example`). Told apart so it can score less than [`LinkKind::TextMismatch`].
    TextSenderLink,
    IpLiteral,
    NonStandardPort,
    Lookalike,
    MixedScript,
    Shortener,
    Redirector,
    DataUri,
    JavascriptUri,
    /// A form asking for a secret (a password, a login, card or bank details) that posts to a host
    /// not ours.
    FormOffsite,
    /// A form asking for a secret that posts to the `From:` domain, not ours: a newsletter's own
    /// login form, or a phisher's own domain (what sets them apart is whether that domain is
    /// authenticated).
    FormSenderDomain,
    /// A form that posts to a host not ours and asks for nothing secret: a subscription, order or
    /// feedback form (newsletters carry them; so does spam).
    FormPostsOffsite,
}

impl LinkKind {
    pub fn symbol(self) -> &'static str {
        match self {
            LinkKind::TextMismatch => "URL_TEXT_MISMATCH",
            LinkKind::TextSenderLink => "URL_TEXT_SENDER_LINK",
            LinkKind::IpLiteral => "URL_IP_LITERAL",
            LinkKind::NonStandardPort => "URL_NONSTANDARD_PORT",
            LinkKind::Lookalike => "URL_LOOKALIKE",
            LinkKind::MixedScript => "URL_MIXED_SCRIPT",
            LinkKind::Shortener => "URL_SHORTENER",
            LinkKind::Redirector => "URL_REDIRECTOR",
            LinkKind::DataUri => "URL_DATA",
            LinkKind::JavascriptUri => "URL_JAVASCRIPT",
            LinkKind::FormOffsite => "PHISH_FORM_OFFSITE",
            LinkKind::FormSenderDomain => "PHISH_FORM_SENDER_DOMAIN",
            LinkKind::FormPostsOffsite => "FORM_POSTS_OFFSITE",
        }
    }
}

/// A finding about one link: what, and why in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkIssue {
    pub kind: LinkKind,
    pub detail: String,
}

/// The parts of a URL these checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Parsed {
    scheme: String,
    host: String,
    port: Option<String>,
    path: String,
}

fn parse(url: &str) -> Option<Parsed> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let path = &rest[authority.len()..];
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').unwrap_or((v6, ""));
        (h.to_string(), tail.strip_prefix(':').map(str::to_string))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (host_port.to_string(), None),
        }
    };
    Some(Parsed {
        scheme: scheme.to_ascii_lowercase(),
        host: host.trim_end_matches('.').to_lowercase(),
        port,
        path: path.to_string(),
    })
}

/// Check one link: its URL as written and, for HTML links, the text a reader sees; `sender` is the
/// `From:` domain, if there is one.
pub fn check(url: &str, text: Option<&str>, s: &LinkSettings, sender: Option<&str>) -> Vec<LinkIssue> {
    let mut out = Vec::new();
    let trimmed = url.trim().trim_start_matches(['\u{0}', ' ']);
    let lower = trimmed.to_ascii_lowercase();
    let scheme: String = lower.chars().filter(|c| !c.is_whitespace()).take(11).collect();
    if scheme.starts_with("javascript:") {
        out.push(issue(LinkKind::JavascriptUri, "a javascript: link runs script"));
        return out;
    }
    if scheme.starts_with("data:") {
        out.push(issue(LinkKind::DataUri, "a data: link carries its own content"));
        return out;
    }
    let Some(p) =
        parse(trimmed).or_else(|| lower.starts_with("www.").then(|| parse(&format!("http://{trimmed}")))?)
    else {
        return out;
    };
    host_checks(&p, s, &mut out);
    if let Some(shown) = text.and_then(shown_host)
        && !p.host.is_empty()
        && !related(&shown, &unicode_host(&p.host))
        && !related(&shown, &p.host)
    {
        let detail = format!("the text shows {shown} but the link goes to {}", p.host);
        if sender.is_some_and(|d| related(&p.host, d)) && !s.protects(&shown.to_lowercase()) {
            out.push(issue(LinkKind::TextSenderLink, &format!("{detail}, the sender's own domain")));
        } else {
            out.push(issue(LinkKind::TextMismatch, &detail));
        }
    }
    out
}

fn issue(kind: LinkKind, detail: &str) -> LinkIssue {
    LinkIssue { kind, detail: detail.to_string() }
}

fn host_checks(p: &Parsed, s: &LinkSettings, out: &mut Vec<LinkIssue>) {
    if ip_literal(&p.host) {
        out.push(issue(LinkKind::IpLiteral, &format!("the host is an address ({})", p.host)));
    }
    let default_port = match p.scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => "",
    };
    if let Some(port) = p.port.as_deref().filter(|port| !port.is_empty() && *port != default_port) {
        out.push(issue(LinkKind::NonStandardPort, &format!("port {port} on a {} link", p.scheme)));
    }
    let host_path = format!("{}{}", p.host, p.path);
    if s.shorteners.iter().any(|h| p.host == *h || below(&p.host, h)) {
        out.push(issue(LinkKind::Shortener, &format!("{} is a URL shortener (not followed)", p.host)));
    }
    if s.redirectors.iter().any(|r| redirector_matches(r, &host_path)) {
        out.push(issue(LinkKind::Redirector, &format!("{} redirects elsewhere (not followed)", p.host)));
    }
    lookalike(&p.host, s, out);
}

/// Whether `host_path` (lower case) is under the redirector `entry` (lower case, as
/// [`LinkSettings::new`] keeps it).
fn redirector_matches(entry: &str, host_path: &str) -> bool {
    host_path.starts_with(entry)
        && (entry.contains('/')
            || host_path[entry.len()..].starts_with(['/', '?', '#'])
            || host_path.len() == entry.len())
}

/// Dotted quads, integers (`http://3232235777/`), hexadecimal and octal forms, and IPv6.
fn ip_literal(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let numeric_part = |l: &str| {
        !l.is_empty()
            && (l.bytes().all(|b| b.is_ascii_digit())
                || (l.starts_with("0x") && l.len() > 2 && l[2..].bytes().all(|b| b.is_ascii_hexdigit())))
    };
    !host.is_empty() && host.split('.').count() <= 4 && host.split('.').all(numeric_part)
}

/// The host as a reader sees it: punycode labels decoded.
fn unicode_host(host: &str) -> String {
    if !host.contains("xn--") {
        return host.to_string();
    }
    idna::domain_to_unicode(host).0
}

/// The confusable skeleton (UTS #39) of `s`, lower-cased before and after. Most host names are ASCII,
/// and an ASCII character's skeleton does not depend on its neighbours, so those are put together from
/// [`ascii_skeletons`] (which lower-case as well) rather than run through the normalisations and the
/// confusables table again.
fn skeleton(s: &str) -> String {
    if s.is_ascii() {
        let table = ascii_skeletons();
        return s.bytes().map(|b| table[usize::from(b)].as_str()).collect();
    }
    full_skeleton(s)
}

fn full_skeleton(s: &str) -> String {
    unicode_security::skeleton(&s.to_lowercase()).collect::<String>().to_lowercase()
}

/// The skeleton of each ASCII character, worked out once.
fn ascii_skeletons() -> &'static [String; 128] {
    static TABLE: std::sync::OnceLock<[String; 128]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|b| full_skeleton(char::from(b as u8).encode_utf8(&mut [0; 4]))))
}

/// The last two labels (no public suffix list: over-matches under `co.uk`, so a miss, never a false
/// lookalike between two different registrants).
fn registrable(host: &str) -> String {
    let labels: Vec<&str> = host.rsplitn(3, '.').collect();
    labels.iter().take(2).rev().copied().collect::<Vec<_>>().join(".")
}

fn lookalike(host: &str, s: &LinkSettings, out: &mut Vec<LinkIssue>) {
    if host.is_empty() || ip_literal(host) {
        return;
    }
    let shown = unicode_host(host);
    // An ASCII label is one script (Latin letters, and digits and `-`, which go with any script).
    let mixed = shown.split('.').any(|label| !label.is_ascii() && !label.is_single_script());
    if mixed {
        out.push(issue(LinkKind::MixedScript, &format!("{host} mixes scripts ({shown})")));
    }
    if !s.lookalikes || s.protected.is_empty() {
        return;
    }
    let own = registrable(&shown);
    let own_skeleton = skeleton(&own);
    let own_label = own.split('.').next().unwrap_or("");
    let shown_lower = shown.to_lowercase();
    let mut own_label_skeleton = None;
    for p in &s.protected {
        let name = p.name.as_str();
        if related_lower(host, name) || (shown_lower != host && related_lower(&shown_lower, name)) {
            return; // it is the protected domain itself (or one of its hosts)
        }
        if own_skeleton == p.skeleton {
            out.push(issue(LinkKind::Lookalike, &format!("{host} ({shown}) looks like {name}")));
            return;
        }
        let in_subdomain = host.len() > name.len() && host.contains(&p.name_dot);
        let imitates_brand = p.brand.as_ref().is_some_and(|(brand, brand_skeleton)| {
            own_label != brand
                && *own_label_skeleton.get_or_insert_with(|| skeleton(own_label)) == *brand_skeleton
        });
        if in_subdomain || imitates_brand {
            out.push(issue(LinkKind::Lookalike, &format!("{host} imitates {name}")));
            return;
        }
    }
}

/// Same domain, a subdomain of the other, or the same last two labels.
fn related(a: &str, b: &str) -> bool {
    related_lower(&a.to_lowercase(), &b.to_lowercase())
}

/// [`related`] for names already in lower case (no allocation: it runs for every protected name).
fn related_lower(a: &str, b: &str) -> bool {
    a == b || below(a, b) || below(b, a) || last_two_labels(a) == last_two_labels(b)
}

/// Whether `sub` is a name below `domain` (`www.example.com` below `example.com`), same case.
fn below(sub: &str, domain: &str) -> bool {
    sub.len() > domain.len() && sub.ends_with(domain) && sub.as_bytes()[sub.len() - domain.len() - 1] == b'.'
}

/// [`registrable`] without allocating: the slice from after the second-to-last dot.
fn last_two_labels(host: &str) -> &str {
    let b = host.as_bytes();
    let last = b.iter().rposition(|&c| c == b'.');
    match last.and_then(|l| b[..l].iter().rposition(|&c| c == b'.')) {
        Some(i) => &host[i + 1..],
        None => host,
    }
}

/// The domain a link's text shows, if the text is a URL or a bare domain name.
fn shown_host(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches(['/', '.']);
    if t.is_empty() || t.len() > 256 || t.contains(char::is_whitespace) {
        return None;
    }
    let candidate =
        if t.contains("://") { message::url_host(t) } else { message::url_host(&format!("http://{t}")) };
    let labels: Vec<&str> = candidate.split('.').collect();
    let tld_ok = labels.last().is_some_and(|l| l.len() >= 2 && l.chars().all(char::is_alphabetic));
    let ok = labels.len() >= 2
        && tld_ok
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'));
    ok.then_some(candidate)
}

/// `<form action=...>` targets in HTML that post to a host not in `ours`, each with its kind:
/// [`LinkKind::FormSenderDomain`] when the host belongs with `sender` (the `From:` domain),
/// [`LinkKind::FormOffsite`] otherwise.
pub fn offsite_forms(
    html: &str,
    ours: &[String],
    sender: Option<&str>,
    max: usize,
) -> Vec<(LinkKind, String)> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = lower[from..].find("<form").map(|i| from + i) {
        let end = lower[i..].find('>').map_or(lower.len(), |e| i + e);
        from = end.max(i + 5);
        let Some(action) = attribute(&html[i..end], "action") else { continue };
        let host = message::url_host(action.trim());
        if !host.is_empty() && !ours.iter().any(|o| related(&host, o)) {
            let kind = match sender {
                Some(domain) if related(&host, domain) => LinkKind::FormSenderDomain,
                _ => LinkKind::FormOffsite,
            };
            out.push((kind, action.chars().take(200).collect()));
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

/// The value of attribute `name` (lower-case) in an HTML start tag, unquoted; only where the name
/// stands on its own (after white space), so `name` is not found inside `data-name` or `id` inside
/// `uid`. White space around the `=` is allowed, as in HTML (`action = "..."`).
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let tag = &without_space_around_equals(tag);
    let lower = tag.to_ascii_lowercase();
    let wanted = format!("{name}=");
    let at = lower
        .match_indices(&wanted)
        .find(|(i, _)| lower[..*i].ends_with(|c: char| c.is_ascii_whitespace()))?
        .0
        + wanted.len();
    let rest = &tag[at..];
    let v = match rest.chars().next()? {
        q @ ('"' | '\'') => rest[1..].split(q).next().unwrap_or(""),
        _ => rest.split(|c: char| c.is_whitespace() || c == '>').next().unwrap_or(""),
    };
    Some(v.to_string())
}

/// `tag` with the white space around each `=` removed (`type = "password"` as `type="password"`).
fn without_space_around_equals(tag: &str) -> String {
    let (mut out, mut space) = (String::with_capacity(tag.len()), String::new());
    for c in tag.chars() {
        if c.is_whitespace() {
            space.push(c);
            continue;
        }
        if c != '=' && !out.ends_with('=') {
            out.push_str(&space);
        }
        space.clear();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_skeletons_are_the_full_skeletons() {
        let mut names: Vec<String> = vec!["paypal.com".into(), "rnicrosoft.com".into(), "PAYPA1.COM".into()];
        for a in 0..128u8 {
            for b in [b'a', b'm', b'0', b'1', b'l', b'-', b'.', b'|', b'r', b'n'] {
                names.push(String::from_utf8(vec![a, b, a]).unwrap());
            }
        }
        for n in &names {
            assert_eq!(skeleton(n), full_skeleton(n), "{n:?}");
        }
    }

    fn settings() -> LinkSettings {
        LinkSettings::new(
            &["our.test".into(), "paypal.com".into()],
            &["bit.ly".into()],
            &["www.google.com/url".into()],
        )
    }

    #[test]
    fn related_without_allocating_agrees_with_registrable() {
        for host in ["a.b.c", "b.c", "c", "", "a.b.", ".c", "x.y.example.co.uk"] {
            assert_eq!(last_two_labels(host), registrable(host), "{host}");
        }
        assert!(related_lower("www.paypal.com", "paypal.com"));
        assert!(related_lower("paypal.com", "login.paypal.com"));
        assert!(!related_lower("notpaypal.com", "paypal.com"));
        assert!(!related_lower("paypal.com.evil.test", "paypal.com"));
    }

    fn kinds(url: &str, text: Option<&str>) -> Vec<LinkKind> {
        check(url, text, &settings(), None).into_iter().map(|i| i.kind).collect()
    }

    #[test]
    fn text_shows_another_domain() {
        assert_eq!(
            kinds("http://evil.test/login", Some("https://www.paypal.com/")),
            [LinkKind::TextMismatch]
        );
        assert!(kinds("https://www.paypal.com/x", Some("paypal.com")).is_empty());
        assert!(kinds("http://evil.test/", Some("Click here")).is_empty());
    }

    #[test]
    fn a_senders_own_tracked_links_are_told_apart_unless_the_text_shows_a_protected_name() {
        let from = |url: &str, text: &str, sender: &str, s: &LinkSettings| {
            check(url, Some(text), s, Some(sender))
                .into_iter()
                .map(|i| (i.kind, i.detail))
                .collect::<Vec<_>>()
        };
        let tracked = from("http://clicks.news.test/c?q=1", "www.shop.test", "news.test", &settings());
        assert_eq!(tracked.len(), 1);
        assert_eq!(tracked[0].0, LinkKind::TextSenderLink);
        assert!(tracked[0].1.contains("shop.test") && tracked[0].1.contains("sender's own domain"));
        // Another sender's link, or a protected name shown (here, or for a later link to the host,
        // where lookalikes are no longer compared): a mismatch.
        let other = from("http://clicks.news.test/c", "shop.test", "other.test", &settings());
        assert_eq!(other[0].0, LinkKind::TextMismatch);
        for s in [settings(), settings().without_lookalikes()] {
            let brand = from("http://login.evil.test/", "https://www.PayPal.com/", "evil.test", &s);
            assert_eq!(brand.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [LinkKind::TextMismatch]);
        }
    }

    #[test]
    fn addresses_ports_schemes() {
        assert_eq!(kinds("http://192.0.2.1/a", None), [LinkKind::IpLiteral]);
        assert_eq!(kinds("http://3232235777/", None), [LinkKind::IpLiteral]);
        assert_eq!(kinds("http://[2001:db8::1]/", None), [LinkKind::IpLiteral]);
        assert_eq!(kinds("https://shop.test:8443/", None), [LinkKind::NonStandardPort]);
        assert!(kinds("https://shop.test:443/", None).is_empty());
        assert_eq!(kinds("JaVaScript:alert(1)", None), [LinkKind::JavascriptUri]);
        assert_eq!(kinds("data:text/html;base64,PHNjcmlwdD4=", None), [LinkKind::DataUri]);
        assert_eq!(kinds("https://bit.ly/abc", None), [LinkKind::Shortener]);
        assert_eq!(kinds("https://go.bit.ly/abc", None), [LinkKind::Shortener]);
        assert!(kinds("https://notbit.ly/abc", None).is_empty());
        let upper = LinkSettings::new(&[], &[" BIT.LY".into()], &["WWW.Google.com/URL ".into()]);
        let found = |url| check(url, None, &upper, None).into_iter().map(|i| i.kind).collect::<Vec<_>>();
        assert_eq!(found("https://bit.ly/x"), [LinkKind::Shortener]);
        assert_eq!(found("https://www.google.com/url?q=x"), [LinkKind::Redirector]);
        assert_eq!(kinds("https://www.google.com/url?q=http://evil.test", None), [LinkKind::Redirector]);
    }

    #[test]
    fn lookalikes() {
        // Cyrillic "а" in раypal: punycode, mixed script, and a confusable of the brand.
        let k = kinds("https://xn--ypal-43d9g.com/", None);
        assert!(k.contains(&LinkKind::Lookalike), "{k:?}");
        assert_eq!(kinds("https://paypa1.com/", None), [LinkKind::Lookalike]);
        assert_eq!(kinds("https://paypal.com.evil.test/", None), [LinkKind::Lookalike]);
        assert_eq!(kinds("https://0ur.test/", None), [LinkKind::Lookalike]);
        assert!(kinds("https://www.paypal.com/", None).is_empty());
        assert!(kinds("https://mail.our.test/", None).is_empty());
        assert!(kinds("https://example.org/", None).is_empty());
    }

    #[test]
    fn forms_posting_elsewhere() {
        let html = "<form method=post action=\"https://collect.evil.test/p\"><input type=password></form>\
                    <form action='https://www.our.test/search'></form><form action=/local>";
        let offsite = (LinkKind::FormOffsite, "https://collect.evil.test/p".to_string());
        assert_eq!(offsite_forms(html, &["our.test".into()], None, 10), std::slice::from_ref(&offsite));
        // White space around `=` hides nothing.
        let spaced =
            "<form method=post action = \"https://collect.evil.test/p\"><input type=password></form>";
        assert_eq!(offsite_forms(spaced, &["our.test".into()], None, 10), std::slice::from_ref(&offsite));
        let own = "<form action='https://search.news.test/q'></form>";
        let both = format!("{html}{own}");
        let sender = (LinkKind::FormSenderDomain, "https://search.news.test/q".to_string());
        assert_eq!(offsite_forms(&both, &["our.test".into()], Some("news.test"), 10), [offsite, sender]);
    }
}
