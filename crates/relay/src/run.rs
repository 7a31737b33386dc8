//! The scheduler: loads the queue, starts attempts when they are due and slots are free, reacts to
//! control requests, and drains on shutdown.
//!
//! Everything an attempt needs at run time (idle connections, per-next-hop slots) lives in a
//! [`Runtime`] owned by one `run` call, and attempts are tasks in a `JoinSet` that call owns: dropping
//! the `run` future aborts them all and closes every connection, like a process being killed.

use crate::limits::DestLimits;
use crate::outcome::Problem;
use crate::smtp::Pool;
use crate::{Shared, attempt, now_ms};
use spool::{ControlRequest, Queue, QueueId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{self, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;

/// How often control markers are looked for and idle connections swept.
const TICK: Duration = Duration::from_secs(1);

pub(crate) struct Runtime {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pool: Pool,
    pub(crate) dests: Arc<DestLimits>,
    /// Next hops that could not be reached, until when, and why.
    down: Mutex<HashMap<String, (Instant, Problem)>>,
    stopping: AtomicBool,
}

impl Runtime {
    /// Shutting down: connections are no longer kept for reuse.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A next hop could not be reached: for `relay.retry_min`, messages for it are deferred with the
    /// same reason without trying, so a dead next hop costs one connection timeout, not one per message
    /// (and does not hold delivery slots other next hops could use).
    pub(crate) fn mark_down(&self, key: &str, why: &Problem) {
        let until = Instant::now() + self.shared.config().relay.retry_min.get();
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        down.insert(key.to_string(), (until, why.clone()));
    }

    /// Forget which next hops are down (an operator's flush means: try everything now).
    fn clear_down(&self) {
        self.down.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Why `key` is considered down, if it still is.
    pub(crate) fn down_reason(&self, key: &str) -> Option<Problem> {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match down.get(key) {
            Some((until, why)) if *until > Instant::now() => Some(why.clone()),
            Some(_) => {
                down.remove(key);
                None
            }
            None => None,
        }
    }
}

/// Attempts in flight, with the id each task is delivering (a panicked task still names its message).
struct InFlight {
    tasks: JoinSet<Option<u64>>,
    ids: HashMap<task::Id, QueueId>,
}

pub(crate) async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let rt = Arc::new(Runtime {
        shared: shared.clone(),
        pool: Pool::default(),
        dests: Arc::new(DestLimits::default()),
        down: Mutex::new(HashMap::new()),
        stopping: AtomicBool::new(false),
    });
    load_queue(&shared).await;
    let mut flight = InFlight { tasks: JoinSet::new(), ids: HashMap::new() };
    let mut closing: JoinSet<()> = JoinSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *shutdown.borrow() {
            break;
        }
        let has_room = dispatch(&rt, &mut flight);
        // With every slot taken, only a finishing attempt can start the next one: no timer, no spinning.
        let next_due = if has_room { shared.schedule().next_due() } else { None };
        let sleep_until =
            next_due.map(|due| Instant::now() + Duration::from_millis(due.saturating_sub(now_ms())));
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            () = shared.wake.notified() => {}
            Some(joined) = flight.tasks.join_next_with_id(), if !flight.tasks.is_empty() => {
                finished(&shared, &mut flight.ids, joined);
            }
            () = tokio::time::sleep_until(sleep_until.unwrap_or_else(Instant::now)), if sleep_until.is_some() => {}
            _ = tick.tick() => housekeeping(&rt, &mut closing).await,
            Some(_) = closing.join_next(), if !closing.is_empty() => {}
        }
    }
    drain(&rt, flight, closing).await;
}

/// Start every due message while total concurrency allows. Returns whether a slot is still free.
fn dispatch(rt: &Arc<Runtime>, flight: &mut InFlight) -> bool {
    let max = rt.shared.config().relay.max_concurrency.max(1);
    while flight.tasks.len() < max {
        let Some(id) = rt.shared.schedule().pop_due(now_ms()) else {
            return true;
        };
        let span = tracing::info_span!("delivery", queue_id = %id);
        let handle = flight.tasks.spawn(attempt::attempt(rt.clone(), id.clone()).instrument(span));
        flight.ids.insert(handle.id(), id);
    }
    false
}

fn finished(
    shared: &Shared,
    ids: &mut HashMap<task::Id, QueueId>,
    joined: Result<(task::Id, Option<u64>), task::JoinError>,
) {
    let (task_id, retry_at) = match joined {
        Ok((task_id, retry_at)) => (task_id, retry_at),
        Err(e) => {
            // A bug, not a delivery result: keep the message and try again later.
            let retry_at = now_ms() + shared.config().relay.retry_min.get().as_millis() as u64;
            if let Some(id) = ids.get(&e.id()) {
                tracing::error!(queue_id = %id, error = %e, "delivery task failed; retrying later");
            }
            (e.id(), Some(retry_at))
        }
    };
    if let Some(id) = ids.remove(&task_id) {
        let depth = shared.schedule().finished(id, retry_at);
        metrics::gauge!("portcullis_queue_depth").set(depth as f64);
        shared.room.notify_one();
    }
}

/// Everything in `active/`, due at its recorded retry time (ids already known are kept as they are).
async fn load_queue(shared: &Arc<Shared>) {
    shared.schedule().clear();
    let added = scan_active(shared).await;
    tracing::info!(messages = added, "relay started; queue loaded");
}

/// Add the ids in `active/` that the schedule does not know. Returns how many were added.
async fn scan_active(shared: &Arc<Shared>) -> usize {
    let s = shared.clone();
    let found = tokio::task::spawn_blocking(move || {
        let ids = match s.spool.list(Queue::Active) {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the active queue");
                return Vec::new();
            }
        };
        let schedule_knows = |id: &QueueId| s.schedule().contains(id);
        ids.into_iter()
            .filter(|id| !schedule_knows(id))
            // A file that cannot be read now is still tried at once; the attempt sorts it out.
            .map(|id| {
                let due = s.spool.load(Queue::Active, &id).map(|m| m.next_attempt_ms).unwrap_or(0);
                (id, due)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let added = found.len();
    let mut schedule = shared.schedule();
    for (id, due) in found {
        schedule.insert_if_absent(id, due);
    }
    metrics::gauge!("portcullis_queue_depth").set(schedule.len() as f64);
    added
}

/// Once a tick: control requests left by the CLI, and closing idle connections that expired.
async fn housekeeping(rt: &Arc<Runtime>, closing: &mut JoinSet<()>) {
    let spool = rt.shared.spool.clone();
    let (flush, rescan) = tokio::task::spawn_blocking(move || {
        (spool.take_request(ControlRequest::Flush), spool.take_request(ControlRequest::Rescan))
    })
    .await
    .unwrap_or((false, false));
    if rescan {
        let added = scan_active(&rt.shared).await;
        tracing::info!(messages = added, "rescan requested; new messages picked up");
    }
    if flush {
        rt.clear_down();
        rt.shared.schedule().flush(now_ms());
        tracing::info!("flush requested; every deferred message is due now");
    }
    let idle = rt.shared.config().relay.connection_idle.get();
    for conn in rt.pool.expired(rt.shared.generation(), idle) {
        closing.spawn(conn.quit());
    }
}

/// Stop starting attempts; give those in flight `smtp.drain_timeout`, then abandon them (an abandoned
/// attempt crosses nobody off that was not already answered for); close idle connections.
async fn drain(rt: &Arc<Runtime>, mut flight: InFlight, mut closing: JoinSet<()>) {
    rt.stopping.store(true, Ordering::Release);
    let grace = rt.shared.config().smtp.drain_timeout.get();
    let deadline = Instant::now() + grace;
    tracing::info!(in_flight = flight.tasks.len(), "relay stopping");
    loop {
        match tokio::time::timeout_at(deadline, flight.tasks.join_next_with_id()).await {
            Ok(Some(joined)) => finished(&rt.shared, &mut flight.ids, joined),
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    abandoned = flight.tasks.len(),
                    "drain time over; abandoning attempts in flight"
                );
                flight.tasks.shutdown().await;
                break;
            }
        }
    }
    for conn in rt.pool.drain() {
        closing.spawn(conn.quit());
    }
    let closed = async { while closing.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline, closed).await.is_err() {
        closing.shutdown().await;
    }
}
