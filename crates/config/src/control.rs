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
    /// (the default): `<data_dir>/run/control.sock`. Made with mode 0660: the portal's user must be in
    /// the socket's group (`socket_group`).
    pub socket: PathBuf,
    /// The group the socket is given at bind (and its directory, when the mail plane makes it or it is
    /// the default `<data_dir>/run`): a group name (looked up in `/etc/group` at start) or a numeric
    /// gid; empty (the default): the mail plane's own group. For a portal running as another user.
    pub socket_group: SocketGroup,
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
            socket_group: SocketGroup::Process,
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

/// The group of the control socket (`control.socket_group`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SocketGroup {
    /// The mail plane's own group (the setting empty).
    #[default]
    Process,
    /// A group by name, looked up when the mail plane starts.
    Name(String),
    /// A group by number.
    Gid(u32),
}

/// Longest group name taken (the limit of `groupadd`).
const MAX_GROUP_NAME: usize = 32;

impl SocketGroup {
    /// `text` as a group: empty, a numeric gid, or a name of `A-Z a-z 0-9 . _ -` (not starting with
    /// `-`), with an optional final `$`, at most [`MAX_GROUP_NAME`] bytes.
    pub fn parse(text: &str) -> Result<SocketGroup, String> {
        if text.is_empty() {
            return Ok(SocketGroup::Process);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            return match text.parse::<u32>() {
                Ok(gid) => SocketGroup::gid(gid.into()),
                Err(_) => Err(format!("gid `{text}` is out of range")),
            };
        }
        let name = text.strip_suffix('$').unwrap_or(text);
        let valid = !name.is_empty()
            && text.len() <= MAX_GROUP_NAME
            && !name.starts_with('-')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if valid {
            Ok(SocketGroup::Name(text.to_string()))
        } else {
            Err(format!("`{}` is not a group name or a numeric gid", text.escape_default()))
        }
    }

    /// A numeric gid (`u32::MAX` is not one: it means "no change" to `chown`).
    fn gid(gid: u64) -> Result<SocketGroup, String> {
        match u32::try_from(gid) {
            Ok(g) if g != u32::MAX => Ok(SocketGroup::Gid(g)),
            _ => Err(format!("gid {gid} is out of range")),
        }
    }
}

impl Serialize for SocketGroup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SocketGroup::Process => s.serialize_str(""),
            SocketGroup::Name(name) => s.serialize_str(name),
            SocketGroup::Gid(gid) => s.serialize_u32(*gid),
        }
    }
}

impl<'de> Deserialize<'de> for SocketGroup {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SocketGroup, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SocketGroup;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a group name or a numeric gid")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SocketGroup, E> {
                SocketGroup::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SocketGroup, E> {
                SocketGroup::gid(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SocketGroup, E> {
                let gid = u64::try_from(v).map_err(|_| E::custom(format!("gid {v} is out of range")))?;
                SocketGroup::gid(gid).map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
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

    #[test]
    fn the_socket_group_is_a_name_or_a_gid() {
        let group = |text: &str| toml::from_str::<ControlConfig>(text).map(|c| c.socket_group);
        assert_eq!(ControlConfig::default().socket_group, SocketGroup::Process);
        assert_eq!(group("socket_group = \"\"").unwrap(), SocketGroup::Process);
        assert_eq!(group("socket_group = \"portcullis\"").unwrap(), SocketGroup::Name("portcullis".into()));
        assert_eq!(
            group("socket_group = \"mail-gw_2.x$\"").unwrap(),
            SocketGroup::Name("mail-gw_2.x$".into())
        );
        assert_eq!(group("socket_group = \"1234\"").unwrap(), SocketGroup::Gid(1234));
        assert_eq!(group("socket_group = 0").unwrap(), SocketGroup::Gid(0));
        for bad in [
            "socket_group = \"-x\"",
            "socket_group = \"a b\"",
            "socket_group = \"../etc\"",
            "socket_group = \"a:b\"",
            "socket_group = \"$\"",
            "socket_group = \"g\\n\"",
            "socket_group = -1",
            "socket_group = 4294967295",
            "socket_group = \"99999999999\"",
            "socket_group = true",
        ] {
            assert!(group(bad).is_err(), "{bad}");
        }
        let long = format!("socket_group = \"{}\"", "g".repeat(MAX_GROUP_NAME + 1));
        assert!(group(&long).is_err());
        // Written back as it was given (`config show`), and read again the same.
        for g in [SocketGroup::Process, SocketGroup::Name("mail".into()), SocketGroup::Gid(7)] {
            let c = ControlConfig { socket_group: g.clone(), ..Default::default() };
            let back: ControlConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
            assert_eq!(back.socket_group, g);
        }
    }
}
