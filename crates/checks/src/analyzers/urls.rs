//! Deceptive links (the `inspect` crate's link checks, `[urls]`): text showing another domain,
//! address literals, odd ports, lookalikes of our domains and protected brands, shorteners and
//! redirectors (never followed), `data:` and `javascript:` links, and HTML forms posting elsewhere.
//! Each finding has the (bounded) URL in its reason; at most [`PER_SYMBOL`] reasons per symbol.

use crate::{Analyzer, Context};
use config::UrlsConfig;
use inspect::links::{self, LinkKind, LinkSettings};
use message::{Limit, MessageView, has_form_tag};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use verdict::Finding;

/// Findings kept per symbol (the first few are enough to explain it).
const PER_SYMBOL: usize = 5;
/// Bytes of the raw message and of HTML attachments searched for forms.
const MAX_FORM_SCAN: usize = 2 << 20;

pub struct Urls {
    settings: UrlsConfig,
    /// The link settings for the accepted domains they were built for (the configuration's, so in
    /// practice built once): building them works out every protected name's skeletons.
    links: Mutex<Option<(Vec<String>, Arc<Links>)>>,
}

/// Link settings for the first link to each host, and for later links to it (no lookalike checks).
struct Links {
    first: LinkSettings,
    later: LinkSettings,
}

impl Urls {
    pub fn from_config(c: &UrlsConfig) -> Urls {
        Urls { settings: c.clone(), links: Mutex::new(None) }
    }

    fn link_settings(&self, ctx: &Context<'_>) -> Arc<Links> {
        let mut cached = self.links.lock().expect("link settings lock");
        if let Some((domains, settings)) = cached.as_ref()
            && domains[..] == *ctx.accepted_domains
        {
            return settings.clone();
        }
        let protected = [ctx.accepted_domains, &self.settings.protected_brands[..]].concat();
        let first = LinkSettings::new(&protected, &self.settings.shorteners, &self.settings.redirectors);
        let settings = Arc::new(Links { later: first.without_lookalikes(), first });
        *cached = Some((ctx.accepted_domains.to_vec(), settings.clone()));
        settings
    }

    /// HTML that forms may be in: the message's HTML bodies (decoded) and HTML attachments.
    fn form_sources<'a>(msg: &'a MessageView, ctx: &'a Context<'a>) -> Vec<String> {
        let raw = &ctx.raw[..ctx.raw.len().min(MAX_FORM_SCAN)];
        let mut out = Vec::new();
        // HTML bodies are often base64 or quoted-printable: decode them when the MIME view saw a
        // form in an HTML part (decoded), may have missed or cut one (it reached a limit on parts,
        // depth, header blocks or decoded bytes: all but the URL count and the text budget, which
        // come after a part's form is looked for), or a `<form` shows in the raw message.
        let html_form = msg.texts.iter().any(|t| t.form)
            || msg.limit_hits.iter().any(|h| !matches!(h.limit, Limit::Urls | Limit::TextBytes));
        if html_form || has_form_tag(raw) {
            out.extend(
                inspect::html_parts::html_parts(raw, MAX_FORM_SCAN)
                    .into_iter()
                    .filter(|h| has_form_tag(h.as_bytes())),
            );
        }
        let html = msg
            .attachments
            .iter()
            .filter(|a| a.declared_type == "text/html" || a.detected_type == Some("text/html"));
        for a in html {
            let data = &a.data[..a.data.len().min(MAX_FORM_SCAN)];
            if has_form_tag(data) {
                out.push(String::from_utf8_lossy(data).into_owned());
            }
        }
        out
    }
}

/// The forms of an HTML text that collect something, each from `<form` to its `</form>`.
#[derive(Debug, Default, PartialEq)]
struct Forms {
    /// Those asking for a secret (a password field, or a field named for a login, a card or a bank
    /// account: [`SECRET_FIELDS`]), whatever their method.
    secret: String,
    /// The others that post (`method="post"`).
    posting: String,
}

/// The [`Forms`] of `html`. A form that only gets without a secret field is a search box (GET is the
/// default method): newsletters carry them, and they send nothing a phisher wants.
fn collecting_forms(html: &str) -> Forms {
    let lower = html.to_ascii_lowercase();
    let squeezed =
        |s: &str| s.chars().filter(|c| !c.is_whitespace() && !matches!(c, '"' | '\'')).collect::<String>();
    let mut out = Forms::default();
    let mut from = 0;
    while let Some(start) = lower[from..].find("<form").map(|i| from + i) {
        let tag_end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
        let end = lower[tag_end..].find("</form").map_or(lower.len(), |e| tag_end + e);
        from = end.max(start + 5);
        let into = if asks_for_a_secret(&lower[tag_end..end]) {
            &mut out.secret
        } else if squeezed(&lower[start..tag_end]).contains("method=post") {
            &mut out.posting
        } else {
            continue;
        };
        into.push_str(&html[start..end]);
        into.push('\n');
    }
    out
}

/// Field names (or ids) that ask for a secret: one of the name's words (split at anything but a
/// letter or digit), or the whole name without its separators, begins with one of these. Passwords
/// and codes, logins, card and bank details.
const SECRET_FIELDS: [&str; 17] = [
    "pass", "pwd", "pin", "otp", "secur", "login", "user", "account", "acct", "card", "ccnum", "cvv", "cvc",
    "expir", "ssn", "routing", "iban",
];

/// Whether a form's body (lower-case) has a password field or a field named for a secret.
fn asks_for_a_secret(body: &str) -> bool {
    let mut from = 0;
    while let Some(start) = body[from..].find('<').map(|i| from + i) {
        let end = body[start..].find('>').map_or(body.len(), |e| start + e);
        from = end.max(start + 1);
        if !["<input", "<select", "<textarea"].iter().any(|t| body[start..end].starts_with(t)) {
            continue;
        }
        let tag = &body[start..end];
        if links::attribute(tag, "type").is_some_and(|t| t.trim() == "password") {
            return true;
        }
        // Each word of the name, and the name with its separators taken out (`cc-num` as `ccnum`).
        let secret_word = |value: String| {
            let joined: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
            let mut words = value.split(|c: char| !c.is_ascii_alphanumeric()).chain([joined.as_str()]);
            words.any(|w| SECRET_FIELDS.iter().any(|s| w.starts_with(s)))
        };
        if ["name", "id"].into_iter().filter_map(|a| links::attribute(tag, a)).any(secret_word) {
            return true;
        }
    }
    false
}

/// What a link names before its path (`user@host:port`), lower-case: links with the same authority
/// have the same host.
fn authority(url: &str) -> String {
    let t = url.trim().trim_start_matches(['\u{0}', ' ']);
    let rest = t.split_once("://").map_or(t, |(_, r)| r);
    rest.split(['/', '?', '#', '\\']).next().unwrap_or("").to_lowercase()
}

/// A URL as it goes into a reason: at most 200 characters, controls replaced.
fn shown(url: &str) -> String {
    url.chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}

impl Analyzer for Urls {
    fn name(&self) -> &'static str {
        "urls"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let links = self.link_settings(ctx);
        // Comparing a host with each protected name (Unicode skeletons) is most of the work, and
        // depends on the host alone: it is done for the first link to each host; later links to the
        // same authority get every other check. A link repeated with the same text is checked once.
        let mut seen_links: HashSet<(&str, Option<&str>)> = HashSet::new();
        let mut seen_hosts: HashSet<String> = HashSet::new();
        let mut found: BTreeMap<LinkKind, Vec<String>> = BTreeMap::new();
        // The one `From:` domain, if there is exactly one: links and forms to it are told apart.
        let sender = match msg.from.as_slice() {
            [one] => one.domain(),
            _ => None,
        };
        for u in msg.urls.iter().take(self.settings.max_urls) {
            if !seen_links.insert((u.url.as_str(), u.text.as_deref())) {
                continue;
            }
            let s = if seen_hosts.insert(authority(&u.url)) { &links.first } else { &links.later };
            for issue in links::check(&u.url, u.text.as_deref(), s, sender.as_deref()) {
                let reasons = found.entry(issue.kind).or_default();
                if reasons.len() < PER_SYMBOL {
                    reasons.push(format!("{} ({})", shown(&u.url), issue.detail));
                }
            }
        }
        let ours: Vec<String> = ctx.accepted_domains.to_vec();
        let (mut secret, mut posting) = (Vec::new(), Vec::new());
        for html in Self::form_sources(msg, ctx) {
            let forms = collecting_forms(&html);
            let sender = sender.as_deref();
            secret.extend(links::offsite_forms(&forms.secret, &ours, sender, PER_SYMBOL));
            posting.extend(links::offsite_forms(&forms.posting, &ours, sender, PER_SYMBOL));
        }
        // One symbol for the forms asking for secrets: the sender's-domain one only when every such
        // form posts there.
        let secret_kind = match secret.iter().all(|(kind, _)| *kind == LinkKind::FormSenderDomain) {
            true => LinkKind::FormSenderDomain,
            false => LinkKind::FormOffsite,
        };
        let kinds = [(secret_kind, &secret), (LinkKind::FormPostsOffsite, &posting)];
        for (kind, forms) in kinds {
            for (_, action) in forms.iter().take(PER_SYMBOL) {
                found.entry(kind).or_default().push(format!("a form posts to {}", shown(action)));
            }
        }
        for (kind, reasons) in found {
            for r in reasons {
                out.push(Finding::new(kind.symbol(), r));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL analyzer's findings on `raw`, under the default settings and no accepted domains.
    fn findings(raw: &str) -> Vec<Finding> {
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let ctx = Context { raw: raw.as_bytes(), ..Context::default() };
        let mut out = Vec::new();
        Urls::from_config(&UrlsConfig::default()).analyze(&view, &ctx, &mut out);
        out
    }

    #[test]
    fn phishing_links_and_forms() {
        let raw = "From: a@b.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<a href=\"http://evil.test/x\">https://www.our.test/login</a> <a href=\"https://paypa1.com/\">pay</a> <form action=3D\"https://grab.evil.test/p\"><input type=3Dpassword></form>";
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let accepted = vec!["our.test".to_string()];
        let ctx = Context { accepted_domains: &accepted, raw: raw.as_bytes(), ..Context::default() };
        let mut out = Vec::new();
        Urls::from_config(&UrlsConfig::default()).analyze(&view, &ctx, &mut out);
        let syms: Vec<&str> = out.iter().map(|f| f.symbol.as_str()).collect();
        assert!(
            syms.contains(&"URL_TEXT_MISMATCH")
                && syms.contains(&"URL_LOOKALIKE")
                && syms.contains(&"PHISH_FORM_OFFSITE"),
            "{out:?}"
        );
        assert!(out.iter().any(|f| f.reason.contains("http://evil.test/x")));
    }

    #[test]
    fn forms_posting_to_the_from_domain_are_told_apart_unless_another_posts_elsewhere() {
        let judge = |forms: &str| {
            let raw = format!("From: News <letter@news.test>\r\nContent-Type: text/html\r\n\r\n{forms}");
            findings(&raw).into_iter().map(|f| (f.symbol, f.reason)).collect::<Vec<_>>()
        };
        let own = "<form method=post action=\"https://my.news.test/login\"><input name=user><input type=password></form>";
        let elsewhere =
            "<form method=post action=\"https://grab.evil.test/p\"><input name=card_number></form>";
        let symbols = judge(own);
        assert_eq!(symbols.len(), 1, "{symbols:?}");
        assert_eq!(symbols[0].0, "PHISH_FORM_SENDER_DOMAIN");
        assert!(symbols[0].1.contains("my.news.test"));
        let both = judge(&format!("{own}{elsewhere}"));
        assert!(both.iter().all(|(s, _)| s == "PHISH_FORM_OFFSITE") && both.len() == 2, "{both:?}");
    }

    #[test]
    fn forms_asking_for_nothing_secret_are_only_posting_forms() {
        let judge = |forms: &str| {
            let raw = format!("From: News <letter@news.test>\r\nContent-Type: text/html\r\n\r\n{forms}");
            findings(&raw).into_iter().map(|f| (f.symbol, f.reason)).collect::<Vec<_>>()
        };
        // A subscription form, to the sender's domain or elsewhere, and an order form.
        let subscribe =
            "<form method=post action=\"https://lists.news.test/subscribe\"><input name=email></form>";
        let order = "<FORM METHOD=POST ACTION='https://shop.test/order'><input name=qty><select name=shipping>\
                     <textarea id=comments></textarea><input type=submit value='Pass it on'></FORM>";
        let found = judge(&format!("{subscribe}{order}"));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().all(|(s, _)| s == "FORM_POSTS_OFFSITE"), "{found:?}");
        assert!(found[0].1.contains("lists.news.test") && found[1].1.contains("shop.test"));
        // Each kind of secret makes it a phishing form, whatever the field's name looks like.
        for field in [
            "<input type = 'PASSWORD'>",
            "<input name=userPass>",
            "<input id=\"cc-num\">",
            "<select name=card_type>",
            "<input name=ssn>",
            "<input name=routing_number>",
            "<input name=\"login\">",
            "<input name=cvv2>",
        ] {
            let form = format!("<form method=post action=\"https://shop.test/order\">{field}</form>");
            let found = judge(&form);
            assert_eq!(found.len(), 1, "{field}: {found:?}");
            assert_eq!(found[0].0, "PHISH_FORM_OFFSITE", "{field}");
        }
    }

    /// Under the shipped scores a form posting to the `From:` domain counts as one posting elsewhere,
    /// and nothing once DMARC authenticates that domain.
    #[test]
    fn the_shipped_scores_spare_an_authenticated_senders_own_form_only() {
        let loaded = crate::rules_dir::load(std::path::Path::new(""), std::path::Path::new("/nonexistent"))
            .expect("the shipped rules load");
        let policy = loaded.policy.build().expect("the shipped policy builds");
        let score = |symbols: &[&str]| {
            let findings: Vec<Finding> = symbols.iter().map(|s| Finding::new(*s, "test")).collect();
            verdict::decide(&findings, &policy).score
        };
        let dmarc = score(&["DMARC_POLICY_ALLOW"]);
        assert_eq!(score(&["PHISH_FORM_SENDER_DOMAIN"]), score(&["PHISH_FORM_OFFSITE"]));
        assert!(score(&["PHISH_FORM_SENDER_DOMAIN"]) >= 5.0);
        assert_eq!(score(&["PHISH_FORM_SENDER_DOMAIN", "DMARC_POLICY_ALLOW"]), dmarc);
        assert!(score(&["PHISH_FORM_OFFSITE", "DMARC_POLICY_ALLOW"]) > dmarc + 4.0);
    }

    #[test]
    fn search_boxes_are_not_phishing_forms() {
        let search = "<form action=\"http://search.example/q\"><input name=q></form>";
        let login = "<FORM action='https://grab.test/p'><input TYPE = \"password\"></FORM>";
        let post = "<form method = 'POST' action=https://leads.test/in><input name=email></form>";
        assert_eq!(collecting_forms(search), Forms::default());
        let picked = collecting_forms(&format!("{search}{login}{post}"));
        assert!(picked.secret.contains("grab.test") && !picked.secret.contains("leads.test"), "{picked:?}");
        assert!(picked.posting.contains("leads.test") && !picked.posting.contains("grab.test"), "{picked:?}");
        assert!(!format!("{picked:?}").contains("search.example"));
    }

    /// A `<form` that only the decoded part shows (a quoted-printable soft line break inside it).
    #[test]
    fn forms_split_by_quoted_printable() {
        let raw = "From: a@b.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Sign in</p><fo=\r\nrm method=3Dpost action=3D\"https://qp.evil.test/p\"><input name=3Duser></form>\r\n";
        assert!(!has_form_tag(raw.as_bytes()));
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        assert!(view.texts.iter().any(|t| t.form));
        let out = findings(raw);
        assert!(
            out.iter().any(|f| f.symbol == "PHISH_FORM_OFFSITE" && f.reason.contains("qp.evil.test")),
            "{out:?}"
        );
    }

    #[test]
    fn forms_in_base64_html_bodies() {
        let raw = "From: a@b.test\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nPGh0bWw+PGZvcm0gbWV0aG9kPSJwb3N0IiBhY3Rpb249Imh0dHBzOi8vYjY0LmV2aWwudGVzdC9jb2xsZWN0Ij48aW5wdXQgdHlwZT0icGFzc3dvcmQiPjwvZm9ybT48L2h0bWw+\r\n--b--\r\n";
        // The type and encoding in any case: MIME names are case-insensitive.
        for raw in [raw.to_string(), raw.replace("text/html", "TEXT/HTML").replace("base64", "BASE64")] {
            let out = findings(&raw);
            assert!(
                out.iter().any(|f| f.symbol == "PHISH_FORM_OFFSITE" && f.reason.contains("b64.evil.test")),
                "{raw}: {out:?}"
            );
        }
    }
}
