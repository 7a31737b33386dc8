//! Moving a SQLite store made before the store had its own directory (`<data_dir>/portcullis.db`) into
//! `<data_dir>/store/`, where the portal's sandbox and its Unix user can be given the store without the
//! rest of the data directory. The mail plane does it at start ([`move_legacy_sqlite`]), and so does
//! `portcullis migrate`.
//!
//! The move is one `rename` of one file. The database is first made whole: a single connection takes it
//! out of write-ahead-log mode (`PRAGMA journal_mode = DELETE` checkpoints the log into the database and
//! removes the `-wal` and `-shm` files). SQLite refuses that while any other connection has the database
//! open, since every connection in WAL mode holds a shared lock on it; that is how a process still using
//! the old place (a portal started before) is noticed, and the store is then left where it is for the
//! next start. The next open puts the database back in WAL mode. A crash at any point leaves the whole
//! store at one place or the other, never both, never half.

use crate::{SQLITE_DIR, SQLITE_FILE, StoreError};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the move waits for the old database to be free before leaving it for the next start.
const BUSY_WAIT: Duration = Duration::from_secs(2);
/// The files SQLite may keep beside a database.
const SIDE_FILES: &[&str] = &["-wal", "-shm", "-journal"];

/// What [`move_legacy_sqlite`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relocation {
    /// No store at the old place.
    NotNeeded,
    /// The store was moved.
    Moved { from: PathBuf, to: PathBuf },
    /// Another process has the database at the old place open, or it still has a journal beside it
    /// after being made whole: left there (and used there) until a later start.
    Busy { path: PathBuf },
}

/// Move the store at `<data_dir>/portcullis.db` into `<data_dir>/store/` (see the module docs). A
/// database in both places is an error: Portcullis will not choose between them.
pub async fn move_legacy_sqlite(data_dir: &Path) -> Result<Relocation, StoreError> {
    let from = data_dir.join(SQLITE_FILE);
    if !from.is_file() {
        return Ok(Relocation::NotNeeded);
    }
    let dir = data_dir.join(SQLITE_DIR);
    let to = dir.join(SQLITE_FILE);
    if let Some(found) = std::iter::once(to.clone()).chain(side_files(&to)).find(|p| p.exists()) {
        return Err(StoreError::TwoStores { old: from, new: found });
    }
    if !make_whole(&from).await? {
        return Ok(Relocation::Busy { path: from });
    }
    for side in side_files(&from) {
        match std::fs::metadata(&side) {
            // An empty log or a wal-index holds nothing of the store.
            Ok(m) if m.len() == 0 || side.to_string_lossy().ends_with("-shm") => {
                std::fs::remove_file(&side).map_err(relocate_err(&side, &to))?;
            }
            Ok(_) => return Ok(Relocation::Busy { path: from }),
            Err(_) => {}
        }
    }
    datadir::create_dir(&dir, datadir::Sharing::GroupWrite)
        .map_err(|source| StoreError::DataDir { path: dir.clone(), source })?;
    std::fs::rename(&from, &to).map_err(relocate_err(&from, &to))?;
    for synced in [dir.as_path(), data_dir] {
        std::fs::File::open(synced).and_then(|d| d.sync_all()).map_err(relocate_err(&from, &to))?;
    }
    datadir::share(&to, datadir::Sharing::GroupWrite)
        .map_err(|source| StoreError::DataDir { path: to.clone(), source })?;
    Ok(Relocation::Moved { from, to })
}

fn side_files(db: &Path) -> Vec<PathBuf> {
    SIDE_FILES.iter().map(|s| PathBuf::from(format!("{}{s}", db.display()))).collect()
}

fn relocate_err<'a>(from: &'a Path, to: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Relocate { from: from.to_path_buf(), to: to.to_path_buf(), source }
}

/// Take the database out of WAL mode in a connection of its own: true when it is now one whole file,
/// false when another connection has it open.
async fn make_whole(path: &Path) -> Result<bool, StoreError> {
    let target = format!("sqlite {}", path.display());
    let options = SqliteConnectOptions::new().filename(path).create_if_missing(false).busy_timeout(BUSY_WAIT);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|source| StoreError::Open { target: target.clone(), source })?;
    let mode: Result<(String,), sqlx::Error> =
        sqlx::query_as("PRAGMA journal_mode = DELETE").fetch_one(&mut conn).await;
    conn.close().await.map_err(|source| StoreError::Open { target, source })?;
    match mode {
        Ok((mode,)) => Ok(mode.eq_ignore_ascii_case("delete")),
        Err(e) if is_busy(&e) => Ok(false),
        Err(source) => Err(StoreError::Query { what: "making the store at its old place whole", source }),
    }
}

/// `SQLITE_BUSY` or `SQLITE_LOCKED`, extended codes included.
fn is_busy(e: &sqlx::Error) -> bool {
    let code = e.as_database_error().and_then(|d| d.code()).and_then(|c| c.parse::<i32>().ok());
    matches!(code.map(|c| c & 0xff), Some(5 | 6))
}
