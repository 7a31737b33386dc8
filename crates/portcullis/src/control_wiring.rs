//! The mail plane's control socket (`serve --role mail`): where a portal running as its own user
//! (`serve --role portal`) asks for held mail to be shown, released, deleted or learned. This module
//! binds the Unix socket (`control.socket`, mode 0660: the portal's user shares the mail plane's
//! group), bounds the connections served at once (`control.max_connections`; more wait in the
//! socket's backlog until the portal's own deadline) and hands each to
//! [`quarantine::control::server`], which owns the protocol, the deadline of the exchange and the
//! checks.

use anyhow::Context;
use config::Config;
use quarantine::control::server::{Limits, serve_connection};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// The socket's mode: the mail plane's user and group (see [`datadir`]).
const SOCKET_MODE: u32 = datadir::GROUP_WRITE_FILE_MODE;

/// Bind the socket and serve it until `stopped` turns true; the socket file is removed then.
pub(crate) fn start(
    config: &Config,
    quarantine: quarantine::Quarantine,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let path = config.control.socket_path(&config.data_dir);
    let listener = bind(&path)?;
    tracing::info!(socket = %path.display(), "control socket listening");
    let limits = Limits::from_config(config);
    let slots = Arc::new(Semaphore::new(config.control.max_connections as usize));
    Ok(tokio::spawn(accept_loop(listener, path, quarantine, limits, slots, stopped)))
}

/// A fresh socket at `path` (a socket left by an earlier run is replaced; anything else is refused).
fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        // The group may reach the socket (2750: setgid, so the socket takes the directory's group).
        datadir::create_dir(dir, datadir::Sharing::GroupRead)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("removing the old socket {}", path.display()))?,
        Ok(_) => anyhow::bail!("control.socket {} exists and is not a socket", path.display()),
        Err(_) => {}
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding control.socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

async fn accept_loop(
    listener: UnixListener,
    path: PathBuf,
    quarantine: quarantine::Quarantine,
    limits: Limits,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        // A connection is accepted only with a free slot: the rest wait in the socket's backlog, and
        // the portal gives up on its own deadline.
        let accepted = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => tokio::select! {
                    accepted = listener.accept() => accepted.map(|(stream, _)| (stream, slot)),
                    _ = stopped.changed() => break,
                },
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        match accepted {
            Ok((stream, slot)) => {
                let quarantine = quarantine.clone();
                tokio::spawn(async move {
                    serve_connection(&quarantine, stream, limits).await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
}
