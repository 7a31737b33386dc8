//! `portcullis queue`: list, show, flush and delete queued messages, beside a running gateway.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use config::Config;
use spool::{ControlRequest, Queue, QueueId, QueuedMessage, RcptStatus, Spool};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Subcommand, Debug)]
pub(crate) enum QueueAction {
    /// List queued messages, oldest first.
    List {
        #[arg(long, value_enum, default_value_t = QueueName::Active)]
        queue: QueueName,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one message: envelope, recipients' state and headers.
    Show {
        id: String,
        #[arg(long, value_enum, default_value_t = QueueName::Active)]
        queue: QueueName,
    },
    /// Retry every deferred message now.
    Flush,
    /// Delete a message without delivering it.
    Delete {
        id: String,
        #[arg(long, value_enum, default_value_t = QueueName::Active)]
        queue: QueueName,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum QueueName {
    Active,
    Quarantine,
    Corrupt,
}

impl From<QueueName> for Queue {
    fn from(q: QueueName) -> Queue {
        match q {
            QueueName::Active => Queue::Active,
            QueueName::Quarantine => Queue::Quarantine,
            QueueName::Corrupt => Queue::Corrupt,
        }
    }
}

pub(crate) fn run(config: &Config, action: QueueAction) -> anyhow::Result<ExitCode> {
    let dir = config.data_dir.join("spool");
    let spool = Spool::attach(&dir).with_context(|| format!("no spool in {}", dir.display()))?;
    match action {
        QueueAction::List { queue, json } => list(&spool, queue.into(), json)?,
        QueueAction::Show { id, queue } => show(&spool, queue.into(), &parse_id(&id)?)?,
        QueueAction::Flush => {
            spool.request(ControlRequest::Flush)?;
            println!("flush requested: the running gateway retries deferred messages within a second");
        }
        QueueAction::Delete { id, queue } => {
            let id = parse_id(&id)?;
            spool.remove(queue.into(), &id)?;
            println!("deleted {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_id(s: &str) -> anyhow::Result<QueueId> {
    QueueId::parse(s).map_err(anyhow::Error::msg)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn list(spool: &Spool, queue: Queue, json: bool) -> anyhow::Result<()> {
    let ids = spool.list(queue)?;
    if !json {
        println!("{:<16} {:>9} {:>8} {:>5} {:<32} recipients", "id", "size", "age", "tries", "sender");
    }
    for id in &ids {
        // A message may be delivered between listing and loading it.
        let Ok(m) = spool.load(queue, id) else { continue };
        if json {
            println!("{}", summary_json(&m));
        } else {
            let pending: Vec<&str> = m.pending().map(|i| m.envelope.recipients[i].as_str()).collect();
            let sender = if m.envelope.sender.is_empty() { "<>" } else { &m.envelope.sender };
            println!(
                "{:<16} {:>9} {:>7}m {:>5} {:<32} {}",
                m.id,
                m.size(),
                now_ms().saturating_sub(m.envelope.received_at) / 60_000,
                m.attempts,
                sender.escape_debug(),
                pending.join(", ").escape_debug()
            );
        }
    }
    if !json {
        println!("{} message(s)", ids.len());
    }
    Ok(())
}

fn summary_json(m: &QueuedMessage) -> serde_json::Value {
    let recipients: Vec<serde_json::Value> = m
        .envelope
        .recipients
        .iter()
        .zip(&m.status)
        .map(|(r, s)| serde_json::json!({"address": r, "status": status_name(*s)}))
        .collect();
    serde_json::json!({
        "id": m.id.as_str(),
        "sender": m.envelope.sender,
        "recipients": recipients,
        "size": m.size(),
        "received_at_ms": m.envelope.received_at,
        "attempts": m.attempts,
        "next_attempt_ms": m.next_attempt_ms,
    })
}

fn status_name(s: RcptStatus) -> &'static str {
    match s {
        RcptStatus::Pending => "pending",
        RcptStatus::Delivered => "delivered",
        RcptStatus::Bounced => "bounced",
    }
}

fn show(spool: &Spool, queue: Queue, id: &QueueId) -> anyhow::Result<()> {
    let m = spool.load(queue, id)?;
    println!("{:#}", summary_json(&m));
    let content = spool.read_content(&m)?;
    let end = content.windows(4).position(|w| w == b"\r\n\r\n").map_or(content.len(), |p| p + 2);
    println!("--- headers ---");
    // Headers are untrusted bytes: shown escaped, never interpreted by the terminal.
    for line in String::from_utf8_lossy(&content[..end.min(64 * 1024)]).split("\r\n") {
        println!("{}", line.escape_debug());
    }
    Ok(())
}
