//! The in-memory schedule: which queued messages exist and when each is next due.
//!
//! A min-heap by due time with lazy deletion: an id's current state lives in `entries`; heap items
//! whose sequence number no longer matches are stale and skipped. The spool's on-disk retry record is
//! the durable copy; this is rebuilt from it at start.

use spool::QueueId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Due at `due` (unix ms); `seq` names the heap item that is current.
    Waiting { due: u64, seq: u64 },
    /// A delivery task has it.
    InFlight,
}

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    entries: HashMap<QueueId, Entry>,
    heap: BinaryHeap<Reverse<(u64, u64, QueueId)>>,
    seq: u64,
    /// Ids handed over for delivery now ([`Schedule::enqueue`]) whose attempt has not finished: the
    /// backlog intake's flow control watches (retries waiting for their time are not in it).
    fresh: HashSet<QueueId>,
}

impl Schedule {
    fn set_waiting(&mut self, id: QueueId, due: u64) {
        self.seq += 1;
        self.entries.insert(id.clone(), Entry::Waiting { due, seq: self.seq });
        self.heap.push(Reverse((due, self.seq, id)));
    }

    /// Add an id found on disk, unless it is already known. Returns the depth.
    pub(crate) fn insert_if_absent(&mut self, id: QueueId, due: u64) -> usize {
        if !self.entries.contains_key(&id) {
            self.set_waiting(id, due);
        }
        self.len()
    }

    /// Make `id` due at `now` at the latest, adding it if unknown; an id being delivered is left alone.
    pub(crate) fn enqueue(&mut self, id: QueueId, now: u64) -> usize {
        self.fresh.insert(id.clone());
        match self.entries.get(&id) {
            Some(Entry::InFlight) => {}
            Some(Entry::Waiting { due, .. }) if *due <= now => {}
            _ => self.set_waiting(id, now),
        }
        self.len()
    }

    /// Take the earliest message due at or before `now`, marking it in flight.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<QueueId> {
        while let Some(Reverse((due, seq, _))) = self.heap.peek() {
            let (due, seq) = (*due, *seq);
            let Some(Reverse((_, _, id))) = self.heap.pop() else {
                break;
            };
            if self.entries.get(&id) != Some(&Entry::Waiting { due, seq }) {
                continue; // stale
            }
            if due > now {
                self.heap.push(Reverse((due, seq, id)));
                return None;
            }
            self.entries.insert(id.clone(), Entry::InFlight);
            return Some(id);
        }
        None
    }

    /// When the earliest waiting message is due (unix ms).
    pub(crate) fn next_due(&mut self) -> Option<u64> {
        while let Some(Reverse((due, seq, id))) = self.heap.peek() {
            if self.entries.get(id) == Some(&Entry::Waiting { due: *due, seq: *seq }) {
                return Some(*due);
            }
            self.heap.pop();
        }
        None
    }

    /// A delivery task finished with `id`: wait until `retry_at`, or forget it (`None`).
    pub(crate) fn finished(&mut self, id: QueueId, retry_at: Option<u64>) -> usize {
        self.fresh.remove(&id);
        match retry_at {
            Some(due) => self.set_waiting(id, due),
            None => {
                self.entries.remove(&id);
            }
        }
        self.len()
    }

    /// Every waiting message becomes due now (`queue flush`).
    pub(crate) fn flush(&mut self, now: u64) {
        let waiting: Vec<QueueId> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Waiting { due, .. } if *due > now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in waiting {
            self.set_waiting(id, now);
        }
    }

    pub(crate) fn contains(&self, id: &QueueId) -> bool {
        self.entries.contains_key(id)
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.heap.clear();
        self.fresh.clear();
    }

    /// Messages enqueued for delivery now whose attempt has not finished.
    pub(crate) fn backlog(&self) -> usize {
        self.fresh.len()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> QueueId {
        QueueId::parse(&format!("{n:016x}")).unwrap()
    }

    #[test]
    fn the_backlog_counts_what_was_enqueued_until_its_attempt_finishes() {
        let mut s = Schedule::default();
        s.insert_if_absent(id(1), 0); // found on disk at start: not intake's backlog
        s.enqueue(id(2), 10);
        s.enqueue(id(3), 10);
        assert_eq!((s.len(), s.backlog()), (3, 2));
        let first = s.pop_due(10).unwrap();
        assert_eq!(s.backlog(), 2, "in flight still counts");
        s.finished(first, Some(1_000)); // deferred: waits for its time, out of the backlog
        let second = s.pop_due(10).unwrap();
        s.finished(second, None);
        assert_eq!(s.backlog(), 1);
        s.clear();
        assert_eq!(s.backlog(), 0);
    }

    #[test]
    fn earliest_first_and_in_flight_is_left_alone() {
        let mut s = Schedule::default();
        s.insert_if_absent(id(1), 300);
        s.insert_if_absent(id(2), 100);
        s.insert_if_absent(id(2), 5); // already known: unchanged
        assert_eq!(s.next_due(), Some(100));
        assert_eq!(s.pop_due(50), None);
        assert_eq!(s.pop_due(100), Some(id(2)));
        s.enqueue(id(2), 100); // in flight: no second copy
        assert_eq!(s.pop_due(1000), Some(id(1)));
        assert_eq!(s.pop_due(1000), None);
        assert_eq!(s.len(), 2);
        s.finished(id(2), Some(2000));
        s.finished(id(1), None);
        assert_eq!((s.len(), s.next_due()), (1, Some(2000)));
    }

    #[test]
    fn enqueue_and_flush_make_things_due_now() {
        let mut s = Schedule::default();
        s.insert_if_absent(id(1), 5000);
        s.insert_if_absent(id(2), 9000);
        s.enqueue(id(1), 10);
        assert_eq!(s.pop_due(10), Some(id(1)));
        assert_eq!(s.pop_due(10), None);
        s.flush(20);
        assert_eq!(s.pop_due(20), Some(id(2)));
        assert_eq!(s.next_due(), None);
    }
}
