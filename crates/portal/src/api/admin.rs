//! API routes for accounts, API tokens, the delivery queue, the cluster's nodes, the configuration and
//! the audit log.

use super::{Caller, ErrorBody};
use crate::audit_trail::NodeState;
use crate::error::{ApiResult, PortalError};
use crate::extract::{ApiJson, ApiPath};
use crate::state::{AppState, format_time, now};
use crate::web::admin::NodeView;
use audit::{Action, Event};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::Role;
use utoipa::ToSchema;

/// An account as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub name: String,
    pub role: String,
    pub addresses: Vec<String>,
    pub disabled: bool,
    pub second_factor: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub changed_at: i64,
}

/// Every account (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserOut>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn users(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<UserOut>>> {
    caller.require_admin()?;
    let mut out = Vec::new();
    for a in state.store.accounts().await? {
        let addresses = state.store.account_addresses(a.id).await?;
        out.push(UserOut {
            name: a.name,
            role: a.role.as_str().into(),
            addresses,
            disabled: a.disabled,
            second_factor: a.totp_secret.is_some(),
            created_at: a.created_at,
            changed_at: a.changed_at,
        });
    }
    Ok(Json(out))
}

/// A user to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUserIn {
    #[schema(pattern = "^[a-z0-9._@+-]{1,64}$")]
    pub name: String,
    /// `admin`, `helpdesk` or `user`.
    pub role: String,
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// The created user and its one-time password (shown only in this response).
#[derive(Debug, Serialize, ToSchema)]
pub struct NewUserOut {
    pub name: String,
    pub password: String,
}

fn parse_role(role: &str) -> Result<Role, PortalError> {
    Role::parse(role).ok_or_else(|| PortalError::BadRequest("role must be admin, helpdesk or user".into()))
}

fn parse_list(addresses: &[String]) -> Result<Vec<String>, PortalError> {
    crate::accounts::parse_addresses(&addresses.join(" ")).map_err(PortalError::BadRequest)
}

/// Create a user with a generated one-time password (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserIn,
    responses((status = 201, body = NewUserOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUserIn>,
) -> ApiResult<(StatusCode, Json<NewUserOut>)> {
    caller.require_admin()?;
    let role = parse_role(&new.role)?;
    let addresses = parse_list(&new.addresses)?;
    let password = crate::accounts::create_user(&state.store, &new.name, role, &addresses, None).await?;
    state.audit.record(
        Event::new(Action::UserCreate, caller.actor())
            .target(&new.name)
            .detail("role", role.as_str())
            .detail("addresses", addresses.join(" ")),
    );
    Ok((StatusCode::CREATED, Json(NewUserOut { name: new.name, password })))
}

/// A change to one account.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserChangeIn {
    /// Disable (`true`) or enable (`false`) the account.
    pub disabled: Option<bool>,
    /// Replace the owned addresses.
    pub addresses: Option<Vec<String>>,
    /// Set a new generated one-time password (returned once).
    #[serde(default)]
    pub reset_password: bool,
}

/// Change an account (admins only). With `reset_password`, the new password is in the answer.
#[utoipa::path(post, path = "/api/v1/users/{name}", tag = "users", request_body = UserChangeIn,
    params(("name" = String, Path, description = "Account name")),
    responses((status = 200, body = NewUserOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath,
    ApiJson(change): ApiJson<UserChangeIn>,
) -> ApiResult<Json<NewUserOut>> {
    caller.require_admin()?;
    let account = state.store.account_by_name(&name).await?.ok_or(PortalError::NotFound)?;
    let addresses = change.addresses.as_deref().map(parse_list).transpose()?;
    if let Some(disabled) = change.disabled {
        if account.id == caller.account.id && disabled {
            return Err(PortalError::BadRequest("you cannot disable your own account".into()).into());
        }
        state.store.set_account_disabled(account.id, disabled, now()).await?;
        state.store.delete_account_sessions(account.id).await?;
    }
    if let Some(addresses) = addresses {
        state.store.set_account_addresses(account.id, &addresses, now()).await?;
    }
    let mut password = String::new();
    if change.reset_password {
        password = crate::accounts::reset_password(&state.store, account.id, None).await?;
    }
    state
        .audit
        .record(Event::new(Action::UserUpdate, caller.actor()).target(&account.name).detail("change", "api"));
    Ok(Json(NewUserOut { name: account.name, password }))
}

/// A message waiting for delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueItem {
    pub id: String,
    pub sender: String,
    pub pending_recipients: String,
    pub attempts: u32,
    pub next_attempt: String,
    pub size: u64,
}

/// The delivery queue (admins only; the first 500 messages).
#[utoipa::path(get, path = "/api/v1/queue", tag = "queue",
    responses((status = 200, body = Vec<QueueItem>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn queue(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<QueueItem>>> {
    caller.require_admin()?;
    let (_, rows) = crate::web::admin::queue_rows(&state, &caller.actor_q()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| QueueItem {
                id: r.id,
                sender: r.sender,
                pending_recipients: r.recipients,
                attempts: r.attempts,
                next_attempt: r.next_attempt,
                size: r.size,
            })
            .collect(),
    ))
}

/// The gateway nodes sharing this store (admins only).
#[utoipa::path(get, path = "/api/v1/nodes", tag = "queue",
    responses((status = 200, body = Vec<NodeView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn nodes(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<NodeView>>> {
    caller.require_admin()?;
    Ok(Json(crate::web::admin::node_views(&state).await?))
}

/// Retry every deferred message now (admins only).
#[utoipa::path(post, path = "/api/v1/queue/retry", tag = "queue",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn queue_retry(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state.quarantine.queue_retry(&caller.actor_q()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a queued message (admins only).
#[utoipa::path(post, path = "/api/v1/queue/{id}/delete", tag = "queue",
    params(("id" = String, Path, description = "Queue id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn queue_delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    state.quarantine.queue_delete(&caller.actor_q(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The effective configuration as TOML text, secrets redacted (admins only).
#[utoipa::path(get, path = "/api/v1/config", tag = "configuration",
    responses((status = 200, body = String, content_type = "text/plain"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn config(State(state): State<AppState>, caller: Caller) -> ApiResult<String> {
    caller.require_admin()?;
    Ok(crate::web::admin::redacted_config(&state.config))
}

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRecord {
    /// The node that wrote it (`cluster.node_name`).
    pub node: String,
    pub seq: u64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: std::collections::BTreeMap<String, String>,
}

/// The audit trail's state, each node's, and its latest records.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditOut {
    pub intact: bool,
    pub state: String,
    pub nodes: Vec<NodeState>,
    pub records: Vec<AuditRecord>,
}

/// The audit trail: verification state and the latest 200 records, newest first; on a shared store
/// every node's records and each node's chain as verified in the store (admins only).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    responses((status = 200, body = AuditOut), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn audit_log(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AuditOut>> {
    caller.require_admin()?;
    let trail = crate::audit_trail::load(&state).await;
    let records = trail
        .records
        .into_iter()
        .map(|(node, r)| AuditRecord {
            node,
            seq: r.seq,
            time: r.time,
            actor: r.actor,
            action: r.action,
            target: r.target,
            details: r.details,
        })
        .collect();
    Ok(Json(AuditOut { intact: trail.intact, state: trail.state, nodes: trail.nodes, records }))
}

/// An API token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub label: String,
    pub created: String,
    pub last_used: Option<String>,
}

/// The caller's own tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "account",
    responses((status = 200, body = Vec<TokenOut>), (status = 401, body = ErrorBody)))]
pub async fn tokens(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<TokenOut>>> {
    let list = state.store.api_tokens(caller.account.id).await?;
    Ok(Json(
        list.into_iter()
            .map(|t| TokenOut {
                id: t.id,
                label: t.label,
                created: format_time(t.created_at),
                last_used: t.last_used_at.map(format_time),
            })
            .collect(),
    ))
}

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenIn {
    pub label: String,
}

/// The new token's secret, shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewTokenOut {
    pub token: String,
}

/// Create another token for the caller's account.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "account", request_body = NewTokenIn,
    responses((status = 201, body = NewTokenOut), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewTokenIn>,
) -> ApiResult<(StatusCode, Json<NewTokenOut>)> {
    let secret = crate::web::account::create_token(
        &state,
        caller.account.id,
        &caller.account.name,
        caller.actor(),
        &new.label,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(NewTokenOut { token: secret })))
}

/// Revoke one of the caller's tokens.
#[utoipa::path(post, path = "/api/v1/tokens/{id}/revoke", tag = "account",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> ApiResult<StatusCode> {
    let id: i64 = id.parse().map_err(|_| PortalError::NotFound)?;
    if !state.store.revoke_api_token(caller.account.id, id).await? {
        return Err(PortalError::NotFound.into());
    }
    state.audit.record(
        Event::new(Action::TokenRevoke, caller.actor())
            .target(&caller.account.name)
            .detail("token_id", id.to_string()),
    );
    Ok(StatusCode::NO_CONTENT)
}
