//! Sender safelists and blocklists. [`SenderLists`] is the interface; [`StaticLists`] serves the entries
//! from `[verdict]` `safelist` / `blocklist`. A store-backed implementation (per-user lists from the
//! portal) can replace it without touching the analyzer.

/// Which list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Safe,
    Block,
}

/// Answers whether a sender is on a list for a recipient.
pub trait SenderLists: Send + Sync {
    /// The entry (as text, for the reason) that puts `sender` on `list` for `recipient`, if any.
    /// Addresses are `local@domain`; matching is case-insensitive.
    fn find(&self, list: List, sender: &str, recipient: &str) -> Option<String>;
}

/// One entry: a sender address or domain, and optionally the recipient address or domain it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub sender: String,
    pub recipient: Option<String>,
}

impl Entry {
    fn matches(&self, sender: &str, recipient: &str) -> bool {
        address_matches(&self.sender, sender)
            && self.recipient.as_deref().is_none_or(|r| address_matches(r, recipient))
    }
}

/// `pattern` is an address (`user@example.com`: equal) or a domain (`example.com`: the address's domain
/// is it or a subdomain of it).
fn address_matches(pattern: &str, address: &str) -> bool {
    let (p, a) = (pattern.trim().to_ascii_lowercase(), address.trim().to_ascii_lowercase());
    if p.contains('@') {
        return p == a;
    }
    let Some((_, domain)) = a.rsplit_once('@') else {
        return false;
    };
    let p = p.trim_start_matches("*.").trim_start_matches('@');
    domain == p || domain.ends_with(&format!(".{p}"))
}

/// Lists from the configuration.
#[derive(Debug, Clone, Default)]
pub struct StaticLists {
    pub safe: Vec<Entry>,
    pub block: Vec<Entry>,
}

impl StaticLists {
    pub fn from_config(v: &config::VerdictConfig) -> Self {
        let safe =
            v.safelist.iter().map(|e| Entry { sender: e.sender.clone(), recipient: e.recipient.clone() });
        let block =
            v.blocklist.iter().map(|e| Entry { sender: e.sender.clone(), recipient: e.recipient.clone() });
        StaticLists { safe: safe.collect(), block: block.collect() }
    }
}

impl SenderLists for StaticLists {
    fn find(&self, list: List, sender: &str, recipient: &str) -> Option<String> {
        let entries = if list == List::Safe { &self.safe } else { &self.block };
        entries.iter().find(|e| e.matches(sender, recipient)).map(|e| match &e.recipient {
            Some(r) => format!("{} (for {r})", e.sender),
            None => e.sender.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_domains_and_recipients() {
        let l = StaticLists {
            safe: vec![
                Entry { sender: "partner.example".into(), recipient: None },
                Entry { sender: "Boss@Corp.example".into(), recipient: Some("ceo@our.test".into()) },
            ],
            block: vec![],
        };
        assert!(l.find(List::Safe, "x@mail.partner.example", "a@our.test").is_some());
        assert!(l.find(List::Safe, "x@notpartner.example", "a@our.test").is_none());
        assert!(l.find(List::Safe, "boss@corp.example", "ceo@our.test").is_some());
        assert!(l.find(List::Safe, "boss@corp.example", "other@our.test").is_none());
        assert!(l.find(List::Block, "x@partner.example", "a@our.test").is_none());
    }
}
