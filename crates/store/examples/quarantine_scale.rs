//! Quarantine search latency at scale (bench/cluster.sh): fill a store with N quarantined items through
//! `Store::quarantine_insert`, in concurrent batches with progress on standard error, then time the
//! searches the portal issues (an admin's newest page, held only, a subject word; a user's own items,
//! their next page, a word in their subject, a rare word (an item's number) in their subject; a sender
//! domain) and print p50/p99 per shape.
//!
//! `cargo run --release -p store --example quarantine_scale -- --backend sqlite --dir D --items 1000000`
//! or `--backend postgres --url URL --schema S`. Benchmarks only: never run in CI.

use config::{StoreBackend, StoreConfig};
use std::time::{Duration, Instant};
use store::{ItemFilter, ItemRow, ItemScope, ItemStatus, QuarantineKind, Store};

/// Users owning items, sender domains, and the words subjects are made of.
const USERS: u64 = 2_000;
const DOMAINS: u64 = 5_000;
const WORDS: [&str; 16] = [
    "invoice", "offer", "pills", "meeting", "winner", "account", "urgent", "crypto", "loan", "prize",
    "delivery", "password", "photos", "casino", "refund", "update",
];
/// Items are spread over this many days before now.
const DAYS: i64 = 30;

struct Args {
    backend: StoreBackend,
    dir: String,
    url: String,
    schema: String,
    items: u64,
    searches: usize,
    concurrency: usize,
    fill: bool,
}

fn args() -> Args {
    let mut a = Args {
        backend: StoreBackend::Sqlite,
        dir: "./scale-data".into(),
        url: String::new(),
        schema: "scale".into(),
        items: 1_000_000,
        searches: 300,
        concurrency: 8,
        fill: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => {
                a.backend = if value() == "postgres" { StoreBackend::Postgres } else { StoreBackend::Sqlite }
            }
            "--dir" => a.dir = value(),
            "--url" => a.url = value(),
            "--schema" => a.schema = value(),
            "--items" => a.items = value().parse().expect("--items N"),
            "--searches" => a.searches = value().parse().expect("--searches N"),
            "--concurrency" => a.concurrency = value().parse().expect("--concurrency N"),
            "--no-fill" => a.fill = false,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A small deterministic generator (xorshift), so runs fill the same items.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn item(n: u64, now_ms: i64, total: u64) -> ItemRow {
    let mut r = Rng(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let span = DAYS * 86_400_000;
    let received = now_ms - span + (span * n as i64) / total.max(1) as i64;
    let domain = r.below(DOMAINS);
    let sender = format!("s{}@d{domain}.test", r.below(50));
    let mut owners = vec![format!("user{}@our.test", r.below(USERS))];
    if r.below(4) == 0 {
        owners.push(format!("user{}@our.test", r.below(USERS)));
    }
    owners.sort();
    owners.dedup();
    let kind = match r.below(100) {
        0..=2 => QuarantineKind::Virus,
        3..=9 => QuarantineKind::Policy,
        _ => QuarantineKind::Spam,
    };
    let status = if r.below(10) == 0 { ItemStatus::Released } else { ItemStatus::Held };
    let subject = format!(
        "{} {} {} #{n}",
        WORDS[r.below(16) as usize],
        WORDS[r.below(16) as usize],
        WORDS[r.below(16) as usize]
    );
    ItemRow {
        id: format!("{n:0>22}"),
        queue_id: format!("{n:016x}"),
        kind,
        sender_domain: format!("d{domain}.test"),
        sender,
        from_header: format!("Sender <s@d{domain}.test>"),
        subject,
        message_id: format!("m{n}@d{domain}.test"),
        score: 10.0,
        symbols_json: r#"[{"name":"BAYES_99","score":5.0,"reason":"classifier"}]"#.into(),
        received_at_ms: received,
        held_at_ms: received + 50,
        size: 4_000 + r.below(60_000) as i64,
        sha256: "0".repeat(64),
        status,
        status_by: (status != ItemStatus::Held).then(|| "user".into()),
        status_at_ms: (status != ItemStatus::Held).then_some(received + 1_000),
        holder: format!("node{}", n % 2),
        owners,
    }
}

async fn fill(store: &Store, items: u64, concurrency: usize) {
    let now_ms = now_ms();
    let started = Instant::now();
    let per_task = items.div_ceil(concurrency as u64);
    let tasks = (0..concurrency as u64).map(|t| {
        let store = store.clone();
        async move {
            for n in t * per_task..((t + 1) * per_task).min(items) {
                store.quarantine_insert(&item(n, now_ms, items)).await.expect("inserting an item");
                if t == 0 && n > 0 && n.is_multiple_of(10_000) {
                    let done = n * concurrency as u64;
                    let rate = done as f64 / started.elapsed().as_secs_f64();
                    eprintln!("  filled ~{done} of {items} ({rate:.0} items/s)");
                }
            }
        }
    });
    futures_util::future::join_all(tasks).await;
    eprintln!("  filled {items} in {:.0} s", started.elapsed().as_secs_f64());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// One search shape: its name and how to make its scope and filter (given the number of items filled).
type Shape = (&'static str, fn(&mut Rng, u64) -> (ItemScope, ItemFilter));

fn page(exclude_virus: bool) -> ItemFilter {
    ItemFilter { limit: 51, exclude_virus, ..Default::default() }
}

fn user(r: &mut Rng) -> ItemScope {
    ItemScope::Owner(format!("user{}@our.test", r.below(USERS)))
}

const SHAPES: [Shape; 7] = [
    ("admin: newest page", |_, _| (ItemScope::All, page(false))),
    ("admin: held only", |_, _| {
        (ItemScope::All, ItemFilter { status: Some(ItemStatus::Held), ..page(false) })
    }),
    ("admin: subject word", |r, _| {
        let word = WORDS[r.below(16) as usize].to_string();
        (ItemScope::All, ItemFilter { subject_contains: Some(word), ..page(false) })
    }),
    ("admin: sender domain", |r, _| {
        (ItemScope::SenderDomain(format!("d{}.test", r.below(DOMAINS))), page(false))
    }),
    ("user: own items", |r, _| (user(r), page(true))),
    ("user: subject word", |r, _| {
        let word = WORDS[r.below(16) as usize].to_string();
        (user(r), ItemFilter { subject_contains: Some(word), ..page(true) })
    }),
    // A word rarer than the mailbox (one item's): the search is driven by the word index.
    ("user: rare subject word", |r, items| {
        let n = r.below(items);
        let owner = item(n, 0, items).owners.swap_remove(0);
        (ItemScope::Owner(owner), ItemFilter { subject_contains: Some(n.to_string()), ..page(true) })
    }),
];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn time_searches(store: &Store, searches: usize, items: u64) {
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!("searching; load average {}", load().trim());
    let mut r = Rng(42);
    let mut all = Vec::new();
    for (name, make) in SHAPES {
        let mut took = Vec::with_capacity(searches);
        for i in 0..searches {
            let (scope, mut filter) = make(&mut r, items);
            let t = Instant::now();
            let rows = store.quarantine_search(&scope, &filter).await.expect("searching");
            // Every other search of a shape also reads the next page, as a user paging does.
            if i % 2 == 1
                && let Some(last) = rows.get(49)
            {
                filter.before = Some((last.received_at_ms, last.id.clone()));
                store.quarantine_search(&scope, &filter).await.expect("searching the next page");
            }
            took.push(t.elapsed());
        }
        // Which runs were slowest (a tail of the first runs is a cold cache or a plan being made; one
        // spread over the run is the machine).
        let mut slowest: Vec<(usize, Duration)> = took.iter().copied().enumerate().collect();
        slowest.sort_by_key(|&(_, d)| std::cmp::Reverse(d));
        let slowest: Vec<String> =
            slowest.iter().take(5).map(|(i, d)| format!("#{i} {:.1} ms", d.as_secs_f64() * 1000.0)).collect();
        eprintln!("  {name}: slowest runs {}", slowest.join(", "));
        took.sort();
        println!(
            "RESULT {name}: p50 {:.2} ms, p99 {:.2} ms",
            percentile(&took, 0.5),
            percentile(&took, 0.99)
        );
        all.extend(took);
    }
    eprintln!("searched; load average {}", load().trim());
    all.sort();
    println!(
        "RESULT all searches: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
}

fn main() {
    let a = args();
    let settings = StoreConfig {
        backend: a.backend,
        url: a.url.clone(),
        schema: a.schema.clone(),
        max_connections: a.concurrency as u32 + 2,
        ..StoreConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let store = Store::open(std::path::Path::new(&a.dir), &settings).await.expect("opening the store");
        if a.fill {
            eprintln!("filling {} ({} items, {} at once)", store.describe(), a.items, a.concurrency);
            fill(&store, a.items, a.concurrency).await;
            // What autovacuum would have done by now on a server that runs it (a test server may not).
            store.refresh_statistics().await.expect("refreshing the planner's statistics");
        }
        time_searches(&store, a.searches, a.items).await;
        store.close().await;
    });
}
