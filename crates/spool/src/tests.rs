use super::*;

fn envelope() -> Envelope {
    Envelope {
        sender: "a@ext.test".into(),
        recipients: vec!["b@our.test".into(), "c@our.test".into()],
        received_at: 1,
        helo: Some("client \"x\"\n".into()),
        ..Default::default()
    }
}

fn spool() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!(r.dropped_incoming, 0);
    (dir, s)
}

#[test]
fn commit_load_and_read_back() {
    let (_d, s) = spool();
    let mut inc = s.create(&envelope()).unwrap();
    inc.write(b"Subject: x\r\n\r\n").unwrap();
    inc.write(b"body\r\n").unwrap();
    assert_eq!(inc.content().unwrap(), b"Subject: x\r\n\r\nbody\r\n");
    let id = inc.commit(b"Received: by us\r\n", Queue::Active).unwrap();
    assert_eq!(s.list(Queue::Active).unwrap(), vec![id.clone()]);
    assert!(s.list(Queue::Incoming).unwrap().is_empty());
    let m = s.load(Queue::Active, &id).unwrap();
    assert_eq!(m.envelope, envelope());
    assert_eq!(m.status, vec![RcptStatus::Pending; 2]);
    assert_eq!(s.read_content(&m).unwrap(), b"Received: by us\r\nSubject: x\r\n\r\nbody\r\n");
}

#[test]
fn crossing_off_and_retry_state_persist() {
    let (_d, s) = spool();
    let mut inc = s.create(&envelope()).unwrap();
    inc.write(b"x\r\n").unwrap();
    let id = inc.commit(b"", Queue::Active).unwrap();
    let m = s.load(Queue::Active, &id).unwrap();
    s.mark_recipients(&m, &[(1, RcptStatus::Delivered)]).unwrap();
    s.set_retry(&m, 3, 1_700_000_000_000).unwrap();
    let m = s.load(Queue::Active, &id).unwrap();
    assert_eq!(m.status, vec![RcptStatus::Pending, RcptStatus::Delivered]);
    assert_eq!((m.attempts, m.next_attempt_ms), (3, 1_700_000_000_000));
    assert_eq!(m.pending().collect::<Vec<_>>(), vec![0]);
    assert!(s.mark_recipients(&m, &[(2, RcptStatus::Delivered)]).is_err());
    assert_eq!(s.read_content(&m).unwrap(), b"x\r\n");
}

#[test]
fn dropped_incoming_leaves_nothing() {
    let (_d, s) = spool();
    let mut inc = s.create(&envelope()).unwrap();
    inc.write(b"partial").unwrap();
    drop(inc);
    assert!(s.list(Queue::Incoming).unwrap().is_empty());
    assert!(fs::read_dir(s.root().join("incoming")).unwrap().next().is_none());
}

#[test]
fn recovery_drops_partials_and_quarantines_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let mut partial = s.create(&envelope()).unwrap();
    partial.write(b"never acknowledged").unwrap();
    std::mem::forget(partial); // as if the process died
    let mut good = s.create(&envelope()).unwrap();
    good.write(b"ok\r\n").unwrap();
    let good = good.commit(b"", Queue::Active).unwrap();
    let mut bad = s.create(&envelope()).unwrap();
    bad.write(b"to be damaged\r\n").unwrap();
    let bad = bad.commit(b"", Queue::Quarantine).unwrap();
    let bad_path = dir.path().join("quarantine").join(bad.as_str());
    let len = fs::metadata(&bad_path).unwrap().len();
    OpenOptions::new().write(true).open(&bad_path).unwrap().set_len(len - 3).unwrap();

    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!(r.dropped_incoming, 1);
    assert_eq!(r.corrupt, vec![bad.clone()]);
    assert_eq!(s.list(Queue::Active).unwrap(), vec![good]);
    assert_eq!(s.list(Queue::Corrupt).unwrap(), vec![bad]);
}

/// A crash after a commit's fsync and before its rename reached the disk leaves the complete file in
/// `incoming/`: recovery finishes the move into the queue its header names (the message was
/// acknowledged), and still drops a partial file beside it.
#[test]
fn recovery_finishes_a_commit_whose_rename_was_undone() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let mut committed = Vec::new();
    for (queue, body) in [(Queue::Active, &b"to deliver\r\n"[..]), (Queue::Quarantine, b"held\r\n")] {
        let mut inc = s.create(&envelope()).unwrap();
        inc.write(body).unwrap();
        let id = inc.commit(b"X-Added: 1\r\n", queue).unwrap();
        // Undo the rename, as a crash before the directory reached the disk would.
        fs::rename(
            dir.path().join(queue.dir_name()).join(id.as_str()),
            dir.path().join("incoming").join(id.as_str()),
        )
        .unwrap();
        committed.push((queue, id, body));
    }
    let mut partial = s.create(&envelope()).unwrap();
    partial.write(b"never acknowledged").unwrap();
    std::mem::forget(partial);
    drop(s);

    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!((r.finished_incoming, r.dropped_incoming), (2, 1));
    assert!(r.corrupt.is_empty());
    assert!(s.list(Queue::Incoming).unwrap().is_empty());
    for (queue, id, body) in committed {
        assert_eq!(s.list(queue).unwrap(), vec![id.clone()]);
        let msg = s.load(queue, &id).unwrap();
        assert_eq!(s.read_content(&msg).unwrap(), [&b"X-Added: 1\r\n"[..], body].concat());
    }
}

/// A crash inside an import leaves its complete copy in `incoming/`: recovery puts it in the queue the
/// import was for (not the one the exporting spool had it in), once.
#[test]
fn recovery_finishes_an_interrupted_import() {
    let ((_d1, a), (d2, b)) = (spool(), spool());
    let id = a.create(&envelope()).unwrap().commit(b"", Queue::Quarantine).unwrap();
    let bytes = a.export(Queue::Quarantine, &id).unwrap();
    assert!(b.import(&id, &bytes, Queue::Active).unwrap());
    // Crashed after the link, before the clean-up: the copy is in both places.
    fs::hard_link(d2.path().join("active").join(id.as_str()), d2.path().join("incoming").join(id.as_str()))
        .unwrap();
    drop(b);
    let (b, r) = Spool::open(d2.path()).unwrap();
    assert_eq!(r.finished_incoming, 1);
    assert_eq!(b.list(Queue::Active).unwrap(), vec![id]);
    assert!(b.list(Queue::Quarantine).unwrap().is_empty());
    assert!(b.list(Queue::Incoming).unwrap().is_empty());
}

#[test]
fn ids_are_strict_and_unique() {
    assert!(QueueId::parse("0123456789abcdef").is_ok());
    for bad in ["../../etc/passwd", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0", "%2e%2e"] {
        assert!(QueueId::parse(bad).is_err(), "{bad}");
    }
    let g = id::Generator::new(NodeTag(0));
    let ids: std::collections::HashSet<_> = (0..1_000).map(|_| g.next()).collect();
    assert_eq!(ids.len(), 1_000);
}

/// Two nodes sharing a store mint disjoint ids in the same millisecond, even with their counters at
/// the same value; the tag is the top of the last 20 bits, and ids stay time-ordered.
#[test]
fn nodes_with_different_tags_never_mint_the_same_id() {
    let (a, b) = (NodeTag::new(1).unwrap(), NodeTag::new(1023).unwrap());
    assert_eq!(NodeTag::new(1024), None, "a tag fits in NODE_TAG_BITS");
    let (ga, gb) = (id::Generator::new(a), id::Generator::new(b));
    gb.counter
        .store(ga.counter.load(std::sync::atomic::Ordering::Relaxed), std::sync::atomic::Ordering::Relaxed);
    let tag_of = |id: &QueueId| u32::from_str_radix(&id.as_str()[11..], 16).unwrap() >> (20 - NODE_TAG_BITS);
    let (mut of_a, mut of_b) = (std::collections::HashSet::new(), std::collections::HashSet::new());
    // A whole counter's cycle and more per node, most of it in the same milliseconds on both.
    for _ in 0..(1 << (20 - NODE_TAG_BITS)) + 10 {
        let (x, y) = (ga.next(), gb.next());
        assert_eq!((tag_of(&x), tag_of(&y)), (u32::from(a.get()), u32::from(b.get())));
        of_a.insert(x);
        of_b.insert(y);
    }
    assert!(of_a.is_disjoint(&of_b));
    let before = ga.next();
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(gb.next() > before, "time-ordered across nodes");
}

/// A node whose tag changed (a store restored elsewhere, a node forgotten and back under a new tag)
/// recovers and delivers the messages it queued under its old tag, and mints under its new one.
#[test]
fn a_spool_reopened_under_another_tag_keeps_what_it_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = Spool::open_as(dir.path(), NodeTag::new(5).unwrap(), Recycling::default()).unwrap();
    let queued = old.create(&envelope()).unwrap().commit(b"body", Queue::Active).unwrap();
    drop(old);
    let (new, recovery) =
        Spool::open_as(dir.path(), NodeTag::new(700).unwrap(), Recycling::default()).unwrap();
    assert!(recovery.corrupt.is_empty());
    assert_eq!(new.list(Queue::Active).unwrap(), std::slice::from_ref(&queued));
    assert!(new.load(Queue::Active, &queued).is_ok());
    let minted = new.create(&envelope()).unwrap().commit(b"", Queue::Active).unwrap();
    assert_eq!(u32::from_str_radix(&minted.as_str()[11..], 16).unwrap() >> (20 - NODE_TAG_BITS), 700);
}

#[test]
fn moves_and_control_requests() {
    let (_d, s) = spool();
    let id = s.create(&envelope()).unwrap().commit(b"", Queue::Quarantine).unwrap();
    s.move_to(&id, Queue::Quarantine, Queue::Active).unwrap();
    assert!(s.load(Queue::Active, &id).is_ok());
    assert!(matches!(s.load(Queue::Quarantine, &id), Err(SpoolError::NotFound(_))));
    assert!(!s.take_request(ControlRequest::Flush));
    s.request(ControlRequest::Flush).unwrap();
    assert!(s.take_request(ControlRequest::Flush));
    assert!(!s.take_request(ControlRequest::Flush));
}

#[test]
fn a_file_travels_to_another_spool_under_its_id() {
    let ((_d1, a), (_d2, b)) = (spool(), spool());
    let mut incoming = a.create(&envelope()).unwrap();
    incoming.write(b"Subject: x\r\n\r\nbody\r\n").unwrap();
    let id = incoming.commit(b"X-Added: 1\r\n", Queue::Quarantine).unwrap();
    let bytes = a.export(Queue::Quarantine, &id).unwrap();
    let (env, content) = decode(&id, &bytes).unwrap();
    assert_eq!(env, envelope());
    assert_eq!(content, b"X-Added: 1\r\nSubject: x\r\n\r\nbody\r\n");
    assert!(b.import(&id, &bytes, Queue::Active).unwrap());
    assert!(!b.import(&id, &bytes, Queue::Active).unwrap(), "imported once");
    let msg = b.load(Queue::Active, &id).unwrap();
    assert_eq!(b.read_content(&msg).unwrap(), content);
    assert!(b.list(Queue::Incoming).unwrap().is_empty(), "nothing left behind");
    // Damaged bytes never enter a queue.
    let cut = &bytes[..bytes.len() - 3];
    let other = QueueId::parse("0000000000000001").unwrap();
    assert!(matches!(b.import(&other, cut, Queue::Active), Err(SpoolError::Invalid { .. })));
    assert!(matches!(decode(&other, b"PCQ1 junk"), Err(SpoolError::Invalid { .. })));
    assert!(b.load(Queue::Active, &other).is_err());
}

fn free_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join(FREE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn commit(s: &Spool, content: &[u8], q: Queue) -> QueueId {
    let mut inc = s.create(&envelope()).unwrap();
    inc.write(content).unwrap();
    inc.commit(b"X-Added: 1\r\n", q).unwrap()
}

/// A removed message's file is kept in `free/` and written over by the next message, cut to its length.
#[test]
fn a_removed_file_is_recycled_and_cut_to_length() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let big = commit(&s, &vec![b'x'; 20_000], Queue::Active);
    let inode = fs::metadata(dir.path().join("active").join(big.as_str())).unwrap().ino();
    s.remove(Queue::Active, &big).unwrap();
    assert_eq!(free_names(dir.path()), vec![big.to_string()]);
    assert!(matches!(s.load(Queue::Active, &big), Err(SpoolError::NotFound(_))));

    let small = commit(&s, b"Subject: small\r\n\r\nhi\r\n", Queue::Active);
    assert!(free_names(dir.path()).is_empty());
    let path = dir.path().join("active").join(small.as_str());
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "the same file, written over");
    let m = s.load(Queue::Active, &small).unwrap();
    assert_eq!(s.read_content(&m).unwrap(), b"X-Added: 1\r\nSubject: small\r\n\r\nhi\r\n");
    assert!(fs::read(&path).unwrap().ends_with(b"PCQ1-END\n"), "nothing of the old message after it");
    assert_eq!(s.export(Queue::Active, &small).unwrap().len() as u64, fs::metadata(&path).unwrap().len());

    // A refused message's file goes back to the pool too.
    let mut refused = s.create(&envelope()).unwrap();
    refused.write(b"refused").unwrap();
    let refused_id = refused.id().clone();
    drop(refused);
    assert_eq!(free_names(dir.path()), vec![refused_id.to_string()]);
}

/// A crash after a recycled file was renamed into `incoming/` and before its new head reached the disk
/// leaves the old, complete message under the new name: its checksum names the old id, so recovery
/// drops it instead of queueing the old message again.
#[test]
fn old_content_under_a_new_name_is_never_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let old = commit(&s, b"delivered long ago\r\n", Queue::Active);
    s.remove(Queue::Active, &old).unwrap();
    let new = QueueId::parse("00000000000000aa").unwrap();
    fs::rename(dir.path().join(FREE_DIR).join(old.as_str()), dir.path().join("incoming").join(new.as_str()))
        .unwrap();
    drop(s);
    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!((r.finished_incoming, r.dropped_incoming), (0, 1));
    assert!(s.list(Queue::Active).unwrap().is_empty());
}

/// A commit whose fsync a crash cut (its head on disk, some of its data not) is not finished.
#[test]
fn a_cut_commit_is_dropped_not_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let id = commit(&s, b"Subject: x\r\n\r\nthe new data\r\n", Queue::Active);
    let incoming = dir.path().join("incoming").join(id.as_str());
    fs::rename(dir.path().join("active").join(id.as_str()), &incoming).unwrap();
    let mut bytes = fs::read(&incoming).unwrap();
    let at = bytes.windows(3).position(|w| w == b"new").unwrap();
    bytes[at..at + 3].copy_from_slice(b"old");
    fs::write(&incoming, &bytes).unwrap();
    drop(s);
    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!((r.finished_incoming, r.dropped_incoming), (0, 1));
    assert!(s.list(Queue::Active).unwrap().is_empty());
    // Bytes from elsewhere are checked the same way.
    let ((_d, a), (_e, b)) = (spool(), spool());
    let id = commit(&a, b"Subject: x\r\n\r\nthe new data\r\n", Queue::Quarantine);
    let mut bytes = a.export(Queue::Quarantine, &id).unwrap();
    let at = bytes.windows(3).position(|w| w == b"new").unwrap();
    bytes[at] = b'N';
    assert!(matches!(b.import(&id, &bytes, Queue::Active), Err(SpoolError::Invalid { .. })));
}

/// Files written before the checksum (spaces in its place) are read and recovered as before, and
/// unlinked when removed: never recycled, since a copy of one could not be told from its original.
#[test]
fn files_without_a_checksum_still_work_and_are_not_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let legacy = |id: &QueueId, q: Queue| {
        let path = dir.path().join(q.dir_name()).join(id.as_str());
        OpenOptions::new().write(true).open(path).unwrap().write_all_at(&[b' '; 8], 49).unwrap();
    };
    let a = commit(&s, b"kept\r\n", Queue::Active);
    legacy(&a, Queue::Active);
    assert_eq!(s.read_content(&s.load(Queue::Active, &a).unwrap()).unwrap(), b"X-Added: 1\r\nkept\r\n");
    s.remove(Queue::Active, &a).unwrap();
    assert!(free_names(dir.path()).is_empty(), "unlinked");

    let b = commit(&s, b"acknowledged\r\n", Queue::Active);
    legacy(&b, Queue::Active);
    fs::rename(dir.path().join("active").join(b.as_str()), dir.path().join("incoming").join(b.as_str()))
        .unwrap();
    drop(s);
    let (s, r) = Spool::open(dir.path()).unwrap();
    assert_eq!(r.finished_incoming, 1);
    assert_eq!(s.list(Queue::Active).unwrap(), vec![b]);
}

/// `free/` holds at most `files` files of at most `max_bytes`; a tool attached beside the gateway
/// unlinks; anything else found in `free/` at start is removed; no recycling with `files` 0.
#[test]
fn the_pool_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Recycling { files: 20, max_bytes: 8 << 10 };
    let (files, max_bytes) = (limits.files, limits.max_bytes);
    let (s, _) = Spool::open_as(dir.path(), NodeTag(0), limits).unwrap();
    let ids: Vec<QueueId> = (0..files + 3).map(|_| commit(&s, b"x\r\n", Queue::Active)).collect();
    for id in &ids {
        s.remove(Queue::Active, id).unwrap();
    }
    assert_eq!(free_names(dir.path()).len(), files);
    let _ = (0..files).map(|_| s.create(&envelope()).unwrap()).collect::<Vec<_>>();
    assert_eq!(free_names(dir.path()).len(), files, "taken, then given back on drop");

    let large = commit(&s, &vec![b'y'; max_bytes as usize], Queue::Active);
    for _ in 0..5 {
        s.create(&envelope()).unwrap().commit(b"", Queue::Quarantine).unwrap();
    }
    s.remove(Queue::Active, &large).unwrap();
    assert!(!free_names(dir.path()).contains(&large.to_string()), "too large to keep");

    let attached = Spool::attach(dir.path()).unwrap();
    let by_tool = attached.list(Queue::Quarantine).unwrap();
    attached.remove(Queue::Quarantine, &by_tool[0]).unwrap();
    assert!(!free_names(dir.path()).contains(&by_tool[0].to_string()), "a tool does not recycle");

    // A link planted in `free/` is never written through.
    let target = dir.path().join("target");
    fs::write(&target, b"untouched").unwrap();
    let planted = QueueId::parse("00000000000000bb").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join(FREE_DIR).join(planted.as_str())).unwrap();
    s.inner.free.as_ref().unwrap().names.lock().unwrap().push(planted);
    commit(&s, b"through a link?\r\n", Queue::Active);
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
    fs::write(dir.path().join(FREE_DIR).join("stray"), b"?").unwrap();
    drop((s, attached));
    let (s, _) = Spool::open_as(dir.path(), NodeTag(0), limits).unwrap();
    assert!(!free_names(dir.path()).contains(&"stray".to_string()));
    assert_eq!(s.inner.free.as_ref().unwrap().names.lock().unwrap().len(), free_names(dir.path()).len());
    drop(s);

    let (s, _) = Spool::open_as(dir.path(), NodeTag(0), Recycling { files: 0, ..limits }).unwrap();
    assert!(free_names(dir.path()).is_empty(), "none kept");
    let id = commit(&s, b"x\r\n", Queue::Active);
    s.remove(Queue::Active, &id).unwrap();
    assert!(free_names(dir.path()).is_empty(), "unlinked");
}

/// A name a crash left pointing at another message's file (an old name of a file recycled since, on a
/// file system that kept the new name but not the old one's removal) never yields that content: reading
/// it fails its checksum.
#[test]
fn content_under_the_wrong_name_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = Spool::open(dir.path()).unwrap();
    let old = commit(&s, b"Subject: old\r\n\r\nold\r\n", Queue::Active);
    let new = commit(&s, b"Subject: new\r\n\r\nnew\r\n", Queue::Active);
    let active = dir.path().join("active");
    fs::copy(active.join(new.as_str()), active.join(old.as_str())).unwrap();
    let m = s.load(Queue::Active, &old).unwrap();
    assert!(matches!(s.read_content(&m), Err(SpoolError::Invalid { .. })));
    let m = s.load(Queue::Active, &new).unwrap();
    assert!(s.read_content(&m).unwrap().ends_with(b"new\r\n"));
}
