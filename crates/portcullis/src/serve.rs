//! `portcullis serve`: wire the spool, relay and SMTP server together, and handle signals.
//!
//! Order at start: load the configuration, lock and create the data directory, put the modes of its
//! shared part right ([`crate::layout`]), confine the process ([`crate::sandbox`]), then start the
//! runtime, the audit trail, (mail plane) move a store at its old place and make the keys a portal
//! reads, and start the planes. Start, stop, loads and reloads are audit records.

use crate::ConfigSource;
use crate::gate::Gate;
use anyhow::Context;
use audit::{Actor, Event};
use config::{Config, LogFormat};
use relay::Relay;
use smtp_server::SmtpServer;
use spool::Spool;
use std::fs::File;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Which planes this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Role {
    /// SMTP intake, verdicts and delivery.
    Mail,
    /// The quarantine portal, admin console and API alone (no SMTP listener, no delivery).
    Portal,
    /// Everything in one process (the embedded default).
    All,
}

#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// The planes to run; in production the portal runs as its own user with `--role portal`.
    #[arg(long, value_enum, default_value_t = Role::All)]
    role: Role,
}

pub(crate) fn run(config: Config, source: ConfigSource, args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logging(&config)?;
    // The portal alone shares the data directory with a running mail plane: it creates it (for the
    // sandbox to grant it) but does not take the mail plane's lock.
    let lock = if args.role == Role::Portal {
        create_data_dir(&config.data_dir)?;
        None
    } else {
        Some(lock_data_dir(&config.data_dir)?)
    };
    crate::layout::repair_modes(&config.data_dir);
    // Before the sandbox: reading our own executable is not something the serving process may do,
    // nor reading the group database.
    let binary = crate::doctor_cmd::binary_sha256().unwrap_or_else(|e| format!("unknown ({e})"));
    let control_gid =
        if args.role == Role::Mail { crate::control_wiring::socket_gid(&config)? } else { None };
    let policy = crate::sandbox::policy_for(&config, source.file.as_deref(), args.role);
    crate::sandbox::create_writable(&policy, &config.data_dir).with_context(|| {
        if args.role == Role::Portal {
            "a portal running as its own user uses what the mail role makes at its first start: start \
             `serve --role mail` first"
        } else {
            "preparing the data directory"
        }
    })?;
    let sandbox = crate::sandbox::apply(&policy)?;
    if args.role == Role::Portal && policy.read_write.contains(&config.data_dir) {
        tracing::warn!(
            store = %store::sqlite_path(&config.data_dir).display(),
            "the store is at its old place in the data directory, so the portal's sandbox cannot keep it \
             from the spool (and a portal running as its own user cannot use it): stop this portal, restart \
             the mail plane (its start moves the store into <data_dir>/store/), then start the portal again"
        );
    }
    tracing::info!(role = ?args.role, landlock = sandbox.landlock, seccomp = sandbox.seccomp, "sandbox applied");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    let started = Started { role: args.role, binary, sandbox: sandbox.summary(), control_gid, _lock: lock };
    runtime.block_on(serve(config, source, started))?;
    Ok(ExitCode::SUCCESS)
}

/// What `run` did before the runtime started, for the start record.
struct Started {
    role: Role,
    binary: String,
    sandbox: String,
    /// The group `control.socket_group` names, looked up before the sandbox hid `/etc/group`.
    control_gid: Option<u32>,
    _lock: Option<File>,
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .with_context(|| format!("log.level `{}` is not a valid filter", config.log.level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// The data directory, if missing: its owner's, the group passing through to what it shares
/// ([`datadir`]).
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    datadir::create_dir(dir, datadir::Sharing::Pass)
        .with_context(|| format!("creating data directory {}", dir.display()))
}

/// Hold an exclusive lock on the data directory: two gateways on one spool would delete each other's
/// incoming files at recovery.
fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    try_lock_data_dir(dir)?
        .ok_or_else(|| anyhow::anyhow!("another portcullis is already running on {}", dir.display()))
}

/// The data directory's lock, or `None` when a gateway holds it.
pub(crate) fn try_lock_data_dir(dir: &Path) -> anyhow::Result<Option<File>> {
    create_data_dir(dir)?;
    let path = dir.join("portcullis.lock");
    let file = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).ok().map(|()| file))
}

async fn serve(config: Config, source: ConfigSource, started: Started) -> anyhow::Result<()> {
    let audit = audit::Audit::start(&config.data_dir, &config.audit, &config.hostname)
        .context("opening the audit trail")?;
    audit.record(crate::audit_cmd::config_event(audit::Action::ConfigLoad, &source));
    let start = Event::new(audit::Action::GatewayStart, Actor::System)
        .detail("version", env!("CARGO_PKG_VERSION"))
        .detail("role", format!("{:?}", started.role).to_lowercase())
        .detail("binary_sha256", &started.binary)
        .detail("sandbox", &started.sandbox)
        .detail("audit_public_key", audit.public_key())
        .detail("pid", std::process::id().to_string());
    audit.record_durable(start).await.context("writing the start record")?;
    audit.checkpoint().await;
    if started.role == Role::Portal {
        return crate::portal_wiring::run_alone(config, audit).await;
    }
    if config.store.backend == config::StoreBackend::Sqlite
        && let Some(moved) = crate::layout::move_old_store(&config.data_dir, Actor::System).await?
    {
        audit.record(moved);
    }
    // The keys a portal running as its own user reads, made now: it could not make them itself.
    quarantine::token::DigestKey::load_or_create(&audit::AuditPaths::new(&config.data_dir).keys)
        .context("making the digest-link key")?;
    let config = Arc::new(config);
    let held = crate::quarantine_wiring::Held::open(&config).await?;
    // The queue-id tag before the spool that mints with it (a single gateway registers in its own store).
    let serves_portal = started.role == Role::All;
    let registration = crate::heartbeat::register(&held.store(), &config, serves_portal).await?;
    let spool_dir = config.data_dir.join("spool");
    let (spool, recovery) = Spool::open_as(&spool_dir, registration.tag, recycling(&config))
        .with_context(|| format!("opening the spool in {}", spool_dir.display()))?;
    if recovery.dropped_incoming > 0 || recovery.finished_incoming > 0 || !recovery.corrupt.is_empty() {
        tracing::warn!(
            dropped_partial = recovery.dropped_incoming,
            finished_commits = recovery.finished_incoming,
            corrupt = recovery.corrupt.len(),
            "recovered the spool after an unclean stop (partial messages were never acknowledged)"
        );
    }
    // On a shared store, this node's trail joins the cluster's (a portal-only process on this data
    // directory appends to the same log, so its records travel with these).
    if config.store.backend == config::StoreBackend::Postgres {
        audit.copy_to_store(held.store(), &config.cluster.node_name);
    }
    let relay =
        Relay::with_observer(config.clone(), spool.clone(), held.observer()).context("starting the relay")?;
    let model = held.model();
    let engine = crate::engine::with_classifier(&config, model.as_ref().map(|m| m.classifier.clone()))?;
    let cache = cache::Cache::from_config(&config.cache).context("opening the shared cache")?;
    let gate = Arc::new(
        Gate::new(relay.clone(), engine, config.clone()).with_intake(held.intake()).with_cache(cache.clone()),
    );
    let (stop, stopped) = watch::channel(false);
    if let Some(model) = model {
        tokio::spawn(crate::model_reload::keep_current(model, cache, config.clone(), stopped.clone()));
    }
    let mut beating = tokio::spawn(crate::heartbeat::run(
        held.store(),
        config.clone(),
        registration,
        relay.clone(),
        stopped.clone(),
    ));
    let quarantine = held.start(&config, spool.clone(), relay.clone(), audit.clone(), stopped.clone());
    let server = SmtpServer::new(config.clone(), spool.clone(), gate.clone(), stopped.clone())
        .context("starting the SMTP server")?;
    // The management plane first: when SMTP answers, the portal does too (in this process, or through
    // the control socket from its own).
    let portal_task = if started.role == Role::All {
        let mail = Some(quarantine.clone());
        Some(crate::portal_wiring::start(config.clone(), audit.clone(), mail, stopped.clone()).await?)
    } else {
        None
    };
    let control_socket_task = if started.role == Role::Mail {
        Some(crate::control_wiring::start(&config, quarantine.clone(), started.control_gid, stopped.clone())?)
    } else {
        None
    };
    let listeners = server.bind().await?;
    for l in &listeners {
        tracing::info!(addr = %l.local_addr()?, "SMTP listening");
    }
    let relay_task = tokio::spawn({
        let (relay, stopped) = (relay.clone(), stopped.clone());
        async move { relay.run(stopped).await }
    });
    let server_task = tokio::spawn({
        let server = server.clone();
        async move { server.serve(listeners).await }
    });
    tracing::info!(data_dir = %config.data_dir.display(), version = env!("CARGO_PKG_VERSION"), "portcullis started");
    let outcome = wait_for_stop(&source, &config, &server, &relay, &gate, &audit, &mut beating).await;
    if let Err(e) = &outcome {
        tracing::error!(error = format!("{e:#}"), "stopping the gateway");
    }
    tracing::info!("stopping: draining sessions and deliveries");
    let _ = stop.send(true);
    let _ = server_task.await;
    let _ = relay_task.await;
    for task in [portal_task, control_socket_task].into_iter().flatten() {
        let _ = task.await;
    }
    if let Err(e) = audit.record_durable(Event::new(audit::Action::GatewayStop, Actor::System)).await {
        tracing::error!(error = %e, "could not write the stop record");
    }
    audit.shutdown(std::time::Duration::from_secs(5)).await;
    tracing::info!("stopped");
    outcome
}

/// Serve until SIGTERM or SIGINT; reload on SIGHUP.
async fn wait_for_stop(
    source: &ConfigSource,
    running: &Arc<Config>,
    server: &SmtpServer<Gate>,
    relay: &Relay,
    gate: &Gate,
    audit: &audit::Audit,
    heartbeat: &mut tokio::task::JoinHandle<Result<(), store::StoreError>>,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            // It ends before the stop only when this node's queue-id tag was taken (see heartbeat).
            beat = &mut *heartbeat => return match beat {
                Ok(Err(e)) => Err(e.into()),
                Ok(Ok(())) => Ok(()),
                Err(e) => Err(anyhow::anyhow!("the heartbeat task failed: {e}")),
            },
            _ = hup.recv() => match source.load() {
                Ok(new) => {
                    warn_fixed_settings(running, &new);
                    let new = Arc::new(new);
                    server.reload(new.clone());
                    relay.reload(new.clone());
                    gate.reload(new);
                    audit.record(crate::audit_cmd::config_event(audit::Action::ConfigReload, source));
                    tracing::info!("configuration reloaded");
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    audit.record(crate::audit_cmd::config_event(audit::Action::ConfigReloadFailed, source).detail("error", &error));
                    tracing::error!(error, "reload failed; keeping the running configuration");
                }
            },
        }
    }
}

fn warn_fixed_settings(old: &Config, new: &Config) {
    let fixed = [
        ("data_dir", old.data_dir != new.data_dir),
        ("smtp.listen", old.smtp.listen != new.smtp.listen),
        ("smtp.tls_cert", old.smtp.tls_cert != new.smtp.tls_cert || old.smtp.tls_key != new.smtp.tls_key),
        ("smtp.starttls", old.smtp.starttls != new.smtp.starttls),
        ("cache.redis_url", old.cache.redis_url != new.cache.redis_url),
        ("control.socket", old.control.socket != new.control.socket),
        ("control.socket_group", old.control.socket_group != new.control.socket_group),
    ];
    for (key, changed) in fixed {
        if changed {
            tracing::warn!(key, "this setting changes only at restart");
        }
    }
}

/// The spool's recycling limits from `[spool]`.
fn recycling(config: &Config) -> spool::Recycling {
    spool::Recycling { files: config.spool.recycle_files, max_bytes: config.spool.recycle_max_size.0 }
}

#[cfg(test)]
mod tests {
    /// `[spool]`'s defaults and the spool crate's (what `Spool::open` uses) are the same numbers.
    #[test]
    fn spool_recycling_defaults_agree() {
        assert_eq!(super::recycling(&config::Config::default()), spool::Recycling::default());
    }
}
