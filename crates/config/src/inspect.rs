//! Settings of content inspection: attachments (`[attachments]`, with per-domain policies), the
//! virus scanner (`[antivirus]`) and links (`[urls]`).

use crate::values::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// What happens to a message holding an attachment that a policy blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// Deliver the message without the attachment (a text notice in its place); the original goes
    /// to quarantine.
    Strip,
    /// Hold the whole message in quarantine.
    Quarantine,
    /// Refuse the message with 550 5.7.1.
    Reject,
}

/// What happens to a message that could not be checked whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldAction {
    Quarantine,
    /// 451: the client retries later.
    Tempfail,
    Reject,
}

/// Inspection of attachments: limits, and which types are blocked, held or allowed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentsConfig {
    /// Inspect attachments at all.
    pub enabled: bool,
    /// Deepest nesting of archives opened (deeper is `ARCHIVE_BOMB`).
    pub max_depth: usize,
    /// Most archive members looked at per attachment (`ARCHIVE_LIMIT` past it).
    pub max_entries: usize,
    /// Most bytes decompressed from one member (`ARCHIVE_LIMIT`).
    pub max_entry_size: ByteSize,
    /// Most bytes decompressed per attachment (`ARCHIVE_LIMIT`); a leaf zip member inflated only
    /// to its typing window (`inspect::LEAF_WINDOW`) counts its declared size.
    pub max_total_size: ByteSize,
    /// Largest expansion of a member (decompressed / compressed) past 1 MiB (`ARCHIVE_BOMB`); for a
    /// leaf zip member inflated only to its typing window, its declared size over its compressed size.
    pub max_ratio: u64,
    /// Wall time for inspecting one message's attachments, all together (`ARCHIVE_LIMIT`).
    pub max_time: HumanDuration,
    /// Longest file name in characters before it is `ATTACH_DECEPTIVE_NAME`.
    pub max_name_length: usize,
    /// Types blocked for every recipient domain without a policy of its own (true extensions or
    /// detected types: `exe`, `js`, `iso`).
    pub block: Vec<String>,
    /// Types that send the message to quarantine.
    pub quarantine: Vec<String>,
    /// Types never blocked or held by these lists.
    pub allow: Vec<String>,
    /// What a blocked type does: `strip`, `quarantine` or `reject`.
    pub block_action: BlockAction,
    /// What an attachment that could not be read whole (bomb, limit, uninspectable, parser failure) does.
    pub unscannable_action: HoldAction,
    /// What an encrypted archive or document does.
    pub encrypted_action: HoldAction,
    /// Per recipient domain: `[[attachments.policy]]` with `domain` and its own `block`, `quarantine`, `allow`.
    pub policy: Vec<AttachmentPolicy>,
}

/// The attachment lists of one recipient domain (they replace the top-level lists for it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentPolicy {
    /// Recipient domain; `*.example.com` also matches its subdomains.
    pub domain: String,
    #[serde(default)]
    pub block: Vec<String>,
    #[serde(default)]
    pub quarantine: Vec<String>,
    #[serde(default)]
    pub allow: Vec<String>,
}

impl AttachmentPolicy {
    pub fn matches(&self, domain: &str) -> bool {
        match self.domain.strip_prefix("*.") {
            Some(parent) => domain == parent || domain.ends_with(&format!(".{parent}")),
            None => domain.eq_ignore_ascii_case(&self.domain),
        }
    }
}

fn list(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            enabled: true,
            max_depth: 5,
            max_entries: 1000,
            max_entry_size: ByteSize(50 << 20),
            max_total_size: ByteSize(200 << 20),
            max_ratio: 100,
            max_time: HumanDuration::secs(10),
            max_name_length: 255,
            block: list(&[
                "exe", "scr", "com", "pif", "cpl", "msi", "lnk", "bat", "cmd", "js", "jse", "vbs", "vbe",
                "wsf", "wsh", "hta", "ps1", "jar", "reg", "chm", "iso", "img", "vhd", "vhdx",
            ]),
            quarantine: Vec::new(),
            allow: Vec::new(),
            block_action: BlockAction::Strip,
            unscannable_action: HoldAction::Quarantine,
            encrypted_action: HoldAction::Quarantine,
            policy: Vec::new(),
        }
    }
}

impl AttachmentsConfig {
    /// The (block, quarantine, allow) lists for a recipient domain.
    pub fn lists_for(&self, domain: &str) -> (&[String], &[String], &[String]) {
        match self.policy.iter().find(|p| p.matches(domain)) {
            Some(p) => (&p.block, &p.quarantine, &p.allow),
            None => (&self.block, &self.quarantine, &self.allow),
        }
    }

    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("attachments.max_depth", self.max_depth as u64),
            ("attachments.max_entries", self.max_entries as u64),
            ("attachments.max_entry_size", self.max_entry_size.0),
            ("attachments.max_total_size", self.max_total_size.0),
            ("attachments.max_ratio", self.max_ratio),
            ("attachments.max_name_length", self.max_name_length as u64),
        ] {
            if v == 0 {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.max_time.get().is_zero() {
            return Err(("attachments.max_time", "must be longer than zero".into()));
        }
        for p in &self.policy {
            if p.domain.trim().is_empty() || p.domain.contains(char::is_whitespace) {
                return Err(("attachments.policy", format!("bad domain `{}`", p.domain)));
            }
        }
        Ok(())
    }
}

/// The virus scanner: clamd over INSTREAM.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AntivirusConfig {
    /// Scan with clamd.
    pub enabled: bool,
    /// Where clamd listens: `unix:/path/to/clamd.ctl` or `tcp:host:port`.
    pub address: String,
    /// Deadline for connecting (and for a free connection slot).
    pub connect_timeout: HumanDuration,
    /// Deadline for one scan.
    pub scan_timeout: HumanDuration,
    /// Most connections to clamd at once.
    pub max_connections: usize,
    /// Bytes per INSTREAM chunk.
    pub chunk_size: ByteSize,
    /// Largest stream sent (keep it at or below clamd's `StreamMaxLength`); larger attachments are unscannable.
    pub max_stream_size: ByteSize,
    /// Also scan the whole raw message (clamd reads MIME itself), when it fits in `max_stream_size`.
    pub scan_message: bool,
    /// What a virus does: `reject` or `quarantine`.
    pub virus_action: HoldAction,
    /// What clamd being down, slow or failing does: `tempfail` (451), `quarantine` or `reject`.
    pub failure_action: HoldAction,
}

impl Default for AntivirusConfig {
    fn default() -> Self {
        AntivirusConfig {
            enabled: false,
            address: "unix:/run/clamav/clamd.ctl".into(),
            connect_timeout: HumanDuration::secs(2),
            scan_timeout: HumanDuration::secs(30),
            max_connections: 4,
            chunk_size: ByteSize(64 << 10),
            max_stream_size: ByteSize(25 << 20),
            scan_message: true,
            virus_action: HoldAction::Reject,
            failure_action: HoldAction::Tempfail,
        }
    }
}

impl AntivirusConfig {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let addr_ok = self.address.strip_prefix("unix:").is_some_and(|p| p.starts_with('/'))
            || self.address.strip_prefix("tcp:").is_some_and(|a| {
                a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            });
        if !addr_ok {
            return Err((
                "antivirus.address",
                format!("`{}` is not unix:/path or tcp:host:port", self.address),
            ));
        }
        if self.max_connections == 0 {
            return Err(("antivirus.max_connections", "must be greater than zero".into()));
        }
        if self.chunk_size.0 == 0 || self.chunk_size.0 > u32::MAX as u64 {
            return Err(("antivirus.chunk_size", "must be between 1 byte and 4 GiB".into()));
        }
        if self.scan_timeout.get().is_zero() || self.connect_timeout.get().is_zero() {
            return Err(("antivirus.scan_timeout", "timeouts must be longer than zero".into()));
        }
        if self.virus_action == HoldAction::Tempfail {
            return Err(("antivirus.virus_action", "must be `reject` or `quarantine`".into()));
        }
        Ok(())
    }
}

/// Link checks.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlsConfig {
    /// Check links at all.
    pub enabled: bool,
    /// Brand domains whose lookalikes are phishing (besides our accepted domains).
    pub protected_brands: Vec<String>,
    /// URL shortener hosts (listed, never followed).
    pub shorteners: Vec<String>,
    /// Open redirectors, `host` or `host/path-prefix` (listed, never followed).
    pub redirectors: Vec<String>,
    /// Most links checked per message.
    pub max_urls: usize,
}

impl Default for UrlsConfig {
    fn default() -> Self {
        UrlsConfig {
            enabled: true,
            protected_brands: list(&[
                "paypal.com",
                "microsoft.com",
                "office.com",
                "apple.com",
                "google.com",
                "amazon.com",
                "dhl.com",
                "docusign.net",
                "dropbox.com",
                "linkedin.com",
            ]),
            shorteners: list(&[
                "bit.ly",
                "tinyurl.com",
                "goo.gl",
                "t.co",
                "ow.ly",
                "is.gd",
                "buff.ly",
                "rebrand.ly",
                "cutt.ly",
                "shorturl.at",
                "t.ly",
                "rb.gy",
                "tiny.cc",
            ]),
            redirectors: list(&[
                "www.google.com/url",
                "google.com/url",
                "l.facebook.com/l.php",
                "www.youtube.com/redirect",
                "slack-redir.net/link",
            ]),
            max_urls: 200,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_by_domain_and_checks() {
        let a: AttachmentsConfig = toml::from_str(
            "block_action = \"quarantine\"\n[[policy]]\ndomain = \"example.com\"\nblock = [\"exe\"]\nallow = [\"zip\"]\n\
             [[policy]]\ndomain = \"*.corp.test\"\nquarantine = [\"docm\"]\n",
        )
        .unwrap();
        assert_eq!(a.block_action, BlockAction::Quarantine);
        assert_eq!(a.lists_for("example.com").0, ["exe"]);
        assert_eq!(a.lists_for("x.corp.test").1, ["docm"]);
        assert!(a.lists_for("other.test").0.contains(&"js".to_string()));
        assert!(a.check().is_ok());
        assert!(toml::from_str::<AttachmentsConfig>("[[policy]]\ndomain = \"x\"\nblok = []\n").is_err());
        let bad = AttachmentsConfig { max_ratio: 0, ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "attachments.max_ratio");
        let av: AntivirusConfig =
            toml::from_str("enabled = true\naddress = \"tcp:127.0.0.1:3310\"\n").unwrap();
        assert!(av.check().is_ok() && av.failure_action == HoldAction::Tempfail);
        let bad = AntivirusConfig { address: "clamd".into(), ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "antivirus.address");
    }
}
