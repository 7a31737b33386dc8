//! Copying the log somewhere else as records are written: to a remote syslog collector
//! ([`SyslogSink`]) and, on a shared store, to the cluster's audit trail in the store ([`StoreSink`]).
//!
//! The log is the buffer. A forwarder reads at most a batch of lines after its cursor, hands them to
//! its sink, and only then moves and saves the cursor (one cursor file per sink). While the sink is
//! down nothing waits for it: the writer keeps appending, the forwarder retries with backoff (250 ms
//! doubling to the sink's `*_retry_max`), and past `*_alert_backlog` unsent records it logs an error
//! and records `audit.forward_backlog` (with the sink's name). When the sink is back it gets everything
//! from the cursor, so there is no gap. When a send fails, the last batch sent before it is sent again
//! (at-least-once: a collector may see a record twice, identified by seq and hash; the store skips a
//! record it holds already).

mod conn;
mod cursor;
mod store;
mod syslog;

pub(crate) use store::StoreSink;
pub(crate) use syslog::SyslogSink;

/// The seq of the last record a forwarder with its cursor in `cursor_file` has sent (0 if none).
pub(crate) fn sent_up_to(cursor_file: &std::path::Path) -> u64 {
    cursor::load(cursor_file).seq
}

use crate::event::{Action, Actor, Event};
use crate::log::last_line;
use crate::record::{MAX_LINE, Record};
use crate::writer::Audit;
use cursor::Cursor;
use std::fs::File;
use std::future::Future;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

const RETRY_MIN: Duration = Duration::from_millis(250);
/// How often the log is looked at without a wake-up (catches appends by command-line tools).
const POLL: Duration = Duration::from_secs(1);

/// Where records go: each batch of complete log lines, in order.
pub(crate) trait Sink: Send + 'static {
    /// What it is, for logs and the backlog record.
    const NAME: &'static str;
    /// Deliver `lines` (log lines without their newlines); `Ok` once the sink has them.
    fn send(&mut self, lines: &[Vec<u8>]) -> impl Future<Output = Result<(), String>> + Send;
    /// Called when everything up to `seq` is delivered and the log has nothing newer.
    fn caught_up(&mut self, seq: u64) -> impl Future<Output = Result<(), String>> + Send;
    /// Forget the connection after a failure.
    fn reset(&mut self);
}

/// How much a forwarder reads at once, when it reports an outage, how long it waits at most.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub batch: usize,
    pub alert_backlog: u64,
    pub retry_max: Duration,
}

pub(crate) struct Forwarder<S: Sink> {
    log: PathBuf,
    cursor_file: PathBuf,
    sink: S,
    limits: Limits,
    audit: Audit,
    appended: watch::Receiver<u64>,
}

/// Lines read after a cursor, and the cursor after them.
struct Batch {
    lines: Vec<Vec<u8>>,
    end: Cursor,
}

/// The state of one run of the forwarder.
struct State {
    cursor: Cursor,
    /// Where the last batch sent started (sent again if the next send fails).
    last_sent: Option<Cursor>,
    outage: bool,
    alerted: bool,
}

impl<S: Sink> Forwarder<S> {
    pub fn new(
        log: PathBuf,
        cursor_file: PathBuf,
        sink: S,
        limits: Limits,
        audit: Audit,
        appended: watch::Receiver<u64>,
    ) -> Forwarder<S> {
        Forwarder { log, cursor_file, sink, limits, audit, appended }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let cursor = cursor::load(&self.cursor_file);
        let mut st = State { cursor, last_sent: None, outage: false, alerted: false };
        let mut backoff = RETRY_MIN;
        loop {
            let stopping = *stop.borrow();
            match self.pump(&mut st).await {
                Ok(()) => {
                    backoff = RETRY_MIN;
                    self.recovered(&mut st);
                    if stopping {
                        break;
                    }
                    tokio::select! {
                        _ = self.appended.changed() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(why) => {
                    self.failed(&mut st, &why);
                    if stopping {
                        break;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(self.limits.retry_max);
                }
            }
        }
    }

    /// Send everything after the cursor.
    async fn pump(&mut self, st: &mut State) -> Result<(), String> {
        loop {
            let (path, from, max) = (self.log.clone(), st.cursor.clone(), self.limits.batch);
            let batch = tokio::task::spawn_blocking(move || read_batch(&path, &from, max))
                .await
                .map_err(|e| e.to_string())??;
            if batch.lines.is_empty() {
                st.cursor = batch.end;
                return self.sink.caught_up(st.cursor.seq).await;
            }
            self.sink.send(&batch.lines).await?;
            st.last_sent = Some(std::mem::replace(&mut st.cursor, batch.end));
            cursor::save(&self.cursor_file, &st.cursor).map_err(|e| e.to_string())?;
        }
    }

    fn failed(&mut self, st: &mut State, why: &str) {
        self.sink.reset();
        if let Some(resend) = st.last_sent.take() {
            st.cursor = resend;
        }
        if !st.outage {
            tracing::warn!(
                error = why,
                sink = S::NAME,
                "audit records cannot be forwarded; they wait in the log and are sent when it is back"
            );
            st.outage = true;
        }
        let backlog = self.backlog(&st.cursor);
        if backlog >= self.limits.alert_backlog && !st.alerted {
            tracing::error!(
                backlog,
                sink = S::NAME,
                "audit forwarding down and its backlog passed the alert limit"
            );
            self.audit.record(
                Event::new(Action::ForwardBacklog, Actor::System)
                    .target(S::NAME)
                    .detail("backlog", backlog.to_string())
                    .detail("error", why),
            );
            st.alerted = true;
        }
    }

    fn recovered(&self, st: &mut State) {
        if st.outage {
            tracing::info!(seq = st.cursor.seq, sink = S::NAME, "audit forwarding back; caught up");
            st.outage = false;
            st.alerted = false;
        }
    }

    /// Records in the log not yet sent.
    fn backlog(&self, cursor: &Cursor) -> u64 {
        let Ok(file) = File::open(&self.log) else { return 0 };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let head = last_line(&file, len, &self.log).ok().flatten().and_then(|l| Record::parse_line(&l).ok());
        head.map_or(0, |r| r.seq.saturating_sub(cursor.seq))
    }
}

/// Up to `max` complete lines after `from`. If the log no longer holds what the cursor says (it was
/// truncated or replaced), everything is sent again from the start.
fn read_batch(path: &std::path::Path, from: &Cursor, max: usize) -> Result<Batch, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut start = from.clone();
    if !cursor_matches(&file, len, &start, path) {
        tracing::error!(
            seq = start.seq,
            "the audit log no longer holds the last record forwarded; sending it all again"
        );
        start = Cursor::start();
    }
    file.seek(SeekFrom::Start(start.offset)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(file);
    let mut batch = Batch { lines: Vec::new(), end: start };
    while batch.lines.len() < max {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a line still being written
        }
        line.pop();
        batch.end.offset += n as u64;
        if let Ok(r) = Record::parse_line(&line) {
            (batch.end.seq, batch.end.hash) = (r.seq, r.hash);
        }
        batch.lines.push(line);
    }
    Ok(batch)
}

use std::io::Read as _;

/// Whether the log still ends its first `cursor.offset` bytes with the record the cursor names.
fn cursor_matches(file: &File, len: u64, cursor: &Cursor, path: &std::path::Path) -> bool {
    if cursor.offset == 0 {
        return true;
    }
    if cursor.offset > len {
        return false;
    }
    match last_line(file, cursor.offset, path) {
        Ok(Some(line)) => Record::parse_line(&line).map(|r| r.hash == cursor.hash).unwrap_or(true),
        _ => false,
    }
}
