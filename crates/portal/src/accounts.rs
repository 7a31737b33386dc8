//! Account rules shared by the admin console, the API and the `portcullis users` command: valid names
//! and addresses, creating users, and the first start's `admin`.

use crate::error::PortalError;
use crate::secrets::{generate_password, hash_password, password_problem};
use crate::state::now;
use store::{NewAccount, Role, Store};

/// Most addresses one account owns.
pub const MAX_ADDRESSES: usize = 100;

/// Names accounts may have: 1 to 64 of `a-z 0-9 . _ @ + -`.
pub fn valid_name(name: &str) -> bool {
    crate::web::login::valid_name(name)
}

/// One address: `local@domain`, printable ASCII without spaces or brackets, lower-cased.
pub fn parse_address(text: &str) -> Result<String, String> {
    let a = text.trim().to_ascii_lowercase();
    let ok_chars = a.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b));
    match a.rsplit_once('@') {
        Some((local, domain))
            if ok_chars && !local.is_empty() && local.len() <= 64 && !domain.is_empty() && a.len() <= 254 =>
        {
            Ok(a)
        }
        _ => Err(format!(
            "`{}` is not an address (local@domain)",
            crate::render::display_text(&text.chars().take(80).collect::<String>())
        )),
    }
}

/// Addresses written one after another, separated by spaces, commas or line breaks.
pub fn parse_addresses(text: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|p| !p.is_empty()) {
        let a = parse_address(part)?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    if out.len() > MAX_ADDRESSES {
        return Err(format!("at most {MAX_ADDRESSES} addresses per account"));
    }
    Ok(out)
}

/// Create an account. With no password given, one is generated; either way the password is returned
/// (for the caller to show once).
pub async fn create_user(
    store: &Store,
    name: &str,
    role: Role,
    addresses: &[String],
    password: Option<String>,
) -> Result<String, PortalError> {
    if !valid_name(name) {
        return Err(PortalError::BadRequest("a name is 1 to 64 of a-z, 0-9, . _ @ + -".into()));
    }
    let password = password.unwrap_or_else(generate_password);
    if let Some(problem) = password_problem(&password) {
        return Err(PortalError::BadRequest(problem.into()));
    }
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?
        .map_err(PortalError::Internal)?;
    let new = NewAccount { name, role, password_hash: &hash, addresses };
    match store.create_account(&new, now()).await? {
        Some(_) => Ok(password),
        None => Err(PortalError::Conflict(format!("there is already an account named {name}"))),
    }
}

/// Set a new password (given, or generated and returned) and end the account's sessions.
pub async fn reset_password(
    store: &Store,
    account_id: i64,
    password: Option<String>,
) -> Result<String, PortalError> {
    let password = password.unwrap_or_else(generate_password);
    if let Some(problem) = password_problem(&password) {
        return Err(PortalError::BadRequest(problem.into()));
    }
    let pw = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| PortalError::Internal(e.to_string()))?
        .map_err(PortalError::Internal)?;
    if !store.set_account_password(account_id, &hash, now()).await? {
        return Err(PortalError::NotFound);
    }
    store.delete_account_sessions(account_id).await?;
    Ok(password)
}

/// On the portal's first start: when no account exists, create `admin` with a generated password and
/// return it (the caller prints it once; it is never logged).
pub async fn ensure_first_admin(store: &Store) -> Result<Option<String>, PortalError> {
    if store.account_count().await? > 0 {
        return Ok(None);
    }
    match create_user(store, "admin", Role::Admin, &[], None).await {
        Ok(password) => Ok(Some(password)),
        // Another node made it between our count and our insert.
        Err(PortalError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_lower_cased() {
        assert_eq!(
            parse_addresses("A@Our.Test, b@our.test\na@our.test").unwrap(),
            vec!["a@our.test", "b@our.test"]
        );
        assert!(parse_addresses("not-an-address").is_err());
        assert!(parse_addresses("<x@y>").is_err());
        assert!(parse_addresses("x@").is_err());
        assert!(parse_addresses("").unwrap().is_empty());
    }

    #[tokio::test]
    async fn first_admin_once() {
        let store = Store::in_memory().await.unwrap();
        let pw = ensure_first_admin(&store).await.unwrap().unwrap();
        assert_eq!(pw.len(), 20);
        assert_eq!(ensure_first_admin(&store).await.unwrap(), None);
        let admin = store.account_by_name("admin").await.unwrap().unwrap();
        assert!(crate::secrets::verify_password(&pw, &admin.password_hash));
        assert!(matches!(
            create_user(&store, "admin", Role::User, &[], None).await,
            Err(PortalError::Conflict(_))
        ));
        assert!(matches!(
            create_user(&store, "Bad Name", Role::User, &[], None).await,
            Err(PortalError::BadRequest(_))
        ));
    }
}
