//! Settings of DNS lookups (`[dns]`), sender authentication (`[auth]`) and reputation (`[reputation]`).
//!
//! Values validate while they deserialize (addresses, networks, zones, policies), so a bad one is
//! reported with its file line; rules that span several keys are in the `check` methods, which the
//! verdict engine and the connection policy call when they are built.

use crate::values::{Domain, HumanDuration, OneOrMany};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The resolver every network check uses.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Name servers as `ip:port` or `ip` (port 53); empty: those in /etc/resolv.conf.
    pub nameservers: OneOrMany<NameServer>,
    /// How long one query to one name server may take before it is retried or given up.
    pub timeout: HumanDuration,
    /// How many times a query is sent before the lookup fails (temporary error).
    pub attempts: usize,
    /// Most answers kept per record type (TXT, A, AAAA, MX, PTR); the oldest go first.
    pub cache_size: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            nameservers: OneOrMany(Vec::new()),
            timeout: HumanDuration::secs(2),
            attempts: 2,
            cache_size: 10_000,
        }
    }
}

impl DnsConfig {
    /// Value rules: at least one attempt, a timeout, a cache.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.attempts == 0 || self.attempts > 10 {
            return Err(("dns.attempts", "must be between 1 and 10".into()));
        }
        if self.timeout.get().is_zero() {
            return Err(("dns.timeout", "must be longer than zero".into()));
        }
        if self.cache_size == 0 {
            return Err(("dns.cache_size", "must be greater than zero".into()));
        }
        Ok(())
    }

    /// The longest one lookup can take: every attempt timing out.
    pub fn lookup_budget(&self) -> std::time::Duration {
        self.timeout.get() * u32::try_from(self.attempts.max(1)).unwrap_or(10)
    }
}

/// A name server address: `ip:port`, `[v6]:port`, or a bare `ip` (port 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameServer(pub SocketAddr);

impl std::str::FromStr for NameServer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(NameServer(a));
        }
        s.parse::<IpAddr>()
            .map(|ip| NameServer(SocketAddr::new(ip, 53)))
            .map_err(|_| format!("`{s}` is not a name server address (e.g. 127.0.0.1:5353 or 192.0.2.53)"))
    }
}

impl fmt::Display for NameServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// SPF, DKIM, DMARC and ARC verification.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Verify SPF, DKIM, DMARC and ARC and add `Authentication-Results:`.
    pub enabled: bool,
    /// Time all authentication checks of one message may take together; what is unfinished then is
    /// reported as a temporary error.
    pub timeout: HumanDuration,
    /// Let a DMARC `p=reject` or `p=quarantine` failure force an action whatever the score.
    pub dmarc_enforce: bool,
    /// With `dmarc_enforce`: what a `p=reject` failure does (`reject` at end of DATA, or
    /// `quarantine`). A `p=quarantine` failure is always quarantined.
    pub dmarc_reject_action: DmarcRejectAction,
    /// Verify DKIM signatures with a body length tag (`l=`); off: such signatures are a permanent
    /// error. Either way `DKIM_BODY_LENGTH` marks them, and `DKIM_UNSIGNED_CONTENT` marks content
    /// after the signed length.
    pub dkim_allow_length_tag: bool,
    /// Most DKIM and ARC signatures verified in one message; a message with more gets
    /// `DKIM_TOO_MANY_SIGNATURES` and none verified.
    pub max_dkim_signatures: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            enabled: true,
            timeout: HumanDuration::secs(10),
            dmarc_enforce: true,
            dmarc_reject_action: DmarcRejectAction::Quarantine,
            dkim_allow_length_tag: true,
            max_dkim_signatures: 10,
        }
    }
}

impl AuthConfig {
    /// Value rules.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.timeout.get().is_zero() {
            return Err(("auth.timeout", "must be longer than zero".into()));
        }
        if self.max_dkim_signatures == 0 {
            return Err(("auth.max_dkim_signatures", "must be greater than zero".into()));
        }
        Ok(())
    }
}

/// What an enforced DMARC `p=reject` failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcRejectAction {
    Reject,
    Quarantine,
}

/// DNS blocklists and connection-time sender groups.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReputationConfig {
    /// DNS blocklist zones queried with the client IP (see [`BlocklistZone`]); empty: none.
    pub ip_blocklists: BlocklistZones,
    /// Domain blocklist zones (DBL/SURBL style) queried with the host names of URLs in the message.
    pub url_blocklists: BlocklistZones,
    /// Most URL host lookups per message (each host and its parent domains count one each).
    pub max_url_lookups: usize,
    /// The host access table: groups of clients and what happens to them before DATA, first match
    /// wins (`[[reputation.sender_group]]`).
    pub sender_group: Vec<SenderGroup>,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        ReputationConfig {
            ip_blocklists: BlocklistZones::default(),
            url_blocklists: BlocklistZones::default(),
            max_url_lookups: 20,
            sender_group: Vec::new(),
        }
    }
}

impl ReputationConfig {
    /// Value rules of the blocklists and sender groups.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, zones) in [
            ("reputation.ip_blocklists", &self.ip_blocklists),
            ("reputation.url_blocklists", &self.url_blocklists),
        ] {
            for z in zones.iter() {
                if z.symbol.as_deref().is_some_and(|s| !valid_symbol(s)) {
                    return Err((key, format!("`{}`: bad symbol name", z.zone)));
                }
                if !z.score.is_finite() {
                    return Err((key, format!("`{}`: score must be finite", z.zone)));
                }
            }
        }
        let mut names = std::collections::HashSet::new();
        for g in &self.sender_group {
            g.check()?;
            if !names.insert(g.name.as_str()) {
                return Err(("reputation.sender_group", format!("group `{}` is defined twice", g.name)));
            }
        }
        Ok(())
    }

    /// Whether any sender group needs DNS (reverse names or blocklists).
    pub fn groups_need_dns(&self) -> bool {
        self.sender_group.iter().any(|g| !g.rdns.is_empty() || g.rdns_missing || !g.dnsbl.is_empty())
    }
}

fn valid_symbol(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Blocklist zones: a list of zone names or `{ zone = ..., symbol = ..., score = ..., codes = [...] }`
/// tables (or, in overrides, one comma-separated string of zone names).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BlocklistZones(pub Vec<BlocklistZone>);

impl std::ops::Deref for BlocklistZones {
    type Target = [BlocklistZone];
    fn deref(&self) -> &[BlocklistZone] {
        &self.0
    }
}

/// One blocklist zone.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlocklistZone {
    /// The zone, e.g. `zen.example.org`.
    pub zone: Domain,
    /// The symbol a listing emits; default `RBL_<ZONE>` (IP lists) or `URIBL_<ZONE>` (URL lists), the
    /// zone upper-cased with `_` for anything not a letter or digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// The symbol's score.
    #[serde(default = "default_zone_score")]
    pub score: f64,
    /// Answers that count as a listing (e.g. `127.0.0.2`); empty: any answer in 127.0.0.0/8 except
    /// 127.255.255.0/24 (blocklists use those to say a query was refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<Ipv4Addr>,
}

fn default_zone_score() -> f64 {
    3.0
}

impl<'de> Deserialize<'de> for BlocklistZones {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Item {
            Name(String),
            Table(BlocklistZone),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<Item>),
        }
        let named = |s: &str| -> Result<BlocklistZone, D::Error> {
            let zone = s.parse::<Domain>().map_err(de::Error::custom)?;
            Ok(BlocklistZone { zone, symbol: None, score: default_zone_score(), codes: Vec::new() })
        };
        let items: Result<Vec<BlocklistZone>, D::Error> = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(named).collect(),
            Raw::Many(v) => v
                .into_iter()
                .map(|i| match i {
                    Item::Name(s) => named(&s),
                    Item::Table(t) => Ok(t),
                })
                .collect(),
        };
        items.map(BlocklistZones)
    }
}

impl Serialize for BlocklistZones {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

/// A network: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || format!("`{s}` is not an address or network (e.g. 192.0.2.0/24, 2001:db8::/32)");
        let (addr, prefix) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for IpNet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What happens to the clients of a sender group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Let them in (later groups are not consulted).
    Accept,
    /// Let them in within `max_connections` and `max_messages` per `window`, per client address.
    Throttle,
    /// Ask them to come back later (421 4.7.0 at connection).
    Tempfail,
    /// Refuse them (554 5.7.1 at connection).
    Reject,
}

/// One sender group of the host access table. A client belongs to it when any one of `ips`, `rdns`,
/// `rdns_missing` or `dnsbl` matches; a group with none of them matches every client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SenderGroup {
    /// A name for logs.
    pub name: String,
    /// Client addresses and networks.
    #[serde(default)]
    pub ips: Vec<IpNet>,
    /// Forward-confirmed reverse DNS names; `*` stands for any run of characters
    /// (`*.dyn.example.net`).
    #[serde(default)]
    pub rdns: Vec<String>,
    /// Match clients without a forward-confirmed reverse DNS name.
    #[serde(default)]
    pub rdns_missing: bool,
    /// Match clients listed in any of these DNS blocklist zones.
    #[serde(default)]
    pub dnsbl: Vec<Domain>,
    pub policy: GroupPolicy,
    /// `throttle`: most connections per client address per `window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// `throttle`: most messages (MAIL FROM) per client address per `window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u32>,
    /// `throttle`: the counting window.
    #[serde(default = "default_window")]
    pub window: HumanDuration,
}

fn default_window() -> HumanDuration {
    HumanDuration::secs(60)
}

impl SenderGroup {
    fn check(&self) -> Result<(), (&'static str, String)> {
        let key = "reputation.sender_group";
        let name_ok = |s: &str| {
            (1..=64).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        };
        if !name_ok(&self.name) {
            return Err((key, format!("`{}`: a name is 1 to 64 of A-Z a-z 0-9 _ - .", self.name)));
        }
        let pattern_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 253
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*'))
        };
        if let Some(p) = self.rdns.iter().find(|p| !pattern_ok(p)) {
            return Err((key, format!("group `{}`: bad rdns pattern `{p}`", self.name)));
        }
        if self.policy == GroupPolicy::Throttle {
            if self.max_connections.is_none() && self.max_messages.is_none() {
                return Err((
                    key,
                    format!("group `{}`: throttle needs max_connections or max_messages", self.name),
                ));
            }
            if self.window.get().is_zero() {
                return Err((key, format!("group `{}`: window must be longer than zero", self.name)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_settings() {
        let d: DnsConfig =
            toml::from_str("nameservers = [\"127.0.0.1:5353\", \"::1\"]\ntimeout = \"500ms\"\n").unwrap();
        assert_eq!(d.nameservers[0].0, "127.0.0.1:5353".parse().unwrap());
        assert_eq!(d.nameservers[1].0.port(), 53);
        assert_eq!(d.timeout.get().as_millis(), 500);
        assert!(d.check().is_ok());
        let one: DnsConfig = toml::from_str("nameservers = \"127.0.0.1:53,127.0.0.2:53\"\n").unwrap();
        assert_eq!(one.nameservers.len(), 2);
        assert!(toml::from_str::<DnsConfig>("nameservers = [\"ns.example:53\"]\n").is_err());
        assert_eq!(DnsConfig { attempts: 0, ..Default::default() }.check().unwrap_err().0, "dns.attempts");
    }

    #[test]
    fn blocklists_are_names_or_tables() {
        let r: ReputationConfig = toml::from_str(
            "ip_blocklists = [\"zen.example.org\", { zone = \"bl.test\", symbol = \"RBL_TEST\", score = 5.5, codes = [\"127.0.0.2\"] }]\n\
             url_blocklists = \"dbl.test, multi.surbl.test\"\n",
        )
        .unwrap();
        assert_eq!(r.ip_blocklists[0].zone.as_str(), "zen.example.org");
        assert_eq!(r.ip_blocklists[0].score, 3.0);
        assert_eq!(r.ip_blocklists[1].symbol.as_deref(), Some("RBL_TEST"));
        assert_eq!(r.ip_blocklists[1].codes, vec![Ipv4Addr::new(127, 0, 0, 2)]);
        assert_eq!(r.url_blocklists.len(), 2);
        assert!(r.check().is_ok());
        assert!(toml::from_str::<ReputationConfig>("ip_blocklists = [\"not a zone\"]\n").is_err());
    }

    #[test]
    fn networks() {
        let n: IpNet = "192.0.2.0/24".parse().unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
        assert!("192.0.2.0/33".parse::<IpNet>().is_err());
        assert!("example.com".parse::<IpNet>().is_err());
    }

    #[test]
    fn sender_groups() {
        let r: ReputationConfig = toml::from_str(
            "[[sender_group]]\nname = \"friends\"\nips = [\"192.0.2.0/24\"]\npolicy = \"accept\"\n\
             [[sender_group]]\nname = \"dynamic\"\nrdns = [\"*.dyn.example.net\"]\nrdns_missing = true\n\
             policy = \"throttle\"\nmax_messages = 5\nwindow = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(r.sender_group.len(), 2);
        assert_eq!(r.sender_group[1].policy, GroupPolicy::Throttle);
        assert!(r.check().is_ok());
        let bad: ReputationConfig =
            toml::from_str("[[sender_group]]\nname = \"x\"\npolicy = \"throttle\"\n").unwrap();
        assert!(bad.check().unwrap_err().1.contains("throttle needs"));
        assert!(
            toml::from_str::<ReputationConfig>("[[sender_group]]\nname = \"x\"\npolicy = \"drop\"\n")
                .is_err()
        );
    }
}
