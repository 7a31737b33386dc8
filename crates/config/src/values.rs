//! Value types that validate while they deserialize, so a bad value is reported with its file line.

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A duration written as `250ms`, `30s`, `5m`, `2h` or `7d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 =
            num.parse().map_err(|_| format!("`{s}` is not a duration (use e.g. 30s, 5m, 2h, 7d, 250ms)"))?;
        let millis_per = match unit.trim() {
            "ms" => 1,
            "" | "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => return Err(format!("unknown duration unit `{other}` (use ms, s, m, h or d)")),
        };
        let ms = n.checked_mul(millis_per).ok_or_else(|| format!("duration `{s}` is too large"))?;
        Ok(HumanDuration(Duration::from_millis(ms)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A byte count written as a number or with a unit: `52428800`, `50MiB`, `64KiB`, `10MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size (use e.g. 25MiB or 1048576)"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" | "k" => 1 << 10,
            "mb" => 1_000_000,
            "mib" | "m" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" | "g" => 1 << 30,
            other => {
                return Err(format!("unknown size unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"));
            }
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("size `{s}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A DNS domain name, stored lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Domain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = s.trim().strip_suffix('.').unwrap_or(s.trim()).to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if d.is_empty() || d.len() > 253 || !d.split('.').all(label_ok) {
            return Err(format!("`{s}` is not a valid domain name"));
        }
        Ok(Domain(d))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where mail for a domain goes next: `local` (Maildirs under the data directory) or `smtp://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    Local,
    Smtp { host: String, port: u16 },
}

impl std::str::FromStr for NextHop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "local" {
            return Ok(NextHop::Local);
        }
        let rest = s
            .strip_prefix("smtp://")
            .ok_or_else(|| format!("next hop `{s}` must be `local` or `smtp://host[:port]`"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, tail) = v6.split_once(']').ok_or_else(|| format!("unclosed `[` in next hop `{s}`"))?;
            (h.to_string(), tail.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("bad port `{p}` in next hop `{s}`"))?,
            None => 25,
        };
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return Err(format!("bad host in next hop `{s}`"));
        }
        Ok(NextHop::Smtp { host, port })
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NextHop::Local => f.write_str("local"),
            NextHop::Smtp { host, port } if host.contains(':') => write!(f, "smtp://[{host}]:{port}"),
            NextHop::Smtp { host, port } => write!(f, "smtp://{host}:{port}"),
        }
    }
}

/// A list that may also be written as one value, or (for overrides) as one comma-separated string.
/// The place of a setting that was removed: it holds nothing and is never written out. Its field
/// names a `deserialize_with` function that refuses any value, saying why the setting went, so an
/// old configuration stops with that explanation and the line rather than a bare "unknown field".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> std::ops::Deref for OneOrMany<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: std::str::FromStr<Err = String>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let items: Vec<String> = match Raw::deserialize(d)? {
            Raw::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            Raw::Many(v) => v,
        };
        items.iter().map(|s| s.parse().map_err(de::Error::custom)).collect::<Result<_, _>>().map(OneOrMany)
    }
}

impl<T: fmt::Display> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|v| v.to_string()))
    }
}

/// A socket address to listen on, e.g. `127.0.0.1:2525` or `[::1]:25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddr(pub SocketAddr);

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse()
            .map(ListenAddr)
            .map_err(|_| format!("`{s}` is not an address:port to listen on (e.g. 127.0.0.1:2525)"))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Listening addresses (a list, or one address).
pub type ListenAddrs = OneOrMany<ListenAddr>;

/// Implements serde for a type through its `FromStr` and `Display` (strings and, for numbers, integers).
macro_rules! serde_via_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw { Int(u64), Str(String) }
                match Raw::deserialize(d)? {
                    Raw::Int(n) => n.to_string().parse().map_err(de::Error::custom),
                    Raw::Str(s) => s.parse().map_err(de::Error::custom),
                }
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serde_via_str!(HumanDuration, ByteSize, Domain, NextHop, ListenAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("30s".parse::<HumanDuration>().unwrap().get(), Duration::from_secs(30));
        assert_eq!("5m".parse::<HumanDuration>().unwrap().get(), Duration::from_secs(300));
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().get(), Duration::from_millis(250));
        assert_eq!("7".parse::<HumanDuration>().unwrap().get(), Duration::from_secs(7));
        assert!("5 parsecs".parse::<HumanDuration>().is_err());
        assert!("-1s".parse::<HumanDuration>().is_err());
        assert_eq!(HumanDuration::secs(3600).to_string(), "1h");
    }

    #[test]
    fn sizes() {
        assert_eq!("25MiB".parse::<ByteSize>().unwrap().0, 25 << 20);
        assert_eq!("1000".parse::<ByteSize>().unwrap().0, 1000);
        assert!("1XB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999GiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn domains_are_canonical() {
        assert_eq!("Example.COM.".parse::<Domain>().unwrap().as_str(), "example.com");
        for bad in ["", "a..b", "-a.b", "a b", "a/b", "x@y"] {
            assert!(bad.parse::<Domain>().is_err(), "{bad}");
        }
    }

    #[test]
    fn next_hops() {
        assert_eq!("local".parse::<NextHop>().unwrap(), NextHop::Local);
        assert_eq!(
            "smtp://127.0.0.1:2626".parse::<NextHop>().unwrap(),
            NextHop::Smtp { host: "127.0.0.1".into(), port: 2626 }
        );
        assert_eq!(
            "smtp://[::1]:26".parse::<NextHop>().unwrap(),
            NextHop::Smtp { host: "::1".into(), port: 26 }
        );
        assert_eq!("smtp://mx.example".parse::<NextHop>().unwrap().to_string(), "smtp://mx.example:25");
        assert!("http://x".parse::<NextHop>().is_err());
        assert!("smtp://x:99999".parse::<NextHop>().is_err());
    }
}
