//! Domain blocklists (DBL and SURBL style) for the hosts of URLs in the message: each host and its
//! parent domains down to two labels (`a.b.example.org`, `b.example.org`, `example.org`) is looked up
//! under each zone of `[reputation] url_blocklists`, at most `max_url_lookups` names per zone, all at
//! once. A listing emits the zone's symbol (`URIBL_<ZONE>` unless configured) naming the host, the
//! zone and the answer. Address literals are not looked up.

use super::dnsbl::{Zone, finding, listed};
use crate::dns::Dns;
use crate::engine::join_all;
use crate::{AsyncAnalyzer, BoxFuture, Context};
use message::MessageView;
use std::sync::Arc;
use verdict::Finding;

pub struct UrlBlocklists {
    dns: Arc<Dns>,
    zones: Vec<Zone>,
    max_lookups: usize,
}

impl UrlBlocklists {
    pub fn new(dns: Arc<Dns>, zones: Vec<Zone>, max_lookups: usize) -> Self {
        UrlBlocklists { dns, zones, max_lookups }
    }

    async fn run(&self, msg: &MessageView) -> Vec<Finding> {
        let names = names_to_check(msg.urls.iter().map(|u| u.host.as_str()), self.max_lookups);
        let lookups = self.zones.iter().flat_map(|z| {
            names.iter().map(move |n| {
                Box::pin(async move { finding(z, n, listed(&self.dns, n, z).await) }) as BoxFuture<'_, _>
            })
        });
        join_all(lookups.collect()).await.into_iter().flatten().collect()
    }
}

/// The distinct names to look up for `hosts`, parents after each host, at most `max`.
pub fn names_to_check<'a>(hosts: impl Iterator<Item = &'a str>, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for host in hosts {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if !is_domain(&host) {
            continue;
        }
        let labels: Vec<&str> = host.split('.').collect();
        for start in 0..=labels.len().saturating_sub(2) {
            let name = labels[start..].join(".");
            if !out.contains(&name) {
                if out.len() == max {
                    return out;
                }
                out.push(name);
            }
        }
    }
    out
}

/// A name of at least two labels, letters, digits and hyphens, not all digits (an address).
fn is_domain(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    host.len() <= 200
        && host.contains('.')
        && host.split('.').all(label_ok)
        && !host.split('.').next_back().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

impl AsyncAnalyzer for UrlBlocklists {
    fn name(&self) -> &'static str {
        "url_blocklists"
    }

    fn analyze<'a>(&'a self, msg: &'a MessageView, _ctx: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(self.run(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_parents_bounded() {
        let hosts = ["www.Evil.example.org", "evil.example.org", "192.0.2.1", "localhost", "x.test"];
        let names = names_to_check(hosts.into_iter(), 10);
        assert_eq!(names, ["www.evil.example.org", "evil.example.org", "example.org", "x.test"]);
        assert_eq!(names_to_check(hosts.into_iter(), 2).len(), 2);
    }
}
