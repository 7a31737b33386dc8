//! The data directory's layout at start ([`datadir`] says who may touch what): the modes of what this
//! user owns of the part shared with a portal running as its own user are put right, each change logged
//! ([`repair_modes`]); and the mail plane moves a SQLite store at its old place into `store/`
//! ([`move_old_store`]), which `portcullis migrate` does too.

use anyhow::Context;
use audit::{Action, Actor, Event};
use std::path::Path;
use store::relocate::Relocation;

/// Put right the modes of the shared part of `data_dir` (see [`datadir::repair`]), logging each change.
/// Nothing here stops a start: what could not be changed is logged, and fails later where it is used.
pub(crate) fn repair_modes(data_dir: &Path) {
    let repaired = datadir::repair(data_dir);
    for c in &repaired.changed {
        let (path, from, to) = (c.path.display(), format!("{:04o}", c.from), format!("{:04o}", c.to));
        if c.to == c.wanted {
            tracing::info!(%path, from, to, "set the mode the data directory's layout gives this path");
        } else {
            tracing::warn!(
                %path, from, to, wanted = format!("{:04o}", c.wanted),
                "the setgid bit did not hold (the directory's group is not one of this user's groups): \
                 give it the gateway's group"
            );
        }
    }
    for (path, error) in &repaired.failed {
        tracing::warn!(path = %path.display(), %error, "could not check the mode of this path");
    }
}

/// Move a SQLite store at its old place (`<data_dir>/portcullis.db`) into `<data_dir>/store/` (see
/// [`store::relocate`]). Returns the audit event for the move, by `actor`, when there was one; a store
/// another process still has open is left where it is (logged). A store at both places is an error.
pub(crate) async fn move_old_store(data_dir: &Path, actor: Actor) -> anyhow::Result<Option<Event>> {
    let moved =
        store::relocate::move_legacy_sqlite(data_dir).await.context("moving the store from its old place")?;
    match moved {
        Relocation::NotNeeded => Ok(None),
        Relocation::Busy { path } => {
            tracing::warn!(
                store = %path.display(),
                "the store is at its old place in the data directory and another process (a portal \
                 started before?) has it open: it stays there for now; stop that process and start again \
                 to move it into store/"
            );
            Ok(None)
        }
        Relocation::Moved { from, to } => {
            tracing::info!(from = %from.display(), to = %to.display(), "moved the store from its old place into store/");
            let event = Event::new(Action::StoreMove, actor).target(to.display().to_string());
            Ok(Some(event.detail("from", from.display().to_string())))
        }
    }
}
