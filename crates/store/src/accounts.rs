//! Accounts of the portal, admin console and API: users with their role and owned addresses, API
//! tokens, web sessions and login-throttle counters (migration `0200_accounts.sql`).
//!
//! Secrets never arrive here in clear: callers hand in an Argon2id PHC string for a password and the
//! SHA-256 (hex) of an API token or a session id, so a copy of the database gives no way in. Times are
//! Unix seconds chosen by the caller (tests control the clock). Sessions live here rather than in a
//! process so that several portal nodes can share them once the store is PostgreSQL.

use crate::{Exclusive, Store, StoreError, WriteTx, query_err};

/// What an account may do; the portal decides what each role means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Helpdesk,
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "helpdesk" => Some(Role::Helpdesk),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// One local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Argon2id PHC string; empty when no password is set.
    pub password_hash: String,
    pub disabled: bool,
    /// Base32 TOTP secret, when a second factor is enrolled.
    pub totp_secret: Option<String>,
    pub created_at: i64,
    pub changed_at: i64,
}

/// An account to create.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub role: Role,
    pub password_hash: &'a str,
    /// Owned recipient addresses, lower-case.
    pub addresses: &'a [String],
}

/// An API token's public facts (never its secret, never its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub account_id: i64,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// One web session, found by the SHA-256 of its cookie value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id_hash: String,
    pub account_id: i64,
    pub csrf_token: String,
    /// The password was right but the second factor is still owed.
    pub second_factor_due: bool,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub absolute_expires_at: i64,
}

/// What a login-throttle counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// Failures against one account name (known or not).
    Account,
    /// Failures from one client address.
    Address,
}

impl ThrottleScope {
    fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Account => "account",
            ThrottleScope::Address => "address",
        }
    }
}

type AccountRow = (i64, String, String, String, i64, Option<String>, i64, i64);

fn account(row: AccountRow) -> Result<Account, StoreError> {
    let (id, name, role, password_hash, disabled, totp_secret, created_at, changed_at) = row;
    let role = Role::parse(&role).ok_or(StoreError::Corrupt { bucket: id, why: "unknown account role" })?;
    Ok(Account {
        id,
        name,
        role,
        password_hash,
        disabled: disabled != 0,
        totp_secret,
        created_at,
        changed_at,
    })
}

impl Store {
    /// How many accounts exist (the first start creates `admin` when there are none).
    pub async fn account_count(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) =
            on_pool!(self, |pool| { sqlx::query_as("SELECT COUNT(*) FROM accounts").fetch_one(pool).await })
                .map_err(query_err("counting accounts"))?;
        Ok(n.max(0) as u64)
    }

    /// Create an account with its addresses; `None` when the name is taken.
    pub async fn create_account(&self, new: &NewAccount<'_>, now: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        let id: Option<(i64,)> = on_tx!(&mut tx, |conn| {
            sqlx::query_as(
                "INSERT INTO accounts (name, role, password_hash, disabled, created_at, changed_at) \
             VALUES ($1, $2, $3, 0, $4, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(new.name)
            .bind(new.role.as_str())
            .bind(new.password_hash)
            .bind(now)
            .fetch_optional(conn)
            .await
        })
        .map_err(query_err("creating an account"))?;
        let Some((id,)) = id else {
            tx.rollback("giving up on a taken account name").await?;
            return Ok(None);
        };
        for address in new.addresses {
            insert_address(&mut tx, id, address).await?;
        }
        tx.commit("committing a new account").await?;
        Ok(Some(id))
    }

    pub async fn account_by_name(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, role, password_hash, disabled, totp_secret, created_at, changed_at \
             FROM accounts WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("reading an account by name"))?;
        row.map(account).transpose()
    }

    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, role, password_hash, disabled, totp_secret, created_at, changed_at \
             FROM accounts WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("reading an account"))?;
        row.map(account).transpose()
    }

    /// Every account, by name.
    pub async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows: Vec<AccountRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, role, password_hash, disabled, totp_secret, created_at, changed_at \
             FROM accounts ORDER BY name",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("listing accounts"))?;
        rows.into_iter().map(account).collect()
    }

    /// The addresses an account owns, sorted.
    pub async fn account_addresses(&self, account_id: i64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = on_pool!(self, |pool| {
            sqlx::query_as("SELECT address FROM account_addresses WHERE account_id = $1 ORDER BY address")
                .bind(account_id)
                .fetch_all(pool)
                .await
        })
        .map_err(query_err("reading an account's addresses"))?;
        Ok(rows.into_iter().map(|(a,)| a).collect())
    }

    /// Replace the addresses an account owns.
    pub async fn set_account_addresses(
        &self,
        account_id: i64,
        addresses: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write(Exclusive::AccountAddresses).await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM account_addresses WHERE account_id = $1")
                .bind(account_id)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("clearing an account's addresses"))?;
        for address in addresses {
            insert_address(&mut tx, account_id, address).await?;
        }
        touch_account(&mut tx, account_id, now).await?;
        tx.commit("committing an account's addresses").await
    }

    /// Set a new password hash; false if there is no such account.
    pub async fn set_account_password(&self, id: i64, hash: &str, now: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE accounts SET password_hash = $1, changed_at = $2 WHERE id = $3")
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("setting a password"))?;
        Ok(done == 1)
    }

    /// Disable or enable an account; false if there is no such account.
    pub async fn set_account_disabled(&self, id: i64, disabled: bool, now: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE accounts SET disabled = $1, changed_at = $2 WHERE id = $3")
                .bind(i64::from(disabled))
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("disabling an account"))?;
        Ok(done == 1)
    }

    /// Enrol (or with `None`, remove) a TOTP secret; false if there is no such account.
    pub async fn set_account_totp(
        &self,
        id: i64,
        secret: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("UPDATE accounts SET totp_secret = $1, changed_at = $2 WHERE id = $3")
                .bind(secret)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("setting a second factor"))?;
        Ok(done == 1)
    }

    /// Remember a new API token by the SHA-256 (hex) of its secret; returns its id.
    pub async fn create_api_token(
        &self,
        account_id: i64,
        label: &str,
        token_hash: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let (id,): (i64,) = on_pool!(self, |pool| {
            sqlx::query_as(
                "INSERT INTO api_tokens (account_id, label, token_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(account_id)
            .bind(label)
            .bind(token_hash)
            .bind(now)
            .fetch_one(pool)
            .await
        })
        .map_err(query_err("creating an API token"))?;
        Ok(id)
    }

    /// The token with this hash and its account, and mark it used at `now`.
    pub async fn use_api_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<(ApiToken, Account)>, StoreError> {
        let row: Option<(i64, i64, String, i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
            "SELECT id, account_id, label, created_at, last_used_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(pool).await
        })
        .map_err(query_err("looking up an API token"))?;
        let Some((id, account_id, label, created_at, last_used_at)) = row else { return Ok(None) };
        let Some(account) = self.account_by_id(account_id).await? else { return Ok(None) };
        on_pool!(self, |pool| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("marking an API token used"))?;
        Ok(Some((ApiToken { id, account_id, label, created_at, last_used_at }, account)))
    }

    /// An account's API tokens, newest first.
    pub async fn api_tokens(&self, account_id: i64) -> Result<Vec<ApiToken>, StoreError> {
        let rows: Vec<(i64, i64, String, i64, Option<i64>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, account_id, label, created_at, last_used_at FROM api_tokens \
             WHERE account_id = $1 ORDER BY id DESC",
            )
            .bind(account_id)
            .fetch_all(pool)
            .await
        })
        .map_err(query_err("listing API tokens"))?;
        Ok(rows
            .into_iter()
            .map(|(id, account_id, label, created_at, last_used_at)| ApiToken {
                id,
                account_id,
                label,
                created_at,
                last_used_at,
            })
            .collect())
    }

    /// Remove one of an account's tokens; false if it had no such token.
    pub async fn revoke_api_token(&self, account_id: i64, token_id: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND account_id = $2")
                .bind(token_id)
                .bind(account_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("revoking an API token"))?;
        Ok(done == 1)
    }

    pub async fn create_web_session(&self, s: &WebSession) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO web_sessions (id_hash, account_id, csrf_token, second_factor_due, created_at, \
             last_seen_at, absolute_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id_hash)
            .bind(s.account_id)
            .bind(&s.csrf_token)
            .bind(i64::from(s.second_factor_due))
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.absolute_expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(query_err("creating a web session"))?;
        Ok(())
    }

    pub async fn web_session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError> {
        let row: Option<(String, i64, String, i64, i64, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id_hash, account_id, csrf_token, second_factor_due, created_at, last_seen_at, \
             absolute_expires_at FROM web_sessions WHERE id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("reading a web session"))?;
        Ok(row.map(
            |(id_hash, account_id, csrf_token, due, created_at, last_seen_at, absolute_expires_at)| {
                WebSession {
                    id_hash,
                    account_id,
                    csrf_token,
                    second_factor_due: due != 0,
                    created_at,
                    last_seen_at,
                    absolute_expires_at,
                }
            },
        ))
    }

    /// Record activity on a session (its idle timeout counts from here).
    pub async fn touch_web_session(&self, id_hash: &str, now: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("touching a web session"))?;
        Ok(())
    }

    pub async fn delete_web_session(&self, id_hash: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM web_sessions WHERE id_hash = $1")
                .bind(id_hash)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("deleting a web session"))?;
        Ok(())
    }

    /// End every session of an account (password change, disable).
    pub async fn delete_account_sessions(&self, account_id: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM web_sessions WHERE account_id = $1")
                .bind(account_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("ending an account's sessions"))?;
        Ok(done)
    }

    /// Remove sessions idle since before `idle_before` or past their absolute expiry.
    pub async fn purge_web_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM web_sessions WHERE last_seen_at < $1 OR absolute_expires_at <= $2")
                .bind(idle_before)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("purging web sessions"))?;
        Ok(done)
    }

    /// Failures counted for `key` in the window that is still open at `now`.
    pub async fn throttle_failures(
        &self,
        scope: ThrottleScope,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<u32, StoreError> {
        let row: Option<(i64,)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT failures FROM login_throttle WHERE scope = $1 AND key = $2 AND window_start > $3",
            )
            .bind(scope.as_str())
            .bind(key)
            .bind(now - window)
            .fetch_optional(pool)
            .await
        })
        .map_err(query_err("reading a login-throttle counter"))?;
        Ok(row.map_or(0, |(n,)| n.clamp(0, i64::from(u32::MAX)) as u32))
    }

    /// Count one failure for `key` (a new window starts when the last one has passed); returns the count.
    /// Counters of passed windows are removed here, which bounds the table.
    pub async fn throttle_fail(
        &self,
        scope: ThrottleScope,
        key: &str,
        now: i64,
        window: i64,
    ) -> Result<u32, StoreError> {
        let mut tx = self.begin_write(Exclusive::No).await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM login_throttle WHERE window_start <= $1")
                .bind(now - window)
                .execute(conn)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("expiring login-throttle counters"))?;
        let (n,): (i64,) = on_tx!(&mut tx, |conn| {
            sqlx::query_as(
                "INSERT INTO login_throttle (scope, key, window_start, failures) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (scope, key) DO UPDATE SET failures = login_throttle.failures + 1 \
             RETURNING failures",
            )
            .bind(scope.as_str())
            .bind(key)
            .bind(now)
            .fetch_one(conn)
            .await
        })
        .map_err(query_err("counting a failed login"))?;
        tx.commit("committing a failed login").await?;
        Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
    }

    /// Forget the failures of `key` (after a successful login to that account).
    pub async fn throttle_clear(&self, scope: ThrottleScope, key: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            sqlx::query("DELETE FROM login_throttle WHERE scope = $1 AND key = $2")
                .bind(scope.as_str())
                .bind(key)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(query_err("clearing a login-throttle counter"))?;
        Ok(())
    }
}

async fn insert_address(tx: &mut WriteTx, account_id: i64, address: &str) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query(
            "INSERT INTO account_addresses (account_id, address) VALUES ($1, $2) \
         ON CONFLICT (account_id, address) DO NOTHING",
        )
        .bind(account_id)
        .bind(address)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(query_err("adding an owned address"))?;
    Ok(())
}

async fn touch_account(tx: &mut WriteTx, account_id: i64, now: i64) -> Result<(), StoreError> {
    on_tx!(tx, |conn| {
        sqlx::query("UPDATE accounts SET changed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(account_id)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(query_err("marking an account changed"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{TestDb, store_test};

    store_test!(
        accounts_round_trip_and_names_are_unique,
        tokens_are_found_by_hash_and_marked_used,
        sessions_expire_and_end_with_their_account,
        throttle_counts_per_window_and_clears,
        concurrent_address_replacements_leave_one_set,
    );

    async fn store_with_alice(db: &TestDb) -> (Store, i64) {
        let store = db.store.clone();
        let addrs = vec!["alice@our.test".to_string()];
        let new =
            NewAccount { name: "alice", role: Role::User, password_hash: "$argon2id$x", addresses: &addrs };
        let id = store.create_account(&new, 100).await.unwrap().unwrap();
        (store, id)
    }

    async fn accounts_round_trip_and_names_are_unique(db: TestDb) {
        let (store, id) = store_with_alice(&db).await;
        let again = NewAccount { name: "alice", role: Role::Admin, password_hash: "", addresses: &[] };
        assert_eq!(store.create_account(&again, 101).await.unwrap(), None);
        let a = store.account_by_name("alice").await.unwrap().unwrap();
        assert_eq!((a.id, a.role, a.disabled, a.created_at), (id, Role::User, false, 100));
        assert_eq!(store.account_addresses(id).await.unwrap(), vec!["alice@our.test"]);
        assert!(store.set_account_disabled(id, true, 102).await.unwrap());
        assert!(store.set_account_password(id, "$argon2id$y", 103).await.unwrap());
        assert!(store.set_account_totp(id, Some("JBSWY3DPEHPK3PXP"), 104).await.unwrap());
        let a = store.account_by_id(id).await.unwrap().unwrap();
        assert!(a.disabled);
        assert_eq!((a.password_hash.as_str(), a.changed_at), ("$argon2id$y", 104));
        assert_eq!(a.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        store.set_account_addresses(id, &["a@our.test".into(), "b@our.test".into()], 105).await.unwrap();
        assert_eq!(store.account_addresses(id).await.unwrap(), vec!["a@our.test", "b@our.test"]);
        assert_eq!(store.account_count().await.unwrap(), 1);
        assert!(!store.set_account_disabled(999, true, 1).await.unwrap());
        // Names that look like SQL are only data.
        let odd = NewAccount { name: "x' OR '1'='1", role: Role::User, password_hash: "", addresses: &[] };
        assert!(store.create_account(&odd, 1).await.unwrap().is_some());
        assert_eq!(store.accounts().await.unwrap().len(), 2);
    }

    async fn tokens_are_found_by_hash_and_marked_used(db: TestDb) {
        let (store, id) = store_with_alice(&db).await;
        let t = store.create_api_token(id, "script", "ab12", 200).await.unwrap();
        let (token, account) = store.use_api_token("ab12", 300).await.unwrap().unwrap();
        assert_eq!((token.id, token.label.as_str(), account.name.as_str()), (t, "script", "alice"));
        assert_eq!(store.api_tokens(id).await.unwrap()[0].last_used_at, Some(300));
        assert!(store.use_api_token("ab13", 300).await.unwrap().is_none());
        assert!(!store.revoke_api_token(id + 1, t).await.unwrap());
        assert!(store.revoke_api_token(id, t).await.unwrap());
        assert!(store.use_api_token("ab12", 300).await.unwrap().is_none());
    }

    async fn sessions_expire_and_end_with_their_account(db: TestDb) {
        let (store, id) = store_with_alice(&db).await;
        let s = WebSession {
            id_hash: "h1".into(),
            account_id: id,
            csrf_token: "c".into(),
            second_factor_due: true,
            created_at: 10,
            last_seen_at: 10,
            absolute_expires_at: 1000,
        };
        store.create_web_session(&s).await.unwrap();
        store.create_web_session(&WebSession { id_hash: "h2".into(), ..s.clone() }).await.unwrap();
        assert_eq!(store.web_session("h1").await.unwrap(), Some(s.clone()));
        store.touch_web_session("h1", 50).await.unwrap();
        assert_eq!(store.purge_web_sessions(60, 20).await.unwrap(), 1, "h2 was idle");
        assert_eq!(store.web_session("h1").await.unwrap().unwrap().last_seen_at, 50);
        assert_eq!(store.purge_web_sessions(1000, 0).await.unwrap(), 1, "absolute expiry");
        store.create_web_session(&s).await.unwrap();
        assert_eq!(store.delete_account_sessions(id).await.unwrap(), 1);
        store.create_web_session(&s).await.unwrap();
        store.delete_web_session("h1").await.unwrap();
        assert_eq!(store.web_session("h1").await.unwrap(), None);
    }

    async fn throttle_counts_per_window_and_clears(db: TestDb) {
        let store = db.store.clone();
        let (acc, addr) = (ThrottleScope::Account, ThrottleScope::Address);
        for expect in 1..=3 {
            assert_eq!(store.throttle_fail(acc, "bob", 100, 60).await.unwrap(), expect);
        }
        store.throttle_fail(addr, "127.0.0.2", 100, 60).await.unwrap();
        assert_eq!(store.throttle_failures(acc, "bob", 159, 60).await.unwrap(), 3);
        assert_eq!(store.throttle_failures(addr, "bob", 159, 60).await.unwrap(), 0);
        assert_eq!(store.throttle_failures(acc, "bob", 160, 60).await.unwrap(), 0, "window passed");
        assert_eq!(store.throttle_fail(acc, "bob", 170, 60).await.unwrap(), 1, "a new window");
        store.throttle_clear(acc, "bob").await.unwrap();
        assert_eq!(store.throttle_failures(acc, "bob", 171, 60).await.unwrap(), 0);
        let (rows,): (i64,) = on_pool!(store, |pool| sqlx::query_as("SELECT COUNT(*) FROM login_throttle")
            .fetch_one(pool)
            .await)
        .unwrap();
        assert_eq!(rows, 0, "the passed window of 127.0.0.2 was removed");
    }

    /// Two nodes replacing one account's addresses at once: the result is one of the two sets, never
    /// their union (the replacement runs alone on PostgreSQL too).
    async fn concurrent_address_replacements_leave_one_set(db: TestDb) {
        let (a, id) = store_with_alice(&db).await;
        let b = db.open().await;
        let one: Vec<String> = (0..20).map(|i| format!("one{i}@our.test")).collect();
        let two: Vec<String> = (0..20).map(|i| format!("two{i}@our.test")).collect();
        for round in 0..5 {
            let (x, y) = tokio::join!(
                a.set_account_addresses(id, &one, round),
                b.set_account_addresses(id, &two, round)
            );
            x.unwrap();
            y.unwrap();
            let now = a.account_addresses(id).await.unwrap();
            let mut sorted_one = one.clone();
            sorted_one.sort();
            let mut sorted_two = two.clone();
            sorted_two.sort();
            assert!(now == sorted_one || now == sorted_two, "round {round}: {now:?}");
        }
    }
}
