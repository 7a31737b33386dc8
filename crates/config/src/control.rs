//! The mail plane's local control socket (`[control]`): the one way a portal in its own process
//! (`serve --role portal`, its own user) reaches held mail on a single machine. It shows, releases,
//! deletes and learns quarantined items by id for a named actor, nothing else.
//!
//! Every limit of the socket is here: how big a request may be, how long one exchange may last and
//! how many run at once. How big an answer the portal takes is not a setting: the protocol derives
//! it from `smtp.max_message_size` (`quarantine::control::max_response_len`).

use crate::values::{ByteSize, HumanDuration, Removed};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The socket's file inside the data directory when `control.socket` is empty.
pub const DEFAULT_SOCKET: &str = "run/control.sock";

/// The control socket's place and limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// The Unix socket `serve --role mail` listens on and `serve --role portal` connects to; empty
    /// (the default): `<data_dir>/run/control.sock`. Made with mode 0660: the portal's user must share
    /// the mail plane's group.
    pub socket: PathBuf,
    /// Longest request line the mail plane reads (the actor, an item id and options); a longer one is
    /// refused and the connection closed.
    pub max_request_size: ByteSize,
    /// Removed: the longest answer the portal reads is derived from `smtp.max_message_size` (a held
    /// message travels in it, base64). A configuration that still names it stops with that
    /// explanation rather than a bare "unknown field".
    #[serde(default, skip_serializing, deserialize_with = "removed_max_response_size")]
    pub max_response_size: Removed,
    /// Deadline of one exchange (connect, request, answer) on either side.
    pub timeout: HumanDuration,
    /// Connections the mail plane serves at once; more wait in the socket's backlog (the portal gives
    /// up after `timeout`).
    pub max_connections: u32,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::new(),
            max_request_size: ByteSize(16 << 10),
            max_response_size: Removed,
            timeout: HumanDuration::secs(30),
            max_connections: 16,
        }
    }
}

impl ControlConfig {
    /// The socket's path under `data_dir`.
    pub fn socket_path(&self, data_dir: &Path) -> PathBuf {
        if self.socket.as_os_str().is_empty() { data_dir.join(DEFAULT_SOCKET) } else { self.socket.clone() }
    }

    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(256..=1 << 20).contains(&self.max_request_size.0) {
            return Err(("control.max_request_size", "must be between 256B and 1MiB".into()));
        }
        if self.timeout.get().is_zero() || self.timeout.get() > std::time::Duration::from_secs(600) {
            return Err(("control.timeout", "must be between 1ms and 10m".into()));
        }
        if !(1..=1024).contains(&self.max_connections) {
            return Err(("control.max_connections", "must be between 1 and 1024".into()));
        }
        Ok(())
    }
}

/// What naming `control.max_response_size` says.
const MAX_RESPONSE_SIZE_REMOVED: &str = "control.max_response_size was removed: the longest answer the portal \
     reads is derived from smtp.max_message_size; delete this setting";

fn removed_max_response_size<'de, D: serde::Deserializer<'de>>(_: D) -> Result<Removed, D::Error> {
    Err(serde::de::Error::custom(MAX_RESPONSE_SIZE_REMOVED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_settings_default_and_check() {
        let c = ControlConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.socket_path(Path::new("/d")), PathBuf::from("/d/run/control.sock"));
        for (text, key) in [
            ("max_request_size = \"10\"", "control.max_request_size"),
            ("timeout = \"0s\"", "control.timeout"),
            ("max_connections = 0", "control.max_connections"),
        ] {
            let c: ControlConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check().unwrap_err().0, key, "{text}");
        }
    }
}
