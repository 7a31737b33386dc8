//! API routes for the quarantine, message tracking, sender lists, digest preferences and the
//! dashboard. Each acts as the token's account through the quarantine core, which authorizes.

use super::{Caller, ErrorBody};
use crate::error::{ApiResult, PortalError};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quarantine::{ActionOutcome, SearchQuery, TrackingQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// RFC 3339 UTC from Unix milliseconds.
fn rfc3339(ms: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// One symbol of the verdict that held an item.
#[derive(Debug, Serialize, ToSchema)]
pub struct SymbolOut {
    pub name: String,
    pub score: f64,
    pub reason: String,
}

/// A quarantined message. Text fields are data from the message: display them escaped.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemOut {
    /// Opaque id (22 characters).
    pub id: String,
    /// `spam`, `virus` or `policy`.
    pub kind: String,
    /// `held`, `released`, `deleted` or `expired`.
    pub status: String,
    /// Who released, deleted or expired it.
    pub status_by: Option<String>,
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Envelope recipients (the owners).
    pub recipients: Vec<String>,
    /// The `From:` field as written.
    pub from: String,
    pub subject: String,
    pub score: f64,
    pub symbols: Vec<SymbolOut>,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub size: i64,
}

fn item_out(i: quarantine::Item) -> ItemOut {
    ItemOut {
        id: i.id.as_str().to_string(),
        kind: i.kind.into(),
        status: i.status.into(),
        status_by: i.status_by,
        sender: i.sender,
        recipients: i.recipients,
        from: i.from,
        subject: i.subject,
        score: i.score,
        symbols: i
            .symbols
            .into_iter()
            .map(|s| SymbolOut { name: s.name, score: s.score, reason: s.reason })
            .collect(),
        received_at: rfc3339(i.received_at_ms),
        size: i.size,
    }
}

/// Search parameters; all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QuarantineParams {
    /// An owner address (exact).
    pub recipient: Option<String>,
    /// An envelope sender address, or a domain.
    pub sender: Option<String>,
    /// Text in the subject: case-insensitive and literal, and its longest word must be a whole word of
    /// the subject (`invoice` finds "Invoice 42", not "invoices"). Words are separated by spaces and
    /// ASCII punctuation.
    pub subject: Option<String>,
    /// Received at or after (Unix seconds).
    pub since: Option<i64>,
    /// Received before (Unix seconds).
    pub until: Option<i64>,
    /// `spam`, `virus` or `policy`.
    pub kind: Option<String>,
    /// `held` (the default), `released`, `deleted`, `expired` or `any`.
    pub status: Option<String>,
    /// The `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

fn secs_to_ms(s: Option<i64>) -> Result<Option<i64>, PortalError> {
    s.map(|s| s.checked_mul(1000).ok_or_else(|| PortalError::BadRequest("time out of range".into())))
        .transpose()
}

/// Quarantined messages the token's account may see, newest first. The next page's cursor, if any, is
/// in the `X-Next-Cursor` header.
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "quarantine", params(QuarantineParams),
    responses((status = 200, body = Vec<ItemOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<QuarantineParams>,
) -> ApiResult<Response> {
    let status = match p.status.as_deref() {
        None | Some("") => Some("held".to_string()),
        Some("any") => None,
        Some(s) => Some(s.to_string()),
    };
    let q = SearchQuery {
        recipient: p.recipient,
        sender: p.sender,
        subject: p.subject,
        from_ms: secs_to_ms(p.since)?,
        to_ms: secs_to_ms(p.until)?,
        kind: p.kind.filter(|k| !k.is_empty()),
        status,
        cursor: p.cursor,
        limit: p.limit,
    };
    let page = state.quarantine.search(&caller.actor_q(), &q).await.map_err(PortalError::from)?;
    let items: Vec<ItemOut> = page.items.into_iter().map(item_out).collect();
    let mut response = Json(items).into_response();
    if let Some(next) = page.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response.headers_mut().insert("x-next-cursor", next);
    }
    Ok(response)
}

/// An attachment, as data.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentOut {
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
}

/// One quarantined message in full: the item, its header fields, text body and attachments (as data).
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDetailOut {
    pub item: ItemOut,
    /// Header fields as `[name, decoded value]`.
    pub headers: Vec<Vec<String>>,
    /// The text parts (HTML rendered to text).
    pub text: String,
    pub attachments: Vec<AttachmentOut>,
    /// The stored message still matches the checksum taken when it was held.
    pub checksum_ok: bool,
}

/// One quarantined message (404 for unknown ids and for messages the account may not see).
#[utoipa::path(get, path = "/api/v1/quarantine/{id}", tag = "quarantine",
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = ItemDetailOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<ItemDetailOut>> {
    let d = state.quarantine.get(&caller.actor_q(), &id).await.map_err(PortalError::from)?;
    Ok(Json(ItemDetailOut {
        item: item_out(d.item),
        headers: d.headers.into_iter().map(|(n, v)| vec![n, v]).collect(),
        text: d.text,
        attachments: d
            .attachments
            .into_iter()
            .map(|a| AttachmentOut { name: a.name, content_type: a.content_type, size: a.size as u64 })
            .collect(),
        checksum_ok: d.checksum_ok,
    }))
}

/// The held message as an `.eml` file (`application/octet-stream`, as an attachment).
#[utoipa::path(get, path = "/api/v1/quarantine/{id}/raw", tag = "quarantine",
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn raw(State(state): State<AppState>, caller: Caller, ApiPath(id): ApiPath) -> ApiResult<Response> {
    let raw = state.quarantine.raw(&caller.actor_q(), &id).await.map_err(PortalError::from)?;
    Ok(crate::web::quarantine::download(raw))
}

/// What an action did: `done`, or `already_done` with the status and who did it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutcomeOut {
    /// `done` or `already_done`.
    pub outcome: String,
    pub status: Option<String>,
    pub by: Option<String>,
}

fn outcome_out(o: ActionOutcome) -> OutcomeOut {
    match o {
        ActionOutcome::Done => OutcomeOut { outcome: "done".into(), status: None, by: None },
        ActionOutcome::AlreadyDone { status, by, .. } => {
            OutcomeOut { outcome: "already_done".into(), status: Some(status.into()), by }
        }
    }
}

/// Release options.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseParams {
    /// Also learn the message as ham.
    #[serde(default)]
    pub learn_ham: bool,
    /// Also safelist its envelope sender.
    #[serde(default)]
    pub safelist_sender: bool,
}

async fn act(state: &AppState, caller: &Caller, id: &str, op: &str) -> ApiResult<Json<OutcomeOut>> {
    let o = crate::web::quarantine::act(state, &caller.actor_q(), id, op).await?;
    Ok(Json(outcome_out(o)))
}

/// Release a held message to delivery (idempotent: a second release says `already_done`).
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/release", tag = "quarantine",
    params(("id" = String, Path, description = "Item id"), ReleaseParams),
    responses((status = 200, body = OutcomeOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
    ApiQuery(p): ApiQuery<ReleaseParams>,
) -> ApiResult<Json<OutcomeOut>> {
    let opts = quarantine::ReleaseOptions { learn_ham: p.learn_ham, safelist_sender: p.safelist_sender };
    let o = state.quarantine.release(&caller.actor_q(), &id, opts).await.map_err(PortalError::from)?;
    Ok(Json(outcome_out(o)))
}

/// Delete a held message (idempotent).
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/delete", tag = "quarantine",
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = OutcomeOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<OutcomeOut>> {
    act(&state, &caller, &id, "delete").await
}

/// Learn a held message as spam (it stays held).
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/learn-spam", tag = "quarantine",
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = OutcomeOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn learn_spam(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<OutcomeOut>> {
    act(&state, &caller, &id, "learn_spam").await
}

/// Put a message's envelope sender on its owners' safelists.
#[utoipa::path(post, path = "/api/v1/quarantine/{id}/safelist", tag = "quarantine",
    params(("id" = String, Path, description = "Item id")),
    responses((status = 200, body = OutcomeOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn safelist(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<OutcomeOut>> {
    act(&state, &caller, &id, "safelist").await
}

/// Tracking search parameters; all optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrackingParams {
    pub recipient: Option<String>,
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub client_ip: Option<String>,
    pub queue_id: Option<String>,
    /// The verdict's action (`accept`, `tag`, `quarantine`, ...).
    pub verdict: Option<String>,
    /// Received at or after (Unix seconds).
    pub since: Option<i64>,
    /// Received before (Unix seconds).
    pub until: Option<i64>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// One event of a message's life.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// RFC 3339, UTC.
    pub at: String,
    /// `received`, `verdict`, `quarantined`, `released`, `deleted`, `delivered`, `deferred`, `bounced`, ...
    pub kind: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A tracked message with its timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineOut {
    pub queue_id: String,
    pub received_at: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub client_ip: String,
    pub verdict: String,
    pub score: f64,
    pub timeline: Vec<EventOut>,
}

fn timeline_out(t: quarantine::Timeline) -> TimelineOut {
    TimelineOut {
        queue_id: t.queue_id,
        received_at: rfc3339(t.received_at_ms),
        sender: t.sender,
        recipients: t.recipients,
        subject: t.subject,
        message_id: t.message_id,
        client_ip: t.client_ip,
        verdict: t.verdict,
        score: t.score,
        timeline: t
            .events
            .into_iter()
            .map(|e| EventOut { at: rfc3339(e.at_ms), kind: e.kind, actor: e.actor, details: e.details })
            .collect(),
    }
}

/// Tracked messages, newest first, each with its timeline (end users: only their own mail).
#[utoipa::path(get, path = "/api/v1/tracking", tag = "tracking", params(TrackingParams),
    responses((status = 200, body = Vec<TimelineOut>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn tracking(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<TrackingParams>,
) -> ApiResult<Json<Vec<TimelineOut>>> {
    let q = TrackingQuery {
        recipient: p.recipient,
        sender: p.sender,
        subject: p.subject,
        message_id: p.message_id,
        client_ip: p.client_ip,
        queue_id: p.queue_id,
        verdict: p.verdict,
        from_ms: secs_to_ms(p.since)?,
        to_ms: secs_to_ms(p.until)?,
        cursor: None,
        limit: p.limit,
    };
    let found = state.quarantine.search_tracking(&caller.actor_q(), &q).await.map_err(PortalError::from)?;
    Ok(Json(found.into_iter().map(timeline_out).collect()))
}

/// A safelist or blocklist entry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ListEntry {
    /// The recipient address the entry is for.
    pub owner: String,
    /// `safelist` or `blocklist`.
    pub list: String,
    /// An address or a domain.
    pub sender: String,
}

/// The account's safelist and blocklist entries (helpdesk and admins: everyone's).
#[utoipa::path(get, path = "/api/v1/lists", tag = "lists",
    responses((status = 200, body = Vec<ListEntry>), (status = 401, body = ErrorBody)))]
pub async fn lists(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<ListEntry>>> {
    let entries = state.quarantine.sender_lists(&caller.actor_q()).await.map_err(PortalError::from)?;
    let name = |l: quarantine::SenderList| match l {
        quarantine::SenderList::Safe => "safelist",
        quarantine::SenderList::Block => "blocklist",
    };
    Ok(Json(
        entries
            .into_iter()
            .map(|e| ListEntry { owner: e.owner, list: name(e.list).into(), sender: e.sender })
            .collect(),
    ))
}

async fn change_list(state: &AppState, caller: &Caller, e: &ListEntry, add: bool) -> Result<(), PortalError> {
    let list = crate::web::settings::parse_list(&e.list)?;
    let q = &state.quarantine;
    let actor = caller.actor_q();
    if add {
        q.add_sender_list_entry(&actor, &e.owner, list, &e.sender).await?;
    } else {
        q.remove_sender_list_entry(&actor, &e.owner, list, &e.sender).await?;
    }
    Ok(())
}

/// Add an entry (idempotent).
#[utoipa::path(post, path = "/api/v1/lists", tag = "lists", request_body = ListEntry,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn add_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(e): ApiJson<ListEntry>,
) -> ApiResult<StatusCode> {
    change_list(&state, &caller, &e, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove an entry.
#[utoipa::path(post, path = "/api/v1/lists/remove", tag = "lists", request_body = ListEntry,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn remove_list_entry(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(e): ApiJson<ListEntry>,
) -> ApiResult<StatusCode> {
    change_list(&state, &caller, &e, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Digest preference of one address.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DigestPref {
    pub address: String,
    pub enabled: bool,
}

/// Digest preferences of the account's addresses.
#[utoipa::path(get, path = "/api/v1/digest-preferences", tag = "lists",
    responses((status = 200, body = Vec<DigestPref>), (status = 401, body = ErrorBody)))]
pub async fn digest_prefs(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<DigestPref>>> {
    let mut out = Vec::new();
    for a in &caller.addresses {
        let p = state.quarantine.digest_prefs(&caller.actor_q(), a).await.map_err(PortalError::from)?;
        out.push(DigestPref { address: a.clone(), enabled: p.enabled });
    }
    Ok(Json(out))
}

/// Turn digests on or off for an address the account owns.
#[utoipa::path(post, path = "/api/v1/digest-preferences", tag = "lists", request_body = DigestPref,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn set_digest_pref(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(p): ApiJson<DigestPref>,
) -> ApiResult<StatusCode> {
    state
        .quarantine
        .set_digest_enabled(&caller.actor_q(), &p.address, p.enabled)
        .await
        .map_err(PortalError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mail flow in one hour.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowOut {
    /// RFC 3339 start of the hour.
    pub hour: String,
    pub accepted: u64,
    pub rejected: u64,
    pub quarantined: u64,
    pub delivered: u64,
}

/// A name and how often it was seen.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountOut {
    pub name: String,
    pub count: u64,
}

/// The dashboard's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardOut {
    pub flow: Vec<FlowOut>,
    pub top_symbols: Vec<CountOut>,
    pub top_senders: Vec<CountOut>,
}

/// Mail flow, top symbols and top senders over the last 24 hours (admins only).
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "configuration",
    responses((status = 200, body = DashboardOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn dashboard(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<DashboardOut>> {
    caller.require_admin()?;
    let d = crate::web::console::dashboard_data(&state).await?;
    let counts =
        |v: Vec<(String, u64)>| v.into_iter().map(|(name, count)| CountOut { name, count }).collect();
    let flow = d
        .flow
        .into_iter()
        .map(|b| FlowOut {
            hour: rfc3339(b.start_ms),
            accepted: b.accepted,
            rejected: b.rejected,
            quarantined: b.quarantined,
            delivered: b.delivered,
        })
        .collect();
    Ok(Json(DashboardOut { flow, top_symbols: counts(d.top_symbols), top_senders: counts(d.top_senders) }))
}

/// What sending digests did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DigestsOut {
    /// Digests queued.
    pub sent: usize,
    /// Items listed in them.
    pub items: usize,
}

/// Send every recipient who wants one a digest now, as the schedule would (admins only).
#[utoipa::path(post, path = "/api/v1/digests/send", tag = "quarantine",
    responses((status = 200, body = DigestsOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn send_digests(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<DigestsOut>> {
    caller.require_admin()?;
    let r = crate::web::console::digests_now(&state, &caller.actor_q()).await?;
    Ok(Json(DigestsOut { sent: r.sent, items: r.items }))
}
