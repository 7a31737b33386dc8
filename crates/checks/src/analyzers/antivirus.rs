//! Antivirus through clamd (`[antivirus]`): every attachment, then the whole raw message, streamed
//! with INSTREAM. Fail closed: nothing is clean unless clamd said `OK`.
//!
//! Symbols: `VIRUS_FOUND` (the signature name in the reason; forced `virus_action`), `AV_FAILURE`
//! (clamd down, slow, or failing; forced `failure_action`, 451 by default, so the client retries and
//! nothing is lost), `AV_UNSCANNABLE` (larger than clamd accepts, or cut by a message limit: a partly
//! scanned file is unscannable; forced `[attachments] unscannable_action`). After the first failure
//! the rest is not sent: the message is held either way, and a down clamd costs one timeout, not one
//! per attachment.

use super::attachments::hold;
use crate::{AsyncAnalyzer, BoxFuture, Context};
use config::AntivirusConfig;
use inspect::clamd::{Clamd, ClamdError, Outcome, Settings};
use message::MessageView;
use std::sync::Arc;
use verdict::{Finding, ScoreFile};

pub const VIRUS_FOUND: &str = "VIRUS_FOUND";
pub const AV_FAILURE: &str = "AV_FAILURE";
pub const AV_UNSCANNABLE: &str = "AV_UNSCANNABLE";

pub struct Antivirus {
    clamd: Arc<Clamd>,
    scan_message: bool,
}

impl Antivirus {
    /// The analyzer `c` describes (`c.check()` has passed).
    pub fn from_config(c: &AntivirusConfig) -> Result<Antivirus, String> {
        let settings = Settings {
            address: c.address.parse()?,
            connect_timeout: c.connect_timeout.get(),
            scan_timeout: c.scan_timeout.get(),
            max_connections: c.max_connections,
            chunk_size: usize::try_from(c.chunk_size.0).unwrap_or(usize::MAX),
            max_stream_bytes: usize::try_from(c.max_stream_size.0).unwrap_or(usize::MAX),
        };
        Ok(Antivirus { clamd: Arc::new(Clamd::new(settings)), scan_message: c.scan_message })
    }

    async fn run(&self, msg: &MessageView, raw: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        for a in &msg.attachments {
            let file =
                a.filename.as_deref().map_or_else(|| format!("(part {})", a.path), inspect::name::display);
            if a.truncated {
                out.push(Finding::new(
                    AV_UNSCANNABLE,
                    format!("{file}: cut at a message limit, only partly scannable"),
                ));
                continue;
            }
            if !self.scan_one(&file, &a.data, &mut out).await {
                return out;
            }
        }
        if self.scan_message && raw.len() <= self.clamd.settings().max_stream_bytes {
            self.scan_one("the whole message", raw, &mut out).await;
        }
        out
    }

    /// Scan one stream; false when clamd failed (stop sending more).
    async fn scan_one(&self, what: &str, data: &[u8], out: &mut Vec<Finding>) -> bool {
        match self.clamd.scan(data).await {
            Ok(Outcome::Clean) => true,
            Ok(Outcome::Found(signature)) => {
                out.push(Finding::new(VIRUS_FOUND, format!("{what}: {signature}")));
                true
            }
            Err(e @ ClamdError::SizeLimit(_)) => {
                out.push(Finding::new(AV_UNSCANNABLE, format!("{what}: {e}")));
                true
            }
            Err(e) => {
                out.push(Finding::new(AV_FAILURE, format!("{what}: {e}")));
                false
            }
        }
    }
}

impl AsyncAnalyzer for Antivirus {
    fn name(&self) -> &'static str {
        "antivirus"
    }

    fn analyze<'a>(&'a self, msg: &'a MessageView, ctx: &'a Context<'a>) -> BoxFuture<'a, Vec<Finding>> {
        Box::pin(self.run(msg, ctx.raw))
    }
}

/// Forced actions of `[antivirus]`: a virus per `virus_action`, a failure per `failure_action`.
pub fn settings_layer(config: &config::Config, layer: &mut ScoreFile) {
    let c = &config.antivirus;
    if !c.enabled {
        return;
    }
    layer.force_actions.insert(VIRUS_FOUND.into(), hold(c.virus_action));
    layer.force_actions.insert(AV_FAILURE.into(), hold(c.failure_action));
    layer.force_actions.insert(AV_UNSCANNABLE.into(), hold(config.attachments.unscannable_action));
}
