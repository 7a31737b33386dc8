//! Forwarding to a remote syslog collector, as records are written.
//!
//! The log is the buffer. The forwarder reads at most `syslog_batch` lines after its cursor, sends them,
//! and only then moves and saves the cursor. While the collector is down nothing waits for it: the
//! writer keeps appending, the forwarder retries with backoff (250 ms doubling to `syslog_retry_max`),
//! and past `syslog_alert_backlog` unsent records it logs an error and records `audit.forward_backlog`.
//! When the collector is back it sends everything from the cursor, so there is no gap. Before each batch
//! it checks the connection is still open; when a connection fails, the last batch sent on it is sent
//! again (at-least-once: a collector may see a record twice, identified by seq and hash).

mod conn;
mod cursor;
mod syslog;

use crate::event::{Action, Actor, Event};
use crate::log::last_line;
use crate::record::{MAX_LINE, Record};
use crate::{AuditError, AuditPaths, writer::Audit};
use conn::{Connector, Stream, alive};
use cursor::Cursor;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

const RETRY_MIN: Duration = Duration::from_millis(250);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the log is looked at without a wake-up (catches appends by command-line tools).
const POLL: Duration = Duration::from_secs(1);

pub(crate) struct Forwarder {
    paths: AuditPaths,
    connector: Connector,
    hostname: String,
    batch: usize,
    alert_backlog: u64,
    retry_max: Duration,
    audit: Audit,
    appended: Arc<Notify>,
}

/// Lines read after a cursor, and the cursor after them.
struct Batch {
    frames: Vec<u8>,
    lines: usize,
    end: Cursor,
}

/// The state of one run of the forwarder.
struct State {
    cursor: Cursor,
    conn: Option<Box<dyn Stream>>,
    /// Where the last batch sent on `conn` started (sent again if `conn` fails).
    last_sent: Option<Cursor>,
    outage: bool,
    alerted: bool,
}

impl Forwarder {
    pub fn new(
        paths: AuditPaths,
        settings: &config::AuditConfig,
        hostname: &str,
        audit: Audit,
        appended: Arc<Notify>,
    ) -> Result<Forwarder, AuditError> {
        Ok(Forwarder {
            connector: Connector::new(settings)?,
            paths,
            hostname: hostname.to_string(),
            batch: settings.syslog_batch,
            alert_backlog: settings.syslog_alert_backlog,
            retry_max: settings.syslog_retry_max.get(),
            audit,
            appended,
        })
    }

    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let cursor = cursor::load(&self.paths.cursor());
        let mut st = State { cursor, conn: None, last_sent: None, outage: false, alerted: false };
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
                        _ = self.appended.notified() => {}
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
                    backoff = (backoff * 2).min(self.retry_max);
                }
            }
        }
    }

    /// Send everything after the cursor.
    async fn pump(&self, st: &mut State) -> Result<(), String> {
        loop {
            let (path, from, max, host) =
                (self.paths.log(), st.cursor.clone(), self.batch, self.hostname.clone());
            let batch = tokio::task::spawn_blocking(move || read_batch(&path, &from, max, &host))
                .await
                .map_err(|e| e.to_string())??;
            if batch.lines == 0 {
                st.cursor = batch.end;
                return Ok(());
            }
            if let Some(c) = st.conn.as_mut()
                && !alive(c).await
            {
                return Err("the collector closed the connection".into());
            }
            let conn = match st.conn.as_mut() {
                Some(c) => c,
                None => st.conn.insert(self.connector.connect().await?),
            };
            let sent = tokio::time::timeout(SEND_TIMEOUT, async {
                conn.write_all(&batch.frames).await?;
                conn.flush().await
            })
            .await;
            match sent {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("send: {e}")),
                Err(_) => return Err("send timed out".into()),
            }
            st.last_sent = Some(std::mem::replace(&mut st.cursor, batch.end));
            cursor::save(&self.paths.cursor(), &st.cursor).map_err(|e| e.to_string())?;
        }
    }

    fn failed(&self, st: &mut State, why: &str) {
        st.conn = None;
        if let Some(resend) = st.last_sent.take() {
            st.cursor = resend;
        }
        if !st.outage {
            tracing::warn!(
                error = why,
                "audit collector unreachable; records wait in the log and are sent when it is back"
            );
            st.outage = true;
        }
        let backlog = self.backlog(&st.cursor);
        if backlog >= self.alert_backlog && !st.alerted {
            tracing::error!(
                backlog,
                "audit collector unreachable and the backlog passed audit.syslog_alert_backlog"
            );
            self.audit.record(
                Event::new(Action::ForwardBacklog, Actor::System)
                    .detail("backlog", backlog.to_string())
                    .detail("error", why),
            );
            st.alerted = true;
        }
    }

    fn recovered(&self, st: &mut State) {
        if st.outage {
            tracing::info!(seq = st.cursor.seq, "audit collector reachable again; caught up");
            st.outage = false;
            st.alerted = false;
        }
    }

    /// Records in the log not yet sent.
    fn backlog(&self, cursor: &Cursor) -> u64 {
        let path = self.paths.log();
        let Ok(file) = File::open(&path) else { return 0 };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let head = last_line(&file, len, &path).ok().flatten().and_then(|l| Record::parse_line(&l).ok());
        head.map_or(0, |r| r.seq.saturating_sub(cursor.seq))
    }
}

/// Up to `max` complete lines after `from`, framed. If the log no longer holds what the cursor says
/// (it was truncated or replaced), everything is sent again from the start.
fn read_batch(path: &std::path::Path, from: &Cursor, max: usize, host: &str) -> Result<Batch, String> {
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
    let mut batch = Batch { frames: Vec::new(), lines: 0, end: start };
    let pid = std::process::id();
    while batch.lines < max {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a line still being written
        }
        line.pop();
        batch.frames.extend_from_slice(&syslog::frame(&line, host, pid));
        batch.lines += 1;
        batch.end.offset += n as u64;
        if let Ok(r) = Record::parse_line(&line) {
            (batch.end.seq, batch.end.hash) = (r.seq, r.hash);
        }
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
