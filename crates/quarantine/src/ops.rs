//! Holding, searching, viewing and downloading items, and the helpers every operation shares:
//! finding an item the actor may see, reading its file, and recording tracking events and audits.

use crate::item::{
    self, Item, ItemDetail, ItemId, Kind, MAX_BODY_TEXT, MAX_HEADER_TEXT, MAX_HEADERS, Page, RawMessage,
    SearchQuery, Status, Symbol,
};
use crate::{Actor, Hold, Quarantine, QuarantineError, Role, bounded, now_ms};
use spool::{Queue, QueueId};
use store::{ItemFilter, ItemRow, ItemScope, TrackingEventRow};

/// Most addresses of one actor searched at once.
const MAX_ACTOR_ADDRESSES: usize = 50;

/// What is read from a held message's header block for the index.
pub(crate) struct HeaderFacts {
    pub from: String,
    pub subject: String,
    pub message_id: String,
    /// `X-Portcullis-Verdict:` as this gateway wrote it (for recovering an item without its verdict).
    pub verdict: Option<String>,
}

impl HeaderFacts {
    /// The facts from the header block of `content` (the body is not parsed).
    pub(crate) fn read(content: &[u8], limits: &message::MessageLimits) -> HeaderFacts {
        let end = content.windows(4).position(|w| w == b"\r\n\r\n").map_or(content.len(), |p| p + 4);
        let head = &content[..end.min(limits.max_header_bytes.saturating_add(4096))];
        let view = message::parse(head, limits);
        let header = |name: &str| view.header(name).map(|h| h.decoded.clone()).unwrap_or_default();
        HeaderFacts {
            from: bounded(&header("From"), MAX_HEADER_TEXT),
            subject: bounded(view.subject.as_deref().unwrap_or(""), MAX_HEADER_TEXT),
            message_id: bounded(view.message_id.as_deref().unwrap_or(""), MAX_HEADER_TEXT),
            verdict: view.header("X-Portcullis-Verdict").map(|h| h.decoded.clone()),
        }
    }
}

/// The score and symbols in an `X-Portcullis-Verdict:` value (`action; score=S; NAME(S) ...`), for an
/// item indexed after a crash, when the verdict's reasons are gone.
pub(crate) fn symbols_from_verdict_header(value: &str) -> (f64, Vec<Symbol>) {
    let mut parts = value.split(';').map(str::trim);
    let _action = parts.next();
    let score =
        parts.next().and_then(|s| s.strip_prefix("score=")).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let symbols = parts
        .flat_map(|p| p.split_whitespace())
        .filter_map(|t| {
            let (name, rest) = t.split_once('(')?;
            let score = rest.strip_suffix(')')?.parse().ok()?;
            Some(Symbol { name: name.to_string(), score, reason: "recovered from the verdict header".into() })
        })
        .take(200)
        .collect();
    (score, symbols)
}

/// Lower-case hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Quarantine {
    /// Index a message the gateway committed to `quarantine/`, and record it in its tracking history.
    /// Idempotent by queue id: holding a message twice gives the same item. On a shared store, a queue
    /// id another node's item has already (two nodes gave out one id) is refused, and the file left in
    /// `quarantine/` (never lost, never taken for the other node's message).
    pub async fn hold(&self, hold: &Hold) -> Result<ItemId, QuarantineError> {
        if let Some(row) = self.store().quarantine_by_queue_id(hold.queue_id.as_str()).await? {
            if self.foreign(&row) {
                return Err(QuarantineError::Forbidden(crate::reasons::FOREIGN_QUEUE_ID));
            }
            return ItemId::parse(&row.id);
        }
        let (spool, qid) = (self.spool()?.clone(), hold.queue_id.clone());
        let file =
            crate::blocking("reading a queue file", move || spool.export(Queue::Quarantine, &qid)).await??;
        let (envelope, content) = spool::decode(&hold.queue_id, &file)?;
        let facts = HeaderFacts::read(&content, &self.limits());
        let (score, symbols) = match (&hold.symbols[..], &facts.verdict) {
            ([], Some(v)) => symbols_from_verdict_header(v),
            _ => (hold.score, hold.symbols.clone()),
        };
        let kind = item::kind_of(symbols.iter().map(|s| s.name.as_str()));
        let sender = envelope.sender.to_ascii_lowercase();
        let mut owners: Vec<String> = envelope.recipients.iter().map(|r| r.to_ascii_lowercase()).collect();
        owners.sort();
        owners.dedup();
        let row = ItemRow {
            id: ItemId::random().to_string(),
            queue_id: hold.queue_id.to_string(),
            kind,
            sender_domain: sender.rsplit_once('@').map_or("", |(_, d)| d).to_string(),
            sender: bounded(&sender, MAX_HEADER_TEXT),
            from_header: facts.from,
            subject: facts.subject,
            message_id: facts.message_id,
            score,
            symbols_json: serde_json::to_string(&symbols).unwrap_or_else(|_| "[]".into()),
            received_at_ms: i64::try_from(envelope.received_at).unwrap_or(0),
            held_at_ms: now_ms(),
            size: i64::try_from(content.len()).unwrap_or(i64::MAX),
            sha256: sha256_hex(&content),
            status: Status::Held,
            status_by: None,
            status_at_ms: None,
            holder: self.node(),
            owners,
        };
        let body = self.body_for_store(&file);
        let body = body.as_deref().map(|sha256| (sha256, file.as_slice()));
        if !self.store().quarantine_insert_with_body(&row, body).await? {
            // Indexed by someone else meanwhile (reconcile and the gateway's task at once).
            let existing =
                self.store().quarantine_by_queue_id(&row.queue_id).await?.ok_or(QuarantineError::NotFound)?;
            return ItemId::parse(&existing.id);
        }
        let details = serde_json::json!({"kind": kind.as_str(), "item": row.id, "score": score});
        self.track(&row.queue_id, "quarantined", &Actor::system(), details).await;
        ItemId::parse(&row.id)
    }

    /// A page of items the actor may see, newest first.
    pub async fn search(&self, actor: &Actor, q: &SearchQuery) -> Result<Page, QuarantineError> {
        let limit = item::page_size(q.limit);
        let filter = ItemFilter {
            kind: parse_opt(&q.kind, "kind", Kind::parse)?,
            status: parse_opt(&q.status, "status", Status::parse)?,
            subject_contains: item::term("subject", &q.subject)?,
            received_from_ms: q.from_ms,
            received_before_ms: q.to_ms,
            exclude_virus: actor.role != Role::Admin,
            before: item::cursor_decode(&q.cursor)?,
            limit: limit + 1,
        };
        let recipient = item::term("recipient", &q.recipient)?;
        let sender = item::term("sender", &q.sender)?;
        let scopes = search_scopes(actor, recipient, sender.as_deref());
        let mut rows: Vec<ItemRow> = Vec::new();
        for scope in &scopes {
            rows.extend(self.store().quarantine_search(scope, &filter).await?);
        }
        rows.sort_by(|a, b| (b.received_at_ms, &b.id).cmp(&(a.received_at_ms, &a.id)));
        rows.dedup_by(|a, b| a.id == b.id);
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = more.then(|| rows.last().map(|r| item::cursor_encode(r.received_at_ms, &r.id))).flatten();
        let sender_driven =
            scopes.iter().any(|s| matches!(s, ItemScope::Sender(_) | ItemScope::SenderDomain(_)));
        let items = rows
            .into_iter()
            .filter(|r| {
                sender_driven || sender.as_deref().is_none_or(|s| r.sender == s || r.sender_domain == s)
            })
            .filter(|r| actor.may_see(r.kind, &r.owners))
            .map(Item::from_row)
            .collect();
        Ok(Page { items, next })
    }

    /// One item with its headers and text body (as data), for the actor.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<ItemDetail, QuarantineError> {
        let row = self.visible(actor, id).await?;
        let content = self.content_for(actor, &row).await?;
        self.audit(audit::Action::QuarantineView, actor, &row, &[]);
        let Some(content) = content else {
            return Ok(ItemDetail {
                item: Item::from_row(row),
                headers: vec![],
                text: String::new(),
                html: None,
                attachments: vec![],
                checksum_ok: false,
            });
        };
        let view = message::parse(&content, &self.limits());
        let headers = view
            .headers
            .iter()
            .take(MAX_HEADERS)
            .map(|h| (bounded(&h.name, 128), bounded(&h.decoded, 4096)))
            .collect();
        let text = bounded(&view.text().collect::<Vec<_>>().join("\n\n"), MAX_BODY_TEXT);
        let attachments = view
            .attachments
            .iter()
            .take(MAX_HEADERS)
            .map(|a| crate::AttachmentInfo {
                name: a.filename.as_deref().map(|n| bounded(n, 255)),
                content_type: bounded(&a.declared_type, 255),
                size: a.size,
            })
            .collect();
        let checksum_ok = sha256_hex(&content) == row.sha256;
        let html = view.html;
        Ok(ItemDetail { item: Item::from_row(row), headers, text, html, attachments, checksum_ok })
    }

    /// The held message's bytes, for download as an attachment named `<id>.eml`.
    pub async fn raw(&self, actor: &Actor, id: &str) -> Result<RawMessage, QuarantineError> {
        let (row, content) = self.held_bytes(actor, id).await?;
        self.audit(audit::Action::QuarantineDownload, actor, &row, &[]);
        Ok(RawMessage { file_name: format!("{}.eml", row.id), bytes: content })
    }

    /// A held item the actor may see, and its message's bytes (`MissingFile` once it has left `held`).
    pub(crate) async fn held_bytes(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(ItemRow, Vec<u8>), QuarantineError> {
        let row = self.visible(actor, id).await?;
        let content = self.content_for(actor, &row).await?.ok_or(QuarantineError::MissingFile)?;
        Ok((row, content))
    }

    /// The item `id` if the actor may see it; `NotFound` for bad ids, unknown ids and others' items alike.
    pub(crate) async fn visible(&self, actor: &Actor, id: &str) -> Result<ItemRow, QuarantineError> {
        let id = ItemId::parse(id)?;
        let row = self.store().quarantine_get(id.as_str()).await?.ok_or(QuarantineError::NotFound)?;
        if actor.may_see(row.kind, &row.owners) { Ok(row) } else { Err(QuarantineError::NotFound) }
    }

    /// The content of a held item, shown to `actor` (this node's file, the store's copy, or the mail
    /// plane's answer); `None` once it has left `held`, and for a digest link's actor in a portal of
    /// its own (its page shows only the index's subject).
    async fn content_for(&self, actor: &Actor, row: &ItemRow) -> Result<Option<Vec<u8>>, QuarantineError> {
        if row.status != Status::Held {
            return Ok(None);
        }
        match self.remote() {
            Some(mail) => match crate::control::Caller::of(actor) {
                Ok(caller) => Ok(Some(mail.show(caller, &row.id).await?)),
                Err(_) => Ok(None),
            },
            None => Ok(Some(self.held_message(row).await?.1)),
        }
    }

    /// A queued message's envelope and content (on a blocking thread).
    pub(crate) async fn read_file(
        &self,
        id: &QueueId,
        queue: Queue,
    ) -> Result<(spool::QueuedMessage, Vec<u8>), QuarantineError> {
        let (spool, id) = (self.spool()?.clone(), id.clone());
        crate::blocking("reading a queue file", move || {
            let msg = spool.load(queue, &id)?;
            let content = spool.read_content(&msg)?;
            Ok::<_, spool::SpoolError>((msg, content))
        })
        .await?
        .map_err(QuarantineError::from)
    }

    /// The message limits the verdict engine parses with.
    pub(crate) fn limits(&self) -> message::MessageLimits {
        classifier::Settings::from_config(&self.config()).limits
    }

    /// Append one event to a message's tracking history (a failure is logged: tracking never blocks
    /// an operation that has happened).
    pub(crate) async fn track(&self, queue_id: &str, kind: &str, actor: &Actor, details: serde_json::Value) {
        let event = TrackingEventRow {
            queue_id: queue_id.to_string(),
            at_ms: now_ms(),
            kind: kind.to_string(),
            actor: bounded(&actor.name, 256),
            details_json: details.to_string(),
        };
        if let Err(e) = self.store().tracking_add_events(&[event]).await {
            tracing::error!(queue_id, kind, error = %e, "could not record a tracking event");
        }
    }

    /// Record an audit event about `row` by `actor`.
    pub(crate) fn audit(
        &self,
        action: audit::Action,
        actor: &Actor,
        row: &ItemRow,
        details: &[(&str, &str)],
    ) {
        let mut all = vec![("queue_id", row.queue_id.as_str()), ("kind", row.kind.as_str())];
        all.extend_from_slice(details);
        self.audit_as(action, actor, &row.id, &all);
    }

    /// Record an audit event about `target` (empty: none) by `actor`, with who they are.
    pub(crate) fn audit_as(
        &self,
        action: audit::Action,
        actor: &Actor,
        target: &str,
        details: &[(&str, &str)],
    ) {
        let mut e = audit::Event::new(action, actor.audit_actor())
            .target(target)
            .detail("actor_name", &actor.name)
            .detail("role", actor.role.as_str());
        for (k, v) in details {
            e = e.detail(k, v);
        }
        self.inner_audit().record(e);
    }

    pub(crate) fn inner_audit(&self) -> &dyn crate::AuditSink {
        self.inner.audit.as_ref()
    }
}

fn parse_opt<T>(
    v: &Option<String>,
    name: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, QuarantineError> {
    match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(s) => parse(&s.to_ascii_lowercase())
            .map(Some)
            .ok_or_else(|| QuarantineError::BadQuery(format!("unknown {name}"))),
    }
}

/// Which index each search starts from. End users search their own addresses only.
fn search_scopes(actor: &Actor, recipient: Option<String>, sender: Option<&str>) -> Vec<ItemScope> {
    if actor.role == Role::User {
        let mut mine: Vec<String> = actor.addresses.iter().map(|a| a.to_lowercase()).collect();
        mine.sort();
        mine.dedup();
        mine.truncate(MAX_ACTOR_ADDRESSES);
        return match recipient {
            Some(r) => mine.into_iter().filter(|a| *a == r).map(ItemScope::Owner).collect(),
            None => mine.into_iter().map(ItemScope::Owner).collect(),
        };
    }
    match (recipient, sender) {
        (Some(r), _) => vec![ItemScope::Owner(r)],
        (None, Some(s)) if s.contains('@') => vec![ItemScope::Sender(s.to_string())],
        (None, Some(s)) => vec![ItemScope::SenderDomain(s.to_string())],
        (None, None) => vec![ItemScope::All],
    }
}
