//! `portcullis learn` trains the store that `scan` (and `serve`) judge with: learn a few spam and ham
//! messages from directories and from the spool by queue id, then see `BAYES_*` in `scan --json`.

#![allow(clippy::disallowed_types)] // tests run the binary

use std::path::Path;
use std::process::{Command, Output};

fn portcullis(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("--set")
        .arg(format!("data_dir={}", data.display()))
        .args(["--set", "classifier.min_learned_spam=3", "--set", "classifier.min_learned_ham=3"])
        .args(args)
        .env_remove("PORTCULLIS_DATA_DIR")
        .output()
        .expect("run portcullis")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn spam(n: usize) -> String {
    format!(
        "From: Pharmacy Deals <deals{n}@cheap-meds.example>\r\nTo: you@ours.test\r\nSubject: Cheap meds, \
         lowest prices {n}\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\nMessage-ID: <{n}@cheap-meds.example>\r\n\r\n\
         Order cheap meds online today. Lowest prices guaranteed, no prescription needed.\r\n\
         Visit http://cheap-meds.example/order/{n} now.\r\n"
    )
}

fn ham(n: usize) -> String {
    format!(
        "From: Alice Example <alice@partner.example>\r\nTo: bob@ours.test\r\nSubject: Release planning \
         notes {n}\r\nDate: Mon, 1 Jun 2026 10:00:00 +0000\r\nMessage-ID: <{n}@partner.example>\r\n\r\n\
         Hi Bob, here are the notes from the release planning meeting. The build is green and the\r\n\
         schedule holds; please review the open tickets before Thursday.\r\n"
    )
}

fn write_all(dir: &Path, messages: impl Iterator<Item = String>) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, m) in messages.enumerate() {
        std::fs::write(dir.join(format!("{i:03}.eml")), m).unwrap();
    }
}

/// The BAYES_* symbol `scan --json` reports for `file`, if any.
fn bayes_symbol(data: &Path, file: &Path) -> Option<String> {
    let out = portcullis(data, &["scan", "--json", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    v["symbols"].as_array()?.iter().find_map(|s| {
        let name = s["name"].as_str()?;
        name.starts_with("BAYES_").then(|| name.to_string())
    })
}

#[test]
fn learned_mail_shows_in_scan_and_learning_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (data, corpus) = (dir.path().join("data"), dir.path().join("corpus"));
    write_all(&corpus.join("spam/nested"), (0..4).map(spam));
    write_all(&corpus.join("ham"), (0..4).map(ham));
    let (new_spam, new_ham) = (dir.path().join("new-spam.eml"), dir.path().join("new-ham.eml"));
    std::fs::write(&new_spam, spam(99)).unwrap();
    std::fs::write(&new_ham, ham(99)).unwrap();

    // Before training: the classifier is silent, and scanning created no database.
    assert_eq!(bayes_symbol(&data, &new_spam), None);
    assert!(!data.join("portcullis.db").exists(), "scan must not create the store");

    let out = portcullis(&data, &["learn", "--spam", corpus.join("spam").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("learned 4 as spam: 4 new"), "{}", text(&out));
    assert!(text(&out).contains("below the minimum"), "{}", text(&out));
    let out = portcullis(&data, &["learn", "--ham", corpus.join("ham").to_str().unwrap()]);
    assert!(text(&out).contains("4 spam and 4 ham (classifier active)"), "{}", text(&out));

    let spammy = bayes_symbol(&data, &new_spam).expect("a BAYES symbol once trained");
    let hammy = bayes_symbol(&data, &new_ham).expect("a BAYES symbol once trained");
    assert!(["BAYES_95", "BAYES_99", "BAYES_999"].contains(&spammy.as_str()), "{spammy}");
    assert!(["BAYES_00", "BAYES_05"].contains(&hammy.as_str()), "{hammy}");

    // The same messages again count once; the totals do not move.
    let out = portcullis(&data, &["learn", "--ham", corpus.join("ham").to_str().unwrap()]);
    assert!(text(&out).contains("0 new, 0 moved from spam, 4 already learned"), "{}", text(&out));
    assert!(text(&out).contains("4 spam and 4 ham"), "{}", text(&out));
}

#[test]
fn learn_by_queue_id_moves_a_quarantined_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (spool, _) = spool::Spool::open(&data.join("spool")).unwrap();
    let mut incoming = spool.create(&spool::Envelope::default()).unwrap();
    incoming.write(ham(7).as_bytes()).unwrap();
    let id = incoming.commit(b"X-Spam-Status: Yes\r\n", spool::Queue::Quarantine).unwrap();

    let out = portcullis(&data, &["learn", "--spam", "--id", id.as_str()]);
    assert!(text(&out).contains("learned 1 as spam: 1 new"), "{}", text(&out));
    // A person looks at the quarantine and says it is ham: the message moves.
    let out = portcullis(&data, &["learn", "--ham", "--id", id.as_str()]);
    assert!(text(&out).contains("0 new, 1 moved from spam"), "{}", text(&out));
    assert!(text(&out).contains("0 spam and 1 ham"), "{}", text(&out));
    // The file in a training folder is the same message (our verdict header aside).
    std::fs::write(dir.path().join("m.eml"), ham(7)).unwrap();
    let out = portcullis(&data, &["learn", "--ham", dir.path().join("m.eml").to_str().unwrap()]);
    assert!(text(&out).contains("1 already learned"), "{}", text(&out));

    let out = portcullis(&data, &["learn", "--ham", "--id", "nosuchid"]);
    assert!(!out.status.success());
}
