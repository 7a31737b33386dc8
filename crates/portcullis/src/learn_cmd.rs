//! `portcullis learn --spam|--ham PATH...`: train the classifier in the store the gateway reads, from
//! `.eml` files, directories (recursively), or messages in the spool by queue id. `portcullis learn
//! --reset` clears the stored model instead (audited): the way out of a model learned with other
//! features than this build's ([`classifier::FEATURE_VERSION`]), which is refused for learning.

use anyhow::Context as _;
use audit::{Action, Actor, Event};
use classifier::{Class, FEATURE_VERSION, LearnError, Learned, Learner, Sample, Settings};
use config::Config;
use spool::{Queue, QueueId, Spool};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("class").required(true).args(["spam", "ham", "reset"])))]
pub(crate) struct LearnArgs {
    /// Learn the messages as spam.
    #[arg(long)]
    spam: bool,
    /// Learn the messages as ham (wanted mail).
    #[arg(long)]
    ham: bool,
    /// Clear the stored model instead of learning: its weights, totals, learned messages and their
    /// kept features; this build's feature version is then recorded. The way out of a model learned
    /// with other features (the gateway's log, `scan` and `doctor` say when). Audited.
    #[arg(long, conflicts_with_all = ["ids", "paths"])]
    reset: bool,
    /// A message in the spool (quarantine or active queue) by its queue id (repeatable).
    #[arg(long = "id", value_name = "QUEUE_ID")]
    ids: Vec<String>,
    /// Files or directories (searched recursively, in name order).
    #[arg(required_unless_present_any = ["ids", "reset"])]
    paths: Vec<PathBuf>,
}

/// What one run did, for the summary line.
#[derive(Default)]
struct Tally {
    added: usize,
    moved: usize,
    already: usize,
    unreadable: usize,
}

impl Tally {
    fn count(&mut self, outcomes: &[Learned]) {
        for o in outcomes {
            match o {
                Learned::Added => self.added += 1,
                Learned::Moved => self.moved += 1,
                Learned::AlreadyLearned => self.already += 1,
            }
        }
    }
}

pub(crate) fn run(config: Config, args: LearnArgs) -> anyhow::Result<ExitCode> {
    config
        .classifier
        .check()
        .map_err(|(key, message)| anyhow::anyhow!("invalid configuration: {key}: {message}"))?;
    if args.reset {
        return reset(&config);
    }
    let class = if args.spam { Class::Spam } else { Class::Ham };
    let files = crate::scan_cmd::collect(&args.paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (tally, learner) = runtime.block_on(async {
        let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
        let learner = Learner::open(store.clone(), Settings::from_config(&config))
            .await
            .context("loading the classifier from the store")?;
        // Said before reading a file; the store refuses such learning anyway (another process may
        // change the model between the two).
        if let Some(stale) = learner.classifier().stale() {
            return Err(LearnError::Stale(stale).into());
        }
        let mut tally = learn_files(&learner, &files, class, config.classifier.learn_batch).await?;
        if !args.ids.is_empty() {
            let spool = Spool::attach(&config.data_dir.join("spool")).context("opening the spool")?;
            for id in &args.ids {
                let id = QueueId::parse(id).map_err(|e| anyhow::anyhow!("bad queue id {id}: {e}"))?;
                tally.count(&[learn_queued(&learner, &spool, &id, class).await?]);
            }
        }
        let totals = store.classifier_totals().await?;
        store.close().await;
        if tally.added + tally.moved > 0 {
            crate::model_reload::announce(&config).await;
        }
        anyhow::Ok((tally, (totals, learner)))
    })?;
    let (totals, learner) = learner;
    let settings = learner.classifier().settings();
    let ready = totals.spam >= settings.min_learned_spam && totals.ham >= settings.min_learned_ham;
    println!(
        "learned {} as {}: {} new, {} moved from {}, {} already learned, {} unreadable; \
         the store now holds {} spam and {} ham ({})",
        tally.added + tally.moved + tally.already,
        class_name(class),
        tally.added,
        tally.moved,
        class_name(class.other()),
        tally.already,
        tally.unreadable,
        totals.spam,
        totals.ham,
        if ready { "classifier active" } else { "below the minimum: the classifier stays silent" },
    );
    Ok(if tally.unreadable == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `learn --reset`: clear the stored model, record this build's feature version, tell the serving
/// nodes, and write the audit record of what was cleared.
fn reset(config: &Config) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let cleared = runtime.block_on(async {
        let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
        let cleared = classifier::reset(&store).await.context("clearing the classifier model");
        store.close().await;
        if cleared.is_ok() {
            crate::model_reload::announce(config).await;
        }
        cleared
    })?;
    let before = cleared.feature_version.map_or_else(|| "none".to_string(), |v| v.to_string());
    let event = Event::new(Action::ClassifierReset, Actor::cli())
        .detail("feature_version_before", before)
        .detail("feature_version", FEATURE_VERSION.to_string())
        .detail("spam", cleared.totals.spam.to_string())
        .detail("ham", cleared.totals.ham.to_string())
        .detail("learned_messages", cleared.learned.to_string());
    crate::audit_cmd::record_cli(config, event)?;
    let c = &config.classifier;
    println!(
        "cleared the classifier model: {} spam and {} ham learned, {} learned messages forgotten, feature \
         version {}. The store now records feature version {FEATURE_VERSION}; learn spam and ham again (the \
         classifier stays silent until {} spam and {} ham are learned)",
        cleared.totals.spam,
        cleared.totals.ham,
        cleared.learned,
        version_name(cleared.feature_version),
        c.min_learned_spam,
        c.min_learned_ham,
    );
    Ok(ExitCode::SUCCESS)
}

/// A stored feature version as `learn --reset` reports it.
fn version_name(v: Option<u32>) -> String {
    match v {
        None => "none (nothing was learned)".into(),
        Some(0) => "0 (unknown: learned before versions were recorded)".into(),
        Some(v) => v.to_string(),
    }
}

/// Learn `files` in batches of `batch` messages, one store transaction each.
async fn learn_files(
    learner: &Learner,
    files: &[PathBuf],
    class: Class,
    batch: usize,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let progress = progress_bar(files.len());
    for chunk in files.chunks(batch) {
        let mut raws = Vec::with_capacity(chunk.len());
        for path in chunk {
            match std::fs::read(path) {
                Ok(raw) => raws.push(raw),
                Err(e) => {
                    progress.suspend(|| eprintln!("portcullis: cannot read {}: {e}", path.display()));
                    tally.unreadable += 1;
                }
            }
        }
        let samples: Vec<Sample> = raws.iter().map(|raw| Sample { raw, fingerprint: None, class }).collect();
        tally.count(&learner.learn_batch(&samples).await.context("learning")?);
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    Ok(tally)
}

/// Learn a message held in the spool (the quarantine first, then the active queue), as the
/// quarantine and the portal do when someone says "spam" or "not spam".
pub(crate) async fn learn_queued(
    learner: &Learner,
    spool: &Spool,
    id: &QueueId,
    class: Class,
) -> anyhow::Result<Learned> {
    let queued = [Queue::Quarantine, Queue::Active]
        .into_iter()
        .find_map(|q| spool.load(q, id).ok())
        .with_context(|| format!("queue id {id} is neither in quarantine nor in the active queue"))?;
    let raw = spool.read_content(&queued).with_context(|| format!("reading queued message {id}"))?;
    Ok(learner.learn(&raw, classifier::fingerprint(&raw), class).await?)
}

/// A progress bar on a terminal; hidden otherwise (logs and pipes get the summary line only).
fn progress_bar(len: usize) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} messages {per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Spam => "spam",
        Class::Ham => "ham",
    }
}
