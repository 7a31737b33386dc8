//! Quarantine digests: for each recipient with new held items, one multipart/alternative mail (text
//! and HTML) listing them with one-click links, committed to `active/` and delivered like any other.
//!
//! Every subject, sender and name in a digest is hostile text: the HTML part is built by
//! [`crate::html::Html`] (markup only from `'static` strings, everything else escaped, bidirectional
//! controls neutralised), the text part has control characters replaced. Links carry signed tokens
//! ([`crate::token`]), one per action, item and recipient.

use crate::html::{Html, neutral};
use crate::item::{Item, ItemId, Kind};
use crate::token::DigestAction;
use crate::{Actor, Quarantine, QuarantineError, now_ms};
use config::DigestConfig;
use spool::{Envelope, Queue, QueueId};

/// What one digest run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestReport {
    /// Digests queued.
    pub sent: usize,
    /// Items listed in them.
    pub items: usize,
}

/// The next digest time after `after_secs` (Unix seconds): the first `at + k × interval` (counted from
/// midnight UTC, 1970-01-01) later than it.
pub fn next_digest_at(cfg: &DigestConfig, after_secs: u64) -> u64 {
    let interval = cfg.interval.get().as_secs().max(1);
    let anchor = cfg.at_seconds().unwrap_or(0) % interval;
    let k = after_secs.saturating_sub(anchor) / interval;
    let mut next = anchor + k * interval;
    while next <= after_secs {
        next += interval;
    }
    next
}

/// One item's lines in a digest, with its links (none for what the recipient may not do).
struct Entry {
    item: Item,
    links: Vec<(&'static str, String)>,
}

impl Quarantine {
    /// Send every recipient who wants one a digest of the items held for them since their last one.
    pub async fn send_digests(&self) -> Result<DigestReport, QuarantineError> {
        self.send_digests_until(now_ms()).await
    }

    /// Send the digests covering what was held up to `until` (Unix ms): the scheduled run passes its
    /// slot's time, so every node on the schedule claims the same digests and only one sends each.
    pub async fn send_digests_until(&self, until: i64) -> Result<DigestReport, QuarantineError> {
        // Digests are written into the spool: refuse before claiming any where there is none.
        self.spool()?;
        let mut report = DigestReport::default();
        for address in self.store().quarantine_digest_addresses(0, until).await? {
            let prefs = self.store().digest_prefs(&address).await?;
            if !prefs.enabled {
                continue;
            }
            let max = self.config().digest.max_items;
            let (rows, total) =
                self.store().quarantine_digest_items(&address, prefs.last_digest_ms, until, max).await?;
            if rows.is_empty() {
                continue;
            }
            // Claimed before it is queued: a crash in between loses this digest (the items stay held
            // and are listed in the portal), where the other order could send it twice.
            if !self.store().digest_claim(&address, prefs.last_digest_ms, until).await? {
                continue;
            }
            let items: Vec<Item> = rows.into_iter().map(Item::from_row).collect();
            self.send_digest(&address, &items, total).await?;
            report.sent += 1;
            report.items += items.len();
        }
        Ok(report)
    }

    /// Build and queue one digest for `address`.
    async fn send_digest(
        &self,
        address: &str,
        items: &[Item],
        total: i64,
    ) -> Result<QueueId, QuarantineError> {
        let entries = items.iter().map(|i| self.entry(address, i)).collect::<Result<Vec<_>, _>>()?;
        let subject = format!("Quarantine digest: {total} held message{}", if total == 1 { "" } else { "s" });
        let bytes = self.digest_message(address, &subject, &entries, total)?;
        let envelope = Envelope {
            sender: String::new(),
            recipients: vec![address.to_string()],
            received_at: u64::try_from(now_ms()).unwrap_or(0),
            ..Envelope::default()
        };
        let spool = self.spool()?.clone();
        let id = crate::blocking("queueing a digest", move || {
            let mut incoming = spool.create(&envelope)?;
            incoming.write(&bytes)?;
            incoming.commit(&[], Queue::Active)
        })
        .await??;
        self.track_generated(&id, address, &subject).await;
        self.wake(&id);
        tracing::info!(queue_id = %id, items = entries.len(), total, "quarantine digest queued");
        Ok(id)
    }

    fn entry(&self, address: &str, item: &Item) -> Result<Entry, QuarantineError> {
        let actor = Actor::digest_link(address, "");
        let kind = Kind::parse(item.kind).unwrap_or(Kind::Virus);
        let id = ItemId::parse(item.id.as_str())?;
        let mut actions = Vec::new();
        if actor.may_release(kind, self.config().quarantine.policy_release) {
            actions.push(("Release", DigestAction::Release));
            if !item.sender.is_empty() {
                actions.push(("Release and safelist sender", DigestAction::ReleaseAndSafelist));
            }
        }
        actions.push(("Delete", DigestAction::Delete));
        let base = self.config().digest.portal_url.trim_end_matches('/').to_string();
        let links = actions
            .into_iter()
            .map(|(label, a)| Ok((label, format!("{base}/digest/{}", self.digest_token(a, &id, address)?))))
            .collect::<Result<Vec<_>, QuarantineError>>()?;
        Ok(Entry { item: item.clone(), links })
    }

    fn digest_message(
        &self,
        address: &str,
        subject: &str,
        entries: &[Entry],
        total: i64,
    ) -> Result<Vec<u8>, QuarantineError> {
        let config = self.config();
        let from = if config.digest.from.is_empty() {
            format!("postmaster@{}", config.hostname)
        } else {
            config.digest.from.clone()
        };
        let message_id = format!(
            "digest.{}@{}",
            crate::token::nonce().iter().map(|b| format!("{b:02x}")).collect::<String>(),
            config.hostname
        );
        mail_builder::MessageBuilder::new()
            .from(("Quarantine", from.as_str()))
            .to(address)
            .subject(subject)
            .message_id(message_id.as_str())
            .header("Auto-Submitted", mail_builder::headers::text::Text::new("auto-generated"))
            .text_body(text_part(entries, total))
            .html_body(html_part(entries, total))
            .write_to_vec()
            .map_err(|e| QuarantineError::Digest(e.to_string()))
    }
}

/// Received time as `YYYY-MM-DD HH:MM UTC`.
fn when(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn more_line(shown: usize, total: i64) -> Option<String> {
    let more = total - i64::try_from(shown).unwrap_or(0);
    (more > 0).then(|| format!("{more} more held message(s) are not listed here; see the quarantine portal."))
}

fn text_part(entries: &[Entry], total: i64) -> String {
    let mut t =
        String::from("These messages addressed to you were held in quarantine since your last digest.\r\n");
    t.push_str("Each link works once. Nothing else needs doing: held messages expire on their own.\r\n\r\n");
    for e in entries {
        let i = &e.item;
        t.push_str(&format!("From:     {}\r\n", neutral(&i.from)));
        t.push_str(&format!("Sender:   {}\r\n", neutral(if i.sender.is_empty() { "<>" } else { &i.sender })));
        t.push_str(&format!("Subject:  {}\r\n", neutral(&i.subject)));
        t.push_str(&format!("Received: {}  ({}, score {:.1})\r\n", when(i.received_at_ms), i.kind, i.score));
        for (label, url) in &e.links {
            t.push_str(&format!("  {label}: {url}\r\n"));
        }
        t.push_str("\r\n");
    }
    if let Some(more) = more_line(entries.len(), total) {
        t.push_str(&more);
        t.push_str("\r\n");
    }
    t
}

fn html_part(entries: &[Entry], total: i64) -> String {
    let mut h = Html::default();
    h.markup("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Quarantine digest</title></head><body>\n")
        .markup("<p>These messages addressed to you were held in quarantine since your last digest. ")
        .markup("Each link works once.</p>\n<table border=\"1\" cellpadding=\"4\" cellspacing=\"0\">\n")
        .markup("<tr><th>From</th><th>Subject</th><th>Received</th><th>Actions</th></tr>\n");
    for e in entries {
        let i = &e.item;
        h.markup("<tr><td>").text(&i.from).markup("<br><small>").text(if i.sender.is_empty() {
            "<>"
        } else {
            &i.sender
        });
        h.markup("</small></td><td>").text(&i.subject).markup("</td><td>").text(&when(i.received_at_ms));
        h.markup("<br><small>")
            .text(i.kind)
            .text(&format!(", score {:.1}", i.score))
            .markup("</small></td><td>");
        for (n, (label, url)) in e.links.iter().enumerate() {
            if n > 0 {
                h.markup(" | ");
            }
            h.markup("<a href=\"").text(url).markup("\">").text(label).markup("</a>");
        }
        h.markup("</td></tr>\n");
    }
    h.markup("</table>\n");
    if let Some(more) = more_line(entries.len(), total) {
        h.markup("<p>").text(&more).markup("</p>\n");
    }
    h.markup("</body></html>\n");
    h.finish()
}
