//! Tuning aid, for training mail only: each directory is split by name order into an older part to
//! learn and a newer part to check, and error rates are printed per threshold and per directory.
//!
//! `cargo run --release -p classifier --example eval -- spam=DIR ham=DIR [ham=DIR ...]`
//! Environment: `FRACTION` (learned part, default 0.6); `S`, `PS`, `X`, `MINDEV`, `MAXSIG`, `CLAMP`,
//! `BAL` override the combining constants ([`classifier::combine::Tuning`]); `FOLDS=5` checks by
//! 5-fold cross-validation instead; `SHOW=1` lists errors; `DUMP=FILE` writes each message's probability.

use classifier::combine::Tuning;
use classifier::{Class, Classifier, Learned, Settings};
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
    let fields: [(&str, &mut f64); 6] = [
        ("S", &mut t.strength),
        ("PS", &mut t.pair_strength),
        ("X", &mut t.unknown),
        ("MINDEV", &mut t.min_deviation),
        ("CLAMP", &mut t.clamp),
        ("BAL", &mut t.balance),
    ];
    for (k, f) in fields {
        if let Some(v) = env(k) {
            *f = v;
        }
    }
    if let Some(v) = env("MAXSIG") {
        t.max_significant = v as usize;
    }
    t
}

struct Checked {
    class: Class,
    group: usize,
    p: f64,
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
    let folds = env("FOLDS").map_or(0, |f| f as usize);
    let limits = message::MessageLimits::default();
    let started = std::time::Instant::now();
    // (class, group, learned in the temporal split, tokens, path)
    let mut all = Vec::new();
    for (g, (class, dir)) in groups.iter().enumerate() {
        let fs = files(dir);
        let cut = (fs.len() as f64 * fraction) as usize;
        for (i, f) in fs.iter().enumerate() {
            let toks = tokens(&std::fs::read(f).unwrap(), &limits);
            all.push((*class, g, i < cut, toks, f.clone()));
        }
    }
    eprintln!("tokenized {} messages in {:?}", all.len(), started.elapsed());
    let rounds: Vec<Box<dyn Fn(usize, bool) -> bool>> = if folds > 1 {
        (0..folds)
            .map(|k| Box::new(move |i: usize, _| i % folds != k) as Box<dyn Fn(usize, bool) -> bool>)
            .collect()
    } else {
        vec![Box::new(|_, learned| learned)]
    };
    let mut checked = Vec::new();
    for learns in &rounds {
        let settings = Settings { min_learned_spam: 1, min_learned_ham: 1, ..Settings::default() };
        let c = Classifier::with_tuning(settings, tuning());
        for (i, (class, _, learned, toks, _)) in all.iter().enumerate() {
            if learns(i, *learned) {
                c.apply(toks, *class, Learned::Added);
            }
        }
        for (i, (class, group, learned, toks, path)) in all.iter().enumerate() {
            if !learns(i, *learned) {
                let p = c.classify_tokens(toks).map_or(0.5, |x| x.probability);
                checked.push(Checked { class: *class, group: *group, p, path: path.clone() });
            }
        }
    }
    report(&checked, &groups);
}

fn tokens(raw: &[u8], limits: &message::MessageLimits) -> Vec<u64> {
    classifier::tokenize::tokenize(&message::parse(raw, limits), Settings::default().max_tokens)
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
                format!("{}: {e}/{n}", d.rsplit('/').next().unwrap_or(d))
            })
            .collect();
        println!("p>={th:<6} {}", per.join("  "));
    }
    let mut hams: Vec<f64> = checked.iter().filter(|x| x.class == Class::Ham).map(|x| x.p).collect();
    hams.sort_by(|a, b| b.total_cmp(a));
    let th = hams[hams.len() / 1000];
    let spam = checked.iter().filter(|x| x.class == Class::Spam).count();
    let missed = checked.iter().filter(|x| x.class == Class::Spam && x.p <= th).count();
    println!(
        "at <=0.1% FP (p > {th:.6}): FN {missed}/{spam} ({:.2}%)",
        100.0 * missed as f64 / spam.max(1) as f64
    );
    if let Ok(path) = std::env::var("DUMP") {
        let lines: Vec<String> = checked.iter().map(|x| format!("{} {}", x.path.display(), x.p)).collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    if std::env::var("SHOW").is_ok() {
        for x in checked.iter().filter(|x| wrong(x, 0.5)) {
            println!("  {:?} {:.4} {}", x.class, x.p, x.path.display());
        }
    }
}
