//! `portcullis audit verify|show`, and audit records for what the command line does.

use crate::ConfigSource;
use anyhow::Context;
use audit::{Action, Actor, AuditLog, AuditPaths, Event, Report, SigningKey};
use clap::Subcommand;
use config::Config;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub(crate) enum AuditAction {
    /// Check every record and signed checkpoint; exit 1 and name the first bad record if any.
    Verify {
        /// One JSON object (for monitoring).
        #[arg(long)]
        json: bool,
        /// The checkpoint key to trust (hex), e.g. the one in the gateway's start record at the collector;
        /// default: `<data_dir>/keys/audit-signing.pub`.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
        /// Also check the cluster's trail in the store: every node's chain there, and this node's log
        /// against the store's copy of it (`cluster.node_name`).
        #[arg(long)]
        store: bool,
    },
    /// Print the last records.
    Show {
        #[arg(long, default_value_t = 20)]
        last: usize,
    },
}

pub(crate) fn run(config: &Config, action: AuditAction) -> anyhow::Result<ExitCode> {
    let paths = AuditPaths::new(&config.data_dir);
    match action {
        AuditAction::Verify { json, public_key, store } => {
            let report = audit::verify(&paths, public_key.as_deref()).context("reading the audit trail")?;
            let in_store = if store { Some(verify_store(config, &paths)?) } else { None };
            let ok = report.ok && in_store.as_ref().is_none_or(|r| r.ok);
            if json {
                let both = serde_json::json!({ "ok": ok, "log": &report, "store": &in_store });
                println!("{}", if store { both.to_string() } else { serde_json::to_string(&report)? });
            } else {
                print_report(&report);
                if let Some(r) = &in_store {
                    print_store_report(r);
                }
            }
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        AuditAction::Show { last } => show(&paths, last),
    }
}

fn print_report(r: &Report) {
    let key = r.public_key.as_deref().unwrap_or("none");
    match &r.problem {
        None => println!(
            "audit trail OK: {} records, head seq {} ({}), {} signed checkpoints (last at seq {}), {} records not yet signed; key {key}",
            r.records,
            r.head_seq,
            r.head_hash,
            r.checkpoints,
            r.last_checkpoint_seq.map_or("-".to_string(), |s| s.to_string()),
            r.unsigned_records,
        ),
        Some(p) => {
            let line = p.line.map_or(String::new(), |l| format!(" line {l}"));
            let seq = p.seq.map_or(String::new(), |s| format!(" (seq {s})"));
            println!(
                "audit trail BROKEN: first bad record at {}{line}{seq}: {:?}: {}",
                p.file, p.kind, p.message
            );
            println!("{} records before it verified; key {key}", r.records);
        }
    }
}

/// The cluster's trail in the store, with this node's log compared to its copy there.
fn verify_store(config: &Config, paths: &AuditPaths) -> anyhow::Result<audit::StoreReport> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
        let report = audit::verify_store(&store, Some((&config.cluster.node_name, paths)))
            .await
            .context("reading the audit trail in the store")?;
        store.close().await;
        Ok(report)
    })
}

fn print_store_report(r: &audit::StoreReport) {
    if r.nodes.is_empty() {
        println!("the store holds no node's audit trail (nodes copy theirs only to a PostgreSQL store)");
    }
    for n in &r.nodes {
        let checkpoint = n.last_checkpoint_seq.map_or("-".to_string(), |s| s.to_string());
        match &n.problem {
            None => println!(
                "store trail of node {} OK: {} records, head seq {}, {} checkpoints (last at seq {checkpoint})",
                n.node, n.records, n.head_seq, n.checkpoints
            ),
            Some(p) => println!(
                "store trail of node {} BROKEN at seq {}: {:?}: {} ({} records before it verified)",
                n.node,
                p.seq.map_or("-".to_string(), |s| s.to_string()),
                p.kind,
                p.message,
                n.records
            ),
        }
    }
    if let Some(l) = &r.local {
        match &l.problem {
            None => println!(
                "this node ({}): the store's copy matches the log ({} records; {} not copied yet)",
                l.node, l.compared, l.not_yet_copied
            ),
            Some(p) => println!(
                "this node ({}): the store's copy DIFFERS from the log at seq {}: {}",
                l.node,
                p.seq.map_or("-".to_string(), |s| s.to_string()),
                p.message
            ),
        }
    }
}

/// The last `n` lines, escaped for the terminal (they are JSON; anything else is shown as data).
fn show(paths: &AuditPaths, n: usize) -> anyhow::Result<ExitCode> {
    let path = paths.log();
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut tail = std::collections::VecDeque::with_capacity(n + 1);
    for line in BufReader::new(file).split(b'\n') {
        tail.push_back(line?);
        if tail.len() > n {
            tail.pop_front();
        }
    }
    for line in tail {
        println!("{}", String::from_utf8_lossy(&line).escape_debug());
    }
    Ok(ExitCode::SUCCESS)
}

/// A configuration load or reload: which file, and the SHA-256 of what it held.
pub(crate) fn config_event(action: Action, source: &ConfigSource) -> Event {
    let e = Event::new(action, Actor::System);
    let Some(file) = &source.file else {
        return e.target("(embedded defaults)").detail("overrides", source.set.len().to_string());
    };
    let digest =
        std::fs::read(file).map(|b| audit::sha256_hex(&b)).unwrap_or_else(|e| format!("unreadable: {e}"));
    e.target(file.display().to_string())
        .detail("sha256", digest)
        .detail("overrides", source.set.len().to_string())
}

/// Append `event` from the command line (beside a running gateway or not) and sign the new head.
pub(crate) fn record_cli(config: &Config, event: Event) -> anyhow::Result<u64> {
    let paths = AuditPaths::new(&config.data_dir);
    let mut log = AuditLog::open(&paths).context("opening the audit log")?;
    let written = log.append(vec![event]).context("writing the audit record")?;
    let key = SigningKey::load_or_create(&paths.keys).context("loading the audit signing key")?;
    log.checkpoint(&key).context("signing the audit checkpoint")?;
    Ok(written.last().map_or(0, |r| r.seq))
}

/// The audit record for a queue command that changes something (delete, flush), made before it runs.
pub(crate) fn queue_event(action: &crate::queue_cmd::QueueAction) -> Option<Event> {
    use crate::queue_cmd::QueueAction;
    match action {
        QueueAction::Delete { id, queue } => Some(
            Event::new(Action::QueueDelete, Actor::cli())
                .target(id)
                .detail("queue", format!("{queue:?}").to_lowercase()),
        ),
        QueueAction::Flush => Some(Event::new(Action::QueueFlush, Actor::cli())),
        QueueAction::List { .. } | QueueAction::Show { .. } => None,
    }
}
