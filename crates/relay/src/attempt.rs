//! One delivery attempt for one queued message, and the bookkeeping that follows it.
//!
//! Order matters, because a crash can come between any two steps:
//! 1. group the pending recipients by next hop; for each group run one transaction and cross off the
//!    delivered recipients at once (fsynced), before the next group;
//! 2. if the queue lifetime is over, the still-deferred recipients become bounces;
//! 3. bounces: commit the DSN first, then cross the bounced recipients off;
//! 4. nothing left: remove the file; otherwise record the next retry time.

use crate::dsn;
use crate::local;
use crate::outcome::{Outcome, Problem};
use crate::run::Runtime;
use crate::smtp::{self, Transaction};
use crate::{DeliveryEvent, Shared, now_ms};
use config::{Config, NextHop};
use spool::{Queue, QueuedMessage, RcptStatus, SpoolError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What the attempt learnt beyond deliveries (those are recorded as they happen).
#[derive(Default)]
struct Report {
    bounced: Vec<(usize, Problem)>,
    deferred: Vec<(usize, NextHop, Problem)>,
}

/// Run a blocking spool or file operation off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Deliver what is pending for `id`. Returns when to try again (unix ms), or `None` when the message
/// is finished or gone.
pub(crate) async fn attempt(rt: Arc<Runtime>, id: spool::QueueId) -> Option<u64> {
    let config = rt.shared.config();
    let retry_soon = now_ms() + config.relay.retry_min.get().as_millis() as u64;
    let msg = match load(&rt.shared, id).await {
        Loaded::Ready(m) => m,
        Loaded::Gone => return None,
        Loaded::Retry => return Some(retry_soon),
    };
    if msg.pending().next().is_none() {
        return remove(&rt.shared, &msg, retry_soon).await;
    }
    let content = {
        let (spool, m) = (rt.shared.spool.clone(), msg.clone());
        match blocking(move || spool.read_content(&m)).await {
            Ok(c) => Arc::new(c),
            Err(e @ SpoolError::Invalid { .. }) => {
                set_aside(&rt.shared, msg.id.clone(), &e).await;
                return None;
            }
            Err(e) => {
                tracing::error!(queue_id = %msg.id, error = %e, "cannot read the message; retrying later");
                return Some(retry_soon);
            }
        }
    };
    let mut report = Report::default();
    if !deliver_groups(&rt, &config, &msg, &content, &mut report).await {
        return Some(retry_soon);
    }
    finish(&rt.shared, &config, &msg, &content, report, retry_soon).await
}

enum Loaded {
    Ready(Arc<QueuedMessage>),
    /// Deleted by an operator, or corrupt and set aside.
    Gone,
    Retry,
}

async fn load(shared: &Shared, id: spool::QueueId) -> Loaded {
    let spool = shared.spool.clone();
    let lookup = id.clone();
    match blocking(move || spool.load(Queue::Active, &lookup)).await {
        Ok(m) => Loaded::Ready(Arc::new(m)),
        Err(SpoolError::NotFound(_)) => {
            tracing::debug!(queue_id = %id, "no longer in active/");
            Loaded::Gone
        }
        Err(e @ SpoolError::Invalid { .. }) => {
            set_aside(shared, id, &e).await;
            Loaded::Gone
        }
        Err(e) => {
            tracing::error!(queue_id = %id, error = %e, "cannot load the message; retrying later");
            Loaded::Retry
        }
    }
}

/// A queue file that failed validation goes to `corrupt/` for an operator, never delivered.
async fn set_aside(shared: &Shared, id: spool::QueueId, e: &SpoolError) {
    tracing::error!(queue_id = %id, error = %e, "queue file is invalid; moving it to corrupt/");
    let spool = shared.spool.clone();
    let _ = blocking(move || spool.move_to(&id, Queue::Active, Queue::Corrupt)).await;
}

/// The pending recipients grouped by next hop, in recipient order.
fn groups(config: &Config, msg: &QueuedMessage) -> Vec<(NextHop, Vec<usize>)> {
    let mut groups: Vec<(NextHop, Vec<usize>)> = Vec::new();
    for i in msg.pending() {
        let hop = config.next_hop_for(&local::domain_of(&msg.envelope.recipients[i]));
        match groups.iter_mut().find(|(h, _)| h == hop) {
            Some((_, members)) => members.push(i),
            None => groups.push((hop.clone(), vec![i])),
        }
    }
    groups
}

/// One transaction per next hop. Returns false if a delivery could not be recorded (stop now: the
/// retry will find those recipients still pending and send again, which is the lesser evil).
async fn deliver_groups(
    rt: &Arc<Runtime>,
    config: &Arc<Config>,
    msg: &Arc<QueuedMessage>,
    content: &Arc<Vec<u8>>,
    report: &mut Report,
) -> bool {
    let groups = groups(config, msg);
    for (hop, mut members) in groups {
        // A next hop that takes fewer recipients per transaction answers the rest 452 4.5.3: send
        // those again at once, as long as each round gets some through.
        loop {
            let outcomes = deliver_group(rt, config, msg, content, &hop, &members).await;
            if !record_delivered(&rt.shared, msg, &hop, &members, &outcomes).await {
                return false;
            }
            let too_many: Vec<usize> = members
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| too_many_recipients(o))
                .map(|(&i, _)| i)
                .collect();
            let progress = too_many.len() < members.len();
            for (&i, outcome) in members.iter().zip(outcomes) {
                match outcome {
                    Outcome::Delivered(_) => {}
                    Outcome::Bounced(p) => report.bounced.push((i, p)),
                    Outcome::Deferred(_) if progress && too_many.contains(&i) => {}
                    Outcome::Deferred(p) => report.deferred.push((i, hop.clone(), p)),
                }
            }
            if !progress || too_many.is_empty() {
                break;
            }
            members = too_many;
        }
    }
    true
}

/// The next hop's "452 4.5.3 too many recipients": not a failure, only a request to send fewer.
fn too_many_recipients(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Deferred(p) if p.status == smtp_session::StatusCode(4, 5, 3))
}

async fn deliver_group(
    rt: &Arc<Runtime>,
    config: &Arc<Config>,
    msg: &QueuedMessage,
    content: &Arc<Vec<u8>>,
    hop: &NextHop,
    members: &[usize],
) -> Vec<Outcome> {
    let recipients: Vec<String> = members.iter().map(|&i| msg.envelope.recipients[i].clone()).collect();
    match hop {
        NextHop::Local => {
            let shared = rt.shared.clone();
            let _slot = rt
                .dests
                .acquire("local", move || shared.config().relay.max_concurrency_per_destination)
                .await;
            let (config, content) = (config.clone(), content.clone());
            blocking(move || local::deliver(&config, &recipients, &content)).await
        }
        NextHop::Smtp { host, port } => {
            let env = &msg.envelope;
            let headers_utf8 = env.smtputf8 && !dsn::header_section(content).is_ascii();
            let tx = Transaction {
                sender: &env.sender,
                size: msg.size(),
                eight_bit: env.eight_bit,
                needs_smtputf8: headers_utf8
                    || !env.sender.is_ascii()
                    || recipients.iter().any(|r| !r.is_ascii()),
                recipients: &recipients,
                content,
            };
            smtp::deliver(rt, config, &msg.id, (host, *port), &tx).await
        }
    }
}

/// Cross off the delivered recipients of one transaction, durably, then report them.
async fn record_delivered(
    shared: &Shared,
    msg: &Arc<QueuedMessage>,
    hop: &NextHop,
    members: &[usize],
    outcomes: &[Outcome],
) -> bool {
    let delivered: Vec<(usize, &String)> = members
        .iter()
        .zip(outcomes)
        .filter_map(|(&i, o)| match o {
            Outcome::Delivered(reply) => Some((i, reply)),
            _ => None,
        })
        .collect();
    if delivered.is_empty() {
        return true;
    }
    let marks: Vec<(usize, RcptStatus)> =
        delivered.iter().map(|&(i, _)| (i, RcptStatus::Delivered)).collect();
    let (spool, m) = (shared.spool.clone(), msg.clone());
    if let Err(e) = blocking(move || spool.mark_recipients(&m, &marks)).await {
        tracing::error!(queue_id = %msg.id, error = %e, "delivered, but cannot cross the recipients off; they may get it twice");
        return false;
    }
    metrics::counter!("portcullis_relay_delivered_total").increment(delivered.len() as u64);
    for (i, reply) in delivered {
        let recipient = &msg.envelope.recipients[i];
        tracing::info!(queue_id = %msg.id, %recipient, next_hop = %hop, %reply, "delivered");
        shared.emit(
            &msg.id,
            DeliveryEvent::Delivered {
                recipient: recipient.clone(),
                next_hop: hop.clone(),
                reply: reply.clone(),
            },
        );
    }
    true
}

async fn finish(
    shared: &Shared,
    config: &Config,
    msg: &Arc<QueuedMessage>,
    content: &[u8],
    mut report: Report,
    retry_soon: u64,
) -> Option<u64> {
    let now = now_ms();
    let lifetime = config.relay.max_queue_lifetime.get().as_millis() as u64;
    if !report.deferred.is_empty() && now.saturating_sub(msg.envelope.received_at) > lifetime {
        for (i, _, problem) in report.deferred.drain(..) {
            report.bounced.push((i, problem.expired()));
        }
    }
    if !report.bounced.is_empty() && !settle_bounces(shared, config, msg, content, &report.bounced, now).await
    {
        return Some(retry_soon);
    }
    if report.deferred.is_empty() {
        return remove(shared, msg, retry_soon).await;
    }
    Some(defer(shared, config, msg, &report.deferred, now).await)
}

/// DSN first (committed and queued), then cross the bounced recipients off.
async fn settle_bounces(
    shared: &Shared,
    config: &Config,
    msg: &Arc<QueuedMessage>,
    content: &[u8],
    bounced: &[(usize, Problem)],
    now: u64,
) -> bool {
    if dsn::wanted(&msg.envelope) {
        let failed: Vec<dsn::Failed<'_>> = bounced
            .iter()
            .map(|(i, problem)| dsn::Failed { recipient: &msg.envelope.recipients[*i], problem })
            .collect();
        let (envelope, text) = dsn::build(crate::our_hostname(config), msg, content, &failed, now);
        let spool = shared.spool.clone();
        let committed = blocking(move || {
            let mut incoming = spool.create(&envelope)?;
            incoming.write(&text)?;
            incoming.commit(b"", Queue::Active)
        })
        .await;
        match committed {
            Ok(dsn_id) => {
                tracing::info!(queue_id = %msg.id, %dsn_id, recipients = bounced.len(), "DSN queued");
                shared.enqueue(dsn_id.clone());
                shared.emit(&msg.id, DeliveryEvent::DsnQueued { dsn_id });
            }
            Err(e) => {
                tracing::error!(queue_id = %msg.id, error = %e, "cannot queue the DSN; bounced recipients stay pending");
                return false;
            }
        }
    } else {
        tracing::info!(queue_id = %msg.id, "no DSN: the message has the null sender or is itself a bounce");
    }
    let marks: Vec<(usize, RcptStatus)> = bounced.iter().map(|(i, _)| (*i, RcptStatus::Bounced)).collect();
    let (spool, m) = (shared.spool.clone(), msg.clone());
    if let Err(e) = blocking(move || spool.mark_recipients(&m, &marks)).await {
        tracing::error!(queue_id = %msg.id, error = %e, "cannot cross bounced recipients off; retrying later");
        return false;
    }
    metrics::counter!("portcullis_relay_bounced_total").increment(bounced.len() as u64);
    for (i, problem) in bounced {
        let recipient = msg.envelope.recipients[*i].clone();
        let reason = problem.reason();
        tracing::info!(queue_id = %msg.id, %recipient, %reason, "bounced");
        shared.emit(&msg.id, DeliveryEvent::Bounced { recipient, reply_or_reason: reason });
    }
    true
}

/// Record the failed attempt and the next retry time; report the deferrals.
async fn defer(
    shared: &Shared,
    config: &Config,
    msg: &Arc<QueuedMessage>,
    deferred: &[(usize, NextHop, Problem)],
    now: u64,
) -> u64 {
    let next = now + backoff(config, msg.attempts).as_millis() as u64;
    let (spool, m, attempts) = (shared.spool.clone(), msg.clone(), msg.attempts.saturating_add(1));
    if let Err(e) = blocking(move || spool.set_retry(&m, attempts, next)).await {
        // The schedule in memory still holds the time; only a restart would retry early.
        tracing::error!(queue_id = %msg.id, error = %e, "cannot record the retry time");
    }
    metrics::counter!("portcullis_relay_deferred_total").increment(deferred.len() as u64);
    let next_attempt = SystemTime::UNIX_EPOCH + Duration::from_millis(next);
    // One event per next hop and reason.
    let mut reported: Vec<(&NextHop, String, Vec<String>)> = Vec::new();
    for (i, hop, problem) in deferred {
        let reason = problem.reason();
        let recipient = msg.envelope.recipients[*i].clone();
        match reported.iter_mut().find(|(h, r, _)| *h == hop && *r == reason) {
            Some((_, _, recipients)) => recipients.push(recipient),
            None => reported.push((hop, reason, vec![recipient])),
        }
    }
    for (hop, reason, recipients) in reported {
        tracing::info!(queue_id = %msg.id, next_hop = %hop, recipients = recipients.len(), %reason, attempts, retry_in_ms = next - now, "deferred");
        shared.emit(
            &msg.id,
            DeliveryEvent::Deferred {
                recipients,
                next_hop: hop.clone(),
                reply_or_error: reason,
                next_attempt,
            },
        );
    }
    next
}

/// Every recipient is done: the message leaves the queue.
async fn remove(shared: &Shared, msg: &QueuedMessage, retry_soon: u64) -> Option<u64> {
    let (spool, id) = (shared.spool.clone(), msg.id.clone());
    match blocking(move || spool.remove(Queue::Active, &id)).await {
        Ok(()) | Err(SpoolError::NotFound(_)) => {
            tracing::info!(queue_id = %msg.id, "finished; removed from the queue");
            None
        }
        Err(e) => {
            tracing::error!(queue_id = %msg.id, error = %e, "cannot remove the finished message");
            Some(retry_soon)
        }
    }
}

/// `retry_min`, doubling with each failed attempt, at most `retry_max`.
pub(crate) fn backoff(config: &Config, previous_attempts: u32) -> Duration {
    let (min, max) = (config.relay.retry_min.get(), config.relay.retry_max.get());
    min.checked_mul(1u32 << previous_attempts.min(31)).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut config = Config::default();
        config.relay.retry_min = "100ms".parse().unwrap();
        config.relay.retry_max = "1s".parse().unwrap();
        let ms = |n| backoff(&config, n).as_millis();
        assert_eq!([ms(0), ms(1), ms(2), ms(3), ms(4), ms(50)], [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn recipients_are_grouped_by_next_hop() {
        let config: Config = config::load_str(
            "[relay]\nnext_hop = \"smtp://mx.default:25\"\n[[relay.route]]\ndomain = \"a.test\"\nnext_hop = \"smtp://mx.a:25\"\n[[relay.route]]\ndomain = \"localhost\"\nnext_hop = \"local\"\n",
            "test",
            &[],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (spool, _) = spool::Spool::open(dir.path()).unwrap();
        let env = spool::Envelope {
            sender: "s@x".into(),
            recipients: vec!["1@a.test".into(), "2@b.test".into(), "3@A.TEST.".into(), "4@localhost".into()],
            ..Default::default()
        };
        let id = spool.create(&env).unwrap().commit(b"", Queue::Active).unwrap();
        let msg = spool.load(Queue::Active, &id).unwrap();
        spool.mark_recipients(&msg, &[(1, RcptStatus::Delivered)]).unwrap();
        let msg = spool.load(Queue::Active, &id).unwrap();
        let g = groups(&config, &msg);
        let a: NextHop = "smtp://mx.a:25".parse().unwrap();
        assert_eq!(g, vec![(a, vec![0, 2]), (NextHop::Local, vec![3])]);
    }
}
