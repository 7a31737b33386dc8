//! `portcullis quarantine list|show|release|delete|redeem|expire|digest` and `portcullis tracking
//! search`: the quarantine from the command line, beside a running gateway or not.
//!
//! The command line acts as an admin named `cli:<unix user>` through the same [`Quarantine`] the
//! portal uses, so every action is authorized, tracked and audited the same way. A release moves the
//! file to `active/` and leaves a rescan request for the running gateway.

use anyhow::Context as _;
use clap::Subcommand;
use config::Config;
use quarantine::{Actor, Quarantine, ReleaseOptions, SearchQuery, TrackingQuery, Wake};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand, Debug)]
pub(crate) enum QuarantineAction {
    /// List held items, newest first.
    List {
        #[command(flatten)]
        filter: ListFilter,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one item: envelope, verdict symbols with reasons, headers and text body.
    Show {
        /// The item's id (an older one may start with `-`: it is taken as the id, not an option).
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Release an item to its recipients.
    Release {
        /// The item's id (an older one may start with `-`: it is taken as the id, not an option).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Also learn it as ham.
        #[arg(long)]
        learn_ham: bool,
        /// Also put its sender on its recipients' safelists.
        #[arg(long)]
        safelist_sender: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete an item.
    Delete {
        /// The item's id (an older one may start with `-`: it is taken as the id, not an option).
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Carry out a digest link's token (what the portal's digest route does).
    Redeem {
        /// The token (base64url: it may start with `-`, taken as the token, not an option).
        #[arg(allow_hyphen_values = true)]
        token: String,
        #[arg(long)]
        json: bool,
    },
    /// Run expiry now (retention and size caps) and reconcile the index with the spool.
    Expire,
    /// Send the digests that are due now.
    Digest,
}

#[derive(clap::Args, Debug, Default)]
pub(crate) struct ListFilter {
    /// An owner (recipient) address.
    #[arg(long)]
    recipient: Option<String>,
    /// A sender address or domain.
    #[arg(long)]
    sender: Option<String>,
    /// Text in the subject (case-insensitive, literal; its longest word must be a whole word there).
    #[arg(long)]
    subject: Option<String>,
    /// spam, virus or policy.
    #[arg(long)]
    kind: Option<String>,
    /// held, released, deleted or expired (default: any).
    #[arg(long)]
    status: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TrackingAction {
    /// Find messages and show each one's timeline.
    Search {
        #[arg(long)]
        sender: Option<String>,
        #[arg(long)]
        recipient: Option<String>,
        #[arg(long)]
        subject: Option<String>,
        #[arg(long)]
        message_id: Option<String>,
        #[arg(long)]
        client_ip: Option<String>,
        #[arg(long)]
        queue_id: Option<String>,
        /// The verdict's action (accept, tag, quarantine, reject, tempfail).
        #[arg(long)]
        verdict: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

/// Audit records from the command line: appended under the gateway's lock, checkpoint signed.
struct CliAudit(Config);

impl quarantine::AuditSink for CliAudit {
    fn record(&self, event: audit::Event) {
        if let Err(e) = crate::audit_cmd::record_cli(&self.0, event) {
            eprintln!("portcullis: could not write the audit record: {e:#}");
        }
    }
}

/// The command line's actor: an admin named after the unix user.
fn cli_actor() -> Actor {
    let uid = rustix::process::getuid().as_raw();
    let name =
        std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| format!("uid={uid}"));
    Actor::cli(&name, uid)
}

async fn open(config: &Config) -> anyhow::Result<Quarantine> {
    let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
    let spool = spool::Spool::attach(&config.data_dir.join("spool")).context("opening the spool")?;
    let learner = crate::quarantine_wiring::learner(config, &store).await?;
    let audit = Arc::new(CliAudit(config.clone()));
    let plane = quarantine::MailPlane::Local { spool, wake: Wake::Rescan };
    Ok(Quarantine::new(store, plane, Arc::new(config.clone()), audit, learner))
}

pub(crate) fn run(config: &Config, action: QuarantineAction) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let q = open(config).await?;
        let learns = matches!(action, QuarantineAction::Release { learn_ham: true, .. });
        let code = act(&q, action).await?;
        q.close().await;
        if learns {
            crate::model_reload::announce(config).await;
        }
        Ok(code)
    })
}

async fn act(q: &Quarantine, action: QuarantineAction) -> anyhow::Result<ExitCode> {
    let actor = cli_actor();
    match action {
        QuarantineAction::List { filter, json } => list(q, &actor, filter, json).await?,
        QuarantineAction::Show { id, json } => {
            let d = q.get(&actor, &id).await?;
            if json {
                println!("{}", serde_json::to_string(&d)?);
            } else {
                print_detail(&d);
            }
        }
        QuarantineAction::Release { id, learn_ham, safelist_sender, json } => {
            let outcome = q.release(&actor, &id, ReleaseOptions { learn_ham, safelist_sender }).await?;
            print_outcome(&id, "released", &outcome, json)?;
        }
        QuarantineAction::Delete { id, json } => {
            let outcome = q.delete(&actor, &id).await?;
            print_outcome(&id, "deleted", &outcome, json)?;
        }
        QuarantineAction::Redeem { token, json } => return redeem(q, &token, json).await,
        QuarantineAction::Expire => {
            let r = q.reconcile().await?;
            let e = q.expire().await?;
            println!(
                "expired {} by age and {} by size; tracking purged {}; reconciled: {} indexed, {} finished, {} missing",
                e.expired_by_age, e.expired_by_size, e.tracking_purged, r.indexed, r.finished, r.missing
            );
        }
        QuarantineAction::Digest => {
            let r = q.send_digests().await?;
            println!("{} digest(s) queued listing {} item(s)", r.sent, r.items);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(q: &Quarantine, actor: &Actor, f: ListFilter, json: bool) -> anyhow::Result<()> {
    let query = SearchQuery {
        recipient: f.recipient,
        sender: f.sender,
        subject: f.subject,
        kind: f.kind,
        status: f.status,
        limit: Some(f.limit),
        ..Default::default()
    };
    let page = q.search(actor, &query).await?;
    for i in &page.items {
        if json {
            println!("{}", serde_json::to_string(i)?);
        } else {
            // Untrusted text: escaped for the terminal.
            println!(
                "{} {:<6} {:<8} {:>7.2} {:<30} {}",
                i.id,
                i.kind,
                i.status,
                i.score,
                i.sender.escape_debug(),
                i.subject.escape_debug()
            );
        }
    }
    if !json {
        println!(
            "{} item(s){}",
            page.items.len(),
            if page.next.is_some() { " (more: narrow the search)" } else { "" }
        );
    }
    Ok(())
}

fn print_detail(d: &quarantine::ItemDetail) {
    let i = &d.item;
    println!(
        "id:         {}\nqueue id:   {}\nkind:       {}\nstatus:     {}",
        i.id, i.queue_id, i.kind, i.status
    );
    if let Some(by) = &i.status_by {
        println!("by:         {}", by.escape_debug());
    }
    println!(
        "sender:     {}\nrecipients: {}",
        i.sender.escape_debug(),
        i.recipients.join(", ").escape_debug()
    );
    println!(
        "score:      {:.2}\nchecksum:   {}",
        i.score,
        if d.checksum_ok { "ok" } else { "MISMATCH or file gone" }
    );
    for s in &i.symbols {
        println!("  {:<28} {:>7.2}  {}", s.name.escape_debug(), s.score, s.reason.escape_debug());
    }
    println!("--- headers ---");
    for (n, v) in &d.headers {
        println!("{}: {}", n.escape_debug(), v.escape_debug());
    }
    println!("--- text ---\n{}", d.text.escape_debug());
}

fn print_outcome(
    id: &str,
    verb: &str,
    outcome: &quarantine::ActionOutcome,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(outcome)?);
        return Ok(());
    }
    match outcome {
        quarantine::ActionOutcome::Done => println!("{verb} {id}"),
        quarantine::ActionOutcome::AlreadyDone { status, by, .. } => {
            println!("{id} was already {status} by {}", by.as_deref().unwrap_or("the gateway").escape_debug())
        }
    }
    Ok(())
}

async fn redeem(q: &Quarantine, token: &str, json: bool) -> anyhow::Result<ExitCode> {
    match q.redeem(token).await {
        Ok(r) => {
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("{} {}: {:?}", r.claims.action.as_str(), r.claims.item, r.outcome);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let kind = match e {
                quarantine::TokenError::Invalid => "invalid",
                quarantine::TokenError::Expired => "expired",
                quarantine::TokenError::AlreadyUsed => "already_used",
                quarantine::TokenError::Unavailable(_) => "unavailable",
            };
            if json {
                println!("{}", serde_json::json!({"error": kind, "message": e.to_string()}));
            } else {
                eprintln!("portcullis: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) fn tracking(config: &Config, action: TrackingAction) -> anyhow::Result<ExitCode> {
    let TrackingAction::Search {
        sender,
        recipient,
        subject,
        message_id,
        client_ip,
        queue_id,
        verdict,
        limit,
        json,
    } = action;
    let query = TrackingQuery {
        sender,
        recipient,
        subject,
        message_id,
        client_ip,
        queue_id,
        verdict,
        limit: Some(limit),
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let q = open(config).await?;
        let timelines = q.search_tracking(&cli_actor(), &query).await?;
        for t in &timelines {
            if json {
                println!("{}", serde_json::to_string(t)?);
                continue;
            }
            println!(
                "{} {} from {} to {} [{}] {}",
                t.queue_id,
                t.received_at_ms,
                t.sender.escape_debug(),
                t.recipients.join(",").escape_debug(),
                t.verdict,
                t.subject.escape_debug()
            );
            for e in &t.events {
                println!(
                    "  {} {:<12} {:<20} {}",
                    e.at_ms,
                    e.kind,
                    e.actor.escape_debug(),
                    e.details.to_string().escape_debug()
                );
            }
        }
        q.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        action: QuarantineAction,
    }

    /// base64url ids and tokens can start with `-`: they are arguments, not unknown options.
    #[test]
    fn ids_and_tokens_starting_with_a_hyphen_are_arguments() {
        let id = "-zX0aaaaaaaaaaaaaaaaaa";
        for action in ["show", "delete", "redeem"] {
            let parsed = Cli::try_parse_from(["quarantine", action, id, "--json"]).unwrap().action;
            let got = match parsed {
                QuarantineAction::Show { id, json } | QuarantineAction::Delete { id, json } => (id, json),
                QuarantineAction::Redeem { token, json } => (token, json),
                other => panic!("{other:?}"),
            };
            assert_eq!(got, (id.to_string(), true), "{action}");
        }
        let release = Cli::try_parse_from(["quarantine", "release", "--learn-ham", id]).unwrap().action;
        assert!(
            matches!(release, QuarantineAction::Release { id: ref got, learn_ham: true, .. } if got == id)
        );
    }
}
