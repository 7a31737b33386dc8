//! My safelist and blocklist, and my digest preferences. End users act only on their own addresses
//! (the core says "not found" otherwise); helpdesk and admins on any.

use super::{Page, html, see_other};
use crate::error::{PortalError, WebResult};
use crate::extract::WebForm;
use crate::render::display_text;
use crate::session::Viewer;
use crate::state::{AppState, format_time};
use askama::Template;
use axum::extract::State;
use axum::response::{Html, Response};
use quarantine::SenderList;

pub struct EntryRow {
    pub owner: String,
    pub list: &'static str,
    pub sender: String,
    pub created: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "lists.html")]
struct ListsPage {
    page: Page,
    entries: Vec<EntryRow>,
    addresses: Vec<String>,
}

fn list_name(l: SenderList) -> &'static str {
    match l {
        SenderList::Safe => "safelist",
        SenderList::Block => "blocklist",
    }
}

pub fn parse_list(s: &str) -> Result<SenderList, PortalError> {
    match s {
        "safelist" => Ok(SenderList::Safe),
        "blocklist" => Ok(SenderList::Block),
        _ => Err(PortalError::BadRequest("list must be safelist or blocklist".into())),
    }
}

/// `GET /lists`.
pub async fn lists(State(state): State<AppState>, v: Viewer) -> WebResult<Html<String>> {
    let entries = state.quarantine.sender_lists(&v.actor()).await.map_err(PortalError::from)?;
    let entries = entries
        .iter()
        .take(2000)
        .map(|e| EntryRow {
            owner: display_text(&e.owner),
            list: list_name(e.list),
            sender: display_text(&e.sender),
            created: format_time(e.created_at_ms / 1000),
            by: display_text(&e.created_by),
        })
        .collect();
    html(&ListsPage {
        page: Page::for_viewer(&v, "Safelist and blocklist"),
        entries,
        addresses: v.addresses.clone(),
    })
}

/// `POST /lists` with `op` = `add` or `remove`, `owner`, `list`, `sender`.
pub async fn change_list(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let list = parse_list(f.get("list"))?;
    let (owner, sender) = (f.get("owner"), f.get("sender"));
    let q = &state.quarantine;
    match f.get("op") {
        "add" => q.add_sender_list_entry(&v.actor(), owner, list, sender).await,
        "remove" => q.remove_sender_list_entry(&v.actor(), owner, list, sender).await,
        _ => return Err(PortalError::BadRequest("unknown operation".into()).into()),
    }
    .map_err(PortalError::from)?;
    Ok(see_other("/lists"))
}

pub struct PrefRow {
    pub address: String,
    pub enabled: bool,
    pub last: String,
}

#[derive(Template)]
#[template(path = "preferences.html")]
struct PrefsPage {
    page: Page,
    rows: Vec<PrefRow>,
}

/// `GET /preferences`: digests for each of my addresses.
pub async fn preferences(State(state): State<AppState>, v: Viewer) -> WebResult<Html<String>> {
    let mut rows = Vec::new();
    for a in &v.addresses {
        let p = state.quarantine.digest_prefs(&v.actor(), a).await.map_err(PortalError::from)?;
        let last = if p.last_digest_ms > 0 { format_time(p.last_digest_ms / 1000) } else { "never".into() };
        rows.push(PrefRow { address: display_text(a), enabled: p.enabled, last });
    }
    html(&PrefsPage { page: Page::for_viewer(&v, "Digests"), rows })
}

/// `POST /preferences` with `address` and `enabled` (`yes` or `no`).
pub async fn set_preferences(
    State(state): State<AppState>,
    v: Viewer,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    let enabled = match f.get("enabled") {
        "yes" => true,
        "no" => false,
        _ => return Err(PortalError::BadRequest("enabled must be yes or no".into()).into()),
    };
    state
        .quarantine
        .set_digest_enabled(&v.actor(), f.get("address"), enabled)
        .await
        .map_err(PortalError::from)?;
    Ok(see_other("/preferences"))
}
