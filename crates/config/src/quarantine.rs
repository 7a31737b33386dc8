//! Settings of the quarantine (`[quarantine]`: retention and size caps per kind, who may release
//! policy items, tracking retention) and of the quarantine digests (`[digest]`).

use crate::values::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// Who may release an item (virus items: always admins only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseRole {
    /// Any owner of the item (and helpdesk and admins).
    User,
    /// Helpdesk and admins.
    Helpdesk,
    /// Admins only.
    Admin,
}

/// The quarantines: how long items are kept and how much each kind may hold.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantineConfig {
    /// How long a spam item is held before it expires (deleted from the spool, kept in the index as `expired`).
    pub spam_retention: HumanDuration,
    /// How long a virus item is held before it expires.
    pub virus_retention: HumanDuration,
    /// How long a policy item (attachment or content rule) is held before it expires.
    pub policy_retention: HumanDuration,
    /// Most bytes the spam quarantine holds; past it the oldest items expire first.
    pub spam_max_size: ByteSize,
    /// Most bytes the virus quarantine holds; past it the oldest items expire first.
    pub virus_max_size: ByteSize,
    /// Most bytes the policy quarantine holds; past it the oldest items expire first.
    pub policy_max_size: ByteSize,
    /// Who may release policy items: `user` (the owners), `helpdesk` or `admin`.
    pub policy_release: ReleaseRole,
    /// How often expiry runs (and the index is reconciled with the spool).
    pub expire_interval: HumanDuration,
    /// How long message tracking keeps a message's timeline.
    pub tracking_retention: HumanDuration,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        QuarantineConfig {
            spam_retention: HumanDuration::secs(30 * 86_400),
            virus_retention: HumanDuration::secs(7 * 86_400),
            policy_retention: HumanDuration::secs(30 * 86_400),
            spam_max_size: ByteSize(10 << 30),
            virus_max_size: ByteSize(1 << 30),
            policy_max_size: ByteSize(5 << 30),
            policy_release: ReleaseRole::Helpdesk,
            expire_interval: HumanDuration::secs(600),
            tracking_retention: HumanDuration::secs(30 * 86_400),
        }
    }
}

impl QuarantineConfig {
    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, d) in [
            ("quarantine.spam_retention", self.spam_retention),
            ("quarantine.virus_retention", self.virus_retention),
            ("quarantine.policy_retention", self.policy_retention),
            ("quarantine.expire_interval", self.expire_interval),
            ("quarantine.tracking_retention", self.tracking_retention),
        ] {
            if d.get().is_zero() {
                return Err((key, "must be longer than zero".into()));
            }
        }
        Ok(())
    }
}

/// Quarantine digests: a periodic mail to each recipient listing what was held for them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DigestConfig {
    /// Send digests (needs `digest.portal_url`).
    pub enabled: bool,
    /// Time between two digests, e.g. `1d`.
    pub interval: HumanDuration,
    /// Time of day (UTC, `HH:MM`) the schedule is anchored at; empty: every `interval` from midnight UTC.
    pub at: String,
    /// Base URL of the portal that digest links point to, e.g. `https://quarantine.example.com`.
    pub portal_url: String,
    /// How long a digest link stays valid.
    pub token_lifetime: HumanDuration,
    /// Most items listed in one digest (newest first; the rest are counted).
    pub max_items: u32,
    /// `From:` address of digests; empty: `postmaster@<hostname>`.
    pub from: String,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            enabled: false,
            interval: HumanDuration::secs(86_400),
            at: "08:00".into(),
            portal_url: String::new(),
            token_lifetime: HumanDuration::secs(7 * 86_400),
            max_items: 50,
            from: String::new(),
        }
    }
}

impl DigestConfig {
    /// `at` as seconds after midnight UTC (0 when empty), if it is valid.
    pub fn at_seconds(&self) -> Option<u64> {
        if self.at.trim().is_empty() {
            return Some(0);
        }
        let (h, m) = self.at.trim().split_once(':')?;
        let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 3600 + m * 60)
    }

    /// Value rules (a bad value stops the start, naming the key).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.interval.get().as_secs() == 0 {
            return Err(("digest.interval", "must be at least 1s".into()));
        }
        if self.at_seconds().is_none() {
            return Err(("digest.at", format!("`{}` is not a time of day as HH:MM", self.at)));
        }
        if self.token_lifetime.get().is_zero() || self.token_lifetime.get().as_secs() > 90 * 86_400 {
            return Err(("digest.token_lifetime", "must be between 1s and 90d".into()));
        }
        if self.max_items == 0 || self.max_items > 500 {
            return Err(("digest.max_items", "must be between 1 and 500".into()));
        }
        let url_ok = |u: &str| {
            (u.starts_with("https://") || u.starts_with("http://"))
                && u.len() <= 512
                && u.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'<' | b'>' | b'\\' | b'`'))
        };
        if (self.enabled || !self.portal_url.is_empty()) && !url_ok(&self.portal_url) {
            return Err((
                "digest.portal_url",
                "must be an http:// or https:// URL (needed for digests)".into(),
            ));
        }
        let from_ok = self.from.is_empty()
            || (self.from.len() <= 254
                && self.from.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                && self
                    .from
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b',')));
        if !from_ok {
            return Err(("digest.from", format!("`{}` is not a plain address", self.from)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_rules_name_the_key() {
        assert!(QuarantineConfig::default().check().is_ok());
        assert!(DigestConfig::default().check().is_ok());
        let d: DigestConfig =
            toml::from_str("enabled = true\ninterval = \"2s\"\nat = \"\"\nportal_url = \"https://q.test\"\n")
                .unwrap();
        assert!(d.check().is_ok());
        assert_eq!(d.at_seconds(), Some(0));
        assert_eq!(DigestConfig::default().at_seconds(), Some(8 * 3600));
        let bad = |d: DigestConfig| d.check().unwrap_err().0;
        assert_eq!(bad(DigestConfig { enabled: true, ..Default::default() }), "digest.portal_url");
        assert_eq!(
            bad(DigestConfig { portal_url: "javascript:alert(1)".into(), ..Default::default() }),
            "digest.portal_url"
        );
        assert_eq!(
            bad(DigestConfig { portal_url: "https://q.test/\"><x".into(), ..Default::default() }),
            "digest.portal_url"
        );
        assert_eq!(bad(DigestConfig { at: "25:00".into(), ..Default::default() }), "digest.at");
        assert_eq!(bad(DigestConfig { max_items: 0, ..Default::default() }), "digest.max_items");
        assert_eq!(bad(DigestConfig { from: "a@b>, c@d".into(), ..Default::default() }), "digest.from");
        let q: QuarantineConfig =
            toml::from_str("policy_release = \"user\"\nspam_max_size = \"1GiB\"\n").unwrap();
        assert_eq!((q.policy_release, q.spam_max_size.0), (ReleaseRole::User, 1 << 30));
        assert!(toml::from_str::<QuarantineConfig>("policy_release = \"root\"\n").is_err());
        let bad = QuarantineConfig { expire_interval: HumanDuration::secs(0), ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "quarantine.expire_interval");
    }
}
