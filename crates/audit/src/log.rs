//! Appending to `audit/audit.log`, by the gateway and by command-line tools beside it.
//!
//! Every append takes an exclusive `flock` on the log, re-reads the head if someone else appended since,
//! writes the new lines with one `write` in append mode, `fdatasync`s, and lets go. So the gateway's
//! writer and `portcullis queue delete` running at the same time still make one chain, and a reader
//! (verify, the forwarder) never sees half a record except after a crash, which [`AuditLog::open`]
//! repairs by cutting the incomplete line and recording that it did.

use crate::checkpoint::Checkpoint;
use crate::event::{Action, Actor, Event};
use crate::keys::SigningKey;
use crate::record::{GENESIS, MAX_LINE, Record};
use crate::{AuditError, AuditPaths, create_dir, io_err, now_rfc3339};
use datadir::{Open, Sharing};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The last record of the chain: its sequence number and hash (`0` and [`GENESIS`] when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    pub fn genesis() -> Head {
        Head { seq: 0, hash: GENESIS.to_string() }
    }
}

/// The log, open for appending.
#[derive(Debug)]
pub struct AuditLog {
    paths: AuditPaths,
    file: File,
    head: Head,
    /// The file's length when `head` was read.
    len: u64,
}

/// An exclusive `flock` on the log, released when dropped.
struct Locked(File);

impl Drop for Locked {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(&self.0, rustix::fs::FlockOperation::Unlock);
    }
}

impl AuditLog {
    /// Open the log (creating `audit/` and the file). An incomplete last line is cut off, and a record
    /// says how many bytes were dropped.
    pub fn open(paths: &AuditPaths) -> Result<AuditLog, AuditError> {
        create_dir(&paths.dir, Sharing::GroupWrite)?;
        let path = paths.log();
        let file = datadir::open_file(&path, Sharing::GroupWrite, Open::Append).map_err(io_err(&path))?;
        let mut log = AuditLog { paths: paths.clone(), file, head: Head::genesis(), len: 0 };
        let lock = log.lock()?;
        let dropped = cut_incomplete_tail(&log.file, &path)?;
        log.refresh()?;
        drop(lock);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the audit log ended in an incomplete record (a crash mid-write); cut it off"
            );
            let e = Event::new(Action::AuditRecovered, Actor::System)
                .detail("dropped_bytes", dropped.to_string());
            log.append(vec![e])?;
        }
        Ok(log)
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    pub fn paths(&self) -> &AuditPaths {
        &self.paths
    }

    fn lock(&self) -> Result<Locked, AuditError> {
        let path = self.paths.log();
        let dup = self.file.try_clone().map_err(io_err(&path))?;
        rustix::fs::flock(&dup, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_err(&path)(e.into()))?;
        Ok(Locked(dup))
    }

    /// Re-read the head if the file changed since we last looked (call under the lock).
    fn refresh(&mut self) -> Result<(), AuditError> {
        let path = self.paths.log();
        let len = self.file.metadata().map_err(io_err(&path))?.len();
        if len == self.len {
            return Ok(());
        }
        self.head = match last_line(&self.file, len, &path)? {
            None => Head::genesis(),
            Some(line) => {
                let r = Record::parse_line(&line)
                    .map_err(|why| AuditError::DamagedTail { path: path.clone(), why })?;
                Head { seq: r.seq, hash: r.hash }
            }
        };
        self.len = len;
        Ok(())
    }

    /// Append records for `events`, in order, durably. Returns them as written.
    pub fn append(&mut self, events: Vec<Event>) -> Result<Vec<Record>, AuditError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.paths.log();
        let _lock = self.lock()?;
        self.refresh()?;
        let (mut seq, mut prev) = (self.head.seq, self.head.hash.clone());
        let mut buf = Vec::new();
        let mut written = Vec::with_capacity(events.len());
        for e in events {
            seq += 1;
            let r = Record::seal(e, seq, &prev, now_rfc3339());
            buf.extend_from_slice(r.to_line().as_bytes());
            buf.push(b'\n');
            prev = r.hash.clone();
            written.push(r);
        }
        if let Err(e) = (&self.file).write_all(&buf).and_then(|_| self.file.sync_data()) {
            // Leave no half record behind (a full disk): back to the last complete one.
            let _ = self.file.set_len(self.len);
            return Err(io_err(&path)(e));
        }
        self.len += buf.len() as u64;
        self.head = Head { seq, hash: prev };
        Ok(written)
    }

    /// Sign the head into `checkpoints.log` unless it is signed already (or the log is empty).
    pub fn checkpoint(&mut self, key: &SigningKey) -> Result<Option<Checkpoint>, AuditError> {
        let _lock = self.lock()?;
        self.refresh()?;
        if self.head.seq == 0 || last_checkpoint_seq(&self.paths.checkpoints())? >= self.head.seq {
            return Ok(None);
        }
        let cp = Checkpoint::sign(key, self.head.seq, &self.head.hash, now_rfc3339());
        let path = self.paths.checkpoints();
        let mut f = datadir::open_file(&path, Sharing::GroupWrite, Open::Append).map_err(io_err(&path))?;
        f.write_all(format!("{}\n", cp.to_line()).as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(io_err(&path))?;
        Ok(Some(cp))
    }
}

/// The seq of the last checkpoint in `path` (0 if none or unreadable as a checkpoint).
fn last_checkpoint_seq(path: &Path) -> Result<u64, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(path)(e)),
    };
    let len = file.metadata().map_err(io_err(path))?.len();
    Ok(last_line(&file, len, path)?.and_then(|l| Checkpoint::parse_line(&l).ok()).map_or(0, |c| c.seq))
}

/// The last complete line of the first `len` bytes of `file` (without its newline).
pub(crate) fn last_line(file: &File, len: u64, path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    if len == 0 {
        return Ok(None);
    }
    let window = len.min(MAX_LINE as u64 + 1);
    let mut buf = vec![0u8; window as usize];
    file.read_exact_at(&mut buf, len - window).map_err(io_err(path))?;
    let Some(b'\n') = buf.last() else {
        return Err(AuditError::DamagedTail {
            path: path.to_path_buf(),
            why: "no newline at the end".into(),
        });
    };
    buf.pop();
    match buf.iter().rposition(|&b| b == b'\n') {
        Some(i) => Ok(Some(buf[i + 1..].to_vec())),
        None if window == len => Ok(Some(buf)),
        None => Err(AuditError::DamagedTail { path: path.to_path_buf(), why: "last line too long".into() }),
    }
}

/// Cut bytes after the last newline (a record a crash left half written). Returns how many.
fn cut_incomplete_tail(file: &File, path: &Path) -> Result<u64, AuditError> {
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.read_exact_at(part, start).map_err(io_err(path))?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        file.set_len(end).and_then(|_| file.sync_all()).map_err(io_err(path))?;
    }
    Ok(len - end)
}
