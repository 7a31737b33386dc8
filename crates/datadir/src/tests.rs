//! Modes come out as the table says whatever the umask (each test sets the gateway's 0077 first), and
//! nothing found in a shared directory is followed, loosened when opened, or changed when not ours.

use super::*;
use std::os::unix::fs::symlink;

/// The umask `main` sets: modes must not depend on it being looser.
fn gateway_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn the_table_shares_only_the_store_audit_trail_needed_keys_and_socket() {
    assert_eq!(sharing(&[]), Sharing::Pass);
    for shared in [&["store"][..], &["store", "portcullis.db-wal"], &["audit"], &["audit", "audit.log"]] {
        assert_eq!(sharing(shared), Sharing::GroupWrite, "{shared:?}");
    }
    for read in [&["keys"][..], &["keys", "audit-signing.key"], &["keys", "digest.key"], &["run"]] {
        assert_eq!(sharing(read), Sharing::GroupRead, "{read:?}");
    }
    assert_eq!(sharing(&["run", "control.sock"]), Sharing::GroupWrite);
    for private in [
        &["spool"][..],
        &["spool", "active", "x"],
        &["keys", "binary.sha256"],
        &["keys", "anything-else"],
        &["tls", "self-signed.key"],
        &["mailboxes"],
        &["portcullis.lock"],
        &["store", "deeper", "x"],
    ] {
        assert_eq!(sharing(private), Sharing::Private, "{private:?}");
    }
    // Never anything for others, nor group write outside the two shared directories.
    for s in [Sharing::Private, Sharing::Pass, Sharing::GroupRead, Sharing::GroupWrite] {
        assert_eq!(s.dir_mode() & 0o007, 0);
        assert_eq!(s.file_mode() & 0o007, 0);
        assert_eq!(s.file_mode() & 0o111, 0, "no file is executable");
    }
    assert_eq!(Sharing::GroupRead.dir_mode() & 0o020, 0);
    assert_eq!(Sharing::GroupRead.file_mode() & 0o020, 0);
}

#[test]
fn directories_and_files_get_their_mode_whatever_the_umask() {
    gateway_umask();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    create_dir(&data, Sharing::Pass).unwrap();
    create_dir(&data.join("store"), Sharing::GroupWrite).unwrap();
    create_dir(&data.join("keys"), Sharing::GroupRead).unwrap();
    assert_eq!(mode(&data), DATA_DIR_MODE);
    assert_eq!(mode(&data.join("store")), GROUP_WRITE_DIR_MODE);
    assert_eq!(mode(&data.join("keys")), GROUP_READ_DIR_MODE);
    assert_eq!(mode(&dir.path().join("nested")), PRIVATE_DIR_MODE, "parents are private");
    // Existing: left alone.
    create_dir(&data.join("store"), Sharing::Private).unwrap();
    assert_eq!(mode(&data.join("store")), GROUP_WRITE_DIR_MODE);

    let db = data.join("store/portcullis.db");
    drop(open_file(&db, Sharing::GroupWrite, Open::New).unwrap());
    assert_eq!(mode(&db), GROUP_WRITE_FILE_MODE);
    let err = open_file(&db, Sharing::GroupWrite, Open::New).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    let key = data.join("keys/digest.key");
    drop(open_file(&key, Sharing::GroupRead, Open::Truncate).unwrap());
    assert_eq!(mode(&key), GROUP_READ_FILE_MODE);
}

#[test]
fn opening_never_follows_a_link_nor_loosens_a_file_it_found() {
    gateway_umask();
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("private");
    std::fs::write(&private, b"secret").unwrap();
    std::fs::set_permissions(&private, Permissions::from_mode(0o600)).unwrap();
    let planted = dir.path().join("audit.log");
    symlink(&private, &planted).unwrap();
    for how in [Open::Append, Open::Truncate, Open::New] {
        assert!(open_file(&planted, Sharing::GroupWrite, how).is_err(), "{how:?} followed the link");
    }
    assert_eq!(std::fs::read(&private).unwrap(), b"secret");
    assert_eq!(mode(&private), 0o600);
    // Found, not made: opened as it is.
    let mut f = open_file(&private, Sharing::GroupWrite, Open::Append).unwrap();
    io::Write::write_all(&mut f, b"!").unwrap();
    assert_eq!(mode(&private), 0o600);
}

#[test]
fn share_puts_right_only_what_is_ours_and_not_a_link() {
    gateway_umask();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("portcullis.db");
    std::fs::write(&file, b"x").unwrap();
    std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
    let change = share(&file, Sharing::GroupWrite).unwrap().unwrap();
    assert_eq!((change.from, change.to, change.wanted), (0o644, 0o660, 0o660));
    assert_eq!(share(&file, Sharing::GroupWrite).unwrap(), None, "already right");

    // A second hard link: maybe a private file linked in to be made readable.
    let outside = dir.path().join("spool-file");
    std::fs::write(&outside, b"mail").unwrap();
    std::fs::set_permissions(&outside, Permissions::from_mode(0o600)).unwrap();
    let linked = dir.path().join("linked");
    std::fs::hard_link(&outside, &linked).unwrap();
    assert_eq!(share(&linked, Sharing::GroupWrite).unwrap(), None);
    let sym = dir.path().join("sym");
    symlink(&outside, &sym).unwrap();
    assert_eq!(share(&sym, Sharing::GroupWrite).unwrap(), None);
    assert_eq!(mode(&outside), 0o600);
}

#[test]
fn repair_gives_an_old_data_directory_the_layout_and_leaves_the_spool_alone() {
    gateway_umask();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for d in ["store", "audit", "keys", "run", "spool/active"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    let files = [
        "store/portcullis.db",
        "store/portcullis.db-wal",
        "audit/audit.log",
        "keys/audit-signing.key",
        "keys/binary.sha256",
        "spool/active/0123",
    ];
    for f in files {
        std::fs::write(data.join(f), b"x").unwrap();
        std::fs::set_permissions(data.join(f), Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::set_permissions(data.join("keys/binary.sha256"), Permissions::from_mode(0o644)).unwrap();
    for d in ["", "store", "audit", "keys", "run", "spool"] {
        std::fs::set_permissions(data.join(d), Permissions::from_mode(0o700)).unwrap();
    }
    let repaired = repair(&data);
    assert!(repaired.failed.is_empty(), "{:?}", repaired.failed);
    let want = [
        ("", DATA_DIR_MODE),
        ("store", GROUP_WRITE_DIR_MODE),
        ("audit", GROUP_WRITE_DIR_MODE),
        ("keys", GROUP_READ_DIR_MODE),
        ("run", GROUP_READ_DIR_MODE),
        ("store/portcullis.db", GROUP_WRITE_FILE_MODE),
        ("store/portcullis.db-wal", GROUP_WRITE_FILE_MODE),
        ("audit/audit.log", GROUP_WRITE_FILE_MODE),
        ("keys/audit-signing.key", GROUP_READ_FILE_MODE),
        ("keys/binary.sha256", PRIVATE_FILE_MODE),
        ("spool", PRIVATE_DIR_MODE),
        ("spool/active/0123", PRIVATE_FILE_MODE),
    ];
    for (path, m) in want {
        assert_eq!(mode(&data.join(path)), m, "{path}");
    }
    assert_eq!(repaired.changed.len(), 10, "{:?}", repaired.changed);
    assert!(repair(&data).changed.is_empty(), "a second start changes nothing");
}
