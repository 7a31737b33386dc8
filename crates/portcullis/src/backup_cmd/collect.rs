//! Reading a live data directory for a backup, consistently, while the gateway runs.
//!
//! - Queue files: only those in `active/` and `quarantine/`, which are complete by construction (a
//!   message is renamed there after its file is finished and fsynced); each is read whole and checked
//!   for its trailer. One delivered or moved while we list is skipped. In-place updates (a recipient
//!   crossed off, a retry time) are single small writes, so any copy is a state the file really had.
//! - The audit trail: `checkpoints.log` then `audit.log`, under the log's exclusive lock, so the copy is
//!   one consistent chain with every checkpoint inside it.
//! - The store is not read here: it goes into the archive as data, from one snapshot
//!   ([`super::store_item`]).

use anyhow::Context;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// One item to archive: its path in the archive and its bytes.
pub(crate) type Item = (String, Vec<u8>);

/// Visit every item of `data_dir` (and the configuration file) in archive order.
pub(crate) fn each_item(
    data_dir: &Path,
    config_file: Option<&Path>,
    mut visit: impl FnMut(Item) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(file) = config_file {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        visit(("config/portcullis.toml".into(), bytes))?;
    }
    for dir in ["rules/local", "keys", "tls"] {
        for name in sorted_names(&data_dir.join(dir))? {
            let path = format!("{dir}/{name}");
            if super::schema::classify(&path).is_ok()
                && let Some(bytes) = read_if_present(&data_dir.join(&path))?
            {
                visit((path, bytes))?;
            }
        }
    }
    for item in audit_trail(data_dir)? {
        visit(item)?;
    }
    for queue in ["active", "quarantine"] {
        for name in sorted_names(&data_dir.join("spool").join(queue))? {
            let path = format!("spool/{queue}/{name}");
            if super::schema::classify(&path).is_err() {
                continue;
            }
            if let Some(bytes) = read_if_present(&data_dir.join(&path))? {
                anyhow::ensure!(bytes.ends_with(b"PCQ1-END\n"), "queue file {path} is incomplete");
                visit((path, bytes))?;
            }
        }
    }
    mailboxes(data_dir, &mut visit)?;
    Ok(())
}

fn mailboxes(data_dir: &Path, visit: &mut impl FnMut(Item) -> anyhow::Result<()>) -> anyhow::Result<()> {
    for mailbox in sorted_names(&data_dir.join("mailboxes"))? {
        for sub in ["new", "cur"] {
            let dir = format!("mailboxes/{mailbox}/{sub}");
            for name in sorted_names(&data_dir.join(&dir))? {
                let path = format!("{dir}/{name}");
                if super::schema::classify(&path).is_ok()
                    && let Some(bytes) = read_if_present(&data_dir.join(&path))?
                {
                    visit((path, bytes))?;
                }
            }
        }
    }
    Ok(())
}

/// File names in `dir` (none if it does not exist), sorted; names that are not UTF-8 are skipped (no
/// file Portcullis writes has one).
fn sorted_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    Ok(names)
}

/// The content of a regular file, `None` if it is gone (delivered, moved). Links are never followed.
fn read_if_present(path: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => anyhow::bail!("{} is not a regular file", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Checkpoints, log and cursor, read under the log's lock (the gateway waits for us, briefly).
fn audit_trail(data_dir: &Path) -> anyhow::Result<Vec<Item>> {
    let paths = audit::AuditPaths::new(data_dir);
    let log = match File::open(paths.log()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).context("opening the audit log"),
    };
    rustix::fs::flock(&log, rustix::fs::FlockOperation::LockExclusive).context("locking the audit log")?;
    let mut items = Vec::new();
    for (name, path) in [(audit::CHECKPOINT_FILE, paths.checkpoints()), (audit::CURSOR_FILE, paths.cursor())]
    {
        if let Some(bytes) = read_if_present(&path)? {
            items.push((format!("audit/{name}"), bytes));
        }
    }
    let mut bytes = Vec::new();
    (&log).read_to_end(&mut bytes).context("reading the audit log")?;
    let _ = rustix::fs::flock(&log, rustix::fs::FlockOperation::Unlock);
    // Only complete records (an incomplete one would be a crash's leftover).
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(end);
    items.insert(0, (format!("audit/{}", audit::LOG_FILE), bytes));
    Ok(items)
}
