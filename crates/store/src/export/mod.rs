//! The store as data: a logical, typed export of every table the store owns, and its import into a
//! fresh store of either backend. Backups carry this (never the database files), and it is how a site
//! moves from SQLite to a PostgreSQL cluster (export, then import into the new schema).
//!
//! Owns: the fixed list of exported tables and their typed columns ([`tables`]), the line format and
//! its checks ([`format`]), and reading and writing the rows on both backends. Must not touch: the
//! schema (migrations create it; the import only fills a freshly migrated store), or anything outside
//! the store (the backup archive around an export belongs to the binary).
//!
//! - [`Store::export`] reads every table in ONE consistent snapshot (a read transaction on SQLite in
//!   WAL mode; `REPEATABLE READ, READ ONLY` on PostgreSQL) while the gateway keeps writing, streaming
//!   row by row to a writer, so a large quarantine body table is never all in memory.
//! - [`Store::import`] fills a freshly migrated, empty store (a table holding data is refused by
//!   name), checking every line before its row is inserted, all in one transaction: a bad export
//!   leaves the target as it was. The export's schema version must be this binary's. On PostgreSQL
//!   the tables are locked against writers meanwhile and identity sequences move past the imported ids.
//! - [`verify_export`] checks an export completely without a database (`backup --verify`).
//!
//! # Security
//! An export being imported is untrusted: it may come from a backup server an attacker reached. It is
//! data only: there is no place in the format for SQL text, a trigger, a view or a table or column
//! that is not in the fixed list, and every value is bound as a parameter of a constant statement.
//! Sizes are bounded before anything is parsed ([`format`]).

mod format;
mod tables;

#[cfg(test)]
mod tests;

pub use format::{ExportSummary, FormatError};

use crate::{Pools, Store, StoreError, WriteTx, query_err};
use format::{Event, Reader, Value, Writer};
use futures_util::TryStreamExt;
use sqlx::Row;
use std::io::{BufRead, Write};
use tables::{Kind, TABLES, Table};

/// Why an export or an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot write the store export: {0}")]
    Write(#[source] std::io::Error),
    #[error(
        "the store is at migration {store}, this binary's schema is {binary}: run `portcullis migrate` \
         (or export with the binary that matches the store)"
    )]
    StoreVersion { store: i64, binary: i64 },
    #[error("cannot export table {table}: {source}")]
    Read { table: &'static str, source: sqlx::Error },
    #[error("store export line {line}: the database refused the row for table {table}: {source}")]
    Rejected { line: u64, table: &'static str, source: sqlx::Error },
    #[error("the target store is not empty: table {table} holds data (import only into a fresh store)")]
    NotEmpty { table: &'static str },
}

/// The schema version this binary creates and reads: its highest migration (the same on both backends).
pub fn schema_version() -> i64 {
    crate::SQLITE_MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Check an export completely (every line parsed, every value checked, counts and checksum) without
/// writing anything.
pub fn verify_export(input: impl BufRead) -> Result<ExportSummary, FormatError> {
    Reader::open(input, schema_version())?.check_all()
}

/// The highest migration applied, read inside the export's snapshot.
const APPLIED_VERSION: &str =
    "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM _sqlx_migrations WHERE success";

impl Store {
    /// Write every table of the store to `out`, from one consistent snapshot, in the line format of
    /// [`format`]; returns the schema version, row counts and checksum written.
    pub async fn export<W: Write>(&self, out: W) -> Result<(ExportSummary, W), ExportError> {
        let begin = query_err("starting the export's read snapshot");
        let mut tx = match &self.pools {
            // The snapshot starts at the first read and holds until the transaction ends (WAL mode).
            Pools::Sqlite(pool) => WriteTx::Sqlite(pool.begin().await.map_err(begin)?),
            Pools::Postgres(pool) => WriteTx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(begin)?,
            ),
        };
        let version: i64 =
            on_tx!(&mut tx, |conn| sqlx::query_scalar(APPLIED_VERSION).fetch_one(&mut *conn).await)
                .map_err(query_err("reading the store's schema version"))?;
        if version != schema_version() {
            return Err(ExportError::StoreVersion { store: version, binary: schema_version() });
        }
        let mut writer = Writer::start(out, version).map_err(ExportError::Write)?;
        for table in TABLES {
            writer.table(table).map_err(ExportError::Write)?;
            on_tx!(&mut tx, |conn| {
                let mut rows = sqlx::query(table.select).fetch(&mut *conn);
                while let Some(row) =
                    rows.try_next().await.map_err(|source| ExportError::Read { table: table.name, source })?
                {
                    let mut values = Vec::with_capacity(table.columns.len());
                    for (i, column) in table.columns.iter().enumerate() {
                        let value = match column.kind {
                            Kind::Int => row.try_get(i).map(Value::Int),
                            Kind::Real => row.try_get(i).map(Value::Real),
                            Kind::Text(_) => row.try_get(i).map(Value::Text),
                            Kind::Blob(_) => row.try_get(i).map(Value::Blob),
                        };
                        values.push(value.map_err(|source| ExportError::Read { table: table.name, source })?);
                    }
                    writer.row(&values).map_err(ExportError::Write)?;
                }
            });
        }
        tx.commit("ending the export's read snapshot").await?;
        writer.finish().map_err(ExportError::Write)
    }

    /// Fill this store, freshly migrated and empty, from an export, in one transaction: every line is
    /// checked before its row is inserted, and any refusal or failure rolls everything back.
    pub async fn import(&self, input: impl BufRead) -> Result<ExportSummary, ExportError> {
        let mut reader = Reader::open(input, schema_version())?;
        let mut tx = self.begin_write(crate::Exclusive::No).await?;
        match import_into(&mut tx, &mut reader).await {
            Ok(summary) => {
                tx.commit("committing the import").await?;
                // A whole store's rows at once: what autovacuum would notice later, noticed now.
                self.refresh_statistics().await?;
                Ok(summary)
            }
            Err(e) => {
                // At once, not when the pooled connection is next used: its table locks go with it.
                let rolled_back = match tx {
                    WriteTx::Sqlite(tx) => tx.rollback().await,
                    WriteTx::Postgres(tx) => tx.rollback().await,
                };
                rolled_back.map_err(query_err("rolling back a refused import"))?;
                Err(e)
            }
        }
    }
}

/// Check that the target is empty, then insert every row `reader` gives, inside `tx`.
async fn import_into<R: BufRead>(
    tx: &mut WriteTx,
    reader: &mut Reader<R>,
) -> Result<ExportSummary, ExportError> {
    if let WriteTx::Postgres(conn) = tx {
        for table in TABLES {
            sqlx::query(table.lock)
                .execute(&mut **conn)
                .await
                .map_err(query_err("locking the tables to import into"))?;
        }
    }
    for table in TABLES {
        let occupied: i64 =
            on_tx!(&mut *tx, |conn| sqlx::query_scalar(table.occupied).fetch_one(&mut *conn).await)
                .map_err(query_err("checking that the import target is empty"))?;
        if occupied > 0 {
            return Err(ExportError::NotEmpty { table: table.name });
        }
    }
    let summary = loop {
        match reader.next()? {
            Some(Event::Table(table)) => clear_seeded(tx, table).await?,
            Some(Event::Row(table, values)) => insert(tx, table, values)
                .await
                .map_err(|source| ExportError::Rejected { line: reader.line(), table: table.name, source })?,
            Some(Event::End(summary)) => break summary,
            None => unreachable!("the reader returns the end line before None"),
        }
    };
    if let WriteTx::Postgres(conn) = tx {
        for statement in TABLES.iter().filter_map(|t| t.reset_identity) {
            sqlx::query(statement)
                .execute(&mut **conn)
                .await
                .map_err(query_err("moving identity sequences past the imported ids"))?;
        }
    }
    Ok(summary)
}

/// Remove the row the migrations seed in `table`, if any (the export carries that row).
async fn clear_seeded(tx: &mut WriteTx, table: &Table) -> Result<(), StoreError> {
    if let Some(statement) = table.clear {
        on_tx!(tx, |conn| sqlx::query(statement).execute(&mut *conn).await.map(|_| ()))
            .map_err(query_err("clearing a seeded table before importing it"))?;
    }
    Ok(())
}

/// Insert one checked row, each value bound with its column's type.
async fn insert(tx: &mut WriteTx, table: &Table, values: Vec<Value>) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| {
        let mut query = sqlx::query(table.insert);
        for value in values {
            query = match value {
                Value::Int(v) => query.bind(v),
                Value::Real(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Blob(v) => query.bind(v),
            };
        }
        query.execute(&mut *conn).await.map(|_| ())
    })
}
