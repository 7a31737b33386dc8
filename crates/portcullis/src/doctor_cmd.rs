//! `portcullis doctor`: what an operator (or a monitoring check, with `--json`) should know is wrong:
//! configuration problems, a management plane reachable from outside, loose permissions, files in the
//! data directory that Portcullis did not write (what a planted backdoor looks like), a binary that is
//! not the one installed, and a broken audit chain. Exit 1 when there is a warning or an error.
//!
//! Permissions are checked against the data directory's layout ([`datadir`]): the modes it gives the
//! part shared with a portal running as its own user (the data directory 0710, `store/` and `audit/`
//! 2770 with files 0660, `keys/` and `run/` 2750, the keys the portal reads 0640, the socket 0660) are
//! accepted there and only there; anything open to others, or open to the group beyond what the layout
//! gives, is a warning; tighter than the layout is only noted (such a portal could not use it, and the
//! next start puts it right). Files in `store/` and `audit/` may belong to the portal's user when they
//! have the data directory's group.
//!
//! Extending: the portal adds its listeners to [`management_listeners`]; a crate that writes new files
//! into the data directory adds their shapes to [`written_by_us`] (and `backup_cmd::schema` decides
//! whether a backup carries them).

use crate::ConfigSource;
use anyhow::Context;
use config::Config;
use serde::Serialize;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The recorded hash of the installed binary, inside `keys/` (`sha256sum` format).
pub(crate) const BINARY_HASH_FILE: &str = "binary.sha256";
/// Most entries looked at in the data directory.
const MAX_ENTRIES: usize = 1_000_000;

#[derive(clap::Args, Debug)]
pub(crate) struct DoctorArgs {
    /// One JSON object: `ok`, `findings` and the audit report.
    #[arg(long)]
    json: bool,
    /// Record the running binary's SHA-256 in `<data_dir>/keys/binary.sha256` (at install), then exit.
    #[arg(long)]
    record_binary: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Worth knowing; not a failure.
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub path: Option<String>,
    pub message: String,
}

fn finding(
    check: &'static str,
    severity: Severity,
    path: Option<&Path>,
    message: impl Into<String>,
) -> Finding {
    Finding { check, severity, path: path.map(|p| p.display().to_string()), message: message.into() }
}

pub(crate) fn run(config: &Config, source: &ConfigSource, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    if args.record_binary {
        return record_binary(&config.data_dir);
    }
    let mut findings = configuration(config, source);
    findings.extend(management_exposure(config));
    findings.extend(store(config));
    findings.extend(crate::stale_model::findings(config));
    findings.extend(cache(config));
    findings.extend(data_dir(&config.data_dir));
    findings.extend(binary(&config.data_dir));
    let report = audit::verify(&audit::AuditPaths::new(&config.data_dir), None).ok();
    findings.extend(audit_chain(report.as_ref(), &config.data_dir));
    let failing = findings.iter().any(|f| f.severity >= Severity::Warning);
    if args.json {
        let out = serde_json::json!({"ok": !failing, "findings": findings, "audit": report});
        println!("{out}");
    } else {
        for f in &findings {
            let at = f.path.as_deref().map(|p| format!(" {}", p.escape_debug())).unwrap_or_default();
            println!("{:<7} {:<14}{at}: {}", format!("{:?}", f.severity).to_lowercase(), f.check, f.message);
        }
        println!("{}", if failing { "doctor: problems found" } else { "doctor: no problems found" });
    }
    Ok(if failing { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn configuration(config: &Config, source: &ConfigSource) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Err(e) = checks::Engine::from_config(config) {
        out.push(finding(
            "configuration",
            Severity::Error,
            None,
            format!("the verdict engine cannot be built: {e}"),
        ));
    }
    let files = [
        ("smtp.tls_cert", &config.smtp.tls_cert),
        ("smtp.tls_key", &config.smtp.tls_key),
        ("relay.tls_ca_file", &config.relay.tls_ca_file),
        ("audit.syslog_tls_ca_file", &config.audit.syslog_tls_ca_file),
        ("portal.tls_cert", &config.portal.tls_cert),
        ("portal.tls_key", &config.portal.tls_key),
    ];
    for (key, path) in files.into_iter().filter(|(_, p)| !p.as_os_str().is_empty()) {
        if let Err(e) = std::fs::File::open(path) {
            out.push(finding(
                "configuration",
                Severity::Error,
                Some(path),
                format!("{key} cannot be read: {e}"),
            ));
        }
    }
    if let Some(file) = &source.file
        && let Ok(meta) = std::fs::metadata(file)
        && meta.mode() & 0o022 != 0
    {
        out.push(finding(
            "permissions",
            Severity::Error,
            Some(file),
            "the configuration file is writable by others",
        ));
    }
    if !config.sandbox.seccomp || !config.sandbox.landlock {
        out.push(finding(
            "configuration",
            Severity::Warning,
            None,
            "the sandbox is partly disabled ([sandbox])",
        ));
    }
    if config.audit.syslog_address.is_empty() {
        out.push(finding(
            "audit",
            Severity::Info,
            None,
            "audit records are not forwarded off this machine (audit.syslog_address)",
        ));
    } else if !config.audit.syslog_tls && !is_loopback_host(&config.audit.syslog_address) {
        out.push(finding(
            "audit",
            Severity::Warning,
            None,
            "audit records leave this machine without TLS (audit.syslog_tls)",
        ));
    }
    out
}

fn is_loopback_host(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or_else(|_| addr.starts_with("localhost:"))
}

/// A listener of the management plane (portal, admin console, API).
#[derive(Debug, Clone)]
pub(crate) struct ManagementListener {
    /// The setting that names it, e.g. `portal.listen`.
    pub setting: &'static str,
    pub addr: SocketAddr,
    pub tls: bool,
}

/// Every management-plane listener the configuration asks for: the portal's `portal.listen`.
pub(crate) fn management_listeners(config: &Config) -> Vec<ManagementListener> {
    vec![ManagementListener {
        setting: "portal.listen",
        addr: config.portal.listen.0,
        tls: config.portal.tls(),
    }]
}

/// Management listeners reachable from other machines (refused at start without TLS by the portal;
/// flagged here either way), and any that share an address with the SMTP listeners.
pub(crate) fn management_exposure(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    for l in management_listeners(config) {
        if !l.addr.ip().is_loopback() {
            let (severity, how) =
                if l.tls { (Severity::Warning, "with TLS") } else { (Severity::Error, "WITHOUT TLS") };
            out.push(finding(
                "exposure",
                severity,
                None,
                format!("{} = {} is reachable from other machines {how}", l.setting, l.addr),
            ));
        }
        if config.smtp.listen.iter().any(|s| s.0.port() == l.addr.port()) {
            out.push(finding(
                "exposure",
                Severity::Error,
                None,
                format!("{} shares a port with smtp.listen", l.setting),
            ));
        }
    }
    out
}

/// The store: reachable, migrated, and (PostgreSQL) not reached in clear across the network. Never
/// prints the URL's password. A SQLite store that was never created is not created here.
fn store(config: &Config) -> Vec<Finding> {
    let mut out = store_tls(config);
    out.extend(store_place(config));
    let settings = &config.store;
    let target = crate::migrate_cmd::describe(config);
    if !store::Store::exists(&config.data_dir, settings) {
        return out;
    }
    let pending = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(store::Store::pending_migrations(&config.data_dir, settings))
                .map_err(|e| e.to_string())
        });
    match pending {
        Err(e) => out.push(finding("store", Severity::Error, None, format!("the store cannot be used: {e}"))),
        Ok(pending) if !pending.is_empty() => out.push(finding(
            "store",
            Severity::Info,
            None,
            format!(
                "{target} lacks {} migration(s) (first {}); the next start or `portcullis migrate` applies them",
                pending.len(),
                pending[0].version
            ),
        )),
        Ok(_) => {}
    }
    out.extend(store_statistics(config));
    out
}

/// A PostgreSQL server without autovacuum: nothing refreshes the planner's statistics or the visibility
/// map between the gateway's own `VACUUM (ANALYZE)` after migrations, so searches drift off their
/// indexes, and index-only scans read the table, as the quarantine grows.
fn store_statistics(config: &Config) -> Option<Finding> {
    let off = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?
        .block_on(store::Store::autovacuum_off(&config.data_dir, &config.store))
        .ok()??;
    off.then(|| {
        finding(
            "store",
            Severity::Warning,
            None,
            "the PostgreSQL server runs with autovacuum off: the planner's statistics go stale as the \
             quarantine grows and searches slow down; turn autovacuum on, or VACUUM ANALYZE regularly (cron)",
        )
    })
}

/// The shared cache: answering, and how it is reached (Redis speaks in clear here: TLS is not built
/// in). Never prints the URL's password.
fn cache(config: &Config) -> Vec<Finding> {
    let c = &config.cache;
    if !c.enabled() {
        return Vec::new();
    }
    let mut out: Vec<Finding> = cache_exposure(c).into_iter().collect();
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                match cache::Cache::from_config(c) {
                    Ok(Some(cache)) => cache.ping().await.map_err(|e| e.to_string()),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
    if let Err(e) = answered {
        let message = format!(
            "{} does not answer ({e}): gateways fall back as cache.on_unavailable says",
            c.redacted_url()
        );
        out.push(finding("cache", Severity::Warning, None, message));
    }
    out
}

/// A Redis off loopback: in clear always (a note), and without a password a warning (anyone on the
/// network could move the counters).
fn cache_exposure(c: &config::CacheConfig) -> Option<Finding> {
    let rest = c.redis_url.strip_prefix("redis://")?;
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, host) = authority.rsplit_once('@').map_or(("", authority), |(u, h)| (u, h));
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return None;
    }
    let url = c.redacted_url();
    Some(if userinfo.contains(':') {
        finding(
            "cache",
            Severity::Info,
            None,
            format!("{url} is reached in clear (TLS is not built in): keep Redis on a private network"),
        )
    } else {
        finding(
            "cache",
            Severity::Warning,
            None,
            format!("{url} is reached across the network without a password: set one in cache.redis_url"),
        )
    })
}

/// A SQLite store at its old place in the data directory (the mail plane's next start moves it), or at
/// both places (which that start refuses).
fn store_place(config: &Config) -> Option<Finding> {
    let old = config.data_dir.join(store::SQLITE_FILE);
    if config.store.backend != config::StoreBackend::Sqlite || !old.is_file() {
        return None;
    }
    Some(if config.data_dir.join(store::SQLITE_DIR).join(store::SQLITE_FILE).exists() {
        let m = "a store at its old place and another in store/: the gateway will not start until one is \
                 moved out of the data directory";
        finding("store", Severity::Error, Some(&old), m)
    } else {
        let m = "the store is at its old place: the next start of the mail plane (or `portcullis migrate`) \
                 moves it into store/, where a portal running as its own user can reach it";
        finding("store", Severity::Info, Some(&old), m)
    })
}

/// A PostgreSQL store reached across the network without insisting on TLS.
fn store_tls(config: &Config) -> Vec<Finding> {
    let settings = &config.store;
    if settings.backend != config::StoreBackend::Postgres || postgres_tls_required(&settings.url) {
        return Vec::new();
    }
    vec![finding(
        "store",
        Severity::Warning,
        None,
        format!(
            "{} is reached without sslmode=require (store.url): the password and the data may cross \
             the network in clear",
            crate::migrate_cmd::describe(config)
        ),
    )]
}

/// Whether a PostgreSQL URL insists on TLS, or names a loopback host (where clear text stays local).
fn postgres_tls_required(url: &str) -> bool {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let insists = query.split('&').any(|p| {
        matches!(p.split_once('='), Some((k, v)) if k == "sslmode" && matches!(v, "require" | "verify-ca" | "verify-full"))
    });
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    insists || host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Permissions, owners, links and foreign files under the data directory.
fn data_dir(root: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        out.push(finding("data", Severity::Info, Some(root), "no data directory yet"));
        return out;
    };
    let group = meta.gid();
    check_entry(root, &meta, &[], group, &mut out);
    let mut stack = vec![(root.to_path_buf(), Vec::<String>::new())];
    let mut seen = 0usize;
    while let Some((dir, parts)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            out.push(finding("permissions", Severity::Error, Some(&dir), "cannot be read"));
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                out.push(finding("data", Severity::Warning, Some(root), "too many files to check them all"));
                return out;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            let mut parts = parts.clone();
            parts.push(entry.file_name().to_string_lossy().into_owned());
            if check_foreign(&path, &parts, &meta, &mut out) {
                let names: Vec<&str> = parts.iter().map(String::as_str).collect();
                check_entry(&path, &meta, &names, group, &mut out);
                if meta.is_dir() {
                    stack.push((path, parts));
                }
            }
        }
    }
    out
}

/// Report a file Portcullis would not have written; true if it is one of ours.
fn check_foreign(path: &Path, parts: &[String], meta: &std::fs::Metadata, out: &mut Vec<Finding>) -> bool {
    let kind = meta.file_type();
    if kind.is_symlink() {
        out.push(finding(
            "foreign-file",
            Severity::Error,
            Some(path),
            "a symbolic link (Portcullis never makes one)",
        ));
        return false;
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let control_socket = std::os::unix::fs::FileTypeExt::is_socket(&kind) && parts == ["run", "control.sock"];
    if !kind.is_dir() && !kind.is_file() && !control_socket {
        out.push(finding("foreign-file", Severity::Error, Some(path), "not a regular file or directory"));
        return false;
    }
    if !written_by_us(&parts, kind.is_dir()) {
        out.push(finding("foreign-file", Severity::Error, Some(path), "not written by Portcullis"));
        return false;
    }
    true
}

/// Ownership and mode of one entry (`parts`: its path under the data directory, `[]` for the data
/// directory itself, whose group is `group`) against the layout (see the module docs).
fn check_entry(path: &Path, meta: &std::fs::Metadata, parts: &[&str], group: u32, out: &mut Vec<Finding>) {
    let mode = meta.permissions().mode() & 0o7777;
    let is_dir = meta.is_dir();
    let sharing = datadir::sharing(parts);
    let want = sharing.mode(is_dir);
    let euid = rustix::process::geteuid().as_raw();
    // In the directories both users write, what the portal made is its own; the group must be shared.
    let either_user = matches!(parts, ["store" | "audit", _]) && meta.gid() == group;
    if meta.uid() != euid && !either_user {
        out.push(finding(
            "permissions",
            Severity::Warning,
            Some(path),
            format!("owned by uid {}, not {euid}", meta.uid()),
        ));
    }
    let looser = mode & !want;
    if looser != 0 {
        let who = if looser & 0o007 != 0 {
            "open to others"
        } else if looser & 0o7000 != 0 {
            "special bits the layout never sets"
        } else {
            "open to the group beyond what the layout shares"
        };
        out.push(finding(
            "permissions",
            Severity::Warning,
            Some(path),
            format!("mode {mode:04o}, want {want:04o}: {who}"),
        ));
    } else if mode != want && sharing != datadir::Sharing::Private {
        out.push(finding(
            "permissions",
            Severity::Info,
            Some(path),
            format!(
                "mode {mode:04o}, tighter than the layout's {want:04o}: a portal running as its own user \
                 cannot use it (`serve` sets {want:04o} at start where it owns the path)"
            ),
        ));
    }
    if !is_dir && mode & 0o111 != 0 {
        out.push(finding(
            "permissions",
            Severity::Error,
            Some(path),
            format!("executable (mode {mode:04o})"),
        ));
    }
}

/// A cursor being rewritten: `<cursor file>.<pid>.tmp` (left behind only by a crash mid-write).
fn cursor_tmp(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".tmp") else { return false };
    let Some((cursor, pid)) = rest.rsplit_once('.') else { return false };
    [audit::CURSOR_FILE, audit::STORE_CURSOR_FILE].contains(&cursor)
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a path under the data directory (its components) is one Portcullis writes.
pub(crate) fn written_by_us(parts: &[&str], is_dir: bool) -> bool {
    use audit::{CHECKPOINT_FILE, CURSOR_FILE, KEY_FILE, LOG_FILE, PUBLIC_KEY_FILE, STORE_CURSOR_FILE};
    let queue_file = |id: &str| !is_dir && spool::QueueId::parse(id).is_ok();
    match parts {
        // The store's files: in `store/`, or (data directories made before it) beside the lock.
        [f] | ["store", f] if !is_dir && sqlite_file(f) => true,
        [f] if !is_dir => *f == "portcullis.lock",
        ["spool" | "audit" | "keys" | "mailboxes" | "tls" | "rules" | "config" | "store" | "run"] => is_dir,
        // The mail plane's control socket (`control.socket` at its default place).
        ["run", "control.sock"] => !is_dir,
        ["spool", "incoming" | "active" | "quarantine" | "corrupt" | "free" | "control"] => is_dir,
        ["spool", "incoming" | "active" | "quarantine" | "corrupt" | "free", id] => queue_file(id),
        ["spool", "control", "flush" | "rescan"] => !is_dir,
        ["audit", f] => {
            !is_dir
                && ([LOG_FILE, CHECKPOINT_FILE, CURSOR_FILE, STORE_CURSOR_FILE].contains(f) || cursor_tmp(f))
        }
        ["keys", f] => {
            !is_dir && [KEY_FILE, PUBLIC_KEY_FILE, BINARY_HASH_FILE, quarantine::token::KEY_FILE].contains(f)
        }
        ["tls", "self-signed.crt" | "self-signed.key"] => !is_dir,
        ["mailboxes", m] => is_dir && mailbox_name(m),
        ["mailboxes", _, "tmp" | "new" | "cur"] => is_dir,
        ["mailboxes", _, "tmp" | "new" | "cur", name] => !is_dir && maildir_file_name(name),
        ["rules", "local"] => is_dir,
        ["rules", "local", f] => !is_dir && plain_name(f) && f.ends_with(".toml"),
        ["config", "portcullis.toml"] => !is_dir,
        _ => false,
    }
}

/// The SQLite database and the files SQLite keeps beside it.
fn sqlite_file(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(store::SQLITE_FILE) else { return false };
    matches!(rest, "" | "-wal" | "-shm" | "-journal")
}

/// A mailbox directory name as the relay makes them (see `relay::local::mailbox_dir_name`).
fn mailbox_name(m: &str) -> bool {
    !m.is_empty()
        && !m.starts_with('.')
        && m.len() <= 255
        && m.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+=@%-".contains(&b))
}

/// `<secs>.M<micros>P<pid>Q<counter>R<16 hex>.<host>[:2,<flags>]`, as the relay names Maildir files.
fn maildir_file_name(name: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parse = || -> Option<()> {
        let (secs, rest) = name.split_once(".M")?;
        let (micros, rest) = rest.split_once('P')?;
        let (pid, rest) = rest.split_once('Q')?;
        let (counter, rest) = rest.split_once('R')?;
        let (random, host) = rest.split_once('.')?;
        let ok = digits(secs) && digits(micros) && digits(pid) && digits(counter);
        let random_ok = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
        (ok && random_ok && !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
            .then_some(())
    };
    name.len() <= 255 && parse().is_some()
}

fn plain_name(f: &str) -> bool {
    !f.starts_with('.')
        && f.len() <= 128
        && f.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// SHA-256 of the running executable (`/proc/self/exe`: the image running, even if the file was replaced).
pub(crate) fn binary_sha256() -> anyhow::Result<String> {
    let path = if Path::new("/proc/self/exe").exists() {
        PathBuf::from("/proc/self/exe")
    } else {
        std::env::current_exe()?
    };
    let mut file = std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

fn record_binary(data_dir: &Path) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let keys = data_dir.join("keys");
    datadir::create_dir(data_dir, datadir::sharing(&[]))?;
    datadir::create_dir(&keys, datadir::sharing(&["keys"]))?;
    let hash = binary_sha256()?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let path = keys.join(BINARY_HASH_FILE);
    let mut f =
        datadir::open_file(&path, datadir::sharing(&["keys", BINARY_HASH_FILE]), datadir::Open::Truncate)?;
    writeln!(f, "{hash}  {exe}")?;
    f.sync_all()?;
    println!("recorded {hash} in {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn binary(data_dir: &Path) -> Vec<Finding> {
    let path = data_dir.join("keys").join(BINARY_HASH_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        let m = "no recorded binary hash (run `portcullis doctor --record-binary` at install)";
        return vec![finding("binary", Severity::Warning, Some(&path), m)];
    };
    let recorded = text.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    match binary_sha256() {
        Ok(h) if h == recorded => Vec::new(),
        Ok(h) => vec![finding(
            "binary",
            Severity::Error,
            Some(&path),
            format!("the running binary ({h}) is not the one recorded at install ({recorded})"),
        )],
        Err(e) => {
            vec![finding("binary", Severity::Warning, None, format!("cannot hash the running binary: {e}"))]
        }
    }
}

fn audit_chain(report: Option<&audit::Report>, data_dir: &Path) -> Vec<Finding> {
    let log = audit::AuditPaths::new(data_dir).log();
    match report {
        None => vec![finding("audit", Severity::Error, Some(&log), "the audit trail cannot be read")],
        Some(r) if !r.log_exists => vec![finding("audit", Severity::Info, Some(&log), "no audit log yet")],
        Some(r) => match &r.problem {
            Some(p) => {
                let at = p.line.map_or(String::new(), |l| format!(" line {l}"));
                vec![finding(
                    "audit",
                    Severity::Error,
                    Some(&log),
                    format!("chain broken at {}{at}: {:?}: {}", p.file, p.kind, p.message),
                )]
            }
            None => vec![finding(
                "audit",
                Severity::Info,
                Some(&log),
                format!("chain intact: {} records, {} not yet signed", r.records, r.unsigned_records),
            )],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_the_gateway_writes_are_known_and_lookalikes_are_not() {
        for ours in [
            &["audit", "forward.cursor"][..],
            &["audit", "store.cursor"],
            &["audit", "store.cursor.4242.tmp"],
            &["audit", "forward.cursor.7.tmp"],
            &["keys", "digest.key"],
            &["store", "portcullis.db"],
            &["store", "portcullis.db-wal"],
            &["portcullis.db-shm"],
            &["run", "control.sock"],
        ] {
            assert!(written_by_us(ours, false), "{ours:?}");
        }
        for planted in [
            &["audit", "store.cursor.x.tmp"][..],
            &["audit", "store.cursor..tmp"],
            &["audit", "shell.cursor.1.tmp"],
            &["keys", "digest.key.bak"],
            &["audit", "store.cursor"],
            &["store", "portcullis.db.bak"],
            &["store", "portcullis.lock"],
        ] {
            let is_dir = planted == ["audit", "store.cursor"];
            assert!(!written_by_us(planted, is_dir), "{planted:?}");
        }
    }

    #[test]
    fn the_shared_keys_are_the_ones_the_portal_reads_and_no_other() {
        let mut shared = datadir::SHARED_KEYS.to_vec();
        shared.sort_unstable();
        let mut read = vec![audit::KEY_FILE, audit::PUBLIC_KEY_FILE, quarantine::token::KEY_FILE];
        read.sort_unstable();
        assert_eq!(shared, read);
        assert_eq!(datadir::sharing(&["keys", BINARY_HASH_FILE]), datadir::Sharing::Private);
        assert_eq!(datadir::sharing(&["tls", "self-signed.key"]), datadir::Sharing::Private);
    }

    /// A data directory laid out as `datadir` says, then `changed` applied (path under it, mode).
    fn laid_out(root: &Path, changed: &[(&str, u32)]) {
        use std::os::unix::fs::PermissionsExt;
        let dirs = [
            ("", 0o710),
            ("store", 0o2770),
            ("audit", 0o2770),
            ("keys", 0o2750),
            ("run", 0o2750),
            ("spool", 0o700),
            ("spool/active", 0o700),
        ];
        let files = [
            ("store/portcullis.db", 0o660),
            ("store/portcullis.db-wal", 0o660),
            ("audit/audit.log", 0o660),
            ("keys/audit-signing.key", 0o640),
            ("keys/digest.key", 0o640),
            ("keys/binary.sha256", 0o600),
        ];
        for (d, _) in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for (f, _) in files {
            std::fs::write(root.join(f), b"x").unwrap();
        }
        for (p, m) in dirs.iter().chain(&files).chain(changed) {
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(*m)).unwrap();
        }
    }

    /// The permission findings under `root`: (path under it, severity).
    fn permission_findings(root: &Path) -> Vec<(String, Severity)> {
        let prefix = format!("{}/", root.display());
        data_dir(root)
            .into_iter()
            .filter(|f| f.check == "permissions")
            .map(|f| {
                let path = f.path.unwrap_or_default();
                (path.strip_prefix(&prefix).unwrap_or("").to_string(), f.severity)
            })
            .collect()
    }

    #[test]
    fn the_layouts_shared_modes_are_accepted_where_it_gives_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        laid_out(&root, &[]);
        assert_eq!(permission_findings(&root), vec![]);
        // Owner-only everywhere (an all-in-one gateway before this layout): only noted, not a failure.
        let private: Vec<(&str, u32)> =
            ["", "store", "audit", "keys", "run"].iter().map(|d| (*d, 0o700)).collect();
        laid_out(&root, &private);
        let found = permission_findings(&root);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found.iter().all(|(_, s)| *s == Severity::Info), "{found:?}");
    }

    #[test]
    fn anything_open_to_others_or_to_the_group_beyond_the_layout_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        laid_out(
            &root,
            &[
                ("", 0o750),
                ("store/portcullis.db", 0o664),
                ("keys", 0o2770),
                ("keys/audit-signing.key", 0o660),
                ("keys/binary.sha256", 0o640),
                ("spool", 0o750),
                ("spool/active", 0o701),
                ("audit", 0o700),
                ("run", 0o750),
            ],
        );
        let mut found = permission_findings(&root);
        found.sort();
        let want = [
            ("", Severity::Warning),
            ("audit", Severity::Info),
            ("keys", Severity::Warning),
            ("keys/audit-signing.key", Severity::Warning),
            ("keys/binary.sha256", Severity::Warning),
            ("run", Severity::Info),
            ("spool", Severity::Warning),
            ("spool/active", Severity::Warning),
            ("store/portcullis.db", Severity::Warning),
        ];
        assert_eq!(found, want.map(|(p, s)| (p.to_string(), s)).to_vec());
    }

    /// As root (CI): in `store/` and `audit/` a file of the portal's user is fine when it has the data
    /// directory's group; anywhere else it is flagged.
    #[test]
    fn files_of_the_portals_user_are_accepted_only_where_it_writes() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: changing a file's owner needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        laid_out(&root, &[]);
        let group = std::fs::metadata(&root).unwrap().gid();
        let portal = Some(4242);
        std::os::unix::fs::chown(root.join("store/portcullis.db-wal"), portal, Some(group)).unwrap();
        std::os::unix::fs::chown(root.join("audit/audit.log"), portal, Some(group)).unwrap();
        std::os::unix::fs::chown(root.join("keys/digest.key"), portal, Some(group)).unwrap();
        std::os::unix::fs::chown(root.join("store/portcullis.db"), portal, Some(group + 1)).unwrap();
        let mut found = permission_findings(&root);
        found.sort();
        assert_eq!(
            found,
            vec![
                ("keys/digest.key".to_string(), Severity::Warning),
                ("store/portcullis.db".to_string(), Severity::Warning)
            ]
        );
    }

    #[test]
    fn redis_off_loopback_is_noted_and_without_a_password_flagged() {
        let exposure = |url: &str| {
            let c: config::CacheConfig = toml::from_str(&format!("redis_url = \"{url}\"\n")).unwrap();
            cache_exposure(&c).map(|f| (f.severity, f.message))
        };
        for quiet in ["redis://127.0.0.1:6379", "redis://localhost", "redis://[::1]:6379/2"] {
            assert!(exposure(quiet).is_none(), "{quiet}");
        }
        let (severity, message) = exposure("redis://10.0.0.7:6379").unwrap();
        assert!(severity == Severity::Warning && message.contains("without a password"), "{message}");
        let (severity, message) = exposure("redis://gw:s3cret@10.0.0.7").unwrap();
        assert!(severity == Severity::Info && !message.contains("s3cret"), "{message}");
    }

    #[test]
    fn postgres_in_clear_is_flagged_off_loopback_only() {
        assert!(postgres_tls_required("postgres://gw:pw@127.0.0.1:5432/test"));
        assert!(postgres_tls_required("postgres://gw@localhost/test"));
        assert!(postgres_tls_required("postgres://gw@[::1]:5432/test"));
        assert!(postgres_tls_required("postgres://gw@db.internal/mail?sslmode=require"));
        assert!(postgres_tls_required(
            "postgres://gw@db.internal/mail?application_name=x&sslmode=verify-full"
        ));
        assert!(!postgres_tls_required("postgres://gw:pw@db.internal:5432/mail"));
        assert!(!postgres_tls_required("postgres://gw@10.0.0.5/mail?sslmode=prefer"));
        let mut config = Config::default();
        config.store.backend = config::StoreBackend::Postgres;
        config.store.url = "postgres://gw:s3cret@db.internal/mail".into();
        config.data_dir = PathBuf::from("/nonexistent/portcullis-doctor-test");
        let warning = &store_tls(&config)[0];
        assert_eq!(warning.severity, Severity::Warning);
        assert!(warning.message.contains("gw:***@db.internal") && !warning.message.contains("s3cret"));
    }
}
