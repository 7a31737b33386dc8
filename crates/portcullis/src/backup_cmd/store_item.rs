//! The store in a backup: `store.jsonl`, the store's logical export ([`store::export`]), on SQLite or
//! PostgreSQL alike. Never the database files: a raw SQLite file can carry triggers and views (SQL that
//! runs later), which a restored backup must not be able to plant.
//!
//! - Backup: the export is streamed into a private temporary file beside the archive (hashed and
//!   counted as it is written), then streamed into the archive, so a large quarantine body table is
//!   never all in memory; the file is removed however the backup ends.
//! - Check (`backup --verify` and restore): every line parsed and checked, nothing written.
//! - Restore: imported into the configured store, after every other item is checked: a new
//!   `store/portcullis.db` in the staging directory (SQLite), or the configured PostgreSQL schema, which must
//!   be empty. One transaction: a refused import changes nothing, and the staging directory is not
//!   renamed into place.

use anyhow::Context;
use config::Config;
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The store's path in the archive.
pub(crate) const STORE_EXPORT: &str = "store.jsonl";

/// The store's export in a temporary file, with its size and SHA-256; the file is removed on drop.
pub(crate) struct Exported {
    pub file: File,
    pub size: u64,
    pub sha256: String,
    path: PathBuf,
}

impl Drop for Exported {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: ring::digest::Context,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Export the store `[store]` names into a new private file at `temp` (none when a SQLite store was
/// never created).
pub(crate) fn export(config: &Config, temp: &Path) -> anyhow::Result<Option<Exported>> {
    if !store::Store::exists(&config.data_dir, &config.store) {
        return Ok(None);
    }
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    let mut exported = Exported { file, size: 0, sha256: String::new(), path: temp.to_path_buf() };
    let writer = Hashing {
        inner: BufWriter::new(exported.file.try_clone()?),
        hash: ring::digest::Context::new(&ring::digest::SHA256),
        size: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let writer = runtime.block_on(async {
        let store = store::Store::open(&config.data_dir, &config.store).await?;
        let exported = store.export(writer).await;
        store.close().await;
        anyhow::Ok(exported.context("exporting the store")?.1)
    })?;
    let Hashing { inner, hash, size } = writer;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    exported.size = size;
    exported.sha256 = super::hex(hash.finish().as_ref());
    exported.file.rewind()?;
    Ok(Some(exported))
}

/// Check the store item staged at `path` completely, writing nothing.
pub(crate) fn check(path: &Path) -> anyhow::Result<store::ExportSummary> {
    let input = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    store::verify_export(input).context("the store in the backup")
}

/// Import the checked store item of `staging` into the store `config` names (SQLite: a new database in
/// `staging`), then remove the item. Returns the rows imported.
pub(crate) fn import(config: &Config, staging: &Path) -> anyhow::Result<u64> {
    let item = staging.join(STORE_EXPORT);
    let input = BufReader::new(File::open(&item).with_context(|| format!("opening {}", item.display()))?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(async {
        let store =
            store::Store::open(staging, &config.store).await.context("opening the store to restore into")?;
        let imported = store.import(input).await;
        store.close().await;
        anyhow::Ok(imported.with_context(|| format!("restoring the store into {}", store.describe()))?)
    })?;
    std::fs::remove_file(&item).with_context(|| format!("removing {}", item.display()))?;
    Ok(summary.tables.iter().map(|(_, rows)| rows).sum())
}
