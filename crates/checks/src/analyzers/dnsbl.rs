//! DNS blocklists for the client address: the address, reversed (octets, or nibbles for IPv6), is
//! looked up under each zone of `[reputation] ip_blocklists`, all zones at once. A listing emits the
//! zone's symbol (`RBL_<ZONE>` unless configured) with the zone and the answer in the reason. An answer
//! in 127.255.255.0/24 (a blocklist refusing the query) or a failed lookup gives `DNSBL_ERROR` instead.
//! The sender groups use [`listed`] too.

use crate::dns::{Dns, LookupError};
use crate::engine::join_all;
use crate::{AsyncAnalyzer, BoxFuture, Context};
use config::BlocklistZone;
use message::MessageView;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use verdict::Finding;

/// One configured zone, ready to query.
#[derive(Debug, Clone)]
pub struct Zone {
    pub zone: String,
    pub symbol: String,
    pub codes: Vec<Ipv4Addr>,
}

impl Zone {
    /// `prefix`: `RBL` or `URIBL`, for the default symbol.
    pub fn from_config(z: &BlocklistZone, prefix: &str) -> Zone {
        let zone = z.zone.as_str().to_string();
        let symbol = z.symbol.clone().unwrap_or_else(|| default_symbol(prefix, &zone));
        Zone { zone, symbol, codes: z.codes.clone() }
    }
}

/// `RBL_ZEN_EXAMPLE_ORG` for `zen.example.org`: upper case, `_` for anything else, at most 64.
pub fn default_symbol(prefix: &str, zone: &str) -> String {
    let tail: String =
        zone.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let mut s = format!("{prefix}_{tail}");
    s.truncate(64);
    s
}

/// What a zone said about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    NotListed,
    /// Listed, with the answers that count.
    Listed(Vec<Ipv4Addr>),
    /// The zone refused to answer (127.255.255.x) or the lookup failed.
    Error(String),
}

/// Look `name` up under `zone` and read the answer.
pub async fn listed(dns: &Dns, name: &str, zone: &Zone) -> Listing {
    let query = format!("{name}.{}.", zone.zone);
    match dns.ipv4(&query).await {
        Ok(None) => Listing::NotListed,
        Ok(Some(answers)) => read_answers(&answers, &zone.codes),
        Err(LookupError::Timeout) => Listing::Error("lookup timed out".into()),
        Err(LookupError::Failed(e)) => Listing::Error(e),
    }
}

/// Which answers count: those in `codes`, or any in 127.0.0.0/8 but 127.255.255.0/24.
pub fn read_answers(answers: &[Ipv4Addr], codes: &[Ipv4Addr]) -> Listing {
    let refused = |a: &Ipv4Addr| a.octets()[..3] == [127, 255, 255];
    let counts = |a: &&Ipv4Addr| {
        if codes.is_empty() { a.octets()[0] == 127 && !refused(a) } else { codes.contains(a) }
    };
    let hits: Vec<Ipv4Addr> = answers.iter().filter(counts).copied().collect();
    match answers.iter().find(|a| refused(a)) {
        _ if !hits.is_empty() => Listing::Listed(hits),
        Some(a) => Listing::Error(format!("the zone refused the query ({a})")),
        None => Listing::NotListed,
    }
}

/// The query label for an address: `4.3.2.1` for 1.2.3.4, 32 nibbles for IPv6.
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.octets().iter().rev().map(u8::to_string).collect::<Vec<_>>().join("."),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 15, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

/// The findings for one name's listings, joined for the reason.
pub(crate) fn finding(zone: &Zone, what: &str, listing: Listing) -> Option<Finding> {
    match listing {
        Listing::NotListed => None,
        Listing::Listed(codes) => {
            let codes: Vec<String> = codes.iter().map(Ipv4Addr::to_string).collect();
            Some(Finding::new(&zone.symbol, format!("{what} listed in {} ({})", zone.zone, codes.join(", "))))
        }
        Listing::Error(e) => Some(Finding::new("DNSBL_ERROR", format!("{}: {what}: {e}", zone.zone))),
    }
}

/// The client address against every IP blocklist zone.
pub struct IpBlocklists {
    dns: Arc<Dns>,
    zones: Vec<Zone>,
}

impl IpBlocklists {
    pub fn new(dns: Arc<Dns>, zones: Vec<Zone>) -> Self {
        IpBlocklists { dns, zones }
    }

    async fn run(&self, ctx: &Context<'_>) -> Vec<Finding> {
        let Some(ip) = ctx.client_ip else { return Vec::new() };
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let name = reversed(ip);
        let lookups = self.zones.iter().map(|z| {
            let name = &name;
            Box::pin(async move { finding(z, &ip.to_string(), listed(&self.dns, name, z).await) })
                as BoxFuture<'_, _>
        });
        join_all(lookups.collect()).await.into_iter().flatten().collect()
    }
}

impl AsyncAnalyzer for IpBlocklists {
    fn name(&self) -> &'static str {
        "ip_blocklists"
    }

    fn analyze<'a>(&'a self, _msg: &'a MessageView, ctx: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(self.run(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_addresses() {
        assert_eq!(reversed("192.0.2.1".parse().unwrap()), "1.2.0.192");
        assert_eq!(
            reversed("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        );
    }

    #[test]
    fn answers_that_count() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(read_answers(&[a("127.0.0.2")], &[]), Listing::Listed(vec![a("127.0.0.2")]));
        assert_eq!(read_answers(&[a("127.0.0.10")], &[a("127.0.0.2")]), Listing::NotListed);
        assert!(matches!(read_answers(&[a("127.255.255.254")], &[]), Listing::Error(_)));
        assert_eq!(read_answers(&[a("10.0.0.1")], &[]), Listing::NotListed);
    }

    #[test]
    fn default_symbols() {
        assert_eq!(default_symbol("RBL", "zen.example-bl.org"), "RBL_ZEN_EXAMPLE_BL_ORG");
        assert_eq!(default_symbol("URIBL", &"a.".repeat(60)).len(), 64);
    }
}
