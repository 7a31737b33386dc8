//! Settings of the verdict engine: action thresholds (`[actions]`) and the engine itself (`[verdict]`).

use crate::values::{ByteSize, HumanDuration};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::path::PathBuf;

/// A score threshold that can be switched off: a number, or `false` / `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Threshold(pub Option<f64>);

impl Threshold {
    pub fn get(self) -> Option<f64> {
        self.0
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Bool(bool),
            Str(String),
        }
        let off =
            || de::Error::custom("a threshold is a score (e.g. 8.0) or `false` / \"off\" to switch it off");
        match Raw::deserialize(d)? {
            Raw::Num(n) if n.is_finite() => Ok(Threshold(Some(n))),
            Raw::Bool(false) => Ok(Threshold(None)),
            Raw::Str(s) if s.trim().eq_ignore_ascii_case("off") || s.trim() == "false" => Ok(Threshold(None)),
            Raw::Str(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|n| Threshold(Some(n)))
                .ok_or_else(off),
            _ => Err(off()),
        }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_f64(n),
            None => s.serialize_bool(false),
        }
    }
}

/// Score thresholds that turn a message's score into an action. The highest threshold reached wins. A
/// key left out keeps its default; `false` or `"off"` switches that action off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// Score from which a message is delivered tagged (`X-Spam-*` headers, optional subject prefix).
    pub tag: Threshold,
    /// Score from which a message is held in quarantine.
    pub quarantine: Threshold,
    /// Score from which a message is refused with 550 5.7.1 at the end of DATA.
    pub reject: Threshold,
    /// Text put before the subject of tagged mail (e.g. `[SPAM]`), once; empty: subjects are left
    /// alone. Printable ASCII, at most [`MAX_SUBJECT_PREFIX`] characters. Off by default: the
    /// `X-Spam-Flag` header already marks tagged mail for filters, and the rewrite breaks the sender's
    /// DKIM signature for any verifier downstream.
    pub tag_subject_prefix: String,
}

/// Longest `actions.tag_subject_prefix` accepted.
pub const MAX_SUBJECT_PREFIX: usize = 64;

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            tag: Threshold(Some(4.0)),
            quarantine: Threshold(Some(8.0)),
            reject: Threshold(None),
            tag_subject_prefix: String::new(),
        }
    }
}

impl ActionsConfig {
    /// Value rules of the action settings, checked when the configuration is loaded.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let p = &self.tag_subject_prefix;
        if p.len() > MAX_SUBJECT_PREFIX {
            return Err((
                "actions.tag_subject_prefix",
                format!("longer than {MAX_SUBJECT_PREFIX} characters"),
            ));
        }
        // Written into a header as it is: no line breaks, controls or bytes a client would decode.
        if !p.bytes().all(|b| (b' '..=b'~').contains(&b)) || p.contains("=?") || p.trim() != p {
            return Err((
                "actions.tag_subject_prefix",
                "must be printable ASCII without `=?` or surrounding spaces".into(),
            ));
        }
        Ok(())
    }
}

/// The verdict engine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictConfig {
    /// Judge messages at all (off: every message is accepted unjudged).
    pub enabled: bool,
    /// Rules directory holding `default/` (shipped rules) and `local/` (the operator's overlay). Empty:
    /// the shipped rules built into the binary, overlaid by `<data_dir>/rules/local` if it exists.
    pub rules_dir: PathBuf,
    /// Time one message may take to be judged; checks not started by then are skipped and the
    /// verdict carries `DEADLINE_EXCEEDED`.
    pub deadline: HumanDuration,
    /// Deepest nesting of multiparts and enclosed messages read (`MIME_TOO_DEEP` past it).
    pub max_mime_depth: usize,
    /// Most MIME parts read (`MIME_TOO_MANY_PARTS` past it).
    pub max_mime_parts: usize,
    /// Most header fields read per header block (`TOO_MANY_HEADERS` past it).
    pub max_headers: usize,
    /// Most bytes read per header block (`HEADERS_TOO_LARGE` past it).
    pub max_header_size: ByteSize,
    /// Most decoded bytes kept from one MIME part (`MIME_PART_TOO_LARGE` past it).
    pub max_part_size: ByteSize,
    /// Most decoded bytes kept over a whole message (`MIME_DECODED_TOO_LARGE` past it).
    pub max_decoded_size: ByteSize,
    /// Most URLs collected from a message (`TOO_MANY_URLS` past it).
    pub max_urls: usize,
    /// Most bytes of text (all parts together) that content rules read (`TEXT_TRUNCATED` past it).
    pub max_text_size: ByteSize,
    /// Senders whose mail gets `SAFELISTED_SENDER` (see [`SenderListEntry`]).
    pub safelist: Vec<SenderListEntry>,
    /// Senders whose mail gets `BLOCKLISTED_SENDER`.
    pub blocklist: Vec<SenderListEntry>,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            enabled: true,
            rules_dir: PathBuf::new(),
            deadline: HumanDuration::secs(30),
            max_mime_depth: 20,
            max_mime_parts: 500,
            max_headers: 1000,
            max_header_size: ByteSize(100 << 10),
            max_part_size: ByteSize(25 << 20),
            max_decoded_size: ByteSize(64 << 20),
            max_urls: 500,
            max_text_size: ByteSize(1 << 20),
            safelist: Vec::new(),
            blocklist: Vec::new(),
        }
    }
}

/// One safelist or blocklist entry: a sender (`user@example.com`, or `example.com` for the whole domain
/// and its subdomains) and, optionally, the recipient it applies to (`user@our.example` or
/// `our.example`; absent: every recipient).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SenderListEntry {
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

impl VerdictConfig {
    /// Value rules of the verdict settings. The verdict engine checks them when it is built from the
    /// configuration (so a bad value stops the start with the key named).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, v) in [
            ("verdict.max_mime_depth", self.max_mime_depth),
            ("verdict.max_mime_parts", self.max_mime_parts),
            ("verdict.max_headers", self.max_headers),
            ("verdict.max_header_size", self.max_header_size.0 as usize),
            ("verdict.max_part_size", self.max_part_size.0 as usize),
            ("verdict.max_decoded_size", self.max_decoded_size.0 as usize),
            ("verdict.max_text_size", self.max_text_size.0 as usize),
        ] {
            if v == 0 {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.deadline.get().is_zero() {
            return Err(("verdict.deadline", "must be longer than zero".into()));
        }
        for e in self.safelist.iter().chain(&self.blocklist) {
            let ok = |s: &str| !s.trim().is_empty() && !s.contains(char::is_whitespace);
            if !ok(&e.sender) || e.recipient.as_deref().is_some_and(|r| !ok(r)) {
                return Err(("verdict.safelist", format!("bad entry `{}`", e.sender)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(text: &str) -> Result<ActionsConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn thresholds_take_numbers_false_or_off_and_omitted_keys_keep_defaults() {
        let a = actions("tag = 5\nreject = 20.5\n").unwrap();
        assert_eq!((a.tag.get(), a.quarantine.get(), a.reject.get()), (Some(5.0), Some(8.0), Some(20.5)));
        let a = actions("tag = false\nquarantine = \"off\"\n").unwrap();
        assert_eq!((a.tag.get(), a.quarantine.get()), (None, None));
        assert!(actions("tag = true\n").is_err());
        assert!(actions("tag = \"soon\"\n").is_err());
        assert!(actions("tag = nan\n").is_err());
        let back = toml::to_string(&ActionsConfig::default()).unwrap();
        assert!(back.contains("reject = false"), "{back}");
    }

    #[test]
    fn subject_prefix_is_printable_ascii_and_bounded() {
        let a = actions("tag_subject_prefix = \"[SPAM]\"\n").unwrap();
        assert_eq!(a.tag_subject_prefix, "[SPAM]");
        assert!(a.check().is_ok() && ActionsConfig::default().check().is_ok());
        for bad in ["[S]\r\nBcc: x", "\u{e9}", "=?utf-8?q?x?=", " [S]", &"x".repeat(65)] {
            let a = ActionsConfig { tag_subject_prefix: bad.into(), ..Default::default() };
            assert_eq!(a.check().unwrap_err().0, "actions.tag_subject_prefix", "{bad:?}");
        }
    }

    #[test]
    fn verdict_settings_and_lists() {
        let v: VerdictConfig = toml::from_str(
            "deadline = \"5s\"\nmax_header_size = \"64KiB\"\n\
             safelist = [{ sender = \"partner.example\" }, { sender = \"a@b.example\", recipient = \"ceo@our.example\" }]\n",
        )
        .unwrap();
        assert_eq!(v.deadline.get().as_secs(), 5);
        assert_eq!(v.max_header_size.0, 64 << 10);
        assert_eq!(v.safelist[1].recipient.as_deref(), Some("ceo@our.example"));
        assert!(v.check().is_ok());
        let bad = VerdictConfig { max_mime_depth: 0, ..Default::default() };
        assert_eq!(bad.check().unwrap_err().0, "verdict.max_mime_depth");
    }
}
