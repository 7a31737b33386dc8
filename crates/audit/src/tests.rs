//! The chain under attack: every way of editing the log is caught and the first bad record named.

use crate::*;
use std::path::Path;

fn event(i: usize) -> Event {
    Event::new(Action::QueueDelete, Actor::Cli { uid: 0 })
        .target(format!("id{i}"))
        .detail("word", format!("w{i}"))
}

/// A trail with `n` records, the head signed.
fn trail(dir: &Path, n: usize) -> AuditPaths {
    let paths = AuditPaths::new(dir);
    let key = SigningKey::load_or_create(&paths.keys).unwrap();
    let mut log = AuditLog::open(&paths).unwrap();
    log.append((0..n).map(event).collect()).unwrap();
    log.checkpoint(&key).unwrap().unwrap();
    paths
}

fn lines(paths: &AuditPaths) -> Vec<String> {
    std::fs::read_to_string(paths.log()).unwrap().lines().map(String::from).collect()
}

fn write_lines(paths: &AuditPaths, lines: &[String]) {
    std::fs::write(paths.log(), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

fn problem(paths: &AuditPaths) -> Problem {
    let r = verify(paths, None).unwrap();
    assert!(!r.ok);
    r.problem.unwrap()
}

#[test]
fn a_clean_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    let r = verify(&paths, None).unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!((r.records, r.head_seq, r.checkpoints, r.unsigned_records), (5, 5, 1, 0));
    let l = lines(&paths);
    assert!(l[0].contains(&format!("\"prev_hash\":\"{GENESIS}\"")));
    // Shared with the gateway's group as `datadir` says (a portal as its own user appends and signs),
    // never with others.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o7777
    };
    assert_eq!(mode(&paths.keys.join(KEY_FILE)), 0o640);
    assert_eq!(mode(&paths.keys.join(PUBLIC_KEY_FILE)), 0o640);
    assert_eq!(mode(&paths.keys), 0o2750);
    assert_eq!(mode(&paths.dir), 0o2770);
    assert_eq!(mode(&paths.log()), 0o660);
    assert_eq!(mode(&paths.checkpoints()), 0o660);
}

#[test]
fn deleting_a_record_is_caught_at_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    // grep -v w2 audit.log > t && mv t audit.log
    let kept: Vec<String> = lines(&paths).into_iter().filter(|l| !l.contains("\"w2\"")).collect();
    write_lines(&paths, &kept);
    let p = problem(&paths);
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Sequence, Some(3), Some(4)), "{p:?}");
    assert!(p.message.contains("missing"), "{}", p.message);
}

#[test]
fn a_flipped_byte_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    let mut bytes = std::fs::read(paths.log()).unwrap();
    let at = bytes.windows(4).position(|w| w == b"\"w3\"").unwrap() + 2;
    bytes[at] ^= 0x01;
    std::fs::write(paths.log(), bytes).unwrap();
    let p = problem(&paths);
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Modified, Some(4), Some(4)), "{p:?}");
    // A flipped byte in the syntax makes the line unreadable.
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 3);
    let mut bytes = std::fs::read(paths.log()).unwrap();
    let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[second] = b'[';
    std::fs::write(paths.log(), bytes).unwrap();
    let p = problem(&paths);
    assert_eq!((p.kind, p.line), (ProblemKind::Malformed, Some(2)), "{p:?}");
}

#[test]
fn reordering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    let mut l = lines(&paths);
    l.swap(1, 2);
    write_lines(&paths, &l);
    let p = problem(&paths);
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Sequence, Some(2), Some(3)), "{p:?}");
}

#[test]
fn truncation_is_caught_by_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    let l = lines(&paths);
    write_lines(&paths, &l[..3]);
    let p = problem(&paths);
    assert_eq!((p.kind, p.line, p.seq), (ProblemKind::Truncated, Some(4), Some(4)), "{p:?}");
    // Cut in the middle of a line.
    let all = l.iter().map(|x| format!("{x}\n")).collect::<String>();
    std::fs::write(paths.log(), &all[..all.len() - 10]).unwrap();
    assert_eq!(problem(&paths).kind, ProblemKind::Truncated);
}

#[test]
fn a_shorter_valid_chain_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 5);
    // The attacker builds a clean chain of 3 records elsewhere and puts it in place.
    let other = tempfile::tempdir().unwrap();
    let forged = trail(other.path(), 3);
    std::fs::copy(forged.log(), paths.log()).unwrap();
    let p = problem(&paths);
    assert_eq!(p.kind, ProblemKind::Truncated, "{p:?}");
    // One as long as the signed head, but different: the checkpoint names the record.
    let other = tempfile::tempdir().unwrap();
    let forged = trail(other.path(), 5);
    std::fs::copy(forged.log(), paths.log()).unwrap();
    let p = problem(&paths);
    assert_eq!((p.kind, p.seq), (ProblemKind::CheckpointMismatch, Some(5)), "{p:?}");
    // Replacing the checkpoints too needs the key: theirs do not verify with ours.
    std::fs::copy(forged.checkpoints(), paths.checkpoints()).unwrap();
    let p = problem(&paths);
    assert_eq!((p.kind, p.file), (ProblemKind::BadCheckpoint, CHECKPOINT_FILE), "{p:?}");
    std::fs::remove_file(paths.checkpoints()).unwrap();
    assert_eq!(problem(&paths).kind, ProblemKind::NoCheckpoint);
}

#[test]
fn two_writers_make_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 1);
    let mut a = AuditLog::open(&paths).unwrap();
    let mut b = AuditLog::open(&paths).unwrap();
    for i in 0..10 {
        a.append(vec![event(i)]).unwrap();
        b.append(vec![event(100 + i)]).unwrap();
    }
    let key = SigningKey::load(&paths.keys).unwrap().unwrap();
    a.checkpoint(&key).unwrap();
    let r = verify(&paths, None).unwrap();
    assert!(r.ok && r.head_seq == 21, "{r:?}");
}

#[test]
fn a_crash_mid_record_is_cut_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let paths = trail(dir.path(), 2);
    let mut f = std::fs::OpenOptions::new().append(true).open(paths.log()).unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":3,\"ti").unwrap();
    let log = AuditLog::open(&paths).unwrap();
    assert_eq!(log.head().seq, 3);
    let l = lines(&paths);
    assert!(l[2].contains("audit.recovered") && l[2].contains("\"dropped_bytes\":\"12\""), "{}", l[2]);
}

#[test]
fn the_writer_records_and_signs_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let audit = Audit::start(dir.path(), &config::AuditConfig::default(), "mx.test").unwrap();
        for i in 0..20 {
            audit.record(event(i));
        }
        let seq = audit.record_durable(event(99)).await.unwrap();
        assert_eq!(seq, 21);
        audit.shutdown(std::time::Duration::from_secs(1)).await;
    });
    let r = verify(&AuditPaths::new(dir.path()), None).unwrap();
    assert!(r.ok && r.head_seq == 21 && r.unsigned_records == 0, "{r:?}");
}

/// A syslog collector on loopback: collects the seq of every framed message it receives.
async fn collector(listener: tokio::net::TcpListener, seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    use tokio::io::AsyncReadExt;
    // Connections live in the set: aborting the collector closes them too.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { return };
        let seen = seen.clone();
        connections.spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = sock.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while let Some(sp) = buf.iter().position(|&b| b == b' ') {
                    let len: usize = std::str::from_utf8(&buf[..sp]).unwrap().parse().unwrap();
                    if buf.len() < sp + 1 + len {
                        break;
                    }
                    let msg = String::from_utf8(buf[sp + 1..sp + 1 + len].to_vec()).unwrap();
                    let seq = msg.split("seq=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
                    seen.lock().unwrap().push(seq);
                    buf.drain(..sp + 1 + len);
                }
            }
        });
    }
}

#[test]
fn forwarding_catches_up_after_an_outage_without_a_gap() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let up = tokio::spawn(collector(listener, seen.clone()));
        let settings = config::AuditConfig {
            syslog_address: addr.to_string(),
            syslog_retry_max: config::HumanDuration(Duration::from_millis(300)),
            syslog_alert_backlog: 5,
            ..Default::default()
        };
        let audit = Audit::start(dir.path(), &settings, "mx.test").unwrap();
        let wait_for = |n: u64| {
            let seen = seen.clone();
            async move {
                for _ in 0..100 {
                    if seen.lock().unwrap().iter().max().copied().unwrap_or(0) >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("collector has {:?}, wanted up to {n}", seen.lock().unwrap());
            }
        };
        for i in 0..3 {
            audit.record_durable(event(i)).await.unwrap();
        }
        wait_for(3).await;
        up.abort(); // the collector goes away, its connections with it
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 3..12 {
            audit.record_durable(event(i)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(collector(listener, seen.clone()));
        // 12 records, plus the backlog alert the outage caused.
        wait_for(13).await;
        audit.shutdown(Duration::from_secs(2)).await;
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        got.dedup();
        assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>(), "no gap");
    });
    let log = std::fs::read_to_string(AuditPaths::new(dir.path()).log()).unwrap();
    assert!(log.contains("audit.forward_backlog"), "{log}");
}

proptest::proptest! {
    /// Any bytes as a log line: never a panic, and never accepted unless canonical.
    #[test]
    fn parsing_any_line_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        if let Ok(r) = Record::parse_line(&line) {
            proptest::prop_assert_eq!(r.to_line().into_bytes(), line);
        }
    }

    /// Any target and detail text is recorded as data and reads back as a valid chain.
    #[test]
    fn any_event_text_round_trips(target in ".{0,300}", value in ".{0,600}", key in "[A-Za-z_-]{0,40}") {
        let e = Event::new(Action::SettingsChange, Actor::User(value.clone())).target(&target).detail(&key, &value);
        let r = Record::seal(e, 1, GENESIS, "2026-01-01T00:00:00.000Z".into());
        let back = Record::parse_line(r.to_line().as_bytes()).unwrap();
        proptest::prop_assert_eq!(&back, &r);
        proptest::prop_assert_eq!(back.computed_hash(), back.hash);
        proptest::prop_assert!(!r.to_line().contains('\n'));
    }
}
