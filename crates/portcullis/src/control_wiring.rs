//! The mail plane's control socket (`serve --role mail`): where a portal running as its own user
//! (`serve --role portal`) asks for held mail to be shown, released, deleted or learned, and an
//! admin's console for the delivery queue and digests. This module binds the Unix socket
//! (`control.socket`, mode 0660, given the group `control.socket_group` names so the portal's user
//! can connect), bounds the connections served at once (`control.max_connections`; more wait in the
//! socket's backlog until the portal's own deadline) and hands each to
//! [`quarantine::control::server`], which owns the protocol, the deadline of the exchange and the
//! checks.

use anyhow::Context;
use config::{Config, SocketGroup};
use quarantine::control::server::{Limits, serve_connection};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

/// The socket's mode: the mail plane's user and group (see [`datadir`]).
const SOCKET_MODE: u32 = datadir::GROUP_WRITE_FILE_MODE;

/// Where group names are looked up for `control.socket_group`.
const GROUP_FILE: &str = "/etc/group";

/// The gid `control.socket_group` names (`None`: the process's own group). Called before the sandbox
/// is applied, which hides `/etc/group`; an unknown group stops the start here.
pub(crate) fn socket_gid(config: &Config) -> anyhow::Result<Option<u32>> {
    match &config.control.socket_group {
        SocketGroup::Process => Ok(None),
        SocketGroup::Gid(gid) => Ok(Some(*gid)),
        SocketGroup::Name(name) => {
            let groups = std::fs::read_to_string(GROUP_FILE)
                .with_context(|| format!("reading {GROUP_FILE} for control.socket_group `{name}`"))?;
            let gid = gid_of(&groups, name).with_context(|| {
                format!(
                    "control.socket_group: there is no group `{name}` in {GROUP_FILE} (a group from \
                     another source, such as LDAP, is given by its number)"
                )
            })?;
            Ok(Some(gid))
        }
    }
}

/// The gid of the group `name` in the text of a group file (`name:password:gid:members` lines).
fn gid_of(group_file: &str, name: &str) -> Option<u32> {
    group_file.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.trim().parse().ok()
    })
}

/// Bind the socket (given the group `gid`, when one is set) and serve it until `stopped` turns true;
/// the socket file is removed then.
pub(crate) fn start(
    config: &Config,
    quarantine: quarantine::Quarantine,
    gid: Option<u32>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let path = config.control.socket_path(&config.data_dir);
    let default_place = config.control.socket.as_os_str().is_empty();
    let listener = bind(&path, gid, default_place)?;
    tracing::info!(socket = %path.display(), "control socket listening");
    let limits = Limits::from_config(config);
    let slots = Arc::new(Semaphore::new(config.control.max_connections as usize));
    Ok(tokio::spawn(accept_loop(listener, path, quarantine, limits, slots, stopped)))
}

/// A fresh socket at `path` (a socket left by an earlier run is replaced; anything else is refused),
/// given the group `gid` when one is set. Its directory is given the group too when this makes it or
/// it is the default place (`default_place`, `<data_dir>/run`); an operator's own directory is left
/// as it is.
fn bind(path: &Path, gid: Option<u32>, default_place: bool) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        let ours = default_place || !dir.exists();
        // The group may reach the socket (2750: setgid, so the socket takes the directory's group).
        datadir::create_dir(dir, datadir::Sharing::GroupRead)
            .with_context(|| format!("creating {}", dir.display()))?;
        if let (Some(gid), true) = (gid, ours) {
            give_group(dir, gid)?;
        }
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
    if let Some(gid) = gid {
        give_group(path, gid)?;
    }
    Ok(listener)
}

/// Give `path` the group `gid`, keeping its owner.
fn give_group(path: &Path, gid: u32) -> anyhow::Result<()> {
    rustix::fs::chown(path, None, Some(rustix::process::Gid::from_raw(gid))).with_context(|| {
        format!(
            "giving {} the group {gid} (control.socket_group): the mail plane's user must be root or a \
             member of that group",
            path.display()
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn group_names_are_found_in_the_group_file() {
        let file = "root:x:0:\n# a comment\nmail:x:8:\nportcullis:x:998:portcullis-portal\n+nis::\nodd\nbad:x:many:\n";
        assert_eq!(gid_of(file, "root"), Some(0));
        assert_eq!(gid_of(file, "portcullis"), Some(998));
        assert_eq!(gid_of(file, "portcullis-portal"), None, "a member is not a group");
        assert_eq!(gid_of(file, "bad"), None);
        assert_eq!(gid_of(file, "odd"), None);
        assert_eq!(gid_of(file, "nobody-here"), None);
        assert_eq!(gid_of(file, ""), None);
    }

    #[test]
    fn an_unknown_group_stops_the_start_and_a_number_is_taken_as_it_is() {
        let mut config = Config::default();
        assert_eq!(socket_gid(&config).unwrap(), None);
        config.control.socket_group = SocketGroup::Gid(4321);
        assert_eq!(socket_gid(&config).unwrap(), Some(4321));
        config.control.socket_group = SocketGroup::Name("no-such-group-pc".into());
        let err = format!("{:#}", socket_gid(&config).unwrap_err());
        assert!(err.contains("no group `no-such-group-pc`"), "{err}");
        config.control.socket_group = SocketGroup::Name("root".into());
        assert_eq!(socket_gid(&config).unwrap(), Some(0));
    }

    /// As root (any gid can be given): the socket and the directory the mail plane makes get the
    /// group; an operator's own directory keeps its group. Skipped for other users.
    #[tokio::test]
    async fn the_socket_and_its_own_directory_are_given_the_group() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: giving a socket any group needs root");
            return;
        }
        const GID: u32 = 54_321;
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("run/control.sock");
        let _listener = bind(&made, Some(GID), false).unwrap();
        assert_eq!(std::fs::metadata(&made).unwrap().gid(), GID);
        assert_eq!(std::fs::metadata(dir.path().join("run")).unwrap().gid(), GID);
        assert_eq!(std::fs::metadata(&made).unwrap().mode() & 0o777, SOCKET_MODE);

        let own = dir.path().join("own");
        std::fs::create_dir(&own).unwrap();
        let before = std::fs::metadata(&own).unwrap().gid();
        let _listener = bind(&own.join("control.sock"), Some(GID), false).unwrap();
        assert_eq!(std::fs::metadata(own.join("control.sock")).unwrap().gid(), GID);
        assert_eq!(std::fs::metadata(&own).unwrap().gid(), before, "the operator's directory is theirs");
        // Rebinding at the default place gives the existing directory the group again.
        let _listener = bind(&own.join("control.sock"), Some(GID + 1), true).unwrap();
        assert_eq!(std::fs::metadata(&own).unwrap().gid(), GID + 1);
        // Without a group, the process's own.
        let plain = dir.path().join("plain/control.sock");
        let _listener = bind(&plain, None, false).unwrap();
        assert_eq!(std::fs::metadata(&plain).unwrap().gid(), rustix::process::getegid().as_raw());
    }
}
