//! `audit verify`: walk the chain, check every record and every signed checkpoint, and name the first
//! thing that is wrong.

use crate::checkpoint::Checkpoint;
use crate::log::Head;
use crate::record::{GENESIS, MAX_LINE, Record};
use crate::{AuditError, AuditPaths, io_err};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// What kind of damage was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A line is not a record in canonical form (a flipped byte, a hand edit).
    Malformed,
    /// A record's content does not give its hash (modified).
    Modified,
    /// Sequence numbers skip (records deleted) or go back (reordered, duplicated).
    Sequence,
    /// `prev_hash` is not the previous record's hash.
    Chain,
    /// The log is shorter than a signed checkpoint, or its last line is incomplete.
    Truncated,
    /// A record differs from the one a checkpoint signed (the log was replaced).
    CheckpointMismatch,
    /// A checkpoint's signature does not verify, or checkpoints go backwards.
    BadCheckpoint,
    /// The log has records but no checkpoint (the checkpoint file was removed).
    NoCheckpoint,
    /// The store's copy of a node's trail disagrees with that node's log.
    Differs,
}

/// The first thing wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Where it is: `audit.log` or `checkpoints.log`, or `store` (the cluster's copy, see
    /// [`crate::verify_store`]).
    pub file: &'static str,
    /// 1-based line number, if the problem is at a line.
    pub line: Option<u64>,
    /// The sequence number the bad record carries (or should carry), if known.
    pub seq: Option<u64>,
    pub message: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    /// Whether there is a log at all.
    pub log_exists: bool,
    /// Records read before the first problem (all of them if none).
    pub records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub checkpoints: u64,
    pub last_checkpoint_seq: Option<u64>,
    /// Records after the last checkpoint (not yet signed; covered by forwarding).
    pub unsigned_records: u64,
    /// The key checkpoints were verified with.
    pub public_key: Option<String>,
    pub problem: Option<Problem>,
}

pub(crate) fn problem(
    kind: ProblemKind,
    file: &'static str,
    line: Option<u64>,
    seq: Option<u64>,
    message: String,
) -> Problem {
    Problem { kind, file, line, seq, message }
}

/// Verify the trail in `paths` with checkpoints checked against `public_key` (hex). Without a key the
/// one in `keys/audit-signing.pub` is used; the report says which.
pub fn verify(paths: &AuditPaths, public_key: Option<&str>) -> Result<Report, AuditError> {
    let key = match public_key {
        Some(k) => Some(k.trim().to_ascii_lowercase()),
        None => read_public_key(&paths.keys.join(crate::PUBLIC_KEY_FILE))?,
    };
    let mut report = Report {
        ok: false,
        log_exists: paths.log().exists(),
        records: 0,
        head_seq: 0,
        head_hash: GENESIS.into(),
        checkpoints: 0,
        last_checkpoint_seq: None,
        unsigned_records: 0,
        public_key: key.clone(),
        problem: None,
    };
    let signed = match read_checkpoints(&paths.checkpoints(), key.as_deref(), &mut report)? {
        Ok(signed) => signed,
        Err(p) => return Ok(finish(report, Some(p))),
    };
    let found = walk_log(&paths.log(), &signed, &mut report)?;
    let found = found.or_else(|| after_log(&signed, &report));
    Ok(finish(report, found))
}

fn finish(mut report: Report, problem: Option<Problem>) -> Report {
    report.unsigned_records = report.head_seq.saturating_sub(report.last_checkpoint_seq.unwrap_or(0));
    report.ok = problem.is_none();
    report.problem = problem;
    report
}

fn read_public_key(path: &Path) -> Result<Option<String>, AuditError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t.trim().to_ascii_lowercase())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// A line read (bounded) and whether it ended in a newline.
pub(crate) type Line = std::io::Result<(Vec<u8>, bool)>;

/// The lines of `path`, if it exists.
pub(crate) fn lines(path: &Path) -> Result<Option<impl Iterator<Item = Line>>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut reader = BufReader::new(file);
    Ok(Some(std::iter::from_fn(move || {
        let mut line = Vec::new();
        match (&mut reader).take(MAX_LINE as u64 + 2).read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) => {
                let complete = line.last() == Some(&b'\n');
                if complete {
                    line.pop();
                }
                Some(Ok((line, complete)))
            }
            Err(e) => Some(Err(e)),
        }
    })))
}

/// Signed checkpoints by seq → hash, or the first bad checkpoint.
fn read_checkpoints(
    path: &Path,
    key: Option<&str>,
    report: &mut Report,
) -> Result<Result<BTreeMap<u64, String>, Problem>, AuditError> {
    const FILE: &str = crate::CHECKPOINT_FILE;
    let mut signed = BTreeMap::new();
    let Some(lines) = lines(path)? else { return Ok(Ok(signed)) };
    for (n, line) in lines.enumerate() {
        let n = n as u64 + 1;
        let (line, complete) = line.map_err(io_err(path))?;
        let bad = |m: String| Ok(Err(problem(ProblemKind::BadCheckpoint, FILE, Some(n), None, m)));
        let cp = match Checkpoint::parse_line(&line) {
            Ok(cp) if complete => cp,
            Ok(_) => return bad("incomplete line".into()),
            Err(why) => return bad(why),
        };
        let Some(key) = key else {
            return bad("no public key to verify checkpoints with (keys/audit-signing.pub missing; pass --public-key)".into());
        };
        if !cp.verify(key) {
            return bad(format!("signature for seq {} does not verify with key {key}", cp.seq));
        }
        if report.last_checkpoint_seq.is_some_and(|last| cp.seq <= last) {
            return bad(format!("checkpoint for seq {} goes backwards", cp.seq));
        }
        report.checkpoints += 1;
        report.last_checkpoint_seq = Some(cp.seq);
        signed.insert(cp.seq, cp.hash);
    }
    Ok(Ok(signed))
}

/// Check every record in order; the first problem, if any.
fn walk_log(
    path: &Path,
    signed: &BTreeMap<u64, String>,
    report: &mut Report,
) -> Result<Option<Problem>, AuditError> {
    const FILE: &str = crate::LOG_FILE;
    let Some(lines) = lines(path)? else { return Ok(None) };
    let mut head = Head::genesis();
    for (n, line) in lines.enumerate() {
        let n = n as u64 + 1;
        let (line, complete) = line.map_err(io_err(path))?;
        let expected = head.seq + 1;
        let at = |kind, seq, m: String| Some(problem(kind, FILE, Some(n), seq, m));
        if !complete {
            return Ok(at(
                ProblemKind::Truncated,
                Some(expected),
                "incomplete last record (no newline)".into(),
            ));
        }
        let r = match Record::parse_line(&line) {
            Ok(r) => r,
            Err(why) => return Ok(at(ProblemKind::Malformed, Some(expected), why)),
        };
        if let Some(p) = check_record(&r, &head, signed) {
            return Ok(at(p.0, Some(r.seq), p.1));
        }
        head = Head { seq: r.seq, hash: r.hash };
        report.records += 1;
        report.head_seq = head.seq;
        report.head_hash = head.hash.clone();
    }
    Ok(None)
}

pub(crate) fn check_record(
    r: &Record,
    prev: &Head,
    signed: &BTreeMap<u64, String>,
) -> Option<(ProblemKind, String)> {
    let expected = prev.seq + 1;
    if r.seq > expected {
        let missing = r.seq - expected;
        return Some((
            ProblemKind::Sequence,
            format!("{missing} record(s) missing before it (expected seq {expected})"),
        ));
    }
    if r.seq < expected {
        return Some((ProblemKind::Sequence, format!("out of order or repeated (expected seq {expected})")));
    }
    if r.computed_hash() != r.hash {
        return Some((ProblemKind::Modified, "its content does not match its hash (modified)".into()));
    }
    if r.prev_hash != prev.hash {
        return Some((ProblemKind::Chain, "prev_hash is not the previous record's hash".into()));
    }
    match signed.get(&r.seq) {
        Some(h) if *h != r.hash => Some((
            ProblemKind::CheckpointMismatch,
            "differs from the record a signed checkpoint names (the log was replaced)".into(),
        )),
        _ => None,
    }
}

/// Problems visible only once the whole log is read: a checkpoint past its end, or no checkpoint at all.
fn after_log(signed: &BTreeMap<u64, String>, report: &Report) -> Option<Problem> {
    const FILE: &str = crate::LOG_FILE;
    if let Some((&seq, _)) = signed.iter().next_back()
        && seq > report.head_seq
    {
        let m = format!("the log ends at seq {} but a signed checkpoint covers seq {seq}", report.head_seq);
        return Some(problem(
            ProblemKind::Truncated,
            FILE,
            Some(report.records + 1),
            Some(report.head_seq + 1),
            m,
        ));
    }
    if report.records > 0 && signed.is_empty() {
        let m = "records but no signed checkpoint (checkpoints.log removed?)".to_string();
        return Some(problem(ProblemKind::NoCheckpoint, crate::CHECKPOINT_FILE, None, None, m));
    }
    None
}
