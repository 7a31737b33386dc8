//! The mail plane's local control socket (`[control]`): the one way a portal in its own process
//! (`serve --role portal`, its own user) reaches held mail on a single machine. It shows, releases,
//! deletes and learns quarantined items by id for a named actor, nothing else.
//!
//! Every limit of the socket is here: how big a request may be, how big an answer the portal takes,
//! how long one exchange may last and how many run at once.

use crate::values::{ByteSize, HumanDuration};
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
    /// Longest answer line the portal reads: a held message travels in it (base64), so at least
    /// `smtp.max_message_size` and a third more.
    pub max_response_size: ByteSize,
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
            max_response_size: ByteSize(48 << 20),
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

    /// Value rules (a bad value stops the start, naming the key). `max_message_size` is `smtp`'s.
    pub fn check(&self, max_message_size: u64) -> Result<(), (&'static str, String)> {
        if !(256..=1 << 20).contains(&self.max_request_size.0) {
            return Err(("control.max_request_size", "must be between 256B and 1MiB".into()));
        }
        if self.max_response_size.0 < max_message_size.saturating_add(max_message_size / 3) {
            return Err((
                "control.max_response_size",
                "must be at least smtp.max_message_size and a third more (a held message travels in it)"
                    .into(),
            ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_settings_default_and_check() {
        let c = ControlConfig::default();
        assert!(c.check(25 << 20).is_ok());
        assert_eq!(c.socket_path(Path::new("/d")), PathBuf::from("/d/run/control.sock"));
        assert_eq!(c.check(40 << 20).unwrap_err().0, "control.max_response_size");
        for (text, key) in [
            ("max_request_size = \"10\"", "control.max_request_size"),
            ("timeout = \"0s\"", "control.timeout"),
            ("max_connections = 0", "control.max_connections"),
        ] {
            let c: ControlConfig = toml::from_str(text).unwrap();
            assert_eq!(c.check(25 << 20).unwrap_err().0, key, "{text}");
        }
    }
}
