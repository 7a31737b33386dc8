//! The one resolver every network check shares: built from `[dns]`, time-bounded, with bounded caches.
//!
//! Owns: the hickory resolver (name servers, per-query timeout, attempts, its own answer cache), the
//! parsed-record caches mail-auth asks for (its [`ResolverCache`] trait, keyed by FQDNs with a
//! trailing dot), and the plain lookups the blocklists and the sender groups need (A records, PTR,
//! forward-confirmed reverse names). Must not touch: what an answer means (the analyzers decide).
//!
//! # Security
//! Names looked up are built from untrusted input (envelope domains, URL hosts, DKIM `d=`/`s=`); they
//! only ever become DNS questions, checked by the resolver's name parser. Answers are untrusted too: the
//! caches hold at most `dns.cache_size` entries per record type, for at most their TTL, and every
//! lookup made here is bounded by `dns.timeout` times `dns.attempts`, so a silent name server costs
//! a bounded wait, never a hang.

use config::DnsConfig;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::{DnsError, Error, MX, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt};
use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why the resolver could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DnsSetupError {
    #[error("invalid configuration: {key}: {message}")]
    Setting { key: &'static str, message: String },
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Why a lookup gave no answer (a temporary error for whoever asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("DNS lookup timed out")]
    Timeout,
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

/// What a lookup found: `Ok(None)` when the name or record does not exist.
pub type Lookup<T> = Result<Option<T>, LookupError>;

/// mail-auth parameters with this resolver's caches attached.
pub type Params<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

/// Most PTR names checked for forward confirmation.
const MAX_PTR_NAMES: usize = 5;

/// The shared resolver. Build once ([`Dns::from_config`]) and share it behind an `Arc`.
pub struct Dns {
    auth: MessageAuthenticator,
    txt: Cache<Box<str>, Txt>,
    mx: Cache<Box<str>, RecordSet<MX>>,
    ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    ptr: Cache<IpAddr, RecordSet<Box<str>>>,
    budget: Duration,
}

impl Dns {
    /// The resolver `[dns]` describes: its name servers (or /etc/resolv.conf), timeout and attempts.
    pub fn from_config(c: &DnsConfig) -> Result<Dns, DnsSetupError> {
        c.check().map_err(|(key, message)| DnsSetupError::Setting { key, message })?;
        let (config, mut opts) = if c.nameservers.is_empty() {
            read_system_conf().map_err(|e| DnsSetupError::Resolver(e.to_string()))?
        } else {
            (ResolverConfig::from_name_servers(c.nameservers.iter().map(|n| server(n.0)).collect()), {
                ResolverOpts::default()
            })
        };
        opts.timeout = c.timeout.get();
        opts.attempts = c.attempts;
        opts.cache_size = u64::try_from(c.cache_size).unwrap_or(u64::MAX);
        opts.use_hosts_file = ResolveHosts::Never;
        let auth =
            MessageAuthenticator::new(config, opts).map_err(|e| DnsSetupError::Resolver(e.to_string()))?;
        let size = NonZeroUsize::new(c.cache_size).unwrap_or(NonZeroUsize::MIN);
        Ok(Dns {
            auth,
            txt: Cache::new(size),
            mx: Cache::new(size),
            ipv4: Cache::new(size),
            ipv6: Cache::new(size),
            ptr: Cache::new(size),
            budget: c.lookup_budget(),
        })
    }

    /// The mail-auth verifier over this resolver.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// mail-auth parameters for `p`, with the shared caches.
    pub fn params<P>(&self, p: P) -> Params<'_, P> {
        Parameters::new(p)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }

    /// The longest one lookup made here may take.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The A records of `name` (a blocklist query). `name` is absolute (a trailing dot is added).
    pub async fn ipv4(&self, name: &str) -> Lookup<Vec<Ipv4Addr>> {
        let fqdn = fqdn(name);
        let found = self.bounded(self.auth.ipv4_lookup(fqdn.as_str(), Some(&self.ipv4))).await?;
        Ok(found.map(|r| r.rrset.to_vec()))
    }

    /// The PTR names of `ip`, lower-case, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Lookup<Vec<String>> {
        let found = self.bounded(self.auth.ptr_lookup(ip, Some(&self.ptr))).await?;
        Ok(found.map(|r| r.rrset.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect()))
    }

    /// The first reverse name of `ip` whose forward lookup leads back to `ip` (forward-confirmed
    /// reverse DNS, "FCrDNS"): `Ok(None)` when there is none.
    pub async fn confirmed_name(&self, ip: IpAddr) -> Lookup<String> {
        let Some(names) = self.ptr(ip).await? else { return Ok(None) };
        for name in names.into_iter().take(MAX_PTR_NAMES) {
            if self.resolves_to(&name, ip).await? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    async fn resolves_to(&self, name: &str, ip: IpAddr) -> Result<bool, LookupError> {
        let fqdn = fqdn(name);
        Ok(match ip {
            IpAddr::V4(v4) => self
                .bounded(self.auth.ipv4_lookup(fqdn.as_str(), Some(&self.ipv4)))
                .await?
                .is_some_and(|r| r.rrset.contains(&v4)),
            IpAddr::V6(v6) => self
                .bounded(self.auth.ipv6_lookup(fqdn.as_str(), Some(&self.ipv6)))
                .await?
                .is_some_and(|r| r.rrset.contains(&v6)),
        })
    }

    /// Run one mail-auth lookup under the budget; "no such record" is `Ok(None)`.
    async fn bounded<T>(&self, lookup: impl Future<Output = mail_auth::Result<T>>) -> Lookup<T> {
        match tokio::time::timeout(self.budget, lookup).await {
            Err(_) => Err(LookupError::Timeout),
            Ok(Ok(v)) => Ok(Some(v)),
            Ok(Err(Error::Dns(DnsError::RecordNotFound(_) | DnsError::InvalidRecordType))) => Ok(None),
            Ok(Err(e)) => Err(LookupError::Failed(e.to_string())),
        }
    }
}

/// A name server at `addr`, over UDP with TCP for truncated answers.
fn server(addr: std::net::SocketAddr) -> NameServerConfig {
    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
    for c in &mut ns.connections {
        c.port = addr.port();
    }
    ns
}

/// `name` as an absolute name (with the trailing dot).
pub(crate) fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_string() } else { format!("{name}.") }
}

/// A bounded, least-recently-used cache of answers, each kept until its TTL runs out.
pub struct Cache<K: Hash + Eq, V> {
    entries: Mutex<lru::LruCache<K, (V, Instant)>>,
}

impl<K: Hash + Eq, V> Cache<K, V> {
    fn new(size: NonZeroUsize) -> Self {
        Cache { entries: Mutex::new(lru::LruCache::new(size)) }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                entries.pop(name);
                None
            }
            None => None,
        }
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.pop(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.put(key, (value, valid_until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_expires() {
        let c: Cache<Box<str>, u32> = Cache::new(NonZeroUsize::new(2).unwrap());
        let later = Instant::now() + Duration::from_secs(60);
        c.insert("a.test.".into(), 1, later);
        c.insert("b.test.".into(), 2, later);
        c.insert("c.test.".into(), 3, later);
        assert_eq!(c.get("a.test."), None, "least recently used went first");
        assert_eq!(c.get("c.test."), Some(3));
        c.insert("d.test.".into(), 4, Instant::now());
        assert_eq!(c.get("d.test."), None, "expired");
        assert_eq!(c.remove("c.test."), Some(3));
    }

    #[test]
    fn names_are_absolute() {
        assert_eq!(fqdn("a.test"), "a.test.");
        assert_eq!(fqdn("a.test."), "a.test.");
    }
}
