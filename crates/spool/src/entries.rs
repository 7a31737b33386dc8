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

/// Creations are numbered 1, 2, ...; a file's entry is durable once `synced` reaches its number.
#[derive(Debug, Default)]
struct State {
    created: u64,
    synced: u64,
    /// A sync is running (only one at a time: the others wait for it and then share the next).
    running: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Entries {
    state: Mutex<State>,
    done: Condvar,
}

impl Entries {
    /// Number a file just created in the directory.
    pub(crate) fn created(&self) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.created += 1;
        s.created
    }

    /// Return once the entry of creation `n` is durable, fsyncing `dir` unless a sync that started
    /// after creation `n` already did. Blocking. A failed sync is reported to the caller that ran it;
    /// the others try again with a sync of their own.
    pub(crate) fn sync_through(&self, n: u64, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if s.synced >= n {
                return Ok(());
            }
            if !s.running {
                break;
            }
            s = self.done.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        let target = s.created;
        s.running = true;
        drop(s);
        self.run(target, dir)
    }

    /// Start a sync of every file created so far, unless one is running or none is needed; never waits
    /// for another caller's sync (a commit waits, with [`Entries::sync_through`], if it must).
    pub(crate) fn sync_soon(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.running || s.synced >= s.created {
            return Ok(());
        }
        let target = s.created;
        s.running = true;
        drop(s);
        self.run(target, dir)
    }

    /// Run the sync this caller marked as running, covering creations up to `target`.
    fn run(&self, target: u64, dir: &Path) -> io::Result<()> {
        let result = File::open(dir).and_then(|d| d.sync_all());
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        s.running = false;
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
        assert_eq!((s.synced, s.running), (b, false));
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
        e.state.lock().unwrap().running = true; // another caller's sync
        e.sync_soon(dir.path()).unwrap();
        assert_eq!(e.state.lock().unwrap().synced, 0, "left to the running sync and the commit");
        e.state.lock().unwrap().running = false;
        e.sync_soon(dir.path()).unwrap();
        assert_eq!(e.state.lock().unwrap().synced, 1);
    }
}
