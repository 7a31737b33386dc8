//! `portcullis backup` and `portcullis restore`: one archive of everything a gateway needs to be
//! rebuilt, taken while it runs; restored onto a fresh data directory only after every item checked.
//!
//! The archive is tar (optionally encrypted: [`crypto`]), holding the configuration file in use
//! (`config/portcullis.toml`), local rules, the spool's `active/` and `quarantine/` queues, local
//! mailboxes, the audit log, checkpoints and forward cursor, the keys (audit signing key, the
//! self-signed TLS key), the store as data (`store.jsonl`, on SQLite or PostgreSQL alike:
//! [`store_item`]), and last a manifest with the size and SHA-256 of every item. What may be in it is
//! the [`schema`]: data only. Archives of older versions that hold the store's SQLite files
//! (`portcullis.db`) are refused, not converted: restore them with the version that made them.
//!
//! Restore writes into a new directory beside the target, checks everything there ([`extract`]),
//! imports the store (a new SQLite database in that directory, or the configured PostgreSQL schema,
//! which must be empty; one transaction) and only then renames it into place, so a refused archive
//! changes nothing. The restored audit log gets a `backup.restore` record, signed with the restored key.
//!
//! # Security
//! An archive is untrusted input (it may have been swapped on the backup server). Paths are checked
//! component by component against what Portcullis writes, never joined blindly; links, devices,
//! executables, unknown files and oversize entries are refused; sizes are bounded before reading; the
//! encryption header's Argon2 costs are bounded.

mod collect;
mod crypto;
mod extract;
pub(crate) mod schema;
mod store_item;

use crate::ConfigSource;
use anyhow::{Context, bail};
use audit::{Action, Actor, Event};
use config::Config;
use schema::{Item, Manifest};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct BackupArgs {
    /// Write the archive here (a new file, mode 0600).
    #[arg(long, value_name = "FILE", required_unless_present = "verify", conflicts_with = "verify")]
    out: Option<PathBuf>,
    /// Check this archive without restoring it.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
    /// Encrypt (or, with --verify, decrypt) with the passphrase in this file.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The archive.
    file: PathBuf,
    /// The data directory to restore into (must not exist or be empty); default: `data_dir`.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The passphrase of an encrypted archive.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Either a plain or an encrypting sink for the tar stream.
enum Sink {
    Plain(BufWriter<File>),
    Encrypted(Box<crypto::EncryptWriter<BufWriter<File>>>),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(b),
            Sink::Encrypted(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Encrypted(w) => w.flush(),
        }
    }
}

impl Sink {
    fn finish(self) -> std::io::Result<File> {
        let w = match self {
            Sink::Plain(w) => w,
            Sink::Encrypted(w) => w.finish()?,
        };
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file)
    }
}

pub(crate) fn backup(config: &Config, source: &ConfigSource, args: BackupArgs) -> anyhow::Result<ExitCode> {
    if let Some(archive) = &args.verify {
        return verify(archive, args.passphrase_file.as_deref());
    }
    let out = args.out.expect("clap requires --out without --verify");
    let passphrase = args.passphrase_file.as_deref().map(crypto::read_passphrase).transpose()?;
    let file = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&out)
        .with_context(|| format!("creating {}", out.display()))?;
    let mut temp = out.clone().into_os_string();
    temp.push(".store.tmp");
    let written = write_archive(config, source, file, Path::new(&temp), passphrase.as_deref());
    let manifest = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&out);
            return Err(e);
        }
    };
    let digest = audit::sha256_hex(&std::fs::read(&out)?);
    let event = Event::new(Action::BackupCreate, Actor::cli())
        .target(out.display().to_string())
        .detail("items", manifest.items.len().to_string())
        .detail("sha256", &digest)
        .detail("encrypted", passphrase.is_some().to_string())
        .detail("audit_head_seq", manifest.audit_head_seq.to_string());
    crate::audit_cmd::record_cli(config, event)?;
    println!(
        "backup written to {}: {} items, sha256 {digest}{}",
        out.display(),
        manifest.items.len(),
        if passphrase.is_some() { ", encrypted" } else { "" }
    );
    if source.file.is_none() {
        println!(
            "note: the gateway runs on embedded defaults (no --config file), so no configuration file is in the archive"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn write_archive(
    config: &Config,
    source: &ConfigSource,
    file: File,
    store_temp: &Path,
    passphrase: Option<&[u8]>,
) -> anyhow::Result<Manifest> {
    let writer = BufWriter::new(file);
    let sink = match passphrase {
        Some(p) => Sink::Encrypted(Box::new(crypto::EncryptWriter::new(writer, p)?)),
        None => Sink::Plain(writer),
    };
    let mut tar = tar::Builder::new(sink);
    let mut items = Vec::new();
    let (mut head_seq, mut head_hash) = (0, audit::GENESIS.to_string());
    collect::each_item(&config.data_dir, source.file.as_deref(), |(path, bytes)| {
        if path == format!("audit/{}", audit::LOG_FILE) {
            (head_seq, head_hash) = last_record(&bytes);
        }
        append(&mut tar, &path, &bytes)?;
        items.push(Item { path, size: bytes.len() as u64, sha256: audit::sha256_hex(&bytes) });
        Ok(())
    })?;
    if let Some(exported) = store_item::export(config, store_temp)? {
        let mut header = entry_header(exported.size);
        tar.append_data(&mut header, store_item::STORE_EXPORT, &exported.file)
            .context("writing the store to the archive")?;
        let (size, sha256) = (exported.size, exported.sha256.clone());
        items.push(Item { path: store_item::STORE_EXPORT.into(), size, sha256 });
    }
    let manifest = Manifest {
        format: schema::FORMAT.into(),
        version: schema::VERSION,
        created: time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?,
        gateway_version: env!("CARGO_PKG_VERSION").into(),
        hostname: config.hostname.clone(),
        audit_head_seq: head_seq,
        audit_head_hash: head_hash,
        items,
    };
    append(&mut tar, schema::MANIFEST, &serde_json::to_vec_pretty(&manifest)?)?;
    tar.into_inner()?.finish()?;
    Ok(manifest)
}

fn append(tar: &mut tar::Builder<Sink>, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut header = entry_header(bytes.len() as u64);
    tar.append_data(&mut header, path, bytes).with_context(|| format!("writing {path} to the archive"))
}

/// The header of a regular, owner-only entry of `size` bytes.
fn entry_header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mtime(time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64);
    header
}

/// The seq and hash of the last record in a log's bytes.
fn last_record(log: &[u8]) -> (u64, String) {
    log.split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .and_then(|l| audit::Record::parse_line(l).ok())
        .map_or((0, audit::GENESIS.to_string()), |r| (r.seq, r.hash))
}

/// The archive's bytes, decrypted if it is encrypted.
fn open_archive(path: &Path, passphrase_file: Option<&Path>) -> anyhow::Result<Box<dyn Read>> {
    let mut file = BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    let encrypted = std::io::BufRead::fill_buf(&mut file)?.starts_with(crypto::MAGIC);
    match (encrypted, passphrase_file) {
        (true, Some(p)) => Ok(Box::new(crypto::DecryptReader::new(file, &crypto::read_passphrase(p)?)?)),
        (true, None) => bail!("{} is encrypted: give --passphrase-file", path.display()),
        (false, _) => Ok(Box::new(file)),
    }
}

/// A new private directory beside `target` to stage into.
fn staging_dir(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let mut suffix = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let dir = parent.join(format!(".{name}.restore-{}", hex(&suffix)));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn verify(archive: &Path, passphrase_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let staging = staging_dir(&std::env::temp_dir(), "portcullis-verify")?;
    let checked =
        open_archive(archive, passphrase_file).and_then(|r| extract::extract_and_check(r, &staging));
    let _ = std::fs::remove_dir_all(&staging);
    match checked {
        Ok(c) => {
            println!(
                "archive OK: {} items, audit head seq {}, made {} by {} {}",
                c.manifest.items.len(),
                c.manifest.audit_head_seq,
                c.manifest.created,
                c.manifest.hostname.escape_debug(),
                c.manifest.gateway_version.escape_debug()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("archive REFUSED: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let target = std::path::absolute(args.data_dir.as_ref().unwrap_or(&config.data_dir))?;
    ensure_fresh(&target)?;
    let (parent, name) = match (target.parent(), target.file_name().and_then(|n| n.to_str())) {
        (Some(p), Some(n)) => (p.to_path_buf(), n.to_string()),
        _ => bail!("cannot restore into {}", target.display()),
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&parent)?;
    let staging = staging_dir(&parent, &name)?;
    let checked = open_archive(&args.file, args.passphrase_file.as_deref())
        .and_then(|r| extract::extract_and_check(r, &staging))
        .and_then(|checked| {
            // Last, after every other item is checked: the store (SQLite in the staging directory).
            let rows = match checked.has_store {
                true => Some(store_item::import(config, &staging)?),
                false => None,
            };
            Ok((checked, rows))
        });
    let (checked, store_rows) = match checked {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.context(format!("{} was refused; nothing was restored", args.file.display())));
        }
    };
    if target.exists() {
        std::fs::remove_dir(&target).with_context(|| format!("{} is not empty", target.display()))?;
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("moving the restored data to {}", target.display()))?;
    File::open(&parent).and_then(|d| d.sync_all())?;
    // Extraction made everything owner-only; the shared part gets the modes the layout gives it now,
    // so a portal running as its own user can start on the restored data before the mail plane has.
    for (path, error) in datadir::repair(&target).failed {
        eprintln!("warning: could not set the mode of {}: {error}", path.display());
    }
    request_flush(&target)?;
    let restored = Config { data_dir: target.clone(), ..config.clone() };
    let event = Event::new(Action::BackupRestore, Actor::cli())
        .target(args.file.display().to_string())
        .detail("items", checked.manifest.items.len().to_string())
        .detail("made", &checked.manifest.created)
        .detail("from_host", &checked.manifest.hostname);
    crate::audit_cmd::record_cli(&restored, event)?;
    println!("restored {} items into {}", checked.manifest.items.len(), target.display());
    match store_rows {
        Some(rows) => println!("the store ({}): {rows} rows restored", describe_store(config, &target)),
        None => println!("the archive holds no store: a new one is created when the gateway starts"),
    }
    if target.join("config/portcullis.toml").exists() {
        println!(
            "the configuration from the backup is {}; review it (data_dir, listen addresses) before serving",
            target.join("config/portcullis.toml").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The store restored into, as an operator would name it (never with a password).
fn describe_store(config: &Config, data_dir: &Path) -> String {
    match config.store.backend {
        config::StoreBackend::Sqlite => store::sqlite_path(data_dir).display().to_string(),
        config::StoreBackend::Postgres => {
            format!("PostgreSQL {} schema {}", config.store.redacted_url(), config.store.schema)
        }
    }
}

/// Ask the restored gateway to retry deferred mail as soon as it starts (the retry times in the queue
/// files belong to the old machine's outage, not this one).
fn request_flush(data_dir: &Path) -> anyhow::Result<()> {
    let spool_dir = data_dir.join("spool");
    if !spool_dir.join("active").is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(spool_dir.join("control"))?;
    spool::Spool::attach(&spool_dir)?.request(spool::ControlRequest::Flush)?;
    Ok(())
}

/// The target must not exist or must be an empty directory: restore never merges.
fn ensure_fresh(target: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("looking at {}", target.display())),
        Ok(m) if m.is_dir() && std::fs::read_dir(target)?.next().is_none() => Ok(()),
        Ok(_) => bail!(
            "{} exists and is not an empty directory: restore only onto a fresh data directory",
            target.display()
        ),
    }
}
