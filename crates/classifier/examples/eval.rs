//! Tuning aid, for training mail only: cross-validation (or an older/newer split) of the logistic
//! model over directories of training mail, with error rates per threshold and per directory.
//!
//! `cargo run --release -p classifier --example eval -- spam=DIR ham=DIR [ham=DIR ...]`
//! Environment: `FOLDS` (default 5; `0`: each directory is split by name order into an older part,
//! `FRACTION` of it (default 0.6), to learn and a newer part to check). Learning goes as `portcullis
//! learn --spam DIR; portcullis learn --ham DIR` does it: each fold's spam first, then its ham
//! (`ORDER=mixed`: interleaved), in batches of `BATCH` (default 500, as `classifier.learn_batch`),
//! each learned `EPOCHS` times over (default [`classifier::PASSES`]) together with the `KEEP` most
//! recent learned messages of each class (default [`classifier::KEEP`]). `RATE`, `MARGIN`, `STEPS`
//! override [`classifier::logistic::Tuning`]; `NGRAM` (bytes), `HDR4=1` (4-grams from the start of
//! the raw message, header included), `TOKENS=0` override [`classifier::features::FeatureTuning`];
//! `SHARE` overrides the rest of [`classifier::logistic::Tuning`]; `GROUP=sender`
//! puts all mail of one `From:` domain (the last two labels) in the same fold, so each fold checks
//! mail from senders it never learned (what newsletters from new senders look like to a gateway);
//! `SHOW=1` lists errors at p >= 0.5;
//! `DUMP=FILE` writes each checked message's path and raw score.

use classifier::features::{FeatureTuning, extract_with};
use classifier::logistic::{Tuning, Weights, train};
use classifier::{Class, Settings};
use std::path::PathBuf;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn env(k: &str) -> Option<f64> {
    std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok())
}

fn tuning() -> Tuning {
    let mut t = Tuning::default();
    if let Some(v) = env("RATE") {
        t.rate = v as f32;
    }
    if let Some(v) = env("MARGIN") {
        t.margin = v as f32;
    }
    if let Some(v) = env("STEPS") {
        t.max_steps = v as u32;
    }
    if let Some(v) = env("SHARE") {
        t.ngram_share = v as f32;
    }
    t
}

fn feature_tuning() -> FeatureTuning {
    let mut t = FeatureTuning::default();
    if let Some(v) = env("NGRAM") {
        t.ngram_bytes = v as usize;
    }
    if let Some(v) = env("HDR4") {
        t.ngrams_from_header = v != 0.0;
    }
    if let Some(v) = env("TOKENS") {
        t.tokens = v != 0.0;
    }
    t
}

struct Message {
    class: Class,
    group: usize,
    older: bool,
    /// The fold of its sender's domain (`GROUP=sender`).
    sender_fold: u64,
    features: Vec<u32>,
    path: PathBuf,
}

struct Checked {
    class: Class,
    group: usize,
    p: f64,
    score: f32,
    path: PathBuf,
}

fn main() {
    let groups: Vec<(Class, String)> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some(("spam", d)) => (Class::Spam, d.to_string()),
            Some(("ham", d)) => (Class::Ham, d.to_string()),
            _ => panic!("arguments are spam=DIR or ham=DIR"),
        })
        .collect();
    let fraction = env("FRACTION").unwrap_or(0.6);
    let folds = env("FOLDS").map_or(5, |f| f as usize);
    let epochs = env("EPOCHS").map_or(classifier::PASSES, |e| e as usize);
    let keep = env("KEEP").map_or(classifier::KEEP, |k| k as usize);
    let batch = env("BATCH").map_or(500, |b| b as usize);
    let by_class = std::env::var("ORDER").map_or(true, |o| o != "mixed");
    let (t, ft) = (tuning(), feature_tuning());
    let limits = message::MessageLimits::default();
    let max_tokens = Settings::default().max_tokens;
    let started = std::time::Instant::now();
    let mut all = Vec::new();
    for (g, (class, dir)) in groups.iter().enumerate() {
        let fs = files(dir);
        let cut = (fs.len() as f64 * fraction) as usize;
        for (i, f) in fs.iter().enumerate() {
            let view = message::parse(&std::fs::read(f).unwrap(), &limits);
            let features = extract_with(&view, max_tokens, &ft);
            let sender_fold = sender_hash(&view);
            let older = i < cut;
            all.push(Message { class: *class, group: g, older, sender_fold, features, path: f.clone() });
        }
    }
    let n_features: usize = all.iter().map(|m| m.features.len()).sum();
    eprintln!(
        "featurized {} messages ({} features each on average) in {:?}",
        all.len(),
        n_features / all.len().max(1),
        started.elapsed()
    );
    // Interleaved order: a fixed shuffle (so runs compare), as mail arrives at a gateway.
    let mut order: Vec<usize> = (0..all.len()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in (1..order.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        order.swap(i, (seed % (i as u64 + 1)) as usize);
    }
    if by_class {
        order.sort_by_key(|&i| all[i].class == Class::Ham);
    }
    let by_sender = std::env::var("GROUP").is_ok_and(|g| g == "sender");
    let learns = |round: usize, i: usize| {
        if folds > 1 && by_sender {
            all[i].sender_fold % folds as u64 != round as u64
        } else if folds > 1 {
            i % folds != round
        } else {
            all[i].older
        }
    };
    let mut checked = Vec::new();
    let started = std::time::Instant::now();
    for round in 0..folds.max(1) {
        let mut w = Weights::default();
        let learned: Vec<usize> = order.iter().copied().filter(|&i| learns(round, i)).collect();
        // What the store keeps: the most recent `keep` learned messages of each class.
        let (mut kept_spam, mut kept_ham): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
        for chunk in learned.chunks(batch) {
            let examples: Vec<(&[u32], Class)> = chunk
                .iter()
                .chain(kept_spam.iter().rev().take(keep))
                .chain(kept_ham.iter().rev().take(keep))
                .map(|&i| (&all[i].features[..], all[i].class))
                .collect();
            train(&mut w, &examples, epochs, &t);
            for &i in chunk {
                if all[i].class == Class::Spam { kept_spam.push(i) } else { kept_ham.push(i) }
            }
        }
        for (_, m) in all.iter().enumerate().filter(|(i, _)| !learns(round, *i)) {
            let score = w.score(&m.features, &t);
            let p = classifier::calibrated(score);
            checked.push(Checked { class: m.class, group: m.group, p, score, path: m.path.clone() });
        }
    }
    eprintln!("learned and checked in {:?}", started.elapsed());
    report(&checked, &groups);
}

/// A hash of the last two labels of the `From:` domain (FNV-1a).
fn sender_hash(view: &message::MessageView) -> u64 {
    let domain = view.from.first().and_then(|m| m.domain()).unwrap_or_default().to_ascii_lowercase();
    let labels: Vec<&str> = domain.rsplit('.').take(2).collect();
    labels
        .iter()
        .flat_map(|l| l.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

fn report(checked: &[Checked], groups: &[(Class, String)]) {
    let wrong = |x: &Checked, th: f64| (x.class == Class::Ham) == (x.p >= th);
    for th in [0.5, 0.9, 0.99, 0.999] {
        let per: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(g, (_, d))| {
                let n = checked.iter().filter(|x| x.group == g).count();
                let e = checked.iter().filter(|x| x.group == g && wrong(x, th)).count();
                format!("{}: {e}/{n}", d.trim_end_matches('/').rsplit('/').next().unwrap_or(d))
            })
            .collect();
        println!("p>={th:<6} {}", per.join("  "));
    }
    let mut hams: Vec<f64> = checked.iter().filter(|x| x.class == Class::Ham).map(|x| x.p).collect();
    hams.sort_by(|a, b| b.total_cmp(a));
    let spam = checked.iter().filter(|x| x.class == Class::Spam).count();
    for per_mille in [1usize, 3, 10] {
        let th = hams[(hams.len() * per_mille / 1000).min(hams.len() - 1)];
        let missed = checked.iter().filter(|x| x.class == Class::Spam && x.p <= th).count();
        println!(
            "at <={:.1}% FP (p > {th:.6}): FN {missed}/{spam} ({:.2}%)",
            per_mille as f64 / 10.0,
            100.0 * missed as f64 / spam.max(1) as f64
        );
    }
    if let Ok(path) = std::env::var("DUMP") {
        let lines: Vec<String> =
            checked.iter().map(|x| format!("{} {}", x.path.display(), x.score)).collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    if std::env::var("SHOW").is_ok() {
        for x in checked.iter().filter(|x| wrong(x, 0.5)) {
            println!("  {:?} {:.4} {}", x.class, x.p, x.path.display());
        }
    }
}
