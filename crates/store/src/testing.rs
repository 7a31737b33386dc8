//! Test databases on both backends: every storage test runs once on SQLite and once on PostgreSQL.
//!
//! [`store_test!`] turns one test body into a module with a `sqlite` and a `postgres` test. Each gets a
//! fresh [`TestDb`]: a SQLite file in a temporary directory, or a new, uniquely named schema in the
//! `test` database at `PORTCULLIS_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped when the test ends, passed or failed (other crates' tests use it through the `testing`
//! feature). PostgreSQL not answering fails the test with a message
//! saying so, unless `PORTCULLIS_TEST_POSTGRES=skip`.

use crate::Store;
use config::{StoreBackend, StoreConfig};
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the PostgreSQL tests connect when `PORTCULLIS_TEST_POSTGRES_URL` is not set.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// For each `async fn $name(db: TestDb)` named, a module `$name` with a `sqlite` and a `postgres` test
/// that run it on a fresh [`TestDb`] of that backend.
#[cfg(test)]
macro_rules! store_test {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::testing::TestDb::sqlite().await).await
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = $crate::testing::TestDb::postgres().await {
                    super::$name(db).await
                }
            }
        }
    )+};
}
#[cfg(test)]
pub(crate) use store_test;

/// A fresh database for one test, and its store.
pub struct TestDb {
    pub store: Store,
    settings: StoreConfig,
    data_dir: PathBuf,
    _dir: tempfile::TempDir,
    /// Drops the PostgreSQL schema when the test ends (declared after `store`, so dropped after it).
    _schema: Option<DropSchema>,
}

impl TestDb {
    /// A new SQLite file in a temporary directory.
    pub async fn sqlite() -> TestDb {
        TestDb::sqlite_until(None).await
    }

    /// A new SQLite file migrated up to migration `until` only (all of them: `None`), to test what a
    /// later migration does to the data of a store made before it.
    pub async fn sqlite_until(until: Option<i64>) -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_dir = dir.path().join("data");
        let settings = StoreConfig::default();
        let store = Store::connect(&data_dir, &settings).await.expect("opening a SQLite store");
        store.migrate_until(until).await.expect("migrating a SQLite store");
        TestDb { store, settings, data_dir, _dir: dir, _schema: None }
    }

    /// A new schema in the PostgreSQL test database; `None` when `PORTCULLIS_TEST_POSTGRES=skip`.
    pub async fn postgres() -> Option<TestDb> {
        TestDb::postgres_until(None).await
    }

    /// A new schema migrated up to migration `until` only (all of them: `None`).
    pub async fn postgres_until(until: Option<i64>) -> Option<TestDb> {
        let (db, _) = TestDb::postgres_at(1, None, until).await?;
        Some(db)
    }

    /// A new schema in the PostgreSQL test database created and migrated by `nodes` stores opening it
    /// at once (as nodes starting together would); the first is the [`TestDb`]'s, all are returned.
    pub async fn postgres_opened_by(nodes: usize) -> Option<(TestDb, Vec<Store>)> {
        TestDb::postgres_at(nodes, None, None).await
    }

    /// A new schema reached over TLS (`sslmode=require`: rustls with ring).
    pub async fn postgres_over_tls() -> Option<TestDb> {
        let (db, _) = TestDb::postgres_at(1, Some("sslmode=require"), None).await?;
        Some(db)
    }

    /// `nodes` stores on a new schema, reached with `url_parameter`, migrated up to `until` (all: `None`).
    async fn postgres_at(
        nodes: usize,
        url_parameter: Option<&str>,
        until: Option<i64>,
    ) -> Option<(TestDb, Vec<Store>)> {
        if std::env::var("PORTCULLIS_TEST_POSTGRES").is_ok_and(|v| v == "skip") {
            return None;
        }
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let schema = format!("test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let mut url =
            std::env::var("PORTCULLIS_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        if let Some(parameter) = url_parameter {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(parameter);
        }
        let settings = StoreConfig {
            backend: StoreBackend::Postgres,
            url,
            schema,
            max_connections: 4,
            ..StoreConfig::default()
        };
        // From here on the schema may exist: drop it however the test ends.
        let guard = DropSchema { url: settings.url.clone(), schema: settings.schema.clone() };
        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_dir = dir.path().to_path_buf();
        let open = |_| async {
            let store = Store::connect(&data_dir, &settings).await?;
            store.migrate_until(until).await?;
            Ok::<_, crate::StoreError>(store)
        };
        let opened = futures_util::future::join_all((0..nodes.max(1)).map(open)).await;
        let mut stores = Vec::with_capacity(opened.len());
        for store in opened {
            match store {
                Ok(store) => stores.push(store),
                Err(e) => panic!(
                    "PostgreSQL for the store tests is not available: {e}\n\
                     Start it (scripts/test.sh does), point PORTCULLIS_TEST_POSTGRES_URL at one, or set \
                     PORTCULLIS_TEST_POSTGRES=skip to run the SQLite half only."
                ),
            }
        }
        let db = TestDb { store: stores[0].clone(), settings, data_dir, _dir: dir, _schema: Some(guard) };
        Some((db, stores))
    }

    /// Another handle on the same database, as a second process or node would have.
    pub async fn open(&self) -> Store {
        Store::open(&self.data_dir, &self.settings).await.expect("opening a second handle")
    }

    pub fn backend(&self) -> StoreBackend {
        self.settings.backend
    }

    pub fn settings(&self) -> &StoreConfig {
        &self.settings
    }

    /// Damage the copied audit trail as an intruder with the store's credentials could (for the tests
    /// that verification sees it).
    pub async fn tamper_audit(&self, tamper: AuditTamper<'_>) {
        let store = &self.store;
        let done = match tamper {
            AuditTamper::SetLine { node, seq, line } => on_pool!(store, |pool| {
                sqlx::query("UPDATE audit_records SET line = $3 WHERE node = $1 AND seq = $2")
                    .bind(node)
                    .bind(seq)
                    .bind(line)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }),
            AuditTamper::Delete { node, seq } => on_pool!(store, |pool| {
                sqlx::query("DELETE FROM audit_records WHERE node = $1 AND seq = $2")
                    .bind(node)
                    .bind(seq)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }),
            AuditTamper::DeleteFrom { node, seq } => on_pool!(store, |pool| {
                sqlx::query("DELETE FROM audit_records WHERE node = $1 AND seq >= $2")
                    .bind(node)
                    .bind(seq)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }),
        };
        assert!(done.expect("tampering with the audit copy") > 0, "nothing to tamper with");
    }
}

/// A change [`TestDb::tamper_audit`] makes to the copied audit trail.
#[derive(Debug, Clone, Copy)]
pub enum AuditTamper<'a> {
    /// Replace the line of `node`'s record `seq` (reordering is two of these, swapping lines).
    SetLine { node: &'a str, seq: i64, line: &'a str },
    /// Remove `node`'s record `seq`.
    Delete { node: &'a str, seq: i64 },
    /// Remove `node`'s records from `seq` on (a truncation).
    DeleteFrom { node: &'a str, seq: i64 },
}

/// A PostgreSQL test schema, dropped with this value.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    /// On a thread of its own: this may run while a failed test unwinds, inside its runtime.
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::query("SELECT set_config('portcullis.schema', $1, false)")
                    .bind(&schema)
                    .execute(&mut conn)
                    .await?;
                // A connection of the test's own pool left in a transaction holds locks the drop
                // waits for, and this thread blocks the test's runtime, which would end it: give up
                // (leaving the schema) instead of hanging the test run.
                sqlx::query("SET lock_timeout = '10s'").execute(&mut conn).await?;
                sqlx::query(
                    "DO $$ BEGIN \
                       EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', current_setting('portcullis.schema')); \
                     END $$",
                )
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.schema);
        }
    }
}
