//! GTUBE, the Generic Test for Unsolicited Bulk Email: a fixed string that SpamAssassin and rspamd treat
//! as certain spam, so operators can test their policy end to end. Scored in `rules/default/scores.toml`
//! (1000: quarantined under the default thresholds).

use crate::{Analyzer, Context};
use message::MessageView;
use verdict::Finding;

/// The string as SpamAssassin and rspamd recognise it.
pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

pub struct Gtube;

impl Analyzer for Gtube {
    fn name(&self) -> &'static str {
        "gtube"
    }

    fn analyze(&self, msg: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        // rspamd looks in the text parts; SpamAssassin in the body. Text parts cover both, decoded.
        if msg.text().any(|t| t.contains(GTUBE)) {
            out.push(Finding::new("GTUBE", "the GTUBE test string is in the body"));
        }
    }
}
