//! Least privilege at start: Landlock limits which files the process may touch, and a seccomp filter
//! refuses the system calls it never needs, above all starting a program.
//!
//! [`apply`] runs once, on the main thread, before the runtime starts any thread, so every thread
//! inherits both (Landlock applies to the calling thread and its future children; the seccomp filter
//! is installed with TSYNC as well). It sets `no_new_privs` first. Both are best effort when the kernel
//! lacks them, and the outcome is logged; `sandbox.required` turns a shortfall into a refusal to start.
//!
//! What the filter refuses (each with `EPERM`): `execve`, `execveat`; `fork`, `vfork`, and `clone`
//! without `CLONE_THREAD` (a new process) or with a namespace flag; `ptrace`, `process_vm_readv`/`writev`;
//! mounting and `pivot_root`/`chroot`; module loading; `kexec`; `reboot`; swap; `acct`; `bpf`;
//! `perf_event_open`; `userfaultfd`; keyrings; `setns`/`unshare`; file-handle opens; clock and host-name
//! setting; raw I/O ports. `clone3` answers `ENOSYS` (its flags cannot be inspected), so the C library
//! falls back to `clone`. Everything else tokio, rustls and SQLite use stays allowed: this is a deny
//! list on purpose, to stay clear of the runtime's needs.

use crate::serve::Role;
use config::Config;
use std::path::{Path, PathBuf};

/// What the process may touch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// Read, write, create, remove, rename (never execute) beneath these.
    pub read_write: Vec<PathBuf>,
    /// Read beneath these (never execute).
    pub read_only: Vec<PathBuf>,
    pub landlock: bool,
    pub seccomp: bool,
    pub required: bool,
}

/// Files name resolution, TLS and the C library read at run time (resolver configuration, the system's
/// CA certificates that the resolver's TLS client loads, NSS modules).
const SYSTEM_READ_ONLY: &[&str] = &[
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/services",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/proc/sys/kernel/hostname",
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
];

/// The policy under `config` (read from `config_file`, if any) for `role`.
pub(crate) fn policy_for(config: &Config, config_file: Option<&Path>, role: Role) -> Policy {
    let mut read_only: Vec<PathBuf> = SYSTEM_READ_ONLY.iter().map(PathBuf::from).collect();
    // The directory, not the file: an editor that replaces the file makes a new inode.
    if let Some(dir) =
        config_file.and_then(|f| std::path::absolute(f).ok()).and_then(|f| f.parent().map(Path::to_path_buf))
    {
        read_only.push(dir);
    }
    let named = [
        &config.smtp.tls_cert,
        &config.smtp.tls_key,
        &config.relay.tls_ca_file,
        &config.audit.syslog_tls_ca_file,
        &config.verdict.rules_dir,
        &config.portal.tls_cert,
        &config.portal.tls_key,
    ];
    read_only.extend(named.into_iter().filter(|p| !p.as_os_str().is_empty()).cloned());
    read_only.extend(config.sandbox.read_only_paths.iter().cloned());
    let read_write = match role {
        Role::Mail | Role::All => mail_writes(config),
        Role::Portal => portal_writes(config),
    };
    Policy {
        read_write,
        read_only,
        landlock: config.sandbox.landlock,
        seccomp: config.sandbox.seccomp,
        required: config.sandbox.required,
    }
}

/// The mail plane owns the data directory (and the control socket's directory, when it is elsewhere).
fn mail_writes(config: &Config) -> Vec<PathBuf> {
    let mut dirs = vec![config.data_dir.clone()];
    let socket = config.control.socket_path(&config.data_dir);
    if let Some(dir) = socket.parent().filter(|d| !d.starts_with(&config.data_dir)) {
        dirs.push(dir.to_path_buf());
    }
    dirs
}

/// The portal alone writes its store (accounts, sessions; SQLite's own directory, with the files it
/// makes and removes beside the database), the audit trail and the keys (the audit signing key, the
/// digest link key), and nothing else: never `spool/`, `mailboxes/`, `tls/` or the rules. Held mail
/// reaches it only through the mail plane's control socket (connecting to a socket is not a file
/// access Landlock governs) or, on PostgreSQL, the store. A SQLite store at its old place in the
/// data directory itself can only be granted with the whole directory (Landlock rules are inherited
/// down the tree), which `serve` warns about.
fn portal_writes(config: &Config) -> Vec<PathBuf> {
    let audit = audit::AuditPaths::new(&config.data_dir);
    let mut dirs = vec![audit.dir, audit.keys];
    if config.store.backend == config::StoreBackend::Sqlite {
        let db = store::sqlite_path(&config.data_dir);
        dirs.push(db.parent().map_or_else(|| config.data_dir.clone(), Path::to_path_buf));
    }
    dirs
}

/// Create the directories a policy lets the process write, before it is applied: Landlock grants
/// only paths that exist, and a confined process may not make them afterwards. Each gets the mode the
/// data directory's layout gives it ([`datadir::sharing`]); the control socket's directory, when
/// `control.socket` puts it outside `data_dir`, that of `run/`.
pub(crate) fn create_writable(policy: &Policy, data_dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    for dir in &policy.read_write {
        let sharing = match dir.strip_prefix(data_dir) {
            Ok(inside) => {
                let parts: Vec<&str> = inside.iter().filter_map(|c| c.to_str()).collect();
                datadir::sharing(&parts)
            }
            Err(_) => datadir::sharing(&["run"]),
        };
        datadir::create_dir(dir, sharing).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

/// What was enforced, for the start log and the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub landlock: &'static str,
    pub seccomp: &'static str,
}

impl Outcome {
    pub fn summary(&self) -> String {
        format!("landlock={} seccomp={}", self.landlock, self.seccomp)
    }
}

/// Confine this process (see the module docs). Call before any thread is started.
pub(crate) fn apply(policy: &Policy) -> anyhow::Result<Outcome> {
    let outcome = imp::apply(policy)?;
    let full = |s: &str| s == "enforced" || s == "disabled";
    if policy.required && !(full(outcome.landlock) && full(outcome.seccomp)) {
        anyhow::bail!("sandbox.required: the kernel could not enforce the sandbox ({})", outcome.summary());
    }
    Ok(outcome)
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{Outcome, Policy};
    use anyhow::Context;
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, path_beneath_rules,
    };
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    use std::collections::BTreeMap;

    pub(super) fn apply(policy: &Policy) -> anyhow::Result<Outcome> {
        rustix::thread::set_no_new_privs(true).context("setting no_new_privs")?;
        let landlock = if policy.landlock { landlock(policy)? } else { "disabled" };
        let seccomp = if policy.seccomp { seccomp()? } else { "disabled" };
        Ok(Outcome { landlock, seccomp })
    }

    fn landlock(policy: &Policy) -> anyhow::Result<&'static str> {
        let abi = ABI::V5;
        let all = AccessFs::from_all(abi);
        let no_exec = all & !AccessFs::Execute;
        let read = AccessFs::from_read(abi) & !AccessFs::Execute;
        let status = Ruleset::default()
            .handle_access(all)?
            .create()?
            .add_rules(path_beneath_rules(&policy.read_write, no_exec))?
            .add_rules(path_beneath_rules(&policy.read_only, read))?
            .restrict_self()
            .context("applying the Landlock ruleset")?;
        Ok(match status.ruleset {
            RulesetStatus::FullyEnforced => "enforced",
            RulesetStatus::PartiallyEnforced => "partial",
            RulesetStatus::NotEnforced => "unsupported",
        })
    }

    /// System calls refused with `EPERM` whatever their arguments.
    fn denied() -> Vec<i64> {
        let mut v = vec![
            libc::SYS_execve,
            libc::SYS_execveat,
            libc::SYS_ptrace,
            libc::SYS_process_vm_readv,
            libc::SYS_process_vm_writev,
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_pivot_root,
            libc::SYS_chroot,
            libc::SYS_fsopen,
            libc::SYS_fsmount,
            libc::SYS_fsconfig,
            libc::SYS_move_mount,
            libc::SYS_open_tree,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_kexec_load,
            libc::SYS_kexec_file_load,
            libc::SYS_reboot,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_acct,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_userfaultfd,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_setns,
            libc::SYS_unshare,
            libc::SYS_open_by_handle_at,
            libc::SYS_name_to_handle_at,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_clock_adjtime,
            libc::SYS_adjtimex,
            libc::SYS_sethostname,
            libc::SYS_setdomainname,
            libc::SYS_quotactl,
        ];
        #[cfg(target_arch = "x86_64")]
        v.extend([libc::SYS_fork, libc::SYS_vfork, libc::SYS_iopl, libc::SYS_ioperm]);
        v
    }

    /// `clone` that makes a process (no `CLONE_THREAD`) or enters new namespaces.
    fn clone_rules() -> anyhow::Result<Vec<SeccompRule>> {
        let flag = |mask: u64, value: u64| -> anyhow::Result<SeccompRule> {
            let c = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), value)?;
            Ok(SeccompRule::new(vec![c])?)
        };
        let thread = libc::CLONE_THREAD as u64;
        let mut rules = vec![flag(thread, 0)?];
        for ns in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWCGROUP,
        ] {
            rules.push(flag(ns as u64, ns as u64)?);
        }
        Ok(rules)
    }

    fn seccomp() -> anyhow::Result<&'static str> {
        let arch = std::env::consts::ARCH.try_into().context("seccomp: unsupported architecture")?;
        let mut deny: BTreeMap<i64, Vec<SeccompRule>> = denied().into_iter().map(|nr| (nr, vec![])).collect();
        deny.insert(libc::SYS_clone, clone_rules()?);
        let eperm = SeccompAction::Errno(libc::EPERM as u32);
        let enosys = SeccompAction::Errno(libc::ENOSYS as u32);
        let clone3 = [(libc::SYS_clone3, vec![])].into_iter().collect();
        for (rules, action) in [(deny, eperm), (clone3, enosys)] {
            let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, arch)?;
            let program: seccompiler::BpfProgram = filter.try_into()?;
            seccompiler::apply_filter_all_threads(&program).context("installing the seccomp filter")?;
        }
        Ok("enforced")
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Outcome, Policy};
    pub(super) fn apply(policy: &Policy) -> anyhow::Result<Outcome> {
        let state = |on| if on { "unsupported" } else { "disabled" };
        Ok(Outcome { landlock: state(policy.landlock), seccomp: state(policy.seccomp) })
    }
}

#[cfg(test)]
mod tests {
    //! The sandbox is tested in a child process (this test binary run again for one ignored test), since
    //! it cannot be undone: the child applies the same [`apply`] the gateway does, then tries to write
    //! outside its directory and to run `/bin/true`.
    #![allow(clippy::disallowed_types)] // the test starts its own child process on purpose

    use super::*;
    use std::process::Command;

    const CHILD_DIR: &str = "SANDBOX_TEST_CHILD_DIR";

    /// Run the ignored test `name` of this binary in a child process with `dir` in its environment.
    fn run_child(name: &str, dir: &Path) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir)
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{text}");
        assert!(text.contains("CHILD-DONE"), "the child test did not run: {text}");
    }

    #[test]
    fn writes_outside_and_exec_are_denied() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        run_child("sandbox::tests::child_under_sandbox", dir.path());
        assert!(!dir.path().join("outside").exists(), "a write outside the data directory got through");
        assert!(dir.path().join("data/inside").exists());
    }

    fn data_config(root: &Path) -> Config {
        Config { data_dir: root.join("data"), ..Config::default() }
    }

    #[test]
    fn the_portal_alone_may_write_its_store_audit_and_keys_but_not_touch_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let config = data_config(dir.path());
        let held = config.data_dir.join("spool/quarantine/held-message");
        std::fs::create_dir_all(held.parent().unwrap()).unwrap();
        std::fs::create_dir_all(config.data_dir.join("spool/active")).unwrap();
        std::fs::write(&held, b"Subject: private\r\n\r\nsomeone's mail\r\n").unwrap();
        let portal = policy_for(&config, None, Role::Portal);
        assert!(!portal.read_write.contains(&config.data_dir), "{portal:?}");
        assert!(portal.read_write.contains(&config.data_dir.join("store")), "{portal:?}");
        assert!(policy_for(&config, None, Role::Mail).read_write.contains(&config.data_dir));
        run_child("sandbox::tests::child_as_portal", dir.path());
        assert!(
            config.data_dir.join("store/written").exists() && config.data_dir.join("audit/written").exists()
        );
        assert!(held.exists() && !config.data_dir.join("spool/active/planted").exists());
    }

    #[test]
    #[ignore = "run by the_portal_alone_may_write_its_store_audit_and_keys_but_not_touch_the_spool"]
    fn child_as_portal() {
        let Some(root) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else { return };
        let config = data_config(&root);
        let mut policy = policy_for(&config, None, Role::Portal);
        policy.seccomp = false;
        create_writable(&policy, &config.data_dir).unwrap();
        let outcome = apply(&policy).expect("sandbox applies");
        println!("outcome {}", outcome.summary());
        let data = &config.data_dir;
        std::fs::write(data.join("store/written"), b"ok").expect("the store's directory is writable");
        std::fs::write(data.join("audit/written"), b"ok").expect("the audit directory is writable");
        if outcome.landlock == "enforced" {
            let denied = |r: std::io::Result<()>| matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::PermissionDenied);
            assert!(
                denied(std::fs::read(data.join("spool/quarantine/held-message")).map(drop)),
                "read the spool"
            );
            assert!(denied(std::fs::read_dir(data.join("spool/quarantine")).map(drop)), "listed the spool");
            assert!(denied(std::fs::write(data.join("spool/active/planted"), b"x")), "wrote into the spool");
            assert!(denied(std::fs::write(data.join("portcullis.db"), b"x")), "wrote beside the spool");
        }
        println!("CHILD-DONE");
    }

    #[test]
    #[ignore = "run by writes_outside_and_exec_are_denied in a child process"]
    fn child_under_sandbox() {
        let Some(root) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else { return };
        let policy = Policy {
            read_write: vec![root.join("data")],
            read_only: vec![],
            landlock: true,
            seccomp: true,
            required: false,
        };
        let outcome = apply(&policy).expect("sandbox applies");
        println!("outcome {}", outcome.summary());
        assert_eq!(outcome.seccomp, "enforced");
        std::fs::write(root.join("data/inside"), b"ok").expect("writing inside the data directory");
        if outcome.landlock == "enforced" {
            let err = std::fs::write(root.join("outside"), b"x").unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
            assert!(std::fs::write("/tmp/portcullis-sandbox-escape", b"x").is_err());
            // Writable code: the binary itself cannot be opened for writing.
            let exe = std::env::current_exe().unwrap();
            assert!(std::fs::OpenOptions::new().append(true).open(&exe).is_err(), "the binary is writable");
        }
        let exec = Command::new("/bin/true").status();
        assert!(exec.is_err(), "exec of /bin/true was allowed: {exec:?}");
        let sh = Command::new("/bin/sh").args(["-c", "touch /tmp/portcullis-sandbox-shell"]).status();
        assert!(sh.is_err(), "a shell started: {sh:?}");
        // The runtime and TLS still work: threads, a listener on loopback.
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (a, b) = tokio::join!(l.accept(), tokio::net::TcpStream::connect(addr));
            a.unwrap();
            b.unwrap();
            tokio::task::spawn_blocking(|| 1 + 1).await.unwrap();
        });
        std::thread::spawn(|| ()).join().unwrap();
        println!("CHILD-DONE");
    }
}
