//! The durable queue: one file per message, named queue directories, fsync-then-rename commits.
//!
//! Owns: the queue file format, queue ids, the `incoming/`, `active/`, `quarantine/`, `corrupt/`,
//! `free/` and `control/` directories under the spool root, crossing delivered recipients off in place,
//! retry state, and recovery after a crash. Must not touch: the network, SMTP replies, scoring.
//!
//! A message is acknowledged only after [`Incoming::commit`] returns: the file is complete (its header
//! holds the final lengths, the queue it goes to, and a trailer closes it), fsynced, its entry in
//! `incoming/` durable (that directory fsynced, by a sync shared with other messages and usually begun
//! while the data arrived: [`Spool::sync_incoming`]), and renamed into its queue directory. The rename
//! is not waited for: one fsync of the file is all a commit waits for once the data is in, as in
//! Postfix. If a crash undoes the rename, recovery ([`Spool::open`]) finds the complete file in
//! `incoming/` and finishes the move into the queue its header names; everything else left in
//! `incoming/` (never acknowledged) is deleted, and any queue file that fails validation is moved to
//! `corrupt/` rather than deleted.
//!
//! A committed file can travel to another node's spool, byte for byte and under the same queue id:
//! [`Spool::export`] reads it (validated), [`Spool::import`] commits such bytes the same durable way as a
//! received message (written to `incoming/`, fsynced, linked into its queue without replacing a file of
//! that id, directory fsynced), and [`decode`] reads the envelope and content out of them. This is how a
//! quarantined message held by one node is released by another.
//!
//! # Security
//! No path is ever built from message content: file names are queue ids this crate generates, and ids
//! that arrive from outside (CLI arguments, the portal) are checked by [`QueueId::parse`] first. Envelope
//! text is stored as JSON, so no address or HELO name can forge a record boundary.
//!
//! # Recycled files
//! Creating a file and unlinking it for every message costs the file system far more than writing the
//! message: on ext4 mounted without a journal, each creation walks past every inode freed in the last
//! minute or more (`recently_deleted`), and unlinking a file with `discard` trims its blocks. So a
//! gateway's spool ([`Spool::open_as`]) keeps up to [`Recycling::files`] files of at most
//! [`Recycling::max_bytes`] that it removes (delivered, deleted, refused) in `free/` and gives them to new
//! messages: renamed into `incoming/` and overwritten from the start, cut to length at the commit. Old
//! bytes never pass for a new message: the commit's checksum covers the queue id and every byte a
//! message owns, and recovery checks it before it finishes a commit found in `incoming/` (see
//! [`format`]); files without a checksum (written by versions before it) are unlinked, not recycled.
//! Nothing in `free/` is a message: recovery keeps what fits in the pool and removes the rest, and
//! backups never read it.

#![forbid(unsafe_code)]

mod entries;
mod format;
mod id;

pub use format::{Envelope, QueuedMessage, RcptStatus};
pub use id::{NODE_TAG_BITS, NodeTag, QueueId};

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use format::Check;

/// The named queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Being received; never acknowledged. Emptied at start.
    Incoming,
    /// Acknowledged and waiting for delivery.
    Active,
    /// Held by a verdict until released or deleted.
    Quarantine,
    /// Failed validation at recovery; kept for an operator to inspect.
    Corrupt,
}

impl Queue {
    pub fn dir_name(self) -> &'static str {
        match self {
            Queue::Incoming => "incoming",
            Queue::Active => "active",
            Queue::Quarantine => "quarantine",
            Queue::Corrupt => "corrupt",
        }
    }
    const ALL: [Queue; 4] = [Queue::Incoming, Queue::Active, Queue::Quarantine, Queue::Corrupt];
}

/// How many removed files a gateway's spool keeps in `free/` for new messages (see "Recycled files";
/// the settings `spool.recycle_files` and `spool.recycle_max_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recycling {
    /// Most files kept; 0: none (every file is created and unlinked).
    pub files: usize,
    /// Larger files are unlinked, so `free/` holds at most `files * max_bytes` of disk.
    pub max_bytes: u64,
}

impl Default for Recycling {
    /// 1,024 files of at most 128 KiB: at most 128 MiB held, enough for hundreds of sessions
    /// receiving and the backlog intake's flow control allows (`smtp.in_flow_limit`).
    fn default() -> Self {
        Recycling { files: 1024, max_bytes: 128 << 10 }
    }
}

/// The files in `free/` and the bounds on them.
#[derive(Debug)]
struct Pool {
    /// Names (the queue ids they last held) of the files in `free/`.
    names: Mutex<Vec<QueueId>>,
    limits: Recycling,
}

/// The directory of recycled files.
const FREE_DIR: &str = "free";

/// Requests other processes (the CLI) leave for the running gateway, as empty marker files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    /// Retry every deferred message now.
    Flush,
    /// Messages were added to `active/` by someone else (a release, a restore): pick them up.
    Rescan,
}

impl ControlRequest {
    fn file_name(self) -> &'static str {
        match self {
            ControlRequest::Flush => "flush",
            ControlRequest::Rescan => "rescan",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("queue file {path} is invalid: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error("no message {0} in that queue")]
    NotFound(QueueId),
}

impl SpoolError {
    /// Whether the failure is the disk being full (or over quota).
    pub fn is_storage_full(&self) -> bool {
        matches!(self, SpoolError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(28 /* ENOSPC */) | Some(122 /* EDQUOT */)))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| {
        let id = path.file_name().and_then(|n| n.to_str()).and_then(|n| QueueId::parse(n).ok());
        if let (io::ErrorKind::NotFound, Some(id)) = (source.kind(), id) {
            return SpoolError::NotFound(id);
        }
        SpoolError::Io { path: path.to_path_buf(), source }
    }
}

/// A handle on the spool directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    ids: id::Generator,
    incoming: entries::Entries,
    /// The files in `free/`, when this spool recycles (a gateway's).
    free: Option<Pool>,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Never-acknowledged partial files removed from `incoming/`.
    pub dropped_incoming: usize,
    /// Committed files a crash left in `incoming/` (their rename undone), moved into their queues.
    pub finished_incoming: usize,
    /// Queue files that failed validation, moved to `corrupt/`.
    pub corrupt: Vec<QueueId>,
}

impl Spool {
    /// Open (creating if needed) the spool at `root` and recover from any crash, minting ids with tag 0
    /// and recycling by default: for a spool whose ids meet no other spool's (tests and tools; the
    /// gateway uses [`Spool::open_as`]).
    pub fn open(root: &Path) -> Result<(Spool, Recovery), SpoolError> {
        Spool::open_as(root, NodeTag(0), Recycling::default())
    }

    /// [`Spool::open`] for the node holding `tag` in its store (`store::Store::node_claim_tag`): the ids
    /// it mints carry the tag, so no other node sharing the store mints the same. Recovery does not look
    /// at the tags of the ids it finds (see [`NodeTag`]). Removed files are recycled within `recycling`.
    pub fn open_as(root: &Path, tag: NodeTag, recycling: Recycling) -> Result<(Spool, Recovery), SpoolError> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for q in Queue::ALL {
            let dir = root.join(q.dir_name());
            builder.create(&dir).map_err(io_err(&dir))?;
        }
        for dir in ["control", FREE_DIR] {
            let dir = root.join(dir);
            builder.create(&dir).map_err(io_err(&dir))?;
        }
        let recovery = Spool::at(root, tag, None).recover()?;
        let free = Spool::free_files(root, recycling)?;
        let pool = (recycling.files > 0).then(|| Pool { names: Mutex::new(free), limits: recycling });
        Ok((Spool::at(root, tag, pool), recovery))
    }

    fn at(root: &Path, tag: NodeTag, free: Option<Pool>) -> Spool {
        Spool {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                ids: id::Generator::new(tag),
                incoming: entries::Entries::default(),
                free,
            }),
        }
    }

    /// The recyclable files in `free/`, within `limits`; any other entry is removed.
    fn free_files(root: &Path, limits: Recycling) -> Result<Vec<QueueId>, SpoolError> {
        let dir = root.join(FREE_DIR);
        let mut keep = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let id = entry.file_name().to_str().and_then(|n| QueueId::parse(n).ok());
            let small = entry.metadata().is_ok_and(|m| m.is_file() && m.len() <= limits.max_bytes);
            match id {
                Some(id) if small && keep.len() < limits.files => keep.push(id),
                _ => {
                    let path = entry.path();
                    fs::remove_file(&path).map_err(io_err(&path))?;
                }
            }
        }
        Ok(keep)
    }

    /// Open an existing spool without recovery, for tools that run beside a live gateway (the queue CLI):
    /// recovery would delete the files the gateway is receiving into. Such tools move and read queue
    /// files; they mint no ids (their generator has tag 0).
    pub fn attach(root: &Path) -> Result<Spool, SpoolError> {
        let active = root.join(Queue::Active.dir_name());
        fs::metadata(&active).map_err(io_err(&active))?;
        Ok(Spool::at(root, NodeTag(0), None))
    }

    fn recover(&self) -> Result<Recovery, SpoolError> {
        let mut r = Recovery::default();
        let incoming = self.dir(Queue::Incoming);
        let mut finished = Vec::new();
        for entry in fs::read_dir(&incoming).map_err(io_err(&incoming))? {
            let path = entry.map_err(io_err(&incoming))?.path();
            // Checked whole: a commit a crash cut, or a recycled file's old content under a new
            // name, fails its checksum and was never acknowledged.
            let committed = path.file_name().and_then(|n| QueueId::parse(n.to_str()?).ok()).and_then(|id| {
                Some((self.read(Queue::Incoming, &id, Check::Checksum).ok()?.committed_to?, id))
            });
            match committed {
                Some((to, id)) => {
                    self.finish_move(&id, to)?;
                    finished.push(to);
                }
                None => {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                    r.dropped_incoming += 1;
                }
            }
        }
        r.finished_incoming = finished.len();
        for q in [Queue::Active, Queue::Quarantine] {
            if finished.contains(&q) {
                self.sync_dir(q)?;
            }
        }
        for q in [Queue::Active, Queue::Quarantine] {
            for id in self.list(q)? {
                if let Err(e) = self.load(q, &id) {
                    tracing::error!(queue_id = %id, error = %e, "queue file failed validation; moved to corrupt/");
                    self.move_to(&id, q, Queue::Corrupt)?;
                    r.corrupt.push(id);
                }
            }
        }
        Ok(r)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn dir(&self, q: Queue) -> PathBuf {
        self.inner.root.join(q.dir_name())
    }

    fn path(&self, q: Queue, id: &QueueId) -> PathBuf {
        self.dir(q).join(id.as_str())
    }

    /// A committed file found in `incoming/` goes to its queue; if the queue has it already (a crash
    /// between an import's link and its clean-up), the copy in `incoming/` is removed.
    fn finish_move(&self, id: &QueueId, to: Queue) -> Result<(), SpoolError> {
        let (src, dst) = (self.path(Queue::Incoming, id), self.path(to, id));
        match fs::hard_link(&src, &dst) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&dst)(e)),
        }
        tracing::warn!(queue_id = %id, queue = to.dir_name(), "finished a commit a crash interrupted");
        fs::remove_file(&src).map_err(io_err(&src))
    }

    /// Start making durable the `incoming/` entries of every message created so far, unless a sync is
    /// running already. Blocking. Commits wait for their own entry themselves; calling this early (when a
    /// message's data begins) usually takes that wait off the commit.
    pub fn sync_incoming(&self) -> Result<(), SpoolError> {
        let dir = self.dir(Queue::Incoming);
        self.inner.incoming.sync_soon(&dir).map_err(io_err(&dir))
    }

    /// Start receiving a message for `envelope`, in a recycled file if there is one (see "Recycled
    /// files"). Dropping the [`Incoming`] without committing removes it.
    pub fn create(&self, envelope: &Envelope) -> Result<Incoming, SpoolError> {
        let id = self.inner.ids.next();
        let path = self.path(Queue::Incoming, &id);
        let (file, recycled_len) = match self.take_free(&path) {
            Some(taken) => taken,
            None => {
                let file = OpenOptions::new()
                    .write(true)
                    .read(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io_err(&path))?;
                (file, 0)
            }
        };
        let mut incoming = Incoming {
            entry: self.inner.incoming.created(),
            spool: self.clone(),
            path,
            file: BufWriter::with_capacity(64 * 1024, file),
            layout: None,
            body_len: 0,
            recycled_len,
            done: false,
            id,
        };
        let layout =
            format::write_head(&mut incoming.file, &incoming.id, envelope).map_err(io_err(&incoming.path))?;
        incoming.layout = Some(layout);
        Ok(incoming)
    }

    /// A file from `free/`, moved to `path` and opened, with its length; `None` when there is none (or
    /// it cannot be had: a new file is created then).
    fn take_free(&self, path: &Path) -> Option<(File, u64)> {
        let free = self.inner.free.as_ref()?;
        loop {
            let name = free.names.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
            let src = self.inner.root.join(FREE_DIR).join(name.as_str());
            if let Err(e) = fs::rename(&src, path) {
                tracing::warn!(path = %src.display(), error = %e, "cannot reuse a recycled spool file");
                continue;
            }
            // Never through a link: only this spool puts files in `free/`, and it puts no links there.
            let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
            let opened = OpenOptions::new().write(true).read(true).custom_flags(nofollow).open(path);
            match opened.and_then(|f| Ok((f.metadata()?.len(), f))) {
                Ok((len, file)) => return Some((file, len)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open a recycled spool file");
                    let _ = fs::remove_file(path);
                    return None;
                }
            }
        }
    }

    /// Remove the file at `path` (of message `id`), or keep it in `free/` for a new message when this
    /// spool recycles, the pool has room and the file is small. A committed file must carry a checksum
    /// (`committed`: read its head to see), so that no copy of it can pass for another message.
    fn discard(&self, path: &Path, id: &QueueId, committed: bool) -> io::Result<()> {
        if let Some(free) = &self.inner.free
            && Spool::recyclable(path, committed, free.limits.max_bytes)?
        {
            let mut pool = free.names.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < free.limits.files {
                fs::rename(path, self.inner.root.join(FREE_DIR).join(id.as_str()))?;
                pool.push(id.clone());
                return Ok(());
            }
        }
        fs::remove_file(path)
    }

    fn recyclable(path: &Path, committed: bool, max_bytes: u64) -> io::Result<bool> {
        let file = File::open(path)?;
        if file.metadata()?.len() > max_bytes {
            return Ok(false);
        }
        let mut head = [0u8; format::HEAD_LEN as usize];
        Ok(!committed || (file.read_exact_at(&mut head, 0).is_ok() && format::head_has_checksum(&head)))
    }

    /// Ids in a queue, oldest first.
    pub fn list(&self, q: Queue) -> Result<Vec<QueueId>, SpoolError> {
        let dir = self.dir(q);
        let mut ids: Vec<QueueId> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok()?.file_name().to_str().and_then(|n| QueueId::parse(n).ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Read a queued message's envelope and state (not its content).
    pub fn load(&self, q: Queue, id: &QueueId) -> Result<QueuedMessage, SpoolError> {
        self.read(q, id, Check::Structure)
    }

    fn read(&self, q: Queue, id: &QueueId, check: Check) -> Result<QueuedMessage, SpoolError> {
        let path = self.path(q, id);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        format::read_meta(&mut file, id.clone(), q, check).map_err(|e| match e {
            format::ReadError::Io(source) => io_err(&path)(source),
            format::ReadError::Invalid(why) => SpoolError::Invalid { path: path.clone(), why },
        })
    }

    /// The message as it is to be delivered: the headers this gateway added, then the received content,
    /// checked against the commit's checksum (a mismatch is [`SpoolError::Invalid`]: bytes that are not
    /// this message's are never delivered or shown under its id).
    pub fn read_content(&self, msg: &QueuedMessage) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(msg.queue, &msg.id);
        let mut file = File::open(&path).map_err(io_err(&path))?;
        let mut out = Vec::with_capacity((msg.prepend_len + msg.body_len) as usize);
        let mut read_range = |off: u64, len: u64, out: &mut Vec<u8>| -> io::Result<()> {
            file.seek(SeekFrom::Start(off))?;
            (&mut file).take(len).read_to_end(out)?;
            Ok(())
        };
        read_range(msg.prepend_offset(), msg.prepend_len, &mut out).map_err(io_err(&path))?;
        read_range(msg.body_offset, msg.body_len, &mut out).map_err(io_err(&path))?;
        if out.len() as u64 != msg.prepend_len + msg.body_len {
            return Err(SpoolError::Invalid { path, why: "content shorter than its header says".into() });
        }
        let (prepend, body) = out.split_at(msg.prepend_len as usize);
        if !msg.content_matches(body, prepend) {
            return Err(SpoolError::Invalid { path, why: "content does not match its checksum".into() });
        }
        Ok(out)
    }

    /// Cross recipients off in place (by index into the envelope's list) and make it durable.
    pub fn mark_recipients(
        &self,
        msg: &QueuedMessage,
        marks: &[(usize, RcptStatus)],
    ) -> Result<(), SpoolError> {
        let path = self.path(msg.queue, &msg.id);
        let file = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        for &(i, status) in marks {
            if i >= msg.status.len() {
                return Err(SpoolError::Invalid { path, why: format!("recipient index {i} out of range") });
            }
            file.write_all_at(&[status.byte()], msg.status_offset + i as u64).map_err(io_err(&path))?;
        }
        file.sync_data().map_err(io_err(&path))
    }

    /// Record a failed attempt and when to try next (unix milliseconds).
    pub fn set_retry(
        &self,
        msg: &QueuedMessage,
        attempts: u32,
        next_attempt_ms: u64,
    ) -> Result<(), SpoolError> {
        let path = self.path(msg.queue, &msg.id);
        let file = OpenOptions::new().write(true).open(&path).map_err(io_err(&path))?;
        file.write_all_at(&format::retry_record(attempts, next_attempt_ms), msg.retry_offset)
            .map_err(io_err(&path))?;
        file.sync_data().map_err(io_err(&path))
    }

    /// Remove a message (delivered, bounced or deleted by an operator).
    pub fn remove(&self, q: Queue, id: &QueueId) -> Result<(), SpoolError> {
        let path = self.path(q, id);
        self.discard(&path, id, true).map_err(io_err(&path))
    }

    /// Move a message between queues durably (a release is quarantine → active).
    pub fn move_to(&self, id: &QueueId, from: Queue, to: Queue) -> Result<(), SpoolError> {
        let (src, dst) = (self.path(from, id), self.path(to, id));
        fs::rename(&src, &dst).map_err(io_err(&src))?;
        self.sync_dir(to)
    }

    fn sync_dir(&self, q: Queue) -> Result<(), SpoolError> {
        let dir = self.dir(q);
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io_err(&dir))
    }

    /// A committed message's file, byte for byte (validated first, so only complete files travel).
    pub fn export(&self, q: Queue, id: &QueueId) -> Result<Vec<u8>, SpoolError> {
        let path = self.path(q, id);
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        decode(id, &bytes).map_err(|e| retarget(e, &path))?;
        Ok(bytes)
    }

    /// Commit `bytes` (an [`Spool::export`]ed file) to `queue` under `id`, durably: `true` when written,
    /// `false` when `queue` has a message of that id already (importing twice is harmless). Blocking.
    pub fn import(&self, id: &QueueId, bytes: &[u8], queue: Queue) -> Result<bool, SpoolError> {
        let dst = self.path(queue, id);
        decode(id, bytes).map_err(|e| retarget(e, &dst))?;
        if dst.exists() {
            return Ok(false);
        }
        let tmp = self.path(Queue::Incoming, id);
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io_err(&tmp))?;
        // Recorded as going to `queue`, so that recovery finishes an import a crash interrupted.
        let written = file
            .write_all(bytes)
            .and_then(|()| file.write_all_at(&format::destination(queue), format::QUEUE_BYTE))
            .and_then(|()| file.sync_data());
        // A hard link never replaces an existing file (rename would): a message of this id that reached
        // the queue meanwhile stays as it is.
        let linked = written.and_then(|()| fs::hard_link(&tmp, &dst));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(&dst)(e)),
        }
        self.sync_dir(queue)?;
        Ok(true)
    }

    /// Leave a request for the running gateway.
    pub fn request(&self, r: ControlRequest) -> Result<(), SpoolError> {
        let path = self.inner.root.join("control").join(r.file_name());
        File::create(&path).map(drop).map_err(io_err(&path))
    }

    /// Take a pending request, if one was left (the marker is removed).
    pub fn take_request(&self, r: ControlRequest) -> bool {
        fs::remove_file(self.inner.root.join("control").join(r.file_name())).is_ok()
    }
}

/// The envelope and content (the headers this gateway added, then the received content) of an exported
/// queue file, checked like recovery checks a file (complete, sizes matching, trailer present).
pub fn decode(id: &QueueId, bytes: &[u8]) -> Result<(Envelope, Vec<u8>), SpoolError> {
    let invalid = |why: String| SpoolError::Invalid { path: PathBuf::from(id.as_str()), why };
    let msg = format::read_meta(&mut io::Cursor::new(bytes), id.clone(), Queue::Incoming, Check::Checksum)
        .map_err(|e| match e {
            format::ReadError::Io(e) => invalid(e.to_string()),
            format::ReadError::Invalid(why) => invalid(why),
        })?;
    let range = |off: u64, len: u64| bytes.get(off as usize..(off + len) as usize).unwrap_or_default();
    let mut content = Vec::with_capacity(msg.size() as usize);
    content.extend_from_slice(range(msg.prepend_offset(), msg.prepend_len));
    content.extend_from_slice(range(msg.body_offset, msg.body_len));
    Ok((msg.envelope, content))
}

/// An error about exported bytes, named by the file they came from or go to.
fn retarget(e: SpoolError, path: &Path) -> SpoolError {
    match e {
        SpoolError::Invalid { why, .. } => SpoolError::Invalid { path: path.to_path_buf(), why },
        e => e,
    }
}

/// A message being received. Commit it to acknowledge it; drop it to discard it.
#[derive(Debug)]
pub struct Incoming {
    /// Its number among `incoming/`'s creations (see [`entries`]).
    entry: u64,
    spool: Spool,
    id: QueueId,
    path: PathBuf,
    file: BufWriter<File>,
    layout: Option<format::Layout>,
    body_len: u64,
    /// The length of the recycled file this message is written over (0 for a new file).
    recycled_len: u64,
    done: bool,
}

impl Incoming {
    pub fn id(&self) -> &QueueId {
        &self.id
    }

    /// Bytes of content received so far.
    pub fn len(&self) -> u64 {
        self.body_len
    }

    pub fn is_empty(&self) -> bool {
        self.body_len == 0
    }

    /// Append message content.
    pub fn write(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.file.write_all(data).map_err(io_err(&self.path))?;
        self.layout.as_mut().expect("head written at create").content(data);
        self.body_len += data.len() as u64;
        Ok(())
    }

    /// The content written so far, read back (for the verdict engine, which judges what was stored).
    pub fn content(&mut self) -> Result<Vec<u8>, SpoolError> {
        let layout = self.layout.as_ref().expect("head written at create");
        self.file.flush().map_err(io_err(&self.path))?;
        let mut buf = vec![0; self.body_len as usize];
        self.file.get_ref().read_exact_at(&mut buf, layout.body_offset).map_err(io_err(&self.path))?;
        Ok(buf)
    }

    /// Finish the file with `prepend` (headers this gateway adds, in front of the content on delivery),
    /// make it durable, and move it into `queue` (Active or Quarantine; recovery finishes the move if a
    /// crash undoes it). Blocking: call from a blocking context.
    pub fn commit(mut self, prepend: &[u8], queue: Queue) -> Result<QueueId, SpoolError> {
        let layout = self.layout.take().expect("head written at create");
        let path = self.path.clone();
        let end = format::write_tail(&mut self.file, layout, self.body_len, prepend, queue)
            .map_err(io_err(&path))?;
        if self.recycled_len > end {
            self.file.get_ref().set_len(end).map_err(io_err(&path))?;
        }
        self.file.get_ref().sync_data().map_err(io_err(&path))?;
        let incoming = self.spool.dir(Queue::Incoming);
        self.spool.inner.incoming.sync_through(self.entry, &incoming).map_err(io_err(&incoming))?;
        let dst = self.spool.path(queue, &self.id);
        fs::rename(&path, &dst).map_err(io_err(&path))?;
        self.done = true;
        Ok(self.id.clone())
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.done {
            // Never committed: its head has no queue, so no copy of it passes for a message.
            let _ = self.spool.discard(&self.path, &self.id, false);
        }
    }
}

#[cfg(test)]
mod tests;
