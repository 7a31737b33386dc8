//! Sender safelists and blocklists, per domain and per recipient: `SAFELISTED_SENDER` and
//! `BLOCKLISTED_SENDER` (scores in `rules/default/scores.toml`).
//!
//! One verdict covers all recipients of a message, so an entry counts only when it applies to every
//! recipient. A safelist entry needs both the envelope sender and the `From:` address to match (one
//! forged field is not enough to be let through); for a blocklist either is enough.

use crate::lists::{List, SenderLists};
use crate::{Analyzer, Context};
use message::MessageView;
use std::sync::Arc;
use verdict::Finding;

pub struct ListsAnalyzer {
    lists: Arc<dyn SenderLists>,
}

impl ListsAnalyzer {
    pub fn new(lists: Arc<dyn SenderLists>) -> Self {
        ListsAnalyzer { lists }
    }

    /// The entry that covers `sender` for every recipient.
    fn for_all(&self, list: List, sender: &str, ctx: &Context<'_>) -> Option<String> {
        if sender.is_empty() {
            return None;
        }
        let mut entry = None;
        for r in ctx.recipients {
            entry = Some(self.lists.find(list, sender, r)?);
        }
        if ctx.recipients.is_empty() {
            // Offline scans have no recipients: entries for any recipient do not apply.
            entry = self.lists.find(list, sender, "");
        }
        entry
    }
}

impl Analyzer for ListsAnalyzer {
    fn name(&self) -> &'static str {
        "lists"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let from = msg.from.first().map(|m| m.address.as_str()).unwrap_or("");
        let envelope = ctx.envelope_sender;
        let safe_env = self.for_all(List::Safe, envelope, ctx);
        if let Some(e) = safe_env.filter(|_| self.for_all(List::Safe, from, ctx).is_some()) {
            out.push(Finding::new("SAFELISTED_SENDER", format!("sender on the safelist: {e}")));
        }
        let block = self.for_all(List::Block, envelope, ctx).or_else(|| self.for_all(List::Block, from, ctx));
        if let Some(e) = block {
            out.push(Finding::new("BLOCKLISTED_SENDER", format!("sender on the blocklist: {e}")));
        }
    }
}
