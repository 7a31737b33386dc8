//! The only SQL in Portcullis: the store, its migrations and its queries, on SQLite or PostgreSQL.
//!
//! Owns: opening the database named by `[store]` (SQLite in `<data_dir>/store/portcullis.db`, write-ahead
//! log on; or a PostgreSQL schema shared by every node of a cluster), applying the migrations of
//! `migrations/sqlite/` or `migrations/postgres/` (the same versions, tables and indexes in each
//! dialect) at open and for `portcullis migrate`, and every query, as typed methods on [`Store`].
//! Tables: the classifier's weights, totals, feature version and learned messages ([`weights`]);
//! portal accounts, API tokens, web sessions and login throttling ([`accounts`]); the quarantine index, owners, subject
//! words and bodies ([`quarantine`]); message tracking ([`tracking`]); per-user sender lists, digest preferences and
//! digest-token marks ([`lists`]); dashboard aggregates ([`dashboard`]); the cluster's nodes, their queue-id
//! tags and its queue of release requests ([`cluster`]); every node's copy of its audit trail ([`audit`]).
//! Must not touch: message parsing, features or scoring (callers hand in weight changes and
//! fingerprints, never mail), and the spool.
//!
//! # One query, two databases
//! Every statement is written once, in SQL both databases run the same way: `$n` placeholders,
//! `ON CONFLICT` upserts, `RETURNING`, integers as 64-bit, aggregates cast back to `BIGINT`, text
//! compared byte-wise (PostgreSQL columns are `COLLATE "C"`, like SQLite's `BINARY`), `LIKE` only on
//! lower-cased columns with lower-cased patterns. `on_pool!` and `on_tx!` expand a query's body
//! once per backend (the same SQL text and binds, monomorphised for `Sqlite` and `Postgres`), so the
//! compiler checks both. Only this file knows the backends apart: how to connect, which migrations,
//! and how `Store::begin_write` makes a read-then-write transaction safe (`BEGIN IMMEDIATE` on
//! SQLite; on PostgreSQL a transaction-level advisory lock per kind of such transaction, see
//! `Exclusive`). Single statements that claim something (`UPDATE ... WHERE status = 'held'`,
//! `INSERT ... ON CONFLICT DO NOTHING`, the release queue's `UPDATE ... RETURNING` with its condition
//! repeated) are atomic on both by themselves.
//!
//! Why not `sqlx::Any`: it decodes integers by exact width and has no NUMERIC, takes its connection
//! options from a URL (SQLite's WAL, `busy_timeout` and foreign keys would need hooks after connect),
//! and hides which database a test runs on; two typed pools behind one macro keep one SQL text per
//! query with none of that.
//!
//! # Security
//! Nothing here builds SQL from text: every statement is a constant and every value is a bound
//! parameter (sqlx 0.9 accepts only `'static` statements unless told otherwise, and we never do;
//! the PostgreSQL schema is created by a constant statement that reads its name from a session
//! setting). Callers pass hashes and fingerprints, not message content. The data directory, `store/` and
//! the database file are created with the modes of [`datadir`] (0710, 2770 and 0660: a portal running as
//! its own user in the gateway's group uses the store too), never for others; SQLite gives its `-wal`
//! and `-shm` files the database file's mode. A database at its old place (see [`sqlite_path`]) is never
//! created anew: if it is gone, it was moved ([`relocate`]). A PostgreSQL URL's password never
//! appears in errors or `Debug` output ([`config::StoreConfig::redacted_url`]).

#![forbid(unsafe_code)]

/// Run `$body` with `$pool` bound to the store's pool, expanded once per backend: the same SQL text
/// and binds, compiled for SQLite and for PostgreSQL.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::Pools::Sqlite($pool) => $body,
            $crate::Pools::Postgres($pool) => $body,
        }
    };
}

/// Run `$body` with `$conn` bound to the connection of a [`WriteTx`], expanded once per backend.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::WriteTx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::WriteTx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub mod accounts;
pub mod audit;
pub mod cluster;
pub mod dashboard;
pub mod export;
pub mod lists;
pub mod quarantine;
pub mod relocate;
pub mod tracking;
pub mod weights;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

use config::{StoreBackend, StoreConfig};
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Database, Pool};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use accounts::{Account, ApiToken, NewAccount, Role, ThrottleScope, WebSession};
pub use audit::{AuditCursor, AuditRow};
pub use cluster::{NODE_TAGS, NodeBeat, NodeRow};
pub use dashboard::FlowBucket;
pub use export::{ExportError, ExportSummary, FormatError, verify_export};
pub use lists::{DigestPrefs, SenderList, SenderListEntry};
pub use quarantine::{ItemFilter, ItemRow, ItemScope, ItemStatus, QuarantineKind};
pub use tracking::{TrackedMessage, TrackingEventRow, TrackingFilter, TrackingScope};
pub use weights::{Class, Cleared, Kept, LearnItem, LearnOutcome, Totals};

/// The SQLite store's own directory inside the data directory: a process can be given the store
/// (the database and the write-ahead log files SQLite makes and removes beside it) without the spool.
pub const SQLITE_DIR: &str = "store";
/// The database file inside [`SQLITE_DIR`] (or, in data directories made before it, the data
/// directory itself: see [`sqlite_path`]).
pub const SQLITE_FILE: &str = "portcullis.db";

/// Where the SQLite store of `data_dir` is: `<data_dir>/store/portcullis.db`, or the older
/// `<data_dir>/portcullis.db` while that file exists (the mail plane moves it at start, see
/// [`relocate`], unless another process still has it open).
pub fn sqlite_path(data_dir: &Path) -> std::path::PathBuf {
    let legacy = data_dir.join(SQLITE_FILE);
    if legacy.is_file() { legacy } else { data_dir.join(SQLITE_DIR).join(SQLITE_FILE) }
}

/// SQLite waits this long for another writer (another process on the same file) before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of the SQLite file each connection maps into memory (`PRAGMA mmap_size`): pages are then read
/// from the kernel's page cache in place rather than copied by a `pread` per page into each connection's
/// small private cache, which is what a search's tail latency went on when the machine was busy. The
/// mapping is shared by every connection and is address space, not memory taken; a larger file is read
/// as before past this.
const SQLITE_MMAP_SIZE: u64 = 1 << 30;
/// The table sqlx records applied migrations in (its default), in the store's schema.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";
/// The tables the portal's searches read (quarantine and tracking), whose planner statistics and
/// visibility map [`Store::refresh_statistics`] refreshes on PostgreSQL.
const VACUUM_SEARCHED: &str = "VACUUM (ANALYZE) quarantine_items, quarantine_owners, quarantine_words, \
     tracking_messages, tracking_recipients, tracking_events";

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Why the store could not be opened or a query failed. Every variant says what was being done, and
/// names the database by its path or its URL without the password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot open the database {target}: {source}")]
    Open { target: String, source: sqlx::Error },
    #[error("cannot reach the database {target}: no connection within {after:?} (store.connect_timeout)")]
    Unreachable { target: String, after: Duration },
    #[error("cannot migrate the database {target}: {source}")]
    Migrate { target: String, source: MigrateError },
    #[error("classifier weight bucket {bucket} is corrupt: {why}")]
    Corrupt { bucket: i64, why: &'static str },
    /// Learning into a model learned in another feature space (0: before versions were recorded).
    #[error("the classifier model was learned in feature version {stored}, not {expected}")]
    FeatureVersion { stored: u32, expected: u32 },
    /// Every queue-id tag is held by another node ([`cluster::NODE_TAGS`] of them).
    #[error(
        "node {node} cannot start: all {} queue-id tags are held by other nodes known to the store. Forget \
         the nodes that are gone for good (admin console, Nodes, Forget), then start it again",
        cluster::NODE_TAGS
    )]
    NodeTagsFull { node: String },
    /// This node's queue-id tag is held by another node: this one was forgotten while it ran (it had
    /// been silent past `cluster.node_stale_after`) and a new node claimed the freed tag.
    #[error(
        "node {node}'s queue-id tag {tag} is now held by another node (this node was forgotten while it \
         ran): it must stop minting queue ids under that tag. Start it again to get a free tag"
    )]
    NodeTagTaken { node: String, tag: u16 },
    /// The store holds a tag outside `0..NODE_TAGS` for a node (its `nodes` table was edited by hand).
    #[error("the store gives node {node} the queue-id tag {tag}, outside 0..{}", cluster::NODE_TAGS)]
    BadNodeTag { node: String, tag: i64 },
    #[error("store query failed while {what}: {source}")]
    Query { what: &'static str, source: sqlx::Error },
    #[error(
        "a SQLite store at its old place {old} and another at {new}: Portcullis will not choose between \
         them. Keep the one holding your accounts and quarantine, move the other out of the data \
         directory, and start again"
    )]
    TwoStores { old: PathBuf, new: PathBuf },
    #[error(
        "{path} is a symbolic link: the SQLite database and the files SQLite keeps beside it must be files \
         of their own (whoever can write the store's directory may have planted it to make the gateway \
         write elsewhere). Remove it, check the data directory with `portcullis doctor`, and start again"
    )]
    Link { path: PathBuf },
    #[error("cannot move the store from {from} to {to} (they must be on one file system): {source}")]
    Relocate { from: PathBuf, to: PathBuf, source: std::io::Error },
}

/// Shorthand for mapping a sqlx error to [`StoreError::Query`] with what was being done.
pub(crate) fn query_err(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { what, source }
}

/// The pool of the backend in use.
#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction on the backend in use (see [`Store::begin_write`]); dropped without
/// [`WriteTx::commit`], it rolls back, but only when the pool gets round to it: a path that decides
/// not to write calls [`WriteTx::rollback`], so the connection does not sit idle in its transaction
/// holding locks (a `DROP SCHEMA` or another node's writer would wait on them).
pub(crate) enum WriteTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl WriteTx {
    pub(crate) async fn commit(self, what: &'static str) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => tx.commit().await,
            WriteTx::Postgres(tx) => tx.commit().await,
        }
        .map_err(query_err(what))
    }

    pub(crate) async fn rollback(self, what: &'static str) -> Result<(), StoreError> {
        match self {
            WriteTx::Sqlite(tx) => tx.rollback().await,
            WriteTx::Postgres(tx) => tx.rollback().await,
        }
        .map_err(query_err(what))
    }
}

/// Which read-then-write sequence a write transaction runs, when it must run alone across every
/// process and node: on PostgreSQL each kind takes its own transaction-level advisory lock (released
/// at commit or rollback), so two nodes learning at once cannot both find a message unlearned.
/// SQLite's `BEGIN IMMEDIATE` already makes every write transaction run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exclusive {
    /// Inserts and updates that are safe side by side (`ON CONFLICT`, conditional updates).
    No,
    /// Learning: which messages are learned, the kept features and the weight buckets are read, then
    /// written ([`weights`]).
    Learning,
    /// Replacing an account's owned addresses (delete, then insert).
    AccountAddresses,
    /// Giving a node a queue-id tag: which tags are held is read, then one is written ([`cluster`]).
    NodeTags,
}

impl Exclusive {
    /// The advisory lock key: "pcl" and a number, so it is recognisable in `pg_locks`.
    fn lock_key(self) -> Option<i64> {
        const BASE: i64 = 0x70_636c_0000_0000;
        match self {
            Exclusive::No => None,
            Exclusive::Learning => Some(BASE + 1),
            Exclusive::AccountAddresses => Some(BASE + 2),
            Exclusive::NodeTags => Some(BASE + 3),
        }
    }
}

/// A migration, as `portcullis migrate` reports it applied and `doctor` reports it pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStep {
    pub version: i64,
    pub description: String,
}

/// The store, shared by everything in one process (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    /// The database file, or the URL (password redacted) and schema: for errors and `Debug`.
    target: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("target", &self.target).finish_non_exhaustive()
    }
}

impl Store {
    /// The store `[store]` names (under `data_dir` for SQLite, created if missing), migrated to the
    /// current schema.
    pub async fn open(data_dir: &Path, settings: &StoreConfig) -> Result<Store, StoreError> {
        let store = Store::connect(data_dir, settings).await?;
        store.apply_migrations().await?;
        Ok(store)
    }

    /// The store `[store]` names as it is, without applying migrations: for tools that only look
    /// (`doctor`) and must not change the schema. A query of what a pending migration adds fails. A
    /// SQLite file is created if missing (callers check [`Store::exists`] first).
    pub async fn open_unmigrated(data_dir: &Path, settings: &StoreConfig) -> Result<Store, StoreError> {
        Store::connect(data_dir, settings).await
    }

    /// Open the store `[store]` names, apply the migrations it lacks, and close it: what
    /// `portcullis migrate` does. Returns the migrations applied now (empty: it was up to date).
    pub async fn migrate(data_dir: &Path, settings: &StoreConfig) -> Result<Vec<MigrationStep>, StoreError> {
        let store = Store::connect(data_dir, settings).await?;
        let applied = store.apply_migrations().await;
        store.close().await;
        applied
    }

    /// The migrations the store `[store]` names lacks, without applying them (for `doctor`). A SQLite
    /// file is created if missing (callers check [`Store::exists`] first), a PostgreSQL schema too.
    pub async fn pending_migrations(
        data_dir: &Path,
        settings: &StoreConfig,
    ) -> Result<Vec<MigrationStep>, StoreError> {
        let store = Store::connect(data_dir, settings).await?;
        let pending = match &store.pools {
            Pools::Sqlite(pool) => pending_migrations(&SQLITE_MIGRATIONS, pool).await,
            Pools::Postgres(pool) => pending_migrations(&POSTGRES_MIGRATIONS, pool).await,
        };
        store.close().await;
        pending.map_err(|source| StoreError::Migrate { target: store.target.clone(), source })
    }

    /// Whether the store `[store]` names may hold anything: tools that only read (like `scan`) skip a
    /// SQLite store that was never created rather than create one. A PostgreSQL store is a server:
    /// it always counts as existing, and opening it says whether it can be reached.
    pub fn exists(data_dir: &Path, settings: &StoreConfig) -> bool {
        match settings.backend {
            StoreBackend::Sqlite => sqlite_path(data_dir).is_file(),
            StoreBackend::Postgres => true,
        }
    }

    /// The backend and where it is (path, or URL without password and schema), for `doctor` and logs.
    pub fn describe(&self) -> &str {
        &self.target
    }

    async fn connect(data_dir: &Path, settings: &StoreConfig) -> Result<Store, StoreError> {
        match settings.backend {
            StoreBackend::Sqlite => {
                create_dir(data_dir, datadir::Sharing::Pass)?;
                let path = sqlite_path(data_dir);
                // At its old place the database exists, or was just moved: never make an empty one there.
                let old_place = path.parent() == Some(data_dir);
                if !old_place {
                    create_dir(&data_dir.join(SQLITE_DIR), datadir::Sharing::GroupWrite)?;
                    create_database_file(&path)?;
                }
                Store::connect_sqlite(&path, settings, !old_place).await
            }
            StoreBackend::Postgres => Store::connect_postgres(settings).await,
        }
    }

    /// A SQLite database file (created if missing, 0660 like the store's), in WAL mode, migrated to the
    /// current schema, with the default pool settings.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        create_database_file(path)?;
        let store = Store::connect_sqlite(path, &StoreConfig::default(), true).await?;
        store.apply_migrations().await?;
        Ok(store)
    }

    async fn connect_sqlite(path: &Path, settings: &StoreConfig, create: bool) -> Result<Store, StoreError> {
        refuse_links(path)?;
        let target = format!("sqlite {}", path.display());
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL is durable across process crashes; a power cut may lose the last
            // transactions, which for learned weights is acceptable (mail itself is in the spool).
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout.get())
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { target: target.clone(), source })?;
        Ok(Store { pools: Pools::Sqlite(pool), target })
    }

    /// A private in-memory SQLite database (for tests and tools), migrated; gone when the store is
    /// dropped.
    pub async fn in_memory() -> Result<Store, StoreError> {
        let target = "sqlite :memory:".to_string();
        let options = SqliteConnectOptions::new().in_memory(true).foreign_keys(true);
        // Each connection to `:memory:` is its own database: keep exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open { target: target.clone(), source })?;
        let store = Store { pools: Pools::Sqlite(pool), target };
        store.apply_migrations().await?;
        Ok(store)
    }

    /// The PostgreSQL schema `[store]` names, created if missing. One connection is made first,
    /// bounded by `store.connect_timeout`, so an unreachable server fails the open promptly; the pool
    /// then connects as queries need it, each connection with its `search_path` set to the schema and
    /// `jit` off: the store's statements are short index walks, and a generic plan estimated above
    /// `jit_above_cost` (it cannot fold `$n IS NULL`) would spend 30+ ms compiling one (measured at
    /// 1,000,000 items, bench/RESULTS-cluster.md).
    async fn connect_postgres(settings: &StoreConfig) -> Result<Store, StoreError> {
        let target = format!("postgres {} schema {}", settings.redacted_url(), settings.schema);
        let open_err = |source| StoreError::Open { target: target.clone(), source };
        let options: PgConnectOptions = settings.url.parse().map_err(open_err)?;
        let options = options
            .application_name("portcullis")
            .options([("search_path", settings.schema.as_str()), ("jit", "off")]);
        let after = settings.connect_timeout.get();
        let setup = async {
            let mut conn = PgConnection::connect_with(&options).await?;
            create_schema(&mut conn, &settings.schema).await?;
            conn.close().await
        };
        tokio::time::timeout(after, setup)
            .await
            .map_err(|_| StoreError::Unreachable { target: target.clone(), after })?
            .map_err(open_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .min_connections(settings.min_connections)
            .acquire_timeout(settings.acquire_timeout.get())
            .connect_lazy_with(options);
        Ok(Store { pools: Pools::Postgres(pool), target })
    }

    /// Apply the migrations this database lacks; returns them (empty: it was up to date). Several
    /// nodes opening one PostgreSQL database at once take turns: sqlx's migrator holds
    /// `pg_advisory_lock` (keyed by the database) from before it reads what is applied until it has
    /// applied the rest. A SQLite file belongs to one node. Then the data a migration cannot derive in
    /// SQL is filled in: the subject words of quarantine items stored before the word index
    /// ([`Store::index_pending_subject_words`], resumable, idempotent).
    pub async fn apply_migrations(&self) -> Result<Vec<MigrationStep>, StoreError> {
        let applied = match &self.pools {
            Pools::Sqlite(pool) => run_migrations(&SQLITE_MIGRATIONS, pool).await,
            Pools::Postgres(pool) => run_migrations(&POSTGRES_MIGRATIONS, pool).await,
        };
        let applied =
            applied.map_err(|source| StoreError::Migrate { target: self.target.clone(), source })?;
        let backfilled = self.index_pending_subject_words().await?;
        if !applied.is_empty() || backfilled > 0 {
            self.refresh_statistics().await?;
        }
        Ok(applied)
    }

    /// Refresh PostgreSQL's planner statistics and visibility map of the tables the portal searches
    /// (quarantine and tracking) with `VACUUM (ANALYZE)`. Autovacuum normally keeps them fresh; this is
    /// done after bulk changes the store makes itself (migrations, the word backfill, a restore), and
    /// is what keeps searches on their indexes on a server whose autovacuum is off (which `portcullis
    /// doctor` reports): without statistics PostgreSQL plans every search as if the tables were nearly
    /// empty, and sorts a million rows for a page of fifty; without the visibility map (set by VACUUM
    /// only) every index-only scan (a user's items, the word checks) also reads each row's table page,
    /// which doubled a user's subject search at 1,000,000 items (bench/RESULTS-cluster.md). SQLite:
    /// nothing (its plans for these searches do not depend on statistics; tested).
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        if let Pools::Postgres(pool) = &self.pools {
            sqlx::query(VACUUM_SEARCHED)
                .execute(pool)
                .await
                .map_err(query_err("refreshing the planner's statistics (VACUUM (ANALYZE))"))?;
        }
        Ok(())
    }

    /// Whether the PostgreSQL server behind `[store]` runs without autovacuum (`Some(true)`), so nothing
    /// refreshes the planner's statistics between the store's own [`Store::refresh_statistics`];
    /// `None` for SQLite.
    pub async fn autovacuum_off(data_dir: &Path, settings: &StoreConfig) -> Result<Option<bool>, StoreError> {
        if settings.backend != StoreBackend::Postgres {
            return Ok(None);
        }
        let store = Store::connect(data_dir, settings).await?;
        let setting: Result<(String,), _> = on_pool!(store, |pool| {
            sqlx::query_as("SELECT current_setting('autovacuum')").fetch_one(pool).await
        });
        store.close().await;
        let (value,) = setting.map_err(query_err("reading the server's autovacuum setting"))?;
        Ok(Some(value != "on"))
    }

    /// Apply the migrations up to `until` only (all of them: `None`, as [`Store::apply_migrations`]):
    /// for tests of what a migration does to the data of a store made before it.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) async fn migrate_until(&self, until: Option<i64>) -> Result<(), StoreError> {
        let Some(until) = until else { return self.apply_migrations().await.map(drop) };
        match &self.pools {
            Pools::Sqlite(pool) => SQLITE_MIGRATIONS.run_to(until, pool).await,
            Pools::Postgres(pool) => POSTGRES_MIGRATIONS.run_to(until, pool).await,
        }
        .map_err(|source| StoreError::Migrate { target: self.target.clone(), source })
    }

    /// Wait for queries in flight, then close every connection (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// A transaction for a read-then-write sequence: `BEGIN IMMEDIATE` on SQLite (it holds the write
    /// lock from its first statement, so a read inside it cannot go stale before its writes); on
    /// PostgreSQL a plain (read committed) transaction that first takes the advisory lock of
    /// `alone`, if any. Callers whose statements are each atomic pass [`Exclusive::No`].
    pub(crate) async fn begin_write(&self, alone: Exclusive) -> Result<WriteTx, StoreError> {
        let begin = query_err("starting a write transaction");
        match &self.pools {
            Pools::Sqlite(pool) => {
                Ok(WriteTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await.map_err(begin)?))
            }
            Pools::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(begin)?;
                if let Some(key) = alone.lock_key() {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(query_err("waiting for the store's write lock"))?;
                }
                Ok(WriteTx::Postgres(tx))
            }
        }
    }

    /// The SQLite pool, for tests that look at SQLite itself (pragmas, query plans).
    #[cfg(test)]
    pub(crate) fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pools {
            Pools::Sqlite(pool) => Some(pool),
            Pools::Postgres(_) => None,
        }
    }
}

/// Create `schema` unless it exists (a role without the right to create schemas can still use one
/// made for it). The name travels in a session setting, so the statement stays a constant; two
/// nodes creating it at once are fine.
async fn create_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('portcullis.schema', $1, false)").bind(schema).execute(&mut *conn).await?;
    sqlx::query(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = current_setting('portcullis.schema')) THEN \
             EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', current_setting('portcullis.schema')); \
           END IF; \
         EXCEPTION WHEN duplicate_schema OR unique_violation THEN NULL; \
         END $$",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Run `migrator` on `pool`; returns the migrations that were not applied before.
async fn run_migrations<DB: Database>(
    migrator: &Migrator,
    pool: &Pool<DB>,
) -> Result<Vec<MigrationStep>, MigrateError>
where
    DB::Connection: Migrate,
{
    under_migration_lock(migrator, pool, true).await
}

/// The migrations of `migrator` that `pool`'s database has not applied.
async fn pending_migrations<DB: Database>(
    migrator: &Migrator,
    pool: &Pool<DB>,
) -> Result<Vec<MigrationStep>, MigrateError>
where
    DB::Connection: Migrate,
{
    under_migration_lock(migrator, pool, false).await
}

/// What `migrator` has not applied yet, and (with `apply`) apply it, all under the migrator's lock
/// (PostgreSQL: a session advisory lock, which sqlx's own run takes again, re-entrantly): reading the
/// migrations table outside it would race a node creating that table. A connection whose work failed
/// is closed rather than pooled, which releases any lock it still holds.
async fn under_migration_lock<DB: Database>(
    migrator: &Migrator,
    pool: &Pool<DB>,
    apply: bool,
) -> Result<Vec<MigrationStep>, MigrateError>
where
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await?;
    let done = async {
        conn.lock().await?;
        let missing = missing_on(migrator, &mut *conn).await?;
        if apply {
            migrator.run_direct(None, &mut *conn, false).await?;
        }
        conn.unlock().await?;
        Ok(missing)
    }
    .await;
    if done.is_err() {
        conn.close_on_drop();
    }
    done
}

async fn missing_on<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
) -> Result<Vec<MigrationStep>, MigrateError> {
    conn.ensure_migrations_table(MIGRATIONS_TABLE).await?;
    let applied: Vec<i64> =
        conn.list_applied_migrations(MIGRATIONS_TABLE).await?.into_iter().map(|m| m.version).collect();
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| MigrationStep { version: m.version, description: m.description.to_string() })
        .collect())
}

/// The directory `dir` with the mode `sharing` gives it (see [`datadir`]), if missing.
fn create_dir(dir: &Path, sharing: datadir::Sharing) -> Result<(), StoreError> {
    datadir::create_dir(dir, sharing)
        .map_err(|source| StoreError::DataDir { path: dir.to_path_buf(), source })
}

/// An empty database file, 0660 (the store is shared with a portal running as its own user), unless
/// it exists; SQLite gives its `-wal` and `-shm` files the same mode.
/// What SQLite appends to a database's name for the files it keeps beside it (the database itself: "").
const SQLITE_FILES: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// Refuse a database that is, or whose write-ahead log, shared-memory index or rollback journal is, a
/// symbolic link. SQLite follows links when it opens these files, and the store's directory is writable
/// by the portal's group ([`datadir`]): a link planted there while the store is closed would make the
/// mail plane write its log into any file it can reach (a queue file, a key). None of them is ever a
/// link of Portcullis's making, so one is refused, not followed or silently removed.
fn refuse_links(path: &Path) -> Result<(), StoreError> {
    for suffix in SQLITE_FILES {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(StoreError::Link { path: file });
        }
    }
    Ok(())
}

fn create_database_file(path: &Path) -> Result<(), StoreError> {
    match datadir::open_file(path, datadir::Sharing::GroupWrite, datadir::Open::New) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::DataDir { path: path.to_path_buf(), source }),
    }
}

#[cfg(test)]
mod tests;
