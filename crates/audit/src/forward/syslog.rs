//! RFC 5424 messages with RFC 6587 octet-counting framing.
//!
//! `<85>1 TIMESTAMP HOSTNAME portcullis PROCID MSGID [audit@32473 seq="N" hash="H"] BOM JSON`: facility
//! authpriv (10), severity notice (5); MSGID is the record's action; the message is the record's line
//! exactly as stored, so the collector can verify the chain itself. A line that is not a record (a
//! damaged log) is still sent, with MSGID `audit.unparsed` and no structured data.

use super::Sink;
use super::conn::{Connector, Stream, alive};
use crate::AuditError;
use crate::record::Record;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const PRI: u8 = 10 * 8 + 5;
const BOM: &str = "\u{FEFF}";
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The collector at `audit.syslog_address`: one connection, opened when needed, checked before each
/// batch (a collector that closed it is reconnected).
pub(crate) struct SyslogSink {
    connector: Connector,
    conn: Option<Box<dyn Stream>>,
    hostname: String,
    pid: u32,
}

impl SyslogSink {
    pub fn new(settings: &config::AuditConfig, hostname: &str) -> Result<SyslogSink, AuditError> {
        Ok(SyslogSink {
            connector: Connector::new(settings)?,
            conn: None,
            hostname: hostname.to_string(),
            pid: std::process::id(),
        })
    }
}

impl Sink for SyslogSink {
    const NAME: &'static str = "syslog collector";

    async fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), String> {
        if let Some(c) = self.conn.as_mut()
            && !alive(c).await
        {
            return Err("the collector closed the connection".into());
        }
        let conn = match self.conn.as_mut() {
            Some(c) => c,
            None => self.conn.insert(self.connector.connect().await?),
        };
        let frames: Vec<u8> = lines.iter().flat_map(|l| frame(l, &self.hostname, self.pid)).collect();
        let sent = tokio::time::timeout(SEND_TIMEOUT, async {
            conn.write_all(&frames).await?;
            conn.flush().await
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("send: {e}")),
            Err(_) => Err("send timed out".into()),
        }
    }

    async fn caught_up(&mut self, _seq: u64) -> Result<(), String> {
        Ok(())
    }

    fn reset(&mut self) {
        self.conn = None;
    }
}

/// One framed message for `line` (a log line without its newline).
pub(crate) fn frame(line: &[u8], hostname: &str, pid: u32) -> Vec<u8> {
    let parsed = Record::parse_line(line).ok();
    let (time, msgid, sd) = match &parsed {
        Some(r) => (
            r.time.as_str(),
            printable(&r.action, 32),
            format!("[audit@32473 seq=\"{}\" hash=\"{}\"]", r.seq, printable(&r.hash, 64)),
        ),
        None => ("-", "audit.unparsed".to_string(), "-".to_string()),
    };
    let time = if time.bytes().all(|b| b.is_ascii_graphic()) && !time.is_empty() { time } else { "-" };
    let host = printable(hostname, 255);
    let mut msg = format!("<{PRI}>1 {time} {host} portcullis {pid} {msgid} {sd} {BOM}").into_bytes();
    msg.extend_from_slice(line);
    let mut framed = format!("{} ", msg.len()).into_bytes();
    framed.extend_from_slice(&msg);
    framed
}

/// `s` limited to printable US-ASCII without spaces (RFC 5424 header fields); `-` if empty.
fn printable(s: &str, max: usize) -> String {
    let out: String = s.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if out.is_empty() { "-".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_count_octets() {
        let line = br#"{"seq":1,"time":"2026-01-01T00:00:00.000Z","actor":"system","action":"gateway.start","target":"","details":{},"prev_hash":"00","hash":"ab"}"#;
        let f = frame(line, "mx.our.test", 42);
        let text = String::from_utf8(f).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(
            msg.starts_with(
                "<85>1 2026-01-01T00:00:00.000Z mx.our.test portcullis 42 gateway.start \
            [audit@32473 seq=\"1\" hash=\"ab\"] \u{FEFF}{\"seq\":1,"
            ),
            "{msg}"
        );
        assert!(msg.ends_with(std::str::from_utf8(line).unwrap()));
        let bad = String::from_utf8(frame(b"junk", "host with space\n", 1)).unwrap();
        assert!(bad.ends_with("<85>1 - hostwithspace portcullis 1 audit.unparsed - \u{FEFF}junk"), "{bad}");
    }
}
