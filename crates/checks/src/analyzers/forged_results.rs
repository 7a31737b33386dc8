//! `AUTH_RESULTS_FORGED`: an incoming `Authentication-Results:` field that claims to come from this
//! gateway (its authserv-id is our host name). Only we may write those, and we write ours above the
//! message, so one already inside it was put there by the sender to be believed downstream.

use crate::auth_results::{FIELD, authserv_id};
use crate::{Analyzer, Context};
use message::MessageView;
use verdict::Finding;

pub struct ForgedResults;

impl Analyzer for ForgedResults {
    fn name(&self) -> &'static str {
        "forged_results"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        let ours = ctx.hostname.trim_end_matches('.').to_ascii_lowercase();
        if ours.is_empty() {
            return;
        }
        let forged = msg.header_all(FIELD).filter(|h| authserv_id(&h.decoded) == ours).count();
        if forged > 0 {
            out.push(Finding::new(
                "AUTH_RESULTS_FORGED",
                format!("{forged} incoming {FIELD}: field(s) claim to be from {ours}"),
            ));
        }
    }
}
