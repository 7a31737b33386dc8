//! What is recorded: who ([`Actor`]) did what ([`Action`]) to which target, with a few details.
//!
//! Every field is bounded here, before it reaches the log: the target to [`MAX_TARGET`] characters,
//! at most [`MAX_DETAILS`] details, keys of [`MAX_KEY`] characters from `[a-z0-9_]`, values of
//! [`MAX_VALUE`] characters. Control characters (C0, DEL, C1) become U+FFFD, so a record printed on a
//! terminal cannot move the cursor or hide text. Longer text is cut and marked `…`.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Longest target, in characters.
pub const MAX_TARGET: usize = 256;
/// Most details in one record.
pub const MAX_DETAILS: usize = 16;
/// Longest detail key.
pub const MAX_KEY: usize = 32;
/// Longest detail value, in characters.
pub const MAX_VALUE: usize = 512;
/// Longest actor name, in characters.
pub const MAX_ACTOR: usize = 128;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The gateway itself (start, stop, reloads).
    System,
    /// The command line, run by this unix user id.
    Cli { uid: u32 },
    /// A portal or admin-console user, by login name.
    User(String),
    /// An API token or a digest link, by its id (never the secret).
    Token(String),
    /// Someone not (yet) authenticated, by address (a failed login).
    Remote(IpAddr),
}

impl Actor {
    /// The command line, as the user running it.
    pub fn cli() -> Actor {
        Actor::Cli { uid: rustix::process::getuid().as_raw() }
    }

    fn render(&self) -> String {
        let s = match self {
            Actor::System => "system".to_string(),
            Actor::Cli { uid } => format!("cli:uid={uid}"),
            Actor::User(name) => format!("user:{name}"),
            Actor::Token(id) => format!("token:{id}"),
            Actor::Remote(ip) => format!("remote:{ip}"),
        };
        bounded(&s, MAX_ACTOR)
    }
}

/// What was done. The names are stable: collectors and alerts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    GatewayStart,
    GatewayStop,
    ConfigLoad,
    ConfigReload,
    ConfigReloadFailed,
    QueueDelete,
    QueueFlush,
    /// `portcullis learn --reset`: the classifier's model cleared (what it held is in the details).
    ClassifierReset,
    BackupCreate,
    BackupRestore,
    /// The SQLite store was moved from its old place in the data directory into `store/`.
    StoreMove,
    /// An incomplete last record (a crash mid-write) was dropped when the log was opened.
    AuditRecovered,
    /// The writer's queue was full and records were lost (their count is in the details).
    AuditOverflow,
    /// The syslog collector has not received `syslog_alert_backlog` records.
    ForwardBacklog,
    // For the portal and admin console.
    LoginSuccess,
    LoginFailure,
    LoginLockout,
    Logout,
    QuarantineView,
    QuarantineDownload,
    QuarantineRelease,
    /// A release through a signed digest link (the actor is the link's token id).
    QuarantineDigestRelease,
    QuarantineDelete,
    QuarantineLearn,
    /// Digests sent now on an administrator's request (the scheduled runs are not recorded).
    QuarantineDigestsSend,
    UserCreate,
    UserUpdate,
    UserDelete,
    TokenCreate,
    TokenRevoke,
    SettingsChange,
    /// A node that is gone for good removed from the cluster's list (the admin console's Nodes page).
    NodeForget,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::GatewayStart => "gateway.start",
            Action::GatewayStop => "gateway.stop",
            Action::ConfigLoad => "config.load",
            Action::ConfigReload => "config.reload",
            Action::ConfigReloadFailed => "config.reload_failed",
            Action::QueueDelete => "queue.delete",
            Action::QueueFlush => "queue.flush",
            Action::ClassifierReset => "classifier.reset",
            Action::BackupCreate => "backup.create",
            Action::BackupRestore => "backup.restore",
            Action::StoreMove => "store.move",
            Action::AuditRecovered => "audit.recovered",
            Action::AuditOverflow => "audit.overflow",
            Action::ForwardBacklog => "audit.forward_backlog",
            Action::LoginSuccess => "auth.login",
            Action::LoginFailure => "auth.login_failed",
            Action::LoginLockout => "auth.lockout",
            Action::Logout => "auth.logout",
            Action::QuarantineView => "quarantine.view",
            Action::QuarantineDownload => "quarantine.download",
            Action::QuarantineRelease => "quarantine.release",
            Action::QuarantineDigestRelease => "quarantine.digest_release",
            Action::QuarantineDelete => "quarantine.delete",
            Action::QuarantineLearn => "quarantine.learn",
            Action::QuarantineDigestsSend => "quarantine.digests_send",
            Action::UserCreate => "user.create",
            Action::UserUpdate => "user.update",
            Action::UserDelete => "user.delete",
            Action::NodeForget => "node.forget",
            Action::TokenCreate => "token.create",
            Action::TokenRevoke => "token.revoke",
            Action::SettingsChange => "settings.change",
        }
    }
}

/// One thing to record. Build with [`Event::new`], then [`Event::target`] and [`Event::detail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) actor: String,
    pub(crate) action: &'static str,
    pub(crate) target: String,
    pub(crate) details: BTreeMap<String, String>,
}

impl Event {
    pub fn new(action: Action, actor: Actor) -> Event {
        Event {
            actor: actor.render(),
            action: action.as_str(),
            target: String::new(),
            details: BTreeMap::new(),
        }
    }

    /// What was acted on: a queue id, a user name, a file name (bounded; data only).
    pub fn target(mut self, target: impl AsRef<str>) -> Event {
        self.target = bounded(target.as_ref(), MAX_TARGET);
        self
    }

    /// One detail. Keys are fixed names from code (`[a-z0-9_]`, other characters become `_`); past
    /// [`MAX_DETAILS`] details, more are ignored.
    pub fn detail(mut self, key: &str, value: impl AsRef<str>) -> Event {
        if self.details.len() < MAX_DETAILS || self.details.contains_key(key) {
            let key: String = key
                .chars()
                .take(MAX_KEY)
                .map(|c| c.to_ascii_lowercase())
                .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
                .collect();
            self.details.insert(key, bounded(value.as_ref(), MAX_VALUE));
        }
        self
    }

    pub fn action(&self) -> &'static str {
        self.action
    }
}

/// `s` with control characters replaced and cut to `max` characters (marked with `…`).
pub(crate) fn bounded(s: &str, max: usize) -> String {
    let clean = |c: char| if c.is_control() { '\u{FFFD}' } else { c };
    if s.chars().count() <= max {
        return s.chars().map(clean).collect();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).map(clean).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_bounded_and_clean() {
        let e = Event::new(Action::QueueDelete, Actor::User("a\u{1b}[2Jb".into()))
            .target("x".repeat(1000))
            .detail("Queue-Name", "active\r\nforged: yes");
        assert_eq!(e.actor, "user:a\u{FFFD}[2Jb");
        assert_eq!(e.target.chars().count(), MAX_TARGET);
        assert!(e.target.ends_with('…'));
        assert_eq!(e.details["queue_name"], "active\u{FFFD}\u{FFFD}forged: yes");
        let mut many = Event::new(Action::GatewayStart, Actor::System);
        for i in 0..40 {
            many = many.detail(&format!("k{i}"), "v");
        }
        assert_eq!(many.details.len(), MAX_DETAILS);
    }
}
