//! Group commit of `incoming/`'s directory entries: one directory fsync makes durable the entry of
//! every file created before it started, so concurrent commits share syncs and a sync started early
//! (when a message's data begins) is usually done by the time the message commits.
//!
//! Owns: the count of files created and the count whose entries are known durable. Must not touch:
//! file contents, other directories.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex, PoisonError};

/// Creations are numbered 1, 2, ...; a file's entry is durable once `synced` reaches its number. A
/// sync covers every creation numbered up to `created` when it starts (its target), so a success
/// raises `synced` to its target whatever other syncs do.
#[derive(Debug, Default)]
struct State {
    created: u64,
    synced: u64,
    /// Syncs running now, and the highest target among them (0 when none runs).
    running: u32,
    running_target: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Entries {
    state: Mutex<State>,
    done: Condvar,
}

impl Entries {
    /// Number a file just created in the directory.
    pub(crate) fn created(&self) -> u64 {
        let mut s = self.lock();
        s.created += 1;
        s.created
    }

    /// Return once the entry of creation `n` is durable: at once if a finished sync covered it, after
    /// a running sync that covers it, else after a sync of its own (which runs beside any other). A
    /// failed sync is reported to the caller that ran it; those waiting on it try again.
    pub(crate) fn sync_through(&self, n: u64, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        loop {
            if s.synced >= n {
                return Ok(());
            }
            if s.running_target < n {
                break;
            }
            s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        let target = Self::start(&mut s);
        drop(s);
        self.run(target, dir)
    }

    /// Start a sync of every file created so far, unless a finished or running sync covers them all;
    /// never waits for another caller's sync (a commit waits, with [`Entries::sync_through`], if it
    /// must).
    pub(crate) fn sync_soon(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        if s.synced.max(s.running_target) >= s.created {
            return Ok(());
        }
        let target = Self::start(&mut s);
        drop(s);
        self.run(target, dir)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mark a sync covering every creation so far as running; its target.
    fn start(s: &mut State) -> u64 {
        s.running += 1;
        s.running_target = s.running_target.max(s.created);
        s.created
    }

    /// Run a sync marked by [`Entries::start`], covering creations up to `target`.
    fn run(&self, target: u64, dir: &Path) -> io::Result<()> {
        let result = File::open(dir).and_then(|d| d.sync_all());
        let mut s = self.lock();
        s.running -= 1;
        if s.running == 0 {
            s.running_target = 0;
        }
        if result.is_ok() {
            s.synced = s.synced.max(target);
        }
        drop(s);
        self.done.notify_all();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn one_sync_covers_every_earlier_creation() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entries::default();
        let (a, b) = (e.created(), e.created());
        e.sync_through(a, dir.path()).unwrap();
        let s = e.state.lock().unwrap();
        assert_eq!((s.synced, s.running, s.running_target), (b, 0, 0));
    }

    #[test]
    fn concurrent_callers_all_return_durable() {
        let dir = tempfile::tempdir().unwrap();
        let e = Arc::new(Entries::default());
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (e, path) = (e.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let n = e.created();
                        e.sync_through(n, &path).unwrap();
                        assert!(e.state.lock().unwrap().synced >= n);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(e.state.lock().unwrap().synced, 320);
    }

    #[test]
    fn a_failed_sync_is_reported_and_leaves_the_entries_undurable() {
        let e = Entries::default();
        let n = e.created();
        assert!(e.sync_through(n, Path::new("/nonexistent/portcullis-spool")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(e.state.lock().unwrap().synced, 0);
        e.sync_soon(dir.path()).unwrap();
        assert_eq!(e.state.lock().unwrap().synced, n);
    }

    #[test]
    fn an_early_sync_never_waits_for_a_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let e = Entries::default();
        e.created();
        let target = Entries::start(&mut e.state.lock().unwrap()); // another caller's sync, running
        e.sync_soon(dir.path()).unwrap();
        assert_eq!(e.state.lock().unwrap().synced, 0, "left to the running sync");
        // A file created after that sync started is not covered by it: an early sync starts beside it.
        e.created();
        e.sync_soon(dir.path()).unwrap();
        assert_eq!(e.state.lock().unwrap().synced, 2);
        e.run(target, dir.path()).unwrap();
        let s = e.state.lock().unwrap();
        assert_eq!((s.synced, s.running, s.running_target), (2, 0, 0));
    }
}
