//! Quarantine items and timelines as pages show them: every text from mail passed through
//! [`display_text`] (bidi controls visible, control characters replaced) before a template escapes it.

use crate::render::{display_block, display_text};
use crate::state::format_time;

/// One row of a quarantine list.
pub struct ItemRow {
    pub id: String,
    pub kind: &'static str,
    pub status: &'static str,
    pub status_by: String,
    pub sender: String,
    pub from: String,
    pub recipients: String,
    pub subject: String,
    pub score: String,
    pub received: String,
}

pub fn item_row(i: &quarantine::Item) -> ItemRow {
    ItemRow {
        id: i.id.as_str().to_string(),
        kind: i.kind,
        status: i.status,
        status_by: i.status_by.as_deref().map(display_text).unwrap_or_default(),
        sender: display_text(if i.sender.is_empty() { "<>" } else { &i.sender }),
        from: display_text(&i.from),
        recipients: display_text(&i.recipients.join(", ")),
        subject: display_text(&i.subject),
        score: format!("{:.2}", i.score),
        received: format_time(i.received_at_ms / 1000),
    }
}

/// One symbol of a verdict.
pub struct SymbolRow {
    pub name: String,
    pub score: String,
    pub reason: String,
}

pub fn symbol_rows(symbols: &[quarantine::Symbol]) -> Vec<SymbolRow> {
    symbols
        .iter()
        .map(|s| SymbolRow {
            name: display_text(&s.name),
            score: format!("{:+.2}", s.score),
            reason: display_text(&s.reason),
        })
        .collect()
}

/// A header field (name, decoded value with line breaks kept).
pub struct HeaderRow {
    pub name: String,
    pub value: String,
}

pub fn header_rows(headers: &[(String, String)]) -> Vec<HeaderRow> {
    headers.iter().map(|(n, v)| HeaderRow { name: display_text(n), value: display_block(v) }).collect()
}

pub struct AttachmentRow {
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

pub fn attachment_rows(list: &[quarantine::AttachmentInfo]) -> Vec<AttachmentRow> {
    list.iter()
        .map(|a| AttachmentRow {
            name: a.name.as_deref().map_or_else(|| "(no name)".into(), display_text),
            content_type: display_text(&a.content_type),
            size: a.size,
        })
        .collect()
}

/// One tracked message with its events.
pub struct TimelineView {
    pub queue_id: String,
    pub received: String,
    pub sender: String,
    pub recipients: String,
    pub subject: String,
    pub message_id: String,
    pub client_ip: String,
    pub verdict: String,
    pub score: String,
    pub events: Vec<EventView>,
}

pub struct EventView {
    pub at: String,
    pub kind: String,
    pub actor: String,
    pub details: String,
}

pub fn timeline_view(t: &quarantine::Timeline) -> TimelineView {
    TimelineView {
        queue_id: display_text(&t.queue_id),
        received: format_time(t.received_at_ms / 1000),
        sender: display_text(if t.sender.is_empty() { "<>" } else { &t.sender }),
        recipients: display_text(&t.recipients.join(", ")),
        subject: display_text(&t.subject),
        message_id: display_text(&t.message_id),
        client_ip: display_text(&t.client_ip),
        verdict: display_text(&t.verdict),
        score: format!("{:.2}", t.score),
        events: t
            .events
            .iter()
            .map(|e| EventView {
                at: format_time(e.at_ms / 1000),
                kind: display_text(&e.kind),
                actor: display_text(&e.actor),
                details: display_text(&details_text(&e.details)),
            })
            .collect(),
    }
}

/// `key=value` pairs of an event's details, for people.
fn details_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A `YYYY-MM-DD` date as Unix milliseconds at 00:00 UTC (`end`: the next midnight).
pub fn date_ms(text: &str, end: bool) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || {
        format!("`{}` is not a date (YYYY-MM-DD)", display_text(&text.chars().take(40).collect::<String>()))
    };
    let mut parts = text.splitn(3, '-');
    let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).ok_or_else(bad);
    let (y, m, d) = (next()?, next()?, next()?);
    let month = time::Month::try_from(u8::try_from(m).map_err(|_| bad())?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(
        i32::try_from(y).map_err(|_| bad())?,
        month,
        u8::try_from(d).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    let secs = date.midnight().assume_utc().unix_timestamp() + if end { 86_400 } else { 0 };
    Ok(Some(secs * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date_ms("1970-01-02", false).unwrap(), Some(86_400_000));
        assert_eq!(date_ms("1970-01-01", true).unwrap(), Some(86_400_000));
        assert_eq!(date_ms("", false).unwrap(), None);
        assert!(date_ms("2026-13-01", false).is_err());
        assert!(date_ms("<script>", false).is_err());
    }
}
