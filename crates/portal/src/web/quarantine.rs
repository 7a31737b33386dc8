//! The end-user portal's quarantine: my held mail (search, bulk release and delete), one message
//! (envelope, verdict, headers, text, sanitised HTML preview, download), and the actions on it. Every
//! read and change goes through the quarantine core with the viewer as actor; it answers "not found"
//! for anything the viewer may not see.

use super::view::{self, ItemRow};
use super::{Page, html};
use crate::error::{PortalError, WebResult};
use crate::extract::{Fields, WebForm, WebPath, WebQuery};
use crate::session::Viewer;
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use quarantine::{ActionOutcome, ItemId, ReleaseOptions, SearchQuery};

/// What the search form holds, echoed back into it (escaped by the template).
#[derive(Default)]
pub struct SearchForm {
    pub subject: String,
    pub sender: String,
    pub recipient: String,
    pub kind: String,
    pub status: String,
    pub from: String,
    pub to: String,
}

#[derive(Template)]
#[template(path = "quarantine_list.html")]
struct ListPage {
    page: Page,
    form: SearchForm,
    rows: Vec<ItemRow>,
    next: String,
}

/// Short text fields from a query, bounded (the core checks them again).
fn field(f: &Fields, name: &str) -> String {
    f.get(name).chars().take(320).collect()
}

pub fn search_query(f: &Fields) -> Result<(SearchQuery, SearchForm), PortalError> {
    let form = SearchForm {
        subject: field(f, "subject"),
        sender: field(f, "sender"),
        recipient: field(f, "recipient"),
        kind: field(f, "kind"),
        status: if f.get("status").is_empty() { "held".into() } else { field(f, "status") },
        from: field(f, "from"),
        to: field(f, "to"),
    };
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let q = SearchQuery {
        recipient: some(&form.recipient),
        sender: some(&form.sender),
        subject: some(&form.subject),
        from_ms: view::date_ms(&form.from, false).map_err(PortalError::BadRequest)?,
        to_ms: view::date_ms(&form.to, true).map_err(PortalError::BadRequest)?,
        kind: some(&form.kind),
        status: some(&form.status).filter(|s| s != "any"),
        cursor: some(f.get("cursor")),
        limit: None,
    };
    Ok((q, form))
}

/// The query string of the next page: the form's fields and the cursor, percent-encoded.
fn next_link(form: &SearchForm, cursor: &str) -> String {
    let pairs = [
        ("subject", &form.subject),
        ("sender", &form.sender),
        ("recipient", &form.recipient),
        ("kind", &form.kind),
        ("status", &form.status),
        ("from", &form.from),
        ("to", &form.to),
    ];
    let mut out: Vec<String> =
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", percent(v))).collect();
    out.push(format!("cursor={}", percent(cursor)));
    format!("/?{}", out.join("&"))
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Fixed notices a redirect may ask for (never text from the request).
fn notice(f: &Fields) -> String {
    let n: u32 = f.get("n").parse().unwrap_or(0);
    match f.get("done") {
        "released" => format!("Released {n} message(s)."),
        "deleted" => format!("Deleted {n} message(s)."),
        _ => String::new(),
    }
}

/// `GET /`: my quarantine (staff see everyone's, and may narrow it by recipient).
pub async fn list(
    State(state): State<AppState>,
    v: Viewer,
    WebQuery(f): WebQuery,
) -> WebResult<Html<String>> {
    let (q, form) = search_query(&f)?;
    let found = state.quarantine.search(&v.actor(), &q).await.map_err(PortalError::from)?;
    let next = found.next.as_deref().map(|c| next_link(&form, c)).unwrap_or_default();
    let rows = found.items.iter().map(view::item_row).collect();
    html(&ListPage { page: Page::for_viewer(&v, "My quarantine").with_notice(notice(&f)), form, rows, next })
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    page: Page,
    item: ItemRow,
    held: bool,
    checksum_ok: bool,
    symbols: Vec<view::SymbolRow>,
    headers: Vec<view::HeaderRow>,
    text: String,
    attachments: Vec<view::AttachmentRow>,
    preview: String,
    has_preview: bool,
}

/// `GET /quarantine/{id}`.
pub async fn show(
    State(state): State<AppState>,
    v: Viewer,
    WebPath(id): WebPath,
    WebQuery(f): WebQuery,
) -> WebResult<Html<String>> {
    let detail = state.quarantine.get(&v.actor(), &id).await.map_err(PortalError::from)?;
    let held = detail.item.status == "held";
    // The quarantine parsed it (from this node's spool or the store's copy); the portal only sanitises.
    let preview =
        detail.html.as_deref().filter(|_| held).map(crate::render::sanitize_html).unwrap_or_default();
    let notice = match f.get("done") {
        "released" => "Released.",
        "deleted" => "Deleted.",
        "learned" => "Learned as spam.",
        "safelisted" => "The sender is on your safelist.",
        "already" => "Nothing to do: this message was already handled (see its status).",
        _ => "",
    };
    html(&MessagePage {
        page: Page::for_viewer(&v, "Message").with_notice(notice),
        item: view::item_row(&detail.item),
        held,
        checksum_ok: detail.checksum_ok,
        symbols: view::symbol_rows(&detail.item.symbols),
        headers: view::header_rows(&detail.headers),
        text: crate::render::display_block(&detail.text),
        attachments: view::attachment_rows(&detail.attachments),
        has_preview: !preview.is_empty(),
        preview,
    })
}

/// `GET /quarantine/{id}/raw`: the message as a file to save, never to display.
pub async fn raw(State(state): State<AppState>, v: Viewer, WebPath(id): WebPath) -> WebResult<Response> {
    let raw = state.quarantine.raw(&v.actor(), &id).await.map_err(PortalError::from)?;
    Ok(download(raw))
}

/// A raw message as `application/octet-stream` with `Content-Disposition: attachment` and a file name
/// made from the opaque id only.
pub fn download(raw: quarantine::RawMessage) -> Response {
    let name: String =
        raw.file_name.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    let mut response = (StatusCode::OK, raw.bytes).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_DISPOSITION, disposition);
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    response
}

/// Carry out one action on one item as `actor`.
pub async fn act(
    state: &AppState,
    actor: &quarantine::Actor,
    id: &str,
    op: &str,
) -> Result<ActionOutcome, PortalError> {
    let q = &state.quarantine;
    let outcome = match op {
        "release" => q.release(actor, id, ReleaseOptions::default()).await,
        "release_safelist" => {
            q.release(actor, id, ReleaseOptions { safelist_sender: true, learn_ham: false }).await
        }
        "release_learn" => {
            q.release(actor, id, ReleaseOptions { learn_ham: true, safelist_sender: false }).await
        }
        "delete" => q.delete(actor, id).await,
        "learn_spam" => q.learn_spam(actor, id).await,
        "safelist" => q.safelist_sender(actor, id).await,
        _ => return Err(PortalError::BadRequest("unknown action".into())),
    };
    Ok(outcome?)
}

fn done_word(op: &str) -> &'static str {
    match op {
        "release" | "release_safelist" | "release_learn" => "released",
        "delete" => "deleted",
        "learn_spam" => "learned",
        _ => "safelisted",
    }
}

/// `POST /quarantine/{id}/action` with `op`.
pub async fn action(
    State(state): State<AppState>,
    v: Viewer,
    WebPath(id): WebPath,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let id = ItemId::parse(&id).map_err(PortalError::from)?;
    let op = f.get("op");
    let outcome = act(&state, &v.actor(), id.as_str(), op).await?;
    let done = match outcome {
        ActionOutcome::Done => done_word(op),
        ActionOutcome::AlreadyDone { .. } => "already",
    };
    let to = format!("/quarantine/{}?done={done}", id.as_str());
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}

/// Most items one bulk action takes.
const MAX_BULK: usize = 200;

/// `POST /quarantine/bulk` with `op` (`release` or `delete`) and any number of `id`s. Items the viewer
/// may not see are skipped exactly like unknown ids.
pub async fn bulk(State(state): State<AppState>, v: Viewer, WebForm(f): WebForm) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let op = f.get("op");
    if !matches!(op, "release" | "delete") {
        return Err(PortalError::BadRequest("choose release or delete".into()).into());
    }
    let actor = v.actor();
    let mut done = 0u32;
    for id in f.all("id").take(MAX_BULK) {
        if let Ok(ActionOutcome::Done) = act(&state, &actor, id, op).await {
            done += 1;
        }
    }
    let to = format!("/?done={}&n={done}", done_word(op));
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response())
}
