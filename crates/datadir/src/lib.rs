//! The data directory's layout: who may touch what. The mail plane (`serve --role mail` or `all`, user
//! `portcullis`) owns the data directory; a portal running as its own user (`serve --role portal`, user
//! `portcullis-portal` in group `portcullis`) reaches part of it through that shared group. This crate
//! says which paths are shared and how ([`sharing`]), and is the one way Portcullis creates them
//! ([`create_dir`], [`open_file`]) and puts right the modes of those it finds ([`share`], [`repair`]).
//!
//! | path under `<data_dir>` | mode | why |
//! |---|---|---|
//! | the data directory itself | 0710 | the group passes through to what follows; it cannot list or add |
//! | `store/`, `audit/` | 2770 | the portal reads and writes the SQLite store (SQLite makes and removes files beside the database) and appends its records to the audit trail (and signs checkpoints, moves a forwarding cursor) |
//! | files in `store/`, `audit/` | 0660 | |
//! | `keys/`, `run/` | 2750 | the group reads the keys it needs and reaches the control socket; it cannot add, remove or replace |
//! | [`SHARED_KEYS`] in `keys/` | 0640 | the portal signs its audit checkpoints, checks digest links and the audit chain |
//! | `run/control.sock` | 0660 | the portal asks the mail plane for held mail |
//! | everything else: `spool/`, `mailboxes/`, `tls/`, `rules/`, `keys/binary.sha256`, the lock | 0700, 0600 | the mail plane's alone |
//!
//! The setgid bit (the `2` of 2770 and 2750) makes a file created in a shared directory take the
//! directory's group whoever creates it (the portal, or a command run as root), so both users keep
//! reaching it. Modes are set explicitly, through the open file, after creation: the process umask (0077,
//! set by `main`) goes on narrowing everything made any other way. SQLite gives the `-wal`, `-shm` and
//! `-journal` files it makes the database file's mode itself (whatever the umask).
//!
//! Must not touch: anything but the modes of the paths above and the files made through it.
//!
//! # Security
//! The portal's user may write `store/` and `audit/`, so what is found there is untrusted: nothing here
//! follows a symbolic link (`O_NOFOLLOW`); a mode is changed through the open file, only on a regular
//! file or directory this process's user owns, and never on a file with a second hard link (a mail-plane
//! file linked in there to be made group-readable); and [`open_file`] sets the mode only on a file it has
//! just made, never on one it found. Nothing is ever made accessible to others (the last digit is 0).

#![forbid(unsafe_code)]

use rustix::io::Errno;
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The data directory: its owner, and the shared group passing through.
pub const DATA_DIR_MODE: u32 = 0o710;
/// A directory of the mail plane's alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// A file of the mail plane's alone.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// A directory the shared group reads (setgid: what is made in it keeps its group).
pub const GROUP_READ_DIR_MODE: u32 = 0o2750;
/// A file the shared group reads (a key).
pub const GROUP_READ_FILE_MODE: u32 = 0o640;
/// A directory the shared group reads and writes (setgid: what is made in it keeps its group).
pub const GROUP_WRITE_DIR_MODE: u32 = 0o2770;
/// A file the shared group reads and writes.
pub const GROUP_WRITE_FILE_MODE: u32 = 0o660;

/// The files in `keys/` the portal reads: the audit signing key and its public half (`audit`), and the
/// digest-link key (`quarantine::token`). The rest of `keys/` (the recorded binary hash) stays private.
pub const SHARED_KEYS: &[&str] = &["audit-signing.key", "audit-signing.pub", "digest.key"];

/// How a path in the data directory is shared with the portal's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// The mail plane's alone: 0700, 0600.
    Private,
    /// The data directory itself: the group passes through (0710); a file so named is private.
    Pass,
    /// The group reads: 2750, 0640.
    GroupRead,
    /// The group reads and writes: 2770, 0660.
    GroupWrite,
}

impl Sharing {
    /// The mode of a directory shared this way.
    pub const fn dir_mode(self) -> u32 {
        match self {
            Sharing::Private => PRIVATE_DIR_MODE,
            Sharing::Pass => DATA_DIR_MODE,
            Sharing::GroupRead => GROUP_READ_DIR_MODE,
            Sharing::GroupWrite => GROUP_WRITE_DIR_MODE,
        }
    }

    /// The mode of a file shared this way.
    pub const fn file_mode(self) -> u32 {
        match self {
            Sharing::Private | Sharing::Pass => PRIVATE_FILE_MODE,
            Sharing::GroupRead => GROUP_READ_FILE_MODE,
            Sharing::GroupWrite => GROUP_WRITE_FILE_MODE,
        }
    }

    /// [`Sharing::dir_mode`] or [`Sharing::file_mode`].
    pub const fn mode(self, is_dir: bool) -> u32 {
        if is_dir { self.dir_mode() } else { self.file_mode() }
    }
}

/// How the path with these components under the data directory is shared (`[]`: the data directory
/// itself; `["store", "portcullis.db"]`). The table in the module docs.
pub fn sharing(parts: &[&str]) -> Sharing {
    match parts {
        [] => Sharing::Pass,
        ["store" | "audit"] | ["store" | "audit", _] => Sharing::GroupWrite,
        ["keys" | "run"] => Sharing::GroupRead,
        ["keys", key] if SHARED_KEYS.contains(key) => Sharing::GroupRead,
        ["run", _] => Sharing::GroupWrite,
        _ => Sharing::Private,
    }
}

/// Create the directory `dir` with `sharing`'s mode, set explicitly (the umask does not narrow it); its
/// missing parents are made owner-only. An existing directory is left as it is: [`repair`] puts the
/// shared ones right at start.
pub fn create_dir(dir: &Path, sharing: Sharing) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(parent)?;
    }
    let mode = sharing.dir_mode();
    match DirBuilder::new().mode(mode & 0o777).create(dir) {
        Ok(()) => set_mode(&open_nofollow(dir)?, mode),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// How [`open_file`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// A new file, for writing; an existing one is an error (`AlreadyExists`).
    New,
    /// For reading and appending, made if missing.
    Append,
    /// For writing from empty, made if missing.
    Truncate,
}

/// Open `path` as `how` says, never through a symbolic link. A file this call makes gets `sharing`'s
/// mode, set explicitly; one that exists is opened as it is.
pub fn open_file(path: &Path, sharing: Sharing, how: Open) -> io::Result<File> {
    let mode = sharing.file_mode();
    let mut options = OpenOptions::new();
    options.custom_flags(no_follow()).mode(mode & 0o777);
    match how {
        Open::New => options.write(true),
        Open::Append => options.read(true).append(true),
        Open::Truncate => options.write(true).truncate(true),
    };
    // Made exclusively first, so that the mode is only ever set on a file this call made.
    let made = options.clone().create_new(true).open(path);
    match made {
        Ok(file) => {
            set_mode(&file, mode)?;
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && how != Open::New => options.open(path),
        Err(e) => Err(e),
    }
}

/// A mode [`share`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeChange {
    pub path: PathBuf,
    pub from: u32,
    /// The mode now. It lacks the setgid bit of `wanted` when the directory's group is not one of this
    /// process's (the kernel drops the bit then).
    pub to: u32,
    pub wanted: u32,
}

/// Give the existing `path` `sharing`'s mode, if it is a regular file or directory that this process's
/// user owns, is not a symbolic link, and (a file) has no second hard link. `None`: nothing to change,
/// or not ours to change.
pub fn share(path: &Path, sharing: Sharing) -> io::Result<Option<ModeChange>> {
    let euid = rustix::process::geteuid().as_raw();
    // Looked at before opening, so nothing of another user's (which this one may not even read) is
    // opened; checked again on the open file below, in case it was replaced in between.
    let found = std::fs::symlink_metadata(path)?;
    if found.uid() != euid || !(found.is_dir() || found.is_file()) {
        return Ok(None);
    }
    let file = match open_nofollow(path) {
        Ok(f) => f,
        // A symbolic link (`O_NOFOLLOW`), or something that cannot be opened like a file (a socket).
        Err(e) if [Errno::LOOP, Errno::NXIO].iter().any(|n| e.raw_os_error() == Some(n.raw_os_error())) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let is_dir = meta.is_dir();
    let ours = meta.uid() == euid;
    if !(is_dir || meta.is_file()) || !ours || (!is_dir && meta.nlink() > 1) {
        return Ok(None);
    }
    let (from, wanted) = (meta.mode() & 0o7777, sharing.mode(is_dir));
    if from == wanted {
        return Ok(None);
    }
    set_mode(&file, wanted)?;
    let to = file.metadata()?.mode() & 0o7777;
    Ok(Some(ModeChange { path: path.to_path_buf(), from, to, wanted }))
}

/// What [`repair`] did and could not do; neither stops a start.
#[derive(Debug, Default)]
pub struct Repaired {
    pub changed: Vec<ModeChange>,
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// The directories [`repair`] looks into (each also given its own mode).
const SHARED_DIRS: &[&str] = &["store", "audit", "keys", "run"];
/// Most entries [`repair`] looks at in one shared directory (they hold a handful of files; the bound
/// keeps a directory filled by someone else from stretching the start).
pub const MAX_REPAIR_ENTRIES: usize = 10_000;

/// Put right the modes of what this process's user owns of the shared part of `data_dir`: the data
/// directory, `store/`, `audit/`, `keys/` and `run/`, and the regular files directly in the first three
/// (those of `keys/` not in [`SHARED_KEYS`] are made private). Everything else (`spool/` above all) is
/// not looked at. Data directories made before this layout, or restored from a backup, get it here.
pub fn repair(data_dir: &Path) -> Repaired {
    let mut out = Repaired::default();
    let fix = |path: PathBuf, sharing: Sharing, out: &mut Repaired| match share(&path, sharing) {
        Ok(Some(change)) => out.changed.push(change),
        Ok(None) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => out.failed.push((path, e)),
    };
    fix(data_dir.to_path_buf(), sharing(&[]), &mut out);
    for &dir in SHARED_DIRS {
        let path = data_dir.join(dir);
        if !path.is_dir() {
            continue;
        }
        fix(path.clone(), sharing(&[dir]), &mut out);
        if dir == "run" {
            continue; // the control socket: its mode is set each time it is bound
        }
        let entries = match std::fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => {
                out.failed.push((path, e));
                continue;
            }
        };
        for entry in entries.take(MAX_REPAIR_ENTRIES).flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let name = entry.file_name();
                fix(entry.path(), sharing(&[dir, &*name.to_string_lossy()]), &mut out);
            }
        }
    }
    out
}

/// `path` opened for reading without following a symbolic link (nor blocking on a FIFO).
fn open_nofollow(path: &Path) -> io::Result<File> {
    let nonblock = rustix::fs::OFlags::NONBLOCK.bits() as i32;
    OpenOptions::new().read(true).custom_flags(no_follow() | nonblock).open(path)
}

fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    file.set_permissions(Permissions::from_mode(mode))
}

fn no_follow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

#[cfg(test)]
mod tests;
