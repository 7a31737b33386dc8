//! Reading an archive into a staging directory and checking all of it: every entry against the schema
//! while it streams, then the manifest, then each item by its owner (the spool reads every queue file,
//! the audit trail verifies, the rules compile, the key matches its public half, every line of the
//! store's export parses and checks against its table).

use super::schema::{self, Item, Kind, Manifest};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// What a checked archive holds.
pub(crate) struct Checked {
    pub manifest: Manifest,
    /// Whether it holds the store (checked, not yet imported).
    pub has_store: bool,
}

/// Read the archive from `reader` into `staging` (a new, empty directory) and check everything.
pub(crate) fn extract_and_check(reader: impl Read, staging: &Path) -> anyhow::Result<Checked> {
    let mut archive = tar::Archive::new(reader);
    let mut found: BTreeMap<String, Item> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries().context("reading the archive")? {
        let entry = entry.context("reading the archive")?;
        anyhow::ensure!(manifest.is_none(), "entries after the manifest");
        anyhow::ensure!(found.len() < schema::MAX_ENTRIES, "too many entries");
        let path = entry_path(&entry)?;
        if path == schema::MANIFEST {
            manifest = Some(read_manifest(entry)?);
            continue;
        }
        let item = write_entry(entry, &path, staging)
            .with_context(|| format!("archive entry {}", path.escape_debug()))?;
        anyhow::ensure!(found.insert(path.clone(), item).is_none(), "entry {path} appears twice");
    }
    let manifest = manifest.context("the archive has no manifest")?;
    check_manifest(&manifest, &found)?;
    check_items(staging, &manifest)?;
    let has_store = found.contains_key(super::store_item::STORE_EXPORT);
    if has_store {
        super::store_item::check(&staging.join(super::store_item::STORE_EXPORT))?;
    }
    Ok(Checked { manifest, has_store })
}

/// The entry's path, if it is a plain file with a UTF-8 path and no link.
fn entry_path<R: Read>(entry: &tar::Entry<R>) -> anyhow::Result<String> {
    let raw = entry.path_bytes();
    let path = String::from_utf8(raw.to_vec()).map_err(|_| {
        anyhow::anyhow!("an entry path that is not UTF-8: {}", String::from_utf8_lossy(&raw).escape_debug())
    })?;
    let kind = entry.header().entry_type();
    if !kind.is_file() || entry.link_name_bytes().is_some() {
        bail!(
            "entry {} is a {kind:?}, not a regular file (links, devices and directories are refused)",
            path.escape_debug()
        );
    }
    let mode = entry.header().mode().context("reading an entry's mode")?;
    if mode & 0o7111 != 0 {
        bail!("entry {} is executable or set-id (mode {mode:o})", path.escape_debug());
    }
    Ok(path)
}

fn read_manifest<R: Read>(entry: tar::Entry<R>) -> anyhow::Result<Manifest> {
    let size = entry.header().size()?;
    anyhow::ensure!(
        size <= schema::MAX_MANIFEST,
        "the manifest is larger than {} bytes",
        schema::MAX_MANIFEST
    );
    let mut bytes = Vec::new();
    entry.take(size).read_to_end(&mut bytes)?;
    let m: Manifest = serde_json::from_slice(&bytes).context("the manifest is invalid")?;
    anyhow::ensure!(
        m.format == schema::FORMAT && m.version == schema::VERSION,
        "not a Portcullis backup (format {} version {})",
        m.format.escape_debug(),
        m.version
    );
    Ok(m)
}

/// Stream one entry into `staging`, checking its path, size and content, and hashing it.
fn write_entry<R: Read>(mut entry: tar::Entry<R>, path: &str, staging: &Path) -> anyhow::Result<Item> {
    let kind = schema::classify(path).map_err(anyhow::Error::msg)?;
    let size = entry.header().size()?;
    anyhow::ensure!(
        size <= kind.max_size(),
        "{size} bytes is over the {} allowed for a {kind:?}",
        kind.max_size()
    );
    let dest = staging.join(path);
    if let Some(parent) = dest.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&dest)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut head, mut small, mut total) = (Vec::new(), Vec::new(), 0u64);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        ctx.update(chunk);
        file.write_all(chunk)?;
        if head.len() < 64 {
            head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
        }
        if kind.is_small() {
            small.extend_from_slice(chunk);
        }
        total += n as u64;
    }
    file.sync_all()?;
    anyhow::ensure!(total == size, "shorter than its header says");
    kind.check_head(&head).map_err(anyhow::Error::msg)?;
    if kind.is_small() {
        kind.check_small(&small).map_err(anyhow::Error::msg)?;
    }
    Ok(Item { path: path.to_string(), size, sha256: crate::backup_cmd::hex(ctx.finish().as_ref()) })
}

fn check_manifest(m: &Manifest, found: &BTreeMap<String, Item>) -> anyhow::Result<()> {
    let listed: BTreeMap<&str, &Item> = m.items.iter().map(|i| (i.path.as_str(), i)).collect();
    anyhow::ensure!(listed.len() == m.items.len(), "the manifest lists an item twice");
    for (path, item) in found {
        match listed.get(path.as_str()) {
            None => bail!("entry {} is not in the manifest", path.escape_debug()),
            Some(l) if *l != item => {
                bail!("entry {} does not match its checksum in the manifest", path.escape_debug())
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = listed.keys().find(|p| !found.contains_key(**p)) {
        bail!("the manifest lists {} but the archive does not hold it", missing.escape_debug());
    }
    Ok(())
}

/// Each item read by the code that owns it.
fn check_items(staging: &Path, m: &Manifest) -> anyhow::Result<()> {
    let kinds: Vec<(Kind, &str)> =
        m.items.iter().filter_map(|i| Some((schema::classify(&i.path).ok()?, i.path.as_str()))).collect();
    let spool_dir = staging.join("spool");
    if kinds.iter().any(|(k, _)| *k == Kind::QueueFile) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(spool_dir.join("active"))?;
        let spool = spool::Spool::attach(&spool_dir)?;
        for (_, path) in kinds.iter().filter(|(k, _)| *k == Kind::QueueFile) {
            let (queue, id) = match path.split('/').collect::<Vec<_>>()[..] {
                ["spool", "active", id] => (spool::Queue::Active, id),
                ["spool", "quarantine", id] => (spool::Queue::Quarantine, id),
                _ => bail!("unexpected queue path {path}"),
            };
            let msg = spool
                .load(queue, &spool::QueueId::parse(id).map_err(anyhow::Error::msg)?)
                .with_context(|| format!("queue file {path}"))?;
            spool.read_content(&msg).with_context(|| format!("queue file {path}"))?;
        }
    }
    check_audit(staging, m)?;
    checks::rules_dir::load(Path::new(""), staging).context("the local rules in the backup")?;
    Ok(())
}

fn check_audit(staging: &Path, m: &Manifest) -> anyhow::Result<()> {
    let paths = audit::AuditPaths::new(staging);
    if let (Some(key), Ok(public)) = (
        audit::SigningKey::load(&paths.keys)?,
        std::fs::read_to_string(paths.keys.join(audit::PUBLIC_KEY_FILE)),
    ) {
        anyhow::ensure!(key.public_hex() == public.trim(), "the signing key does not match its public half");
    }
    if !paths.log().exists() {
        return Ok(());
    }
    let report = audit::verify(&paths, None)?;
    if let Some(p) = &report.problem {
        bail!("the audit trail in the backup does not verify: {} line {:?}: {}", p.file, p.line, p.message);
    }
    anyhow::ensure!(
        report.head_seq == m.audit_head_seq && report.head_hash == m.audit_head_hash,
        "the audit head in the backup is not the one the manifest names"
    );
    Ok(())
}
