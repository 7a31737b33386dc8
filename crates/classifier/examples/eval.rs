//! Tuning aid (training mail only): splits a directory of training spam and ham by name order into
//! an older part to learn and a newer part to check, and prints error rates per threshold.
//! `cargo run --release -p classifier --example eval -- SPAM_DIR HAM_DIR [FRACTION]`

use classifier::{Class, Classifier, Learned, Settings};
use std::path::PathBuf;

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frac: f64 = args.get(3).map_or(0.6, |f| f.parse().unwrap());
    let mut tuning = classifier::combine::Tuning::default();
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    if let Some(v) = env("S") {
        tuning.strength = v;
    }
    if let Some(v) = env("X") {
        tuning.unknown = v;
    }
    if let Some(v) = env("MINDEV") {
        tuning.min_deviation = v;
    }
    if let Some(v) = env("MAXSIG") {
        tuning.max_significant = v as usize;
    }
    if let Some(v) = env("CLAMP") {
        tuning.clamp = v;
    }
    if let Some(v) = env("BAL") {
        tuning.balance = v;
    }
    if let Some(v) = env("PS") {
        tuning.pair_strength = v;
    }
    let settings = Settings { min_learned_spam: 1, min_learned_ham: 1, ..Settings::default() };
    let c = Classifier::with_tuning(settings, tuning);
    let limits = message::MessageLimits::default();
    let mut tests = Vec::new();
    let mut ntok = 0usize;
    let started = std::time::Instant::now();
    for (dir, class) in [(&args[1], Class::Spam), (&args[2], Class::Ham)] {
        let fs = files(dir);
        let cut = (fs.len() as f64 * frac) as usize;
        for (i, f) in fs.iter().enumerate() {
            let raw = std::fs::read(f).unwrap();
            let toks = c.tokens(&message::parse(&raw, &limits));
            ntok += toks.len();
            if i < cut {
                c.apply(&toks, class, Learned::Added);
            } else {
                tests.push((class, toks, f.clone()));
            }
        }
    }
    eprintln!("tokenized in {:?}, {} tokens/msg avg", started.elapsed(), ntok / (tests.len().max(1)));
    let t0 = std::time::Instant::now();
    let scored: Vec<(Class, f64, &PathBuf)> = tests
        .iter()
        .map(|(cl, t, f)| (*cl, c.classify_tokens(t).map_or(0.5, |x| x.probability), f))
        .collect();
    eprintln!("classified {} in {:?}", scored.len(), t0.elapsed());
    let nspam = scored.iter().filter(|s| s.0 == Class::Spam).count();
    let nham = scored.len() - nspam;
    for th in [0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999] {
        let fp = scored.iter().filter(|s| s.0 == Class::Ham && s.1 >= th).count();
        let fneg = scored.iter().filter(|s| s.0 == Class::Spam && s.1 < th).count();
        println!(
            "p>={th:<7} FP {fp:>4}/{nham} ({:.2}%)  FN {fneg:>4}/{nspam} ({:.2}%)",
            100.0 * fp as f64 / nham as f64,
            100.0 * fneg as f64 / nspam as f64
        );
    }
    // The lowest FN reachable with at most 0.1% FP.
    let mut hams: Vec<f64> = scored.iter().filter(|s| s.0 == Class::Ham).map(|s| s.1).collect();
    hams.sort_by(|a, b| b.total_cmp(a));
    let allowed = nham / 1000;
    let th = hams[allowed];
    let fneg = scored.iter().filter(|s| s.0 == Class::Spam && s.1 <= th).count();
    println!(
        "at <=0.1% FP (threshold > {th:.6}): FN {fneg}/{nspam} ({:.2}%)",
        100.0 * fneg as f64 / nspam as f64
    );
    if std::env::var("SHOW").is_ok() {
        for s in
            scored.iter().filter(|s| (s.0 == Class::Spam && s.1 <= th) || (s.0 == Class::Ham && s.1 > 0.5))
        {
            println!("  {:?} {:.4} {}", s.0, s.1, s.2.display());
        }
    }
}
