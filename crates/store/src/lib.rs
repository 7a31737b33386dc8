//! The only SQL in Portcullis: the embedded store, its migrations and its queries.
//!
//! Owns: opening the database named by `[store]` (SQLite in `<data_dir>/portcullis.db`, write-ahead
//! log on), applying the migrations embedded from `migrations/sqlite/` at open, and every query, as
//! typed methods on [`Store`]. Tables so far: the classifier's weights, totals and learned messages
//! ([`weights`]); portal accounts, API tokens, web sessions and login throttling
//! ([`accounts`]). The quarantine index and owners
//! ([`quarantine`]), message tracking ([`tracking`]), per-user sender lists, digest preferences
//! and digest-token marks ([`lists`]).
//! Must not touch: message parsing, features or scoring (callers hand in
//! weight changes and fingerprints, never mail).
//!
//! The queries are written to run unchanged on PostgreSQL (`$1` placeholders, `ON CONFLICT` upserts,
//! no SQLite-only functions), so a PostgreSQL backend can follow with its own migrations directory
//! and its own transaction opener; only [`Store::open`] and `begin_write` know the backend.
//!
//! # Security
//! Nothing here builds SQL from text: every statement is a constant and every value is a bound
//! parameter (sqlx 0.9 accepts only `'static` statements unless told otherwise, and we never do).
//! Callers pass hashes and fingerprints, not message content. The data directory is created 0700 and
//! the database file 0600 when they do not exist yet.

#![forbid(unsafe_code)]

pub mod accounts;
pub mod dashboard;
pub mod lists;
pub mod quarantine;
pub mod tracking;
pub mod weights;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use accounts::{Account, ApiToken, NewAccount, Role, ThrottleScope, WebSession};
pub use dashboard::FlowBucket;
pub use lists::{DigestPrefs, SenderList, SenderListEntry};
pub use quarantine::{ItemFilter, ItemRow, ItemScope, ItemStatus, QuarantineKind};
pub use tracking::{TrackedMessage, TrackingEventRow, TrackingFilter, TrackingScope};
pub use weights::{Class, Kept, LearnItem, LearnOutcome, Totals};

/// The database file inside the data directory.
pub const SQLITE_FILE: &str = "portcullis.db";

/// Why the store could not be opened or a query failed. Every variant says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store.backend `{0}` is not supported (this build has `sqlite`)")]
    Backend(String),
    #[error("cannot create {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: sqlx::Error },
    #[error("cannot migrate the database {path}: {source}")]
    Migrate { path: PathBuf, source: sqlx::migrate::MigrateError },
    #[error("classifier weight bucket {bucket} is corrupt: {why}")]
    Corrupt { bucket: i64, why: &'static str },
    #[error("store query failed while {what}: {source}")]
    Query { what: &'static str, source: sqlx::Error },
}

/// Shorthand for mapping a sqlx error to [`StoreError::Query`] with what was being done.
pub(crate) fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// The embedded database, shared by everything in one process (cheap to clone).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// The store `[store]` names, under `data_dir` (created if missing).
    pub async fn open(data_dir: &Path, settings: &config::StoreConfig) -> Result<Store, StoreError> {
        if settings.backend != "sqlite" {
            return Err(StoreError::Backend(settings.backend.clone()));
        }
        create_private(data_dir)?;
        Store::open_sqlite(&data_dir.join(SQLITE_FILE)).await
    }

    /// Whether the store `[store]` names exists under `data_dir` already (tools that only read, like
    /// `scan`, skip a store that was never created rather than create one). Other backends are
    /// servers: they always "exist", and opening them says whether they can be reached.
    pub fn exists(data_dir: &Path, settings: &config::StoreConfig) -> bool {
        settings.backend != "sqlite" || data_dir.join(SQLITE_FILE).is_file()
    }

    /// A SQLite database file (created if missing, readable by its owner only), in WAL mode, migrated
    /// to the current schema.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable across process crashes; a power cut may lose the last
            // transactions, which for learned weights is acceptable (mail itself is in the spool).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        Store::migrated(pool, path).await
    }

    /// A private in-memory database (for tests and tools); gone when the store is dropped.
    pub async fn in_memory() -> Result<Store, StoreError> {
        let path = Path::new(":memory:");
        let options = SqliteConnectOptions::new().in_memory(true);
        // Each connection to `:memory:` is its own database: keep exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        Store::migrated(pool, path).await
    }

    async fn migrated(pool: SqlitePool, path: &Path) -> Result<Store, StoreError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { path: path.to_path_buf(), source })?;
        Ok(Store { pool })
    }

    /// Wait for queries in flight, then close every connection (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A transaction that holds the write lock from its first statement, so a read inside it (which
    /// messages are learned already) cannot go stale before its writes: `BEGIN IMMEDIATE` on SQLite.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(query_err("starting a write transaction"))
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The data directory, created owner-only (0700) like the gateway creates it, if missing.
fn create_private(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::DataDir { path: dir.to_path_buf(), source })
}

/// An empty database file, owner-only (0600), unless it exists; SQLite gives its `-wal` and `-shm`
/// files the same permissions.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::DataDir { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests;
