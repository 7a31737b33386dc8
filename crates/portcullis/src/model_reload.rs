//! Keeping a serving node's classifier in step with the store, without a restart: when any process
//! learns (`portcullis learn`, a quarantine action here or on another node), every node reloads the
//! weights from the store and swaps them in; verdicts wait only for the swap.
//!
//! How a node notices, cheapest first: a notice on the Redis channel (`[cache]`, immediate); the
//! Redis generation key, polled every `cache.model_check_interval` (a missed notice); the store's
//! learned totals, polled at the same interval (no Redis, or Redis down; learning a message adds to
//! or moves between the totals, so they change whenever the weights do, except when moves cancel out
//! between two polls, which the generation covers). Learning in this process shows as the in-memory
//! totals moving away from what was loaded, looked at after every quarantine action (a [`Nudge`])
//! and every check: the node then bumps the generation, so the others reload at once, and reloads
//! itself (which also mends a reload that raced the learning).
//!
//! Owns: the reload loop. Must not touch: how weights are learned or stored (`classifier`, `store`).

use cache::Cache;
use classifier::Classifier;
use config::Config;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// The model a process judges and learns with, the store it comes from, and what says it may have
/// learned.
pub(crate) struct Model {
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) store: store::Store,
    pub(crate) nudge: Nudge,
}

/// "This process may just have learned" (after a quarantine action): the reload loop then compares
/// the in-memory totals at once, which costs nothing when they did not move.
#[derive(Clone, Default)]
pub(crate) struct Nudge(Arc<Notify>);

impl Nudge {
    pub(crate) fn nudge(&self) {
        self.0.notify_one();
    }
}

/// What a node has seen of the model's versions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    generation: Option<u64>,
    totals: Option<(u64, u64)>,
}

impl Seen {
    /// Whether `now` shows a change (a part that could not be read shows none).
    fn changed_in(&self, now: &Seen) -> bool {
        moved(self.generation, now.generation) || moved(self.totals, now.totals)
    }

    /// `now`, keeping what could not be read this time.
    fn update(&mut self, now: Seen) {
        self.generation = now.generation.or(self.generation);
        self.totals = now.totals.or(self.totals);
    }
}

/// Reload `model` whenever it changes elsewhere, until `stopped` turns true.
pub(crate) async fn keep_current(
    model: Model,
    cache: Option<Cache>,
    config: Arc<Config>,
    mut stopped: watch::Receiver<bool>,
) {
    // A ticker, not a sleep per turn: nudges and notices must not keep putting the poll off.
    let mut checks = tokio::time::interval(config.cache.model_check_interval.get());
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    checks.tick().await;
    let mut notices = cache.as_ref().map(Cache::model_changes);
    let mut seen = look(&model, cache.as_ref()).await;
    let mut loaded = model.classifier.learned();
    loop {
        let nudged = tokio::select! {
            _ = checks.tick() => false,
            _ = notice(&mut notices) => false,
            _ = model.nudge.0.notified() => true,
            _ = stopped.changed() => return,
        };
        let learned_here = model.classifier.learned() != loaded;
        if nudged && !learned_here {
            continue;
        }
        if learned_here && let Some(cache) = &cache {
            match cache.publish_model_changed().await {
                Ok(generation) => tracing::info!(generation, "classifier learned here: other nodes told"),
                Err(e) => tracing::debug!(error = %e, "could not announce learning (others poll the store)"),
            }
        }
        let now = look(&model, cache.as_ref()).await;
        if learned_here || seen.changed_in(&now) {
            let stale = model.classifier.stale();
            match classifier::reload(&model.classifier, &model.store).await {
                Ok(()) => {
                    loaded = model.classifier.learned();
                    tracing::info!(spam = loaded.0, ham = loaded.1, "classifier reloaded from the store");
                    crate::stale_model::log_change(stale, &model.classifier);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reloading the classifier failed; keeping the current one")
                }
            }
        }
        seen.update(now);
    }
}

/// Tell the serving nodes that the model in the store changed (after `portcullis learn` or
/// `portcullis quarantine release --learn-ham`), through Redis when there is one; they poll the
/// store as well, so a failure here only delays them.
pub(crate) async fn announce(config: &Config) {
    let told = match cache::Cache::from_config(&config.cache) {
        Ok(None) => return,
        Ok(Some(cache)) => cache.publish_model_changed().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = told {
        eprintln!(
            "could not tell the gateways through Redis ({e}); they notice within cache.model_check_interval"
        );
    }
}

/// The next announced generation; never, without Redis or once its follower has ended.
async fn notice(notices: &mut Option<watch::Receiver<u64>>) {
    let announced = match notices {
        Some(rx) => rx.changed().await.is_ok(),
        None => false,
    };
    if !announced {
        std::future::pending::<()>().await;
    }
}

/// Whether a value read both times differs.
fn moved<T: PartialEq>(before: Option<T>, now: Option<T>) -> bool {
    before.is_some() && now.is_some() && before != now
}

async fn look(model: &Model, cache: Option<&Cache>) -> Seen {
    let generation = match cache {
        Some(c) => c.model_generation().await.ok(),
        None => None,
    };
    let totals = model.store.classifier_totals().await.ok().map(|t| (t.spam, t.ham));
    Seen { generation, totals }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_parts_read_both_times_count_as_changes() {
        let seen = Seen { generation: Some(3), totals: Some((10, 20)) };
        assert!(
            !seen.changed_in(&Seen { generation: None, totals: Some((10, 20)) }),
            "Redis down: no change"
        );
        assert!(seen.changed_in(&Seen { generation: None, totals: Some((11, 20)) }), "the store moved");
        assert!(
            seen.changed_in(&Seen { generation: Some(4), totals: Some((10, 20)) }),
            "moves that cancel out"
        );
        let mut s = Seen::default();
        s.update(Seen { generation: None, totals: Some((1, 1)) });
        s.update(Seen { generation: Some(7), totals: None });
        assert_eq!(s, Seen { generation: Some(7), totals: Some((1, 1)) });
    }
}
