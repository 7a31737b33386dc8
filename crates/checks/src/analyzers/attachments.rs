//! Attachments: what each really is and holds (the `inspect` crate, under `[attachments]` limits),
//! and the per-recipient-domain type policy. Each finding names the (sanitised) file in its reason.
//!
//! Symbols: the inspector's (`ATTACH_EXECUTABLE`, `ATTACH_TYPE_MISMATCH`, `ATTACH_DOUBLE_EXT`,
//! `ATTACH_BIDI_NAME`, `ARCHIVE_BOMB`, `ARCHIVE_ENCRYPTED`, `OFFICE_MACRO`, `OFFICE_XLM_MACRO`,
//! `OFFICE_DDE`, `PDF_JAVASCRIPT`, `HTML_SMUGGLING`, ...) and the policy's: `ATTACH_POLICY_BLOCK`
//! (forced `block_action`),
//! `ATTACH_STRIPPED` (`block_action = "strip"`: the gate delivers a copy without the attachment and
//! quarantines the original) and `ATTACH_POLICY_QUARANTINE`. Unscannable findings are forced to
//! `unscannable_action` and encrypted ones to `encrypted_action` (see [`settings_layer`]).

use crate::{Analyzer, Context};
use config::{AttachmentsConfig, BlockAction, HoldAction};
use inspect::{Input, Limits, Report};
use message::{Attachment, MessageView};
use std::time::{Duration, Instant};
use verdict::{Action, Finding, Part, ScoreFile};

pub const POLICY_BLOCK: &str = "ATTACH_POLICY_BLOCK";
pub const POLICY_QUARANTINE: &str = "ATTACH_POLICY_QUARANTINE";
pub const STRIPPED: &str = "ATTACH_STRIPPED";

/// The symbols that mean "not read whole", forced to `unscannable_action`.
pub const UNSCANNABLE: [&str; 5] =
    ["ARCHIVE_BOMB", "ARCHIVE_LIMIT", "ARCHIVE_UNINSPECTABLE", "ATTACH_UNSCANNABLE", "AV_UNSCANNABLE"];

pub struct Attachments {
    limits: Limits,
    settings: AttachmentsConfig,
}

/// What the type policy says about one attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ruling {
    Pass,
    Quarantine,
    Block,
}

impl Attachments {
    pub fn from_config(c: &AttachmentsConfig) -> Attachments {
        let limits = Limits {
            max_depth: c.max_depth,
            max_entries: c.max_entries,
            max_entry_bytes: c.max_entry_size.0,
            max_total_bytes: c.max_total_size.0,
            max_ratio: c.max_ratio,
            max_time: c.max_time.get(),
            max_name_chars: c.max_name_length,
        };
        Attachments { limits, settings: c.clone() }
    }

    fn inspect_within(&self, a: &Attachment, time: Duration) -> Report {
        let limits = Limits { max_time: time, ..self.limits.clone() };
        let input = Input {
            name: a.filename.as_deref(),
            declared_type: &a.declared_type,
            data: &a.data,
            truncated: a.truncated,
        };
        inspect::inspect(&input, &limits)
    }

    /// The strictest ruling over the recipients' domains, and the type that caused it.
    fn ruling(&self, report: &Report, ctx: &Context<'_>) -> (Ruling, String) {
        let mut domains: Vec<String> =
            ctx.recipients.iter().filter_map(|r| crate::context::domain_of(r)).collect();
        if domains.is_empty() {
            domains.push(String::new());
        }
        let mut worst = (Ruling::Pass, String::new());
        for d in &domains {
            let (block, quarantine, allow) = self.settings.lists_for(d);
            for f in &report.files {
                let names: Vec<&str> = f.type_names().collect();
                let listed = |l: &[String]| {
                    names.iter().find(|n| l.iter().any(|x| x.eq_ignore_ascii_case(n))).map(|n| n.to_string())
                };
                if listed(allow).is_some() {
                    continue;
                }
                let r = match (listed(block), listed(quarantine)) {
                    (Some(t), _) => (Ruling::Block, t),
                    (None, Some(t)) => (Ruling::Quarantine, t),
                    _ => continue,
                };
                if r.0 > worst.0 {
                    worst = r;
                }
            }
        }
        worst
    }

    /// The type policy's finding for one attachment. `strippable`: the message's structure is
    /// unambiguous (no limit reached, no MIME defect), so a part can be cut out exactly where the
    /// view saw it; only then does an `ATTACH_STRIPPED` finding name its part, and only a part
    /// named that way is ever removed (see [`Attachments::stripped_copy`]).
    fn policy(
        &self,
        a: &Attachment,
        report: &Report,
        ctx: &Context<'_>,
        strippable: bool,
    ) -> Option<Finding> {
        let shown = shown_name(a);
        Some(match self.ruling(report, ctx) {
            (Ruling::Pass, _) => return None,
            (Ruling::Quarantine, t) => {
                Finding::new(POLICY_QUARANTINE, format!("{shown}: type {t} is held by policy"))
            }
            (Ruling::Block, t) if self.settings.block_action == BlockAction::Strip => {
                let f = Finding::new(STRIPPED, format!("{shown}: type {t} is removed by policy"));
                if strippable { f.about(Part { path: a.path.clone(), name: shown }) } else { f }
            }
            (Ruling::Block, t) => {
                Finding::new(POLICY_BLOCK, format!("{shown}: type {t} is blocked by policy"))
            }
        })
    }

    /// The message to deliver under `block_action = "strip"`: every attachment the verdict's
    /// `ATTACH_STRIPPED` findings name replaced by a notice giving the finding's reason. The
    /// findings come from the inspection that made the verdict, so nothing is parsed or inspected
    /// twice (a second inspection could neither disagree with the first nor run past the message's
    /// time budget). `None` when there is nothing to strip or it cannot be done unambiguously (a
    /// finding without its part, because the message reached a limit or has MIME defects; a part
    /// the rewriter cannot place): the caller then holds the message.
    pub fn stripped_copy(raw: &[u8], findings: &[Finding]) -> Option<Vec<u8>> {
        let mut removals = Vec::new();
        for f in findings.iter().filter(|f| f.symbol == STRIPPED) {
            let part = f.part.as_ref()?;
            removals.push(inspect::strip::Removal { path: &part.path, name: &part.name, why: &f.reason });
        }
        inspect::strip::strip(raw, &removals)
    }
}

fn shown_name(a: &Attachment) -> String {
    a.filename.as_deref().map_or_else(|| format!("(unnamed part {})", a.path), inspect::name::display)
}

impl Analyzer for Attachments {
    fn name(&self) -> &'static str {
        "attachments"
    }

    fn analyze(&self, msg: &MessageView, ctx: &Context<'_>, out: &mut Vec<Finding>) {
        // `max_time` is one budget for the whole message, so many attachments cannot multiply it.
        let started = Instant::now();
        let strippable = msg.limit_hits.is_empty() && msg.parts.iter().all(|p| p.defects.is_empty());
        for a in &msg.attachments {
            let left = self.limits.max_time.saturating_sub(started.elapsed());
            if left.is_zero() {
                let detail =
                    format!("{}: not inspected, the message's inspection time was spent", shown_name(a));
                out.push(Finding::new("ARCHIVE_LIMIT", detail));
                continue;
            }
            let report = self.inspect_within(a, left);
            for issue in &report.issues {
                out.push(Finding::new(issue.kind.symbol(), format!("{}: {}", issue.file, issue.detail)));
            }
            out.extend(self.policy(a, &report, ctx, strippable));
        }
    }
}

pub(crate) fn hold(a: HoldAction) -> Action {
    match a {
        HoldAction::Quarantine => Action::Quarantine,
        HoldAction::Tempfail => Action::Tempfail,
        HoldAction::Reject => Action::Reject,
    }
}

/// Forced actions the `[attachments]` settings give: unscannable and encrypted files are held (never
/// clean), blocked and held types act as configured.
pub fn settings_layer(c: &AttachmentsConfig, layer: &mut ScoreFile) {
    if !c.enabled {
        return;
    }
    for s in UNSCANNABLE {
        layer.force_actions.insert(s.to_string(), hold(c.unscannable_action));
    }
    layer.force_actions.insert("ARCHIVE_ENCRYPTED".into(), hold(c.encrypted_action));
    layer.force_actions.insert(POLICY_QUARANTINE.into(), Action::Quarantine);
    let block = match c.block_action {
        BlockAction::Reject => Action::Reject,
        BlockAction::Quarantine | BlockAction::Strip => Action::Quarantine,
    };
    layer.force_actions.insert(POLICY_BLOCK.into(), block);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(raw: &str, settings: &AttachmentsConfig, rcpt: &str) -> Vec<Finding> {
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let recipients = vec![rcpt.to_string()];
        let ctx = Context { recipients: &recipients, ..Context::default() };
        let mut out = Vec::new();
        Attachments::from_config(settings).analyze(&view, &ctx, &mut out);
        out
    }

    const EXE: &str = "From: a@b.test\r\nTo: u@our.test\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/pdf; name=\"inv\u{202e}fdp.exe\"\r\nContent-Disposition: attachment; filename*=utf-8''inv%E2%80%AEfdp.exe\r\nContent-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==\r\n--b--\r\n";

    #[test]
    fn symbols_name_the_file_and_the_policy_applies_per_domain() {
        let out = judge(EXE, &AttachmentsConfig::default(), "u@our.test");
        let syms: Vec<&str> = out.iter().map(|f| f.symbol.as_str()).collect();
        assert!(syms.contains(&"ATTACH_EXECUTABLE") && syms.contains(&"ATTACH_BIDI_NAME"), "{out:?}");
        assert!(syms.contains(&STRIPPED), "{syms:?}");
        let bidi = out.iter().find(|f| f.symbol == "ATTACH_BIDI_NAME").unwrap();
        assert!(bidi.reason.contains("inv<U+202E>fdp.exe"), "{}", bidi.reason);
        let mut s = AttachmentsConfig::default();
        s.policy.push(config::AttachmentPolicy {
            domain: "our.test".into(),
            allow: vec!["exe".into()],
            ..Default::default()
        });
        let out = judge(EXE, &s, "u@our.test");
        assert!(!out.iter().any(|f| f.symbol == STRIPPED || f.symbol == POLICY_BLOCK));
        s.block_action = BlockAction::Reject;
        let out = judge(EXE, &s, "u@other.test");
        assert!(out.iter().any(|f| f.symbol == POLICY_BLOCK));
    }

    #[test]
    fn strip_copy_removes_the_part_the_finding_names() {
        let findings = judge(EXE, &AttachmentsConfig::default(), "u@our.test");
        let stripped = findings.iter().find(|f| f.symbol == STRIPPED).unwrap();
        assert_eq!(stripped.part.as_ref().map(|p| p.path.as_str()), Some("2"), "{stripped:?}");
        let out = Attachments::stripped_copy(EXE.as_bytes(), &findings).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            !text.contains("TVqQ")
                && text.contains("see attached")
                && text.contains("removed from this message: inv<U+202E>fdp.exe")
                && text.contains("type exe is removed by policy"),
            "{text}"
        );
        // Nothing named, nothing stripped; and a message whose structure is ambiguous (here a
        // multipart never closed) keeps its finding but names no part, so it is held whole.
        assert!(Attachments::stripped_copy(EXE.as_bytes(), &[]).is_none());
        let unclosed = EXE.replace("--b--\r\n", "");
        let findings = judge(&unclosed, &AttachmentsConfig::default(), "u@our.test");
        let stripped = findings.iter().find(|f| f.symbol == STRIPPED).unwrap();
        assert!(stripped.part.is_none());
        assert!(Attachments::stripped_copy(unclosed.as_bytes(), &findings).is_none());
    }

    const PE_B64: &str =
        "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==";

    fn all(raw: &str) -> Vec<String> {
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let recipients = vec!["u@our.test".to_string()];
        let ctx = Context { recipients: &recipients, ..Context::default() };
        let mut out = Vec::new();
        crate::analyzers::mime::Mime.analyze(&view, &ctx, &mut out);
        Attachments::from_config(&AttachmentsConfig::default()).analyze(&view, &ctx, &mut out);
        out.into_iter().map(|f| f.symbol).collect()
    }

    /// THREATS.md "MIME differentials", "deep MIME" and "raw bytes" through the attachment checks:
    /// whichever name a client shows, the bytes decide the type, and the disagreement is a symbol.
    #[test]
    fn mime_rows_through_the_attachment_checks() {
        let mismatch = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"report.txt\"; filename*=utf-8''report.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n{PE_B64}\r\n--b--\r\n"
        );
        let s = all(&mismatch);
        assert!(
            s.contains(&"ATTACH_EXECUTABLE".into()) && s.contains(&"MIME_FILENAME_MISMATCH".into()),
            "{s:?}"
        );
        let encoded = "=?utf-8?b?aW524oCuZmRwLmV4ZQ==?="; // inv<U+202E>fdp.exe
        let rfc2047 = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf; name=\"{encoded}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{PE_B64}\r\n--b--\r\n"
        );
        let s = all(&rfc2047);
        assert!(s.contains(&"ATTACH_BIDI_NAME".into()) && s.contains(&"ATTACH_EXECUTABLE".into()), "{s:?}");
        let lf_unclosed = format!(
            "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/x-msdownload; name=x.scr\nContent-Transfer-Encoding: base64\n\n{PE_B64}\n"
        );
        let s = all(&lf_unclosed);
        assert!(
            s.contains(&"ATTACH_EXECUTABLE".into()) && s.contains(&"MIME_MISSING_CLOSING_BOUNDARY".into()),
            "{s:?}"
        );
        let mut deep = String::new();
        for i in 0..1000 {
            deep.push_str(&format!("Content-Type: multipart/mixed; boundary=\"n{i}\"\r\n\r\n--n{i}\r\n"));
        }
        deep.push_str(&format!("Content-Type: application/octet-stream; name=x.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n{PE_B64}\r\n"));
        assert!(all(&deep).contains(&"MIME_TOO_DEEP".into()));
        let raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=\"a\u{0}\u{fffd}.exe\"\r\n\r\n\u{0}\u{1}\u{ff}MZ\r\n--b--\r\n";
        let _ = all(raw);
    }

    #[test]
    fn the_time_budget_is_per_message() {
        let parts: String = (0..3)
            .map(|i| format!("--b\r\nContent-Type: application/octet-stream; name=f{i}.bin\r\n\r\ndata\r\n"))
            .collect();
        let raw = format!("Content-Type: multipart/mixed; boundary=b\r\n\r\n{parts}--b--\r\n");
        let view = message::parse(raw.as_bytes(), &message::MessageLimits::default());
        let mut a = Attachments::from_config(&AttachmentsConfig::default());
        a.limits.max_time = Duration::from_nanos(1);
        let mut out = Vec::new();
        a.analyze(&view, &Context::default(), &mut out);
        assert!(out.iter().filter(|f| f.symbol == "ARCHIVE_LIMIT").count() >= 2, "{out:?}");
    }
}
