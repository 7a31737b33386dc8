//! The admin console's dashboard (mail flow over the last day as server-rendered SVG, top symbols,
//! top senders) and message tracking (one timeline per message). The dashboard is for admins; tracking
//! for admins and helpdesk.

use super::view::{self, TimelineView};
use super::{Page, html};
use crate::error::{PortalError, WebResult};
use crate::extract::{Fields, WebQuery};
use crate::render::display_text;
use crate::session::{Admin, Staff};
use crate::state::{AppState, format_time};
use askama::Template;
use axum::extract::State;
use axum::response::Html;
use quarantine::TrackingQuery;
use std::collections::HashMap;

/// Hours shown on the flow chart.
pub const HOURS: usize = 24;
const CHART_W: u32 = 960;
const CHART_H: u32 = 220;
const TOP: usize = 10;

/// One bar of the chart, already placed.
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub class: &'static str,
    pub title: String,
}

/// One row of a "top" list with its bar width.
pub struct TopRow {
    pub name: String,
    pub count: u64,
    pub width: u32,
}

/// What the dashboard shows, for the page and the API.
pub struct Dashboard {
    pub flow: Vec<store::FlowBucket>,
    pub top_symbols: Vec<(String, u64)>,
    pub top_senders: Vec<(String, u64)>,
}

/// The last [`HOURS`] hours of mail flow, the most frequent symbols of quarantined mail and the busiest
/// senders.
pub async fn dashboard_data(state: &AppState) -> Result<Dashboard, PortalError> {
    let hour = 3_600_000;
    let now_ms = crate::state::now() * 1000;
    let since = (now_ms / hour - HOURS as i64 + 1) * hour;
    let flow = state.store.dashboard_flow(since, hour, HOURS).await?;
    let top_senders = state.store.dashboard_top_senders(since, TOP as i64).await?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for json in state.store.dashboard_recent_symbols(since).await? {
        let symbols: Vec<quarantine::Symbol> = serde_json::from_str(&json).unwrap_or_default();
        for s in symbols {
            *counts.entry(s.name).or_default() += 1;
        }
    }
    let mut top_symbols: Vec<(String, u64)> = counts.into_iter().collect();
    top_symbols.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_symbols.truncate(TOP);
    Ok(Dashboard { flow, top_symbols, top_senders })
}

/// Four bars per hour (accepted, rejected, quarantined, delivered), scaled to the busiest hour.
pub fn bars(flow: &[store::FlowBucket]) -> Vec<Bar> {
    let max = flow
        .iter()
        .flat_map(|b| [b.accepted, b.rejected, b.quarantined, b.delivered])
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = CHART_W / flow.len().max(1) as u32;
    let width = (slot / 5).max(1);
    let mut out = Vec::new();
    for (i, b) in flow.iter().enumerate() {
        let series = [
            ("bar-accepted", "accepted", b.accepted),
            ("bar-rejected", "rejected", b.rejected),
            ("bar-quarantined", "quarantined", b.quarantined),
            ("bar-delivered", "delivered", b.delivered),
        ];
        for (k, (class, label, n)) in series.into_iter().enumerate() {
            let height = ((n as f64 / max as f64) * f64::from(CHART_H - 20)).round() as u32;
            out.push(Bar {
                x: i as u32 * slot + k as u32 * width,
                y: CHART_H - height,
                height,
                class,
                title: format!("{}: {n} {label}", format_time(b.start_ms / 1000)),
            });
        }
    }
    out
}

fn top_rows(list: &[(String, u64)]) -> Vec<TopRow> {
    let max = list.first().map_or(1, |(_, n)| (*n).max(1));
    list.iter()
        .map(|(name, n)| TopRow {
            name: display_text(if name.is_empty() { "<>" } else { name }),
            count: *n,
            width: ((*n as f64 / max as f64) * 300.0).round() as u32,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "admin_dashboard.html")]
struct DashboardPage {
    page: Page,
    chart_w: u32,
    chart_h: u32,
    bars: Vec<Bar>,
    totals: [u64; 4],
    symbols: Vec<TopRow>,
    senders: Vec<TopRow>,
}

/// `GET /admin`.
pub async fn dashboard(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebQuery(q): WebQuery,
) -> WebResult<Html<String>> {
    let d = dashboard_data(&state).await?;
    let totals = d.flow.iter().fold([0u64; 4], |t, b| {
        [t[0] + b.accepted, t[1] + b.rejected, t[2] + b.quarantined, t[3] + b.delivered]
    });
    html(&DashboardPage {
        page: Page::for_viewer(&v, "Dashboard").with_notice(if q.get("digests") == "sent" {
            "Digests sent."
        } else {
            ""
        }),
        chart_w: CHART_W,
        chart_h: CHART_H,
        bars: bars(&d.flow),
        totals,
        symbols: top_rows(&d.top_symbols),
        senders: top_rows(&d.top_senders),
    })
}

/// `POST /admin/digests`: send every recipient who wants one a digest now (as the schedule would).
pub async fn send_digests(
    State(state): State<AppState>,
    Admin(v): Admin,
    crate::extract::WebForm(f): crate::extract::WebForm,
) -> WebResult<axum::response::Response> {
    v.check_csrf(&f)?;
    let report = digests_now(&state, &v.actor()).await?;
    tracing::info!(by = %v.account.name, sent = report.sent, items = report.items, "digests sent from the console");
    Ok(super::see_other("/admin?digests=sent"))
}

/// Send digests now as `admin` (here, or by the mail plane when it is another process), refusing
/// when `[digest]` has no portal URL to link to.
pub async fn digests_now(
    state: &AppState,
    admin: &quarantine::Actor,
) -> Result<quarantine::DigestReport, PortalError> {
    if state.config.digest.portal_url.is_empty() {
        return Err(PortalError::Conflict("digests need digest.portal_url".into()));
    }
    Ok(state.quarantine.send_digests_now(admin).await?)
}

/// What the tracking form holds (echoed, escaped).
#[derive(Default)]
pub struct TrackingForm {
    pub sender: String,
    pub recipient: String,
    pub subject: String,
    pub message_id: String,
    pub client_ip: String,
    pub verdict: String,
    pub from: String,
    pub to: String,
}

fn tracking_query(f: &Fields) -> Result<(TrackingQuery, TrackingForm), PortalError> {
    let field = |n: &str| f.get(n).chars().take(320).collect::<String>();
    let form = TrackingForm {
        sender: field("sender"),
        recipient: field("recipient"),
        subject: field("subject"),
        message_id: field("message_id"),
        client_ip: field("client_ip"),
        verdict: field("verdict"),
        from: field("from"),
        to: field("to"),
    };
    let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    let q = TrackingQuery {
        sender: some(&form.sender),
        recipient: some(&form.recipient),
        subject: some(&form.subject),
        message_id: some(&form.message_id),
        client_ip: some(&form.client_ip),
        verdict: some(&form.verdict),
        from_ms: view::date_ms(&form.from, false).map_err(PortalError::BadRequest)?,
        to_ms: view::date_ms(&form.to, true).map_err(PortalError::BadRequest)?,
        ..Default::default()
    };
    Ok((q, form))
}

#[derive(Template)]
#[template(path = "admin_tracking.html")]
struct TrackingPage {
    page: Page,
    form: TrackingForm,
    timelines: Vec<TimelineView>,
}

/// `GET /admin/tracking`.
pub async fn tracking(
    State(state): State<AppState>,
    Staff(v): Staff,
    WebQuery(f): WebQuery,
) -> WebResult<Html<String>> {
    let (q, form) = tracking_query(&f)?;
    let found = state.quarantine.search_tracking(&v.actor(), &q).await.map_err(PortalError::from)?;
    let timelines = found.iter().map(view::timeline_view).collect();
    html(&TrackingPage { page: Page::for_viewer(&v, "Message tracking"), form, timelines })
}
