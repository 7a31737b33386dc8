//! The admin console pages that need no quarantine: users, the effective configuration (secrets
//! redacted), the audit log with its verification state, the delivery queue (through the quarantine
//! core: this process's spool, or the mail plane's control socket), and the cluster's nodes (their
//! heartbeats in the store). Each handler takes [`Admin`], so helpdesk and end users get 403.

use super::{Page, html, see_other};
use crate::error::{PortalError, WebResult};
use crate::extract::WebForm;
use crate::session::Admin;
use crate::state::{AppState, format_time, now};
use askama::Template;
use audit::{Action, Actor, Event};
use axum::extract::State;
use axum::response::{Html, Response};
use store::Role;

pub struct UserRow {
    pub name: String,
    pub role: &'static str,
    pub addresses: String,
    pub disabled: bool,
    pub totp: bool,
    pub changed: String,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    page: Page,
    users: Vec<UserRow>,
    new_password: String,
    new_password_for: String,
}

async fn users_page(
    state: &AppState,
    admin: &crate::session::Viewer,
    notice: &str,
    password: Option<(String, String)>,
) -> WebResult<Html<String>> {
    let mut users = Vec::new();
    for a in state.store.accounts().await? {
        let addresses = state.store.account_addresses(a.id).await?.join(", ");
        users.push(UserRow {
            name: a.name,
            role: a.role.as_str(),
            addresses,
            disabled: a.disabled,
            totp: a.totp_secret.is_some(),
            changed: format_time(a.changed_at),
        });
    }
    let (new_password_for, new_password) = password.unwrap_or_default();
    html(&UsersPage {
        page: Page::for_viewer(admin, "Users").with_notice(notice),
        users,
        new_password,
        new_password_for,
    })
}

/// `GET /admin/users`.
pub async fn users(State(state): State<AppState>, Admin(v): Admin) -> WebResult<Html<String>> {
    users_page(&state, &v, "", None).await
}

/// `POST /admin/users`: a new account with a generated one-time password, shown once.
pub async fn create_user(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebForm(f): WebForm,
) -> WebResult<Html<String>> {
    v.check_csrf(&f)?;
    let role = Role::parse(f.get("role"))
        .ok_or_else(|| PortalError::BadRequest("role must be admin, helpdesk or user".into()))?;
    let addresses = crate::accounts::parse_addresses(f.get("addresses")).map_err(PortalError::BadRequest)?;
    let name = f.get("name").trim();
    let password = crate::accounts::create_user(&state.store, name, role, &addresses, None).await?;
    state.audit.record(
        Event::new(Action::UserCreate, Actor::User(v.account.name.clone()))
            .target(name)
            .detail("role", role.as_str())
            .detail("addresses", addresses.join(" ")),
    );
    users_page(&state, &v, "User added.", Some((name.to_string(), password))).await
}

/// `POST /admin/users/update`: `op` = `disable`, `enable`, `password` (a new one-time password) or
/// `addresses`.
pub async fn update_user(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebForm(f): WebForm,
) -> WebResult<Html<String>> {
    v.check_csrf(&f)?;
    let name = f.get("name").trim();
    let account = state.store.account_by_name(name).await?.ok_or(PortalError::NotFound)?;
    let op = f.get("op");
    let mut shown = None;
    match op {
        "disable" | "enable" => {
            if account.id == v.account.id {
                return Err(PortalError::BadRequest("you cannot disable your own account".into()).into());
            }
            state.store.set_account_disabled(account.id, op == "disable", now()).await?;
            state.store.delete_account_sessions(account.id).await?;
        }
        "password" => {
            let password = crate::accounts::reset_password(&state.store, account.id, None).await?;
            shown = Some((account.name.clone(), password));
        }
        "addresses" => {
            let addresses =
                crate::accounts::parse_addresses(f.get("addresses")).map_err(PortalError::BadRequest)?;
            state.store.set_account_addresses(account.id, &addresses, now()).await?;
        }
        _ => return Err(PortalError::BadRequest("unknown operation".into()).into()),
    }
    state.audit.record(
        Event::new(Action::UserUpdate, Actor::User(v.account.name.clone()))
            .target(&account.name)
            .detail("change", op),
    );
    users_page(&state, &v, "User updated.", shown).await
}

#[derive(Template)]
#[template(path = "admin_config.html")]
struct ConfigPage {
    page: Page,
    text: String,
}

/// Setting names whose values are secrets.
fn is_secret(key: &str) -> bool {
    ["token", "password", "secret", "passphrase"].iter().any(|w| key.contains(w))
}

fn redact(v: &mut toml::Value) {
    if let Some(table) = v.as_table_mut() {
        for (k, child) in table.iter_mut() {
            if is_secret(k) && child.as_str().is_some_and(|s| !s.is_empty()) {
                *child = toml::Value::String("[redacted]".into());
            } else {
                redact(child);
            }
        }
    }
}

/// The effective configuration as TOML, secrets redacted.
pub fn redacted_config(config: &config::Config) -> String {
    let mut value = toml::Value::try_from(config).unwrap_or(toml::Value::Table(Default::default()));
    redact(&mut value);
    toml::to_string(&value).unwrap_or_default()
}

/// `GET /admin/config`.
pub async fn config(State(state): State<AppState>, Admin(v): Admin) -> WebResult<Html<String>> {
    html(&ConfigPage { page: Page::for_viewer(&v, "Configuration"), text: redacted_config(&state.config) })
}

pub struct AuditRow {
    pub node: String,
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    page: Page,
    intact: bool,
    state: String,
    nodes: Vec<crate::audit_trail::NodeState>,
    records: Vec<AuditRow>,
}

/// `GET /admin/audit`: this node's records, or on a shared store every node's (see
/// [`crate::audit_trail`]).
pub async fn audit_log(State(state): State<AppState>, Admin(v): Admin) -> WebResult<Html<String>> {
    let trail = crate::audit_trail::load(&state).await;
    let records = trail
        .records
        .into_iter()
        .map(|(node, r)| AuditRow {
            node,
            seq: r.seq,
            time: r.time,
            actor: crate::render::display_text(&r.actor),
            action: r.action,
            target: crate::render::display_text(&r.target),
            details: crate::render::display_text(
                &r.details.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
            ),
        })
        .collect();
    let page = Page::for_viewer(&v, "Audit log");
    html(&AuditPage { page, intact: trail.intact, state: trail.state, nodes: trail.nodes, records })
}

pub struct QueueRow {
    pub id: String,
    pub sender: String,
    pub recipients: String,
    pub attempts: u32,
    pub next_attempt: String,
    pub size: u64,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    page: Page,
    total: usize,
    rows: Vec<QueueRow>,
}

/// The delivery queue (`active/`) as the console and the API show it: its first
/// [`quarantine::delivery_queue::MAX_QUEUE_LISTED`] messages and the total, for an admin.
pub async fn queue_rows(
    state: &AppState,
    admin: &quarantine::Actor,
) -> Result<(usize, Vec<QueueRow>), PortalError> {
    let listing = state.quarantine.queue_list(admin).await?;
    let total = usize::try_from(listing.total).unwrap_or(usize::MAX);
    Ok((total, listing.messages.into_iter().map(queue_row).collect()))
}

fn queue_row(m: quarantine::QueueEntry) -> QueueRow {
    let mut recipients = m.pending.join(", ");
    if m.more_pending > 0 {
        recipients.push_str(&format!(" and {} more", m.more_pending));
    }
    QueueRow {
        sender: crate::render::display_text(if m.sender.is_empty() { "<>" } else { &m.sender }),
        recipients: crate::render::display_text(&recipients),
        id: m.id,
        attempts: m.attempts,
        next_attempt: if m.next_attempt_ms == 0 {
            "now".into()
        } else {
            format_time(i64::try_from(m.next_attempt_ms / 1000).unwrap_or(i64::MAX))
        },
        size: m.size,
    }
}

/// `GET /admin/queue`.
pub async fn queue(State(state): State<AppState>, Admin(v): Admin) -> WebResult<Html<String>> {
    let (total, rows) = queue_rows(&state, &v.actor()).await?;
    html(&QueuePage { page: Page::for_viewer(&v, "Queue"), total, rows })
}

/// `POST /admin/queue/retry`: the relay retries every deferred message now.
pub async fn queue_retry(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    state.quarantine.queue_retry(&v.actor()).await?;
    Ok(see_other("/admin/queue"))
}

/// `POST /admin/queue/delete`: one queued message, not delivered.
pub async fn queue_remove(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebForm(f): WebForm,
) -> WebResult<Response> {
    v.check_csrf(&f)?;
    state.quarantine.queue_delete(&v.actor(), f.get("id")).await?;
    Ok(see_other("/admin/queue"))
}

/// One node of the cluster as the console and the API show it (from its last heartbeat).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NodeView {
    pub name: String,
    pub version: String,
    /// Start time and last heartbeat, UTC.
    pub started: String,
    pub last_heartbeat: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_secs: i64,
    /// Messages in its delivery queue.
    pub queue_depth: i64,
    /// The queue-id tag it mints ids with (none: recorded before tags and not started since).
    pub tag: Option<i64>,
    pub smtp_listen: String,
    /// Empty when the node serves no portal.
    pub portal_listen: String,
    /// `live`, or `stale` when silent longer than `cluster.node_stale_after`.
    pub state: String,
}

/// Every node that has sent a heartbeat, by name.
pub async fn node_views(state: &AppState) -> Result<Vec<NodeView>, PortalError> {
    let stale_after =
        i64::try_from(state.config.cluster.node_stale_after.get().as_millis()).unwrap_or(i64::MAX);
    let now_ms = now().saturating_mul(1000);
    Ok(state
        .store
        .nodes()
        .await?
        .into_iter()
        .map(|store::NodeRow { beat: n, tag }| {
            let age_ms = now_ms.saturating_sub(n.heartbeat_ms).max(0);
            NodeView {
                started: format_time(n.started_at_ms / 1000),
                last_heartbeat: format_time(n.heartbeat_ms / 1000),
                heartbeat_age_secs: age_ms / 1000,
                state: if age_ms <= stale_after { "live" } else { "stale" }.into(),
                name: n.name,
                version: n.version,
                queue_depth: n.queue_depth,
                tag,
                smtp_listen: n.smtp_listen,
                portal_listen: n.portal_listen,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "admin_nodes.html")]
struct NodesPage {
    page: Page,
    nodes: Vec<NodeView>,
    stale_after: String,
}

async fn nodes_page(
    state: &AppState,
    admin: &crate::session::Viewer,
    notice: &str,
) -> WebResult<Html<String>> {
    let nodes = node_views(state).await?;
    let stale_after = state.config.cluster.node_stale_after.to_string();
    html(&NodesPage { page: Page::for_viewer(admin, "Nodes").with_notice(notice), nodes, stale_after })
}

/// `GET /admin/nodes`: the gateway nodes sharing this store.
pub async fn nodes(State(state): State<AppState>, Admin(v): Admin) -> WebResult<Html<String>> {
    nodes_page(&state, &v, "").await
}

/// `POST /admin/nodes/forget`: remove node `name` (gone for good) from the list. Refused for a live
/// node (it would reappear at its next heartbeat, and is not gone) and for a node whose last heartbeat
/// reported messages in its delivery queue (they are still its responsibility: they are delivered when
/// it comes back, and forgetting it would hide them).
pub async fn forget_node(
    State(state): State<AppState>,
    Admin(v): Admin,
    WebForm(f): WebForm,
) -> WebResult<Html<String>> {
    v.check_csrf(&f)?;
    let name = f.get("name");
    let node = node_views(&state).await?.into_iter().find(|n| n.name == name).ok_or(PortalError::NotFound)?;
    if node.state == "live" {
        return Err(
            PortalError::BadRequest(format!("node {name} is live: stop it before forgetting it")).into()
        );
    }
    if node.queue_depth > 0 {
        return Err(PortalError::BadRequest(format!(
            "node {name} still has {} queued messages: bring it back to deliver them first",
            node.queue_depth
        ))
        .into());
    }
    if state.store.node_forget(name).await? {
        state.audit.record(
            Event::new(Action::NodeForget, Actor::User(v.account.name.clone()))
                .target(name)
                .detail("last_heartbeat", &node.last_heartbeat),
        );
    }
    nodes_page(&state, &v, "Node forgotten.").await
}
