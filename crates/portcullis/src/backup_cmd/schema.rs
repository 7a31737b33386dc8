//! What a backup may hold: every path, its size bound and the shape of its content. Anything else is
//! refused: unknown paths (a script, SQL text, a template), links, devices, absolute or `..` paths,
//! executable modes or content, oversize entries, and a manifest with unknown keys.

use audit::{CHECKPOINT_FILE, CURSOR_FILE, KEY_FILE, LOG_FILE, PUBLIC_KEY_FILE};
use serde::{Deserialize, Serialize};

/// The manifest's path in the archive (the last entry).
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const FORMAT: &str = "portcullis-backup";
pub(crate) const VERSION: u32 = 1;
/// Largest manifest read.
pub(crate) const MAX_MANIFEST: u64 = 64 << 20;
/// Most entries in one archive.
pub(crate) const MAX_ENTRIES: usize = 5_000_000;
/// Longest path in an archive.
const MAX_PATH: usize = 1024;

/// The manifest: what the archive holds, with a checksum of every item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub format: String,
    pub version: u32,
    pub created: String,
    pub gateway_version: String,
    pub hostname: String,
    /// The audit chain head in the archive (0 and the genesis hash without a log).
    pub audit_head_seq: u64,
    pub audit_head_hash: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Item {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What an archive path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Config,
    Rules,
    QueueFile,
    Mail,
    AuditLog,
    Checkpoints,
    Cursor,
    SigningKey,
    PublicKey,
    TlsPem,
    /// The store as data ([`super::store_item`]).
    StoreExport,
}

/// Why an archive holding the store's SQLite files is refused.
pub(crate) const OLD_STORE: &str = "the store as raw SQLite files, from a Portcullis before backups carried the store as \
     data (store.jsonl): a database file can carry triggers and views, so it is never restored; restore this \
     archive with the version that made it, then take a new backup";

/// The kind of item at `path`, or why no backup may carry it.
pub(crate) fn classify(path: &str) -> Result<Kind, String> {
    if path.is_empty() || path.len() > MAX_PATH || path.contains(['\\', '\0']) {
        return Err("not a plain relative path".into());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if path.starts_with('/') || parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err("an absolute path or one with `.` or `..`".into());
    }
    if path == super::store_item::STORE_EXPORT {
        return Ok(Kind::StoreExport);
    }
    if matches!(path, "portcullis.db" | "portcullis.db-wal") {
        return Err(OLD_STORE.into());
    }
    if !crate::doctor_cmd::written_by_us(&parts, false) {
        return Err("not a file Portcullis writes".into());
    }
    Ok(match parts[..] {
        ["config", "portcullis.toml"] => Kind::Config,
        ["rules", "local", _] => Kind::Rules,
        ["spool", "active" | "quarantine", _] => Kind::QueueFile,
        ["mailboxes", _, "new" | "cur", _] => Kind::Mail,
        ["audit", f] if f == LOG_FILE => Kind::AuditLog,
        ["audit", f] if f == CHECKPOINT_FILE => Kind::Checkpoints,
        ["audit", f] if f == CURSOR_FILE => Kind::Cursor,
        ["keys", f] if f == KEY_FILE => Kind::SigningKey,
        ["keys", f] if f == PUBLIC_KEY_FILE => Kind::PublicKey,
        ["tls", _] => Kind::TlsPem,
        _ => return Err("not carried by backups".into()),
    })
}

impl Kind {
    /// Largest entry of this kind.
    pub fn max_size(self) -> u64 {
        match self {
            Kind::Config | Kind::TlsPem => 1 << 20,
            Kind::Rules => 4 << 20,
            Kind::QueueFile | Kind::Mail => 1 << 30,
            Kind::AuditLog => 4 << 30,
            Kind::Checkpoints => 256 << 20,
            Kind::Cursor => 4 << 10,
            Kind::SigningKey | Kind::PublicKey => 128,
            Kind::StoreExport => 64 << 30,
        }
    }

    /// Whether the whole content is checked in memory (small text kinds).
    pub fn is_small(self) -> bool {
        self.max_size() <= 4 << 20
    }

    /// Check the first bytes of an entry (every kind).
    pub fn check_head(self, head: &[u8]) -> Result<(), String> {
        if head.starts_with(b"\x7fELF")
            || head.starts_with(b"#!")
            || (head.starts_with(b"MZ") && self != Kind::Mail)
        {
            return Err("executable content".into());
        }
        let want: &[&[u8]] = match self {
            Kind::QueueFile => &[b"PCQ1 "],
            Kind::StoreExport => &[b"{\"line\":\"store\","],
            Kind::AuditLog | Kind::Checkpoints => &[b"{\"seq\":", b""],
            _ => return Ok(()),
        };
        let empty_ok = want.contains(&&b""[..]) && head.is_empty();
        if !empty_ok && !want.iter().any(|w| !w.is_empty() && head.starts_with(w)) {
            return Err(format!("not a {self:?} file"));
        }
        Ok(())
    }

    /// Check the whole content of a small entry.
    pub fn check_small(self, content: &[u8]) -> Result<(), String> {
        let text = || std::str::from_utf8(content).map_err(|_| "not UTF-8 text".to_string());
        match self {
            Kind::Config => {
                config::load_str(text()?, "the configuration in the backup", &[])
                    .map_err(|e| e.to_string())?;
            }
            Kind::Rules => {
                toml::from_str::<toml::Table>(text()?).map_err(|e| format!("not TOML: {e}"))?;
            }
            Kind::SigningKey | Kind::PublicKey => {
                let t = text()?;
                let hex = t.strip_suffix('\n').unwrap_or(t);
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("not a 32-byte hex key".into());
                }
            }
            Kind::Cursor => {
                let v: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_slice(content).map_err(|e| format!("not a cursor: {e}"))?;
                let keys: Vec<&str> = v.keys().map(String::as_str).collect();
                if keys.len() != 3 || !["offset", "seq", "hash"].iter().all(|k| keys.contains(k)) {
                    return Err("not a cursor (keys)".into());
                }
            }
            Kind::TlsPem if !text()?.starts_with("-----BEGIN ") => return Err("not a PEM file".into()),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_schema_are_refused() {
        for bad in [
            "/etc/cron.d/x",
            "../../srv/x.jsp",
            "spool/../keys/audit-signing.key",
            "spool/active/./0123456789abcdef",
            "x.jsp",
            "restore.sql",
            "rules/local/hook.sh",
            "rules/local/.hidden.toml",
            "spool/incoming/0123456789abcdef",
            "spool/control/flush",
            "keys/binary.sha256",
            "portcullis.lock",
            "mailboxes/u@our.test/tmp/1.M1P1Q1R0123456789abcdef.h",
            "mailboxes/u@our.test/new/shell.php",
            "templates/index.html",
            "spool\\active\\0123456789abcdef",
            "portcullis.db",
            "portcullis.db-wal",
            "portcullis.db-shm",
        ] {
            assert!(classify(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(classify("spool/quarantine/0123456789abcdef"), Ok(Kind::QueueFile));
        assert_eq!(classify("mailboxes/u@our.test/new/1.M1P1Q1R0123456789abcdef.h"), Ok(Kind::Mail));
        assert_eq!(classify("audit/audit.log"), Ok(Kind::AuditLog));
        assert_eq!(classify("store.jsonl"), Ok(Kind::StoreExport));
        assert_eq!(classify("portcullis.db"), Err(OLD_STORE.to_string()));
    }

    #[test]
    fn content_outside_the_schema_is_refused() {
        assert!(Kind::QueueFile.check_head(b"#!/bin/sh\n").is_err());
        assert!(Kind::StoreExport.check_head(b"CREATE TRIGGER x").is_err());
        assert!(Kind::StoreExport.check_head(b"SQLite format 3\0").is_err());
        assert!(Kind::Mail.check_head(b"\x7fELF\x02").is_err());
        assert!(Kind::Config.check_small(b"[smtp]\nhook = \"/bin/sh\"\n").is_err());
        assert!(Kind::Config.check_small(b"[smtp]\nmax_recipients = 5\n").is_ok());
        assert!(Kind::SigningKey.check_small(b"DROP TABLE users;").is_err());
    }
}
