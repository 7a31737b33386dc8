//! Local delivery: Maildirs under `<data_dir>/mailboxes/<mailbox-dir>/{tmp,new,cur}`.
//!
//! Standard Maildir: write a uniquely named file in `tmp/`, fsync it, rename it into `new/`, fsync
//! `new/`. A reader never sees a partial message, and once the directory is synced the message
//! survives a crash. Only accepted domains are delivered here; anything else routed to `local` is a
//! permanent failure (an open relay into the local store is still an open relay).

use crate::outcome::{Outcome, Problem};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Longest file name most file systems take (NAME_MAX).
const MAX_NAME: usize = 255;

/// The directory name of `address`'s mailbox: the domain lower-cased, every byte outside
/// `[A-Za-z0-9._+=@-]` percent-encoded, a leading `.` encoded too. The result is always one plain path
/// component (no `/`, never `.` or `..`, no NUL); `None` if the address is empty or the name would be
/// too long for a file system.
pub fn mailbox_dir_name(address: &str) -> Option<String> {
    let canonical = match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => address.to_string(),
    };
    let mut name = String::with_capacity(canonical.len());
    for (i, b) in canonical.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"._+=@-".contains(&b);
        if plain && !(i == 0 && b == b'.') {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    (!name.is_empty() && name.len() <= MAX_NAME).then_some(name)
}

/// The domain of a spooled recipient (`local@domain`), lower-case and without a trailing dot.
pub(crate) fn domain_of(recipient: &str) -> String {
    let domain = recipient.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

/// Deliver `content` to each recipient's Maildir. Blocking: call from a blocking context.
pub(crate) fn deliver(config: &config::Config, recipients: &[String], content: &[u8]) -> Vec<Outcome> {
    let mailboxes = config.data_dir.join("mailboxes");
    let host = crate::our_hostname(config);
    recipients
        .iter()
        .map(|rcpt| {
            let domain = domain_of(rcpt);
            if !config.accepts_domain(&domain) {
                return Outcome::Bounced(Problem::local(
                    (5, 1, 2),
                    format!("local delivery refused: {domain:?} is not an accepted domain"),
                ));
            }
            let Some(dir) = mailbox_dir_name(rcpt) else {
                return Outcome::Bounced(Problem::local(
                    (5, 1, 3),
                    "local delivery refused: the address cannot name a mailbox",
                ));
            };
            match write_message(&mailboxes, &dir, content, host) {
                Ok(_) => Outcome::Delivered(format!("delivered to local mailbox {dir}")),
                Err(e) => {
                    let status =
                        if matches!(e.raw_os_error(), Some(28 | 122)) { (4, 3, 1) } else { (4, 3, 0) };
                    Outcome::Deferred(Problem::local(status, format!("local delivery to {dir} failed: {e}")))
                }
            }
        })
        .collect()
}

/// Write one message into `mailboxes/dir/new`, durably. Returns its path.
fn write_message(mailboxes: &Path, dir: &str, content: &[u8], host: &str) -> io::Result<PathBuf> {
    let mailbox = mailboxes.join(dir);
    ensure_maildir(mailboxes, &mailbox)?;
    let name = unique_name(host);
    let tmp = mailbox.join("tmp").join(&name);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    let written = file.write_all(content).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let new = mailbox.join("new").join(&name);
    fs::rename(&tmp, &new)?;
    sync_dir(&mailbox.join("new"))?;
    Ok(new)
}

/// Create the Maildir if it is missing; a new one is made durable in its parent directories too.
fn ensure_maildir(mailboxes: &Path, mailbox: &Path) -> io::Result<()> {
    if mailbox.join("new").is_dir() && mailbox.join("tmp").is_dir() {
        return Ok(());
    }
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for sub in ["tmp", "new", "cur"] {
        builder.create(mailbox.join(sub))?;
    }
    sync_dir(mailbox)?;
    sync_dir(mailboxes)?;
    if let Some(data_dir) = mailboxes.parent() {
        sync_dir(data_dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A Maildir file name: `<secs>.M<micros>P<pid>Q<counter>R<random>.<host>`, with `/` and `:` in the
/// host name escaped as the Maildir convention says.
fn unique_name(host: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_string(),
            ':' => "\\072".to_string(),
            c if c.is_ascii_graphic() => c.to_string(),
            _ => "_".to_string(),
        })
        .collect();
    format!(
        "{}.M{}P{}Q{}R{:016x}.{host}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u64>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_one_safe_component(name: &str) {
        assert!(!name.is_empty() && name.len() <= MAX_NAME, "{name}");
        assert!(!name.starts_with('.'), "{name}");
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+=@-%".contains(&b)), "{name}");
        let p = Path::new(name);
        assert_eq!(p.components().count(), 1, "{name}");
        assert!(matches!(p.components().next(), Some(std::path::Component::Normal(_))), "{name}");
    }

    #[test]
    fn mailbox_names_are_encoded() {
        assert_eq!(mailbox_dir_name("Alice@Example.COM").unwrap(), "Alice@example.com");
        assert_eq!(mailbox_dir_name("a.b+tag=x@y-z.test").unwrap(), "a.b+tag=x@y-z.test");
        assert_eq!(mailbox_dir_name("../x@y").unwrap(), "%2E.%2Fx@y");
        assert_eq!(mailbox_dir_name("a/b@c").unwrap(), "a%2Fb@c");
        assert_eq!(mailbox_dir_name("a\0b@c").unwrap(), "a%00b@c");
        assert_eq!(mailbox_dir_name("%2F@c").unwrap(), "%252F@c");
        assert_eq!(mailbox_dir_name("jörg@bücher.test").unwrap(), "j%C3%B6rg@b%C3%BCcher.test");
        assert_eq!(mailbox_dir_name("x@ÄÖ.test").unwrap(), "x@%C3%A4%C3%B6.test");
        assert_eq!(mailbox_dir_name(""), None);
        assert_eq!(mailbox_dir_name(&"é".repeat(100)), None);
    }

    #[test]
    fn hostile_addresses_stay_one_component() {
        for hostile in [
            "../x@y",
            "..",
            ".",
            "a/b@c",
            "/etc/passwd",
            "x@../../etc",
            "a\0b",
            "\r\n@x",
            "..@..",
            "~root@x",
            "a\\b@c",
            " x@y",
            "$(id)@x",
            "\u{202e}fdp.exe@x",
            "@",
            ".hidden@x",
        ] {
            is_one_safe_component(&mailbox_dir_name(hostile).unwrap());
        }
        // Different addresses never share a mailbox.
        assert_ne!(mailbox_dir_name("a/b@c"), mailbox_dir_name("a%2Fb@c"));
    }

    #[test]
    fn maildir_delivery_and_accepted_domains() {
        let tmp = tempfile::tempdir().unwrap();
        let config = config::Config { data_dir: tmp.path().to_path_buf(), ..Default::default() };
        let content = b"Subject: hi\r\n\r\nbody\r\n";
        let rcpts =
            vec!["Bob@LOCALHOST".to_string(), "eve@elsewhere.test".to_string(), "../x@localhost".into()];
        let out = deliver(&config, &rcpts, content);
        assert!(matches!(out[0], Outcome::Delivered(_)), "{out:?}");
        let Outcome::Bounced(p) = &out[1] else { panic!("{out:?}") };
        assert!(p.text().contains("not an accepted domain"), "{p}");
        assert!(matches!(out[2], Outcome::Delivered(_)), "{out:?}");

        let new = tmp.path().join("mailboxes/Bob@localhost/new");
        let files: Vec<_> = fs::read_dir(&new).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        assert_eq!(fs::read(&files[0]).unwrap(), content);
        assert!(tmp.path().join("mailboxes/Bob@localhost/cur").is_dir());
        assert_eq!(fs::read_dir(tmp.path().join("mailboxes/Bob@localhost/tmp")).unwrap().count(), 0);
        assert!(tmp.path().join("mailboxes/%2E.%2Fx@localhost/new").is_dir());
        // Nothing escaped the mailbox store.
        let mut top: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        assert_eq!(top, vec![std::ffi::OsString::from("mailboxes")]);
    }
}
