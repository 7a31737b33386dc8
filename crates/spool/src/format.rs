//! The queue file format.
//!
//! ```text
//! PCQ1 <env_len:10> <nrcpt:6> <body_len:12> <prepend_len:10> <queue:1> <crc:8>   (padded to 63 bytes, LF)
//! <envelope JSON, env_len bytes> LF
//! <one status byte per recipient: '.' pending, 'D' delivered, 'B' bounced> LF
//! <attempts:6> <next_attempt_unix_ms:16> LF                      (fixed width, rewritten in place)
//! <content, body_len bytes>
//! <prepend: headers this gateway adds, prepend_len bytes>
//! PCQ1-END LF
//! ```
//! The header's lengths are written last, just before the fsync; the file is complete only if its size
//! matches them exactly and the trailer is present. `<queue>` is the queue the commit moves the file to
//! (`A` active, `Q` quarantine; a space before the commit and in files of versions before it), so that
//! recovery can finish a commit whose rename a crash undid (see `Spool::open`).
//!
//! `<crc>` (8 hex digits, written with the lengths at the commit) is the CRC-32 of the queue id, the
//! envelope record, the content and the prepend: the parts that never change once committed (the header,
//! the recipients' states and the retry record are rewritten in place). It binds the file to its name
//! and its bytes: a file the spool recycled ([`crate::Spool::create`]) whose new head a crash kept while
//! losing some of its new data, or whose old content a crash kept under its new name, fails the check
//! and is never taken for a committed message. Files of versions before it have spaces there and are
//! read as before, unchecked.

use crate::{Queue, QueueId};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::IpAddr;

use crc32fast::Hasher;

const MAGIC: &[u8; 5] = b"PCQ1 ";
pub(crate) const HEAD_LEN: u64 = 64;
const RETRY_LEN: u64 = 24;
const TRAILER: &[u8] = b"PCQ1-END\n";
/// Bound on the envelope record, so a damaged header cannot make recovery allocate without limit.
const MAX_ENVELOPE: u64 = 16 << 20;

/// Who sent a message to whom, and how it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Envelope {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<String>,
    /// When the message was received, unix milliseconds.
    pub received_at: u64,
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
    #[serde(default)]
    pub helo: Option<String>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub smtputf8: bool,
    /// `BODY=8BITMIME` was declared.
    #[serde(default)]
    pub eight_bit: bool,
    /// The message is a delivery status notification this gateway generated.
    #[serde(default)]
    pub is_bounce: bool,
}

/// A recipient's delivery state, one byte in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptStatus {
    Pending,
    Delivered,
    Bounced,
}

impl RcptStatus {
    pub(crate) fn byte(self) -> u8 {
        match self {
            RcptStatus::Pending => b'.',
            RcptStatus::Delivered => b'D',
            RcptStatus::Bounced => b'B',
        }
    }
    fn from_byte(b: u8) -> Option<RcptStatus> {
        match b {
            b'.' => Some(RcptStatus::Pending),
            b'D' => Some(RcptStatus::Delivered),
            b'B' => Some(RcptStatus::Bounced),
            _ => None,
        }
    }
}

/// A queued message's envelope and delivery state, with where its parts lie in the file.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: QueueId,
    pub queue: Queue,
    pub envelope: Envelope,
    pub status: Vec<RcptStatus>,
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub body_len: u64,
    pub prepend_len: u64,
    pub(crate) status_offset: u64,
    pub(crate) retry_offset: u64,
    pub(crate) body_offset: u64,
    /// The queue the file was committed to, as its header records it.
    pub(crate) committed_to: Option<Queue>,
    /// The checksum the header records, and its state after the id and envelope record: what reading
    /// the content checks it against (`None`: a file written before checksums).
    pub(crate) checksum: Option<(Hasher, u32)>,
}

impl QueuedMessage {
    /// Check `content` (the body, then the prepend, as the file holds them) against the checksum.
    pub(crate) fn content_matches(&self, body: &[u8], prepend: &[u8]) -> bool {
        let Some((start, want)) = &self.checksum else { return true };
        let mut sum = start.clone();
        sum.update(body);
        sum.update(prepend);
        sum.finalize() == *want
    }
    pub(crate) fn prepend_offset(&self) -> u64 {
        self.body_offset + self.body_len
    }
    /// Size as delivered.
    pub fn size(&self) -> u64 {
        self.body_len + self.prepend_len
    }
    /// Indexes of recipients still to deliver.
    pub fn pending(&self) -> impl Iterator<Item = usize> + '_ {
        self.status.iter().enumerate().filter(|(_, s)| **s == RcptStatus::Pending).map(|(i, _)| i)
    }
}

/// Offsets fixed when the head is written.
#[derive(Debug)]
pub(crate) struct Layout {
    env_len: u64,
    nrcpt: u64,
    pub(crate) body_offset: u64,
    /// The checksum of what is written so far (see the module documentation).
    crc: Hasher,
}

impl Layout {
    /// Content appended to the file (for the checksum; the caller writes it).
    pub(crate) fn content(&mut self, data: &[u8]) {
        self.crc.update(data);
    }
}

/// Where the header records the queue a commit moves the file to.
pub(crate) const QUEUE_BYTE: u64 = 47;
/// Where the header records the checksum (see the module documentation).
const CRC_RANGE: std::ops::Range<usize> = 49..57;

fn queue_byte(q: Option<Queue>) -> u8 {
    match q {
        Some(Queue::Active) => b'A',
        Some(Queue::Quarantine) => b'Q',
        Some(Queue::Incoming | Queue::Corrupt) | None => b' ',
    }
}

fn head(
    env_len: u64,
    nrcpt: u64,
    body_len: u64,
    prepend_len: u64,
    to: Option<Queue>,
    crc: Option<u32>,
) -> [u8; HEAD_LEN as usize] {
    let text = format!("PCQ1 {env_len:010} {nrcpt:06} {body_len:012} {prepend_len:010}");
    let mut h = [b' '; HEAD_LEN as usize];
    h[..text.len()].copy_from_slice(text.as_bytes());
    h[QUEUE_BYTE as usize] = queue_byte(to);
    if let Some(crc) = crc {
        h[CRC_RANGE].copy_from_slice(format!("{crc:08x}").as_bytes());
    }
    h[HEAD_LEN as usize - 1] = b'\n';
    h
}

/// The header byte that records `queue` as the one a commit moves the file to.
pub(crate) fn destination(queue: Queue) -> [u8; 1] {
    [queue_byte(Some(queue))]
}

pub(crate) fn retry_record(attempts: u32, next_ms: u64) -> Vec<u8> {
    format!("{:06} {:016}\n", attempts.min(999_999), next_ms.min(9_999_999_999_999_999)).into_bytes()
}

/// The checksum's start: the id and the envelope record.
fn checksum_start(id: &QueueId, envelope_json: &[u8]) -> Hasher {
    let mut crc = Hasher::new();
    crc.update(id.as_str().as_bytes());
    crc.update(envelope_json);
    crc
}

pub(crate) fn write_head(w: &mut impl Write, id: &QueueId, env: &Envelope) -> io::Result<Layout> {
    let json = serde_json::to_vec(env).map_err(io::Error::other)?;
    let (env_len, nrcpt) = (json.len() as u64, env.recipients.len() as u64);
    w.write_all(&head(env_len, nrcpt, 0, 0, None, None))?;
    w.write_all(&json)?;
    w.write_all(b"\n")?;
    w.write_all(&vec![RcptStatus::Pending.byte(); nrcpt as usize])?;
    w.write_all(b"\n")?;
    w.write_all(&retry_record(0, 0))?;
    let body_offset = HEAD_LEN + env_len + 1 + nrcpt + 1 + RETRY_LEN;
    Ok(Layout { env_len, nrcpt, body_offset, crc: checksum_start(id, &json) })
}

/// Finish the file: the prepend, the trailer, then the head with the final lengths, queue and checksum.
/// Returns the file's complete length (a recycled file may hold more, to be cut).
pub(crate) fn write_tail<W: Write + Seek>(
    w: &mut W,
    l: Layout,
    body_len: u64,
    prepend: &[u8],
    to: Queue,
) -> io::Result<u64> {
    let mut crc = l.crc;
    crc.update(prepend);
    w.write_all(prepend)?;
    w.write_all(TRAILER)?;
    let end = w.stream_position()?;
    w.seek(SeekFrom::Start(0))?;
    let head = head(l.env_len, l.nrcpt, body_len, prepend.len() as u64, Some(to), Some(crc.finalize()));
    w.write_all(&head)?;
    w.flush()?;
    Ok(end)
}

/// Whether a queue file's head (its first bytes) carries a checksum, so that a copy of it under
/// another name can never be taken for that name's message.
pub(crate) fn head_has_checksum(h: &[u8]) -> bool {
    h.len() >= HEAD_LEN as usize && h.starts_with(MAGIC) && h[CRC_RANGE].iter().all(u8::is_ascii_hexdigit)
}

pub(crate) enum ReadError {
    Io(io::Error),
    Invalid(String),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

fn field(h: &[u8], range: std::ops::Range<usize>) -> Result<u64, ReadError> {
    std::str::from_utf8(&h[range])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ReadError::Invalid("bad header field".into()))
}

/// Whether [`read_meta`] reads the whole file to check its checksum, or only the parts it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Lengths, records and trailer (what loading a queued message needs).
    Structure,
    /// That and the checksum: for a file whose last write a crash may have cut (recovery of
    /// `incoming/`) or whose bytes came from elsewhere (an import).
    Checksum,
}

pub(crate) fn read_meta<F: Read + Seek>(
    f: &mut F,
    id: QueueId,
    queue: Queue,
    check: Check,
) -> Result<QueuedMessage, ReadError> {
    let invalid = |s: &str| ReadError::Invalid(s.to_string());
    let file_len = f.seek(SeekFrom::End(0))?;
    f.seek(SeekFrom::Start(0))?;
    let mut h = [0u8; HEAD_LEN as usize];
    f.read_exact(&mut h).map_err(|_| invalid("shorter than its header"))?;
    if &h[..5] != MAGIC || h[HEAD_LEN as usize - 1] != b'\n' {
        return Err(invalid("not a queue file"));
    }
    let (env_len, nrcpt) = (field(&h, 5..15)?, field(&h, 16..22)?);
    let (body_len, prepend_len) = (field(&h, 23..35)?, field(&h, 36..46)?);
    let crc = match &h[CRC_RANGE] {
        b if b.iter().all(|&c| c == b' ') => None,
        b => Some(
            std::str::from_utf8(b)
                .ok()
                .and_then(|t| u32::from_str_radix(t, 16).ok())
                .ok_or_else(|| invalid("bad checksum field"))?,
        ),
    };
    let committed_to = match h[QUEUE_BYTE as usize] {
        b'A' => Some(Queue::Active),
        b'Q' => Some(Queue::Quarantine),
        b' ' => None,
        _ => return Err(invalid("bad queue byte")),
    };
    if env_len > MAX_ENVELOPE || nrcpt > MAX_ENVELOPE {
        return Err(invalid("envelope too large"));
    }
    let status_offset = HEAD_LEN + env_len + 1;
    let retry_offset = status_offset + nrcpt + 1;
    let body_offset = retry_offset + RETRY_LEN;
    let expected = body_offset + body_len + prepend_len + TRAILER.len() as u64;
    if file_len != expected {
        return Err(invalid("incomplete: size does not match the header"));
    }
    let mut meta = vec![0u8; (env_len + 1 + nrcpt + 1 + RETRY_LEN) as usize];
    f.read_exact(&mut meta)?;
    let envelope: Envelope = serde_json::from_slice(&meta[..env_len as usize])
        .map_err(|e| ReadError::Invalid(format!("envelope: {e}")))?;
    if envelope.recipients.len() as u64 != nrcpt {
        return Err(invalid("recipient count does not match the header"));
    }
    let status_bytes = &meta[env_len as usize + 1..(env_len + 1 + nrcpt) as usize];
    let status = status_bytes
        .iter()
        .map(|&b| RcptStatus::from_byte(b))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| invalid("bad recipient status"))?;
    let retry = &meta[(env_len + 1 + nrcpt + 1) as usize..];
    let attempts = field(retry, 0..6)? as u32;
    let next_attempt_ms = field(retry, 7..23)?;
    let content_len = body_len + prepend_len;
    let checksum = crc.map(|want| (checksum_start(&id, &meta[..env_len as usize]), want));
    if let (Check::Checksum, Some((start, want))) = (check, &checksum) {
        let mut sum = start.clone();
        f.seek(SeekFrom::Start(body_offset))?;
        let mut rest = Read::take(&mut *f, content_len);
        let mut buf = vec![0u8; content_len.min(64 * 1024) as usize];
        loop {
            let n = rest.read(&mut buf)?;
            if n == 0 {
                break;
            }
            sum.update(&buf[..n]);
        }
        if sum.finalize() != *want {
            return Err(invalid("checksum does not match (a cut write, or another message's file)"));
        }
    }
    f.seek(SeekFrom::Start(body_offset + content_len))?;
    let mut trailer = [0u8; TRAILER.len()];
    f.read_exact(&mut trailer)?;
    if trailer != TRAILER {
        return Err(invalid("missing trailer"));
    }
    Ok(QueuedMessage {
        id,
        queue,
        envelope,
        status,
        attempts,
        next_attempt_ms,
        body_len,
        prepend_len,
        status_offset,
        retry_offset,
        body_offset,
        committed_to,
        checksum,
    })
}
