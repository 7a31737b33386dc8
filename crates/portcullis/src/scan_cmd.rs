//! `portcullis scan`: judge `.eml` files offline with the same engine and configuration as `serve`.

use crate::gate::action_name;
use anyhow::Context as _;
use checks::{Context, Verdict};
use config::Config;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct ScanArgs {
    /// One JSON object per line: path, score, action, symbols.
    #[arg(long)]
    json: bool,
    /// Turn network checks (DNS lookups) off; the output says so.
    #[arg(long)]
    offline: bool,
    /// Files or directories (searched recursively, in name order).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub(crate) fn run(mut config: Config, args: ScanArgs) -> anyhow::Result<ExitCode> {
    if args.offline {
        // No DNS: no sender authentication, no blocklists (sender groups do not apply to scans).
        config.auth.enabled = false;
        config.reputation.ip_blocklists = Default::default();
        config.reputation.url_blocklists = Default::default();
    }
    anyhow::ensure!(config.verdict.enabled, "verdict.enabled is off: nothing to judge with");
    let classifier = crate::engine::classifier(&config)?;
    if let Some(warning) = classifier.as_deref().and_then(crate::stale_model::warning) {
        eprintln!("portcullis: warning: {warning}");
    }
    let engine = crate::engine::with_classifier(&config, classifier)?.context("the verdict engine is off")?;
    let files = collect(&args.paths)?;
    let accepted: Vec<String> = config.smtp.accepted_domains.iter().map(|d| d.as_str().to_string()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut failures = 0;
    for path in files {
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) => {
                eprintln!("portcullis: cannot read {}: {e}", path.display());
                failures += 1;
                continue;
            }
        };
        let ctx = Context { accepted_domains: &accepted, hostname: &config.hostname, ..Default::default() };
        let verdict = runtime.block_on(engine.judge(&raw, &ctx));
        print_verdict(&mut out, &path, &verdict, args.json, args.offline)?;
    }
    out.flush()?;
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_verdict(
    out: &mut impl Write,
    path: &Path,
    v: &Verdict,
    json: bool,
    offline: bool,
) -> anyhow::Result<()> {
    if json {
        let symbols: Vec<serde_json::Value> = v
            .symbols
            .iter()
            .map(|s| serde_json::json!({"name": s.name, "score": s.score, "reason": s.reason}))
            .collect();
        let line = serde_json::json!({
            "path": path.display().to_string(),
            "score": v.score,
            "action": action_name(v.action),
            "symbols": symbols,
            "offline": offline,
        });
        writeln!(out, "{line}")?;
    } else {
        let names: Vec<String> = v.symbols.iter().map(|s| format!("{}({:.2})", s.name, s.score)).collect();
        let note = if offline { " (offline: network checks off)" } else { "" };
        writeln!(
            out,
            "{}: {} {:.2} {}{note}",
            path.display(),
            action_name(v.action),
            v.score,
            names.join(" ")
        )?;
    }
    Ok(())
}

/// Every file under `paths`, directories walked recursively in name order.
pub(crate) fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else {
            files.push(p);
        }
    }
    Ok(files)
}
