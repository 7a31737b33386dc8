//! The portal beside the mail plane (`serve --role all`) or alone (`serve --role portal`, no SMTP):
//! open the store, create the first `admin` when there is no account, reach held mail, bind the
//! management listener and serve until stopped. The portal's own logic lives in the `portal` crate.
//!
//! Beside the mail plane the portal shares its quarantine (and through it the spool). Alone it has
//! no spool at all (its sandbox does not even let it read one): on SQLite it shows, releases,
//! deletes and learns held mail, and operates the delivery queue and digests, through the mail
//! plane's control socket ([`quarantine::control`]); on a shared PostgreSQL store it reaches held
//! mail through the store (held messages are stored there, releases queued for a mail node), and
//! the delivery queue is each mail node's. Everything else it does (search, accounts, lists,
//! tracking) is the store's.

use anyhow::Context;
use audit::{Action, Actor, Event};
use config::Config;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Start the portal on the current runtime; it stops when `stopped` turns true. `mail` is the mail
/// plane's quarantine (with its spool), when it runs in this process (`--role all`); alone (`--role
/// portal`), the portal makes its own quarantine, without a spool.
pub(crate) async fn start(
    config: Arc<Config>,
    audit: audit::Audit,
    mail: Option<quarantine::Quarantine>,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let store = store::Store::open(&config.data_dir, &config.store)
        .await
        .context("opening the store for the portal")?;
    if let Some(password) = portal::accounts::ensure_first_admin(&store).await? {
        print_first_password(&password);
        let e = Event::new(Action::UserCreate, Actor::System).target("admin").detail("role", "admin");
        audit.record(e.detail("reason", "first start"));
    }
    let quarantine = match mail {
        Some(q) => q,
        None => {
            // Alone, the portal copies its node's trail into a shared store itself (on a data
            // directory shared with a mail node both copy the same log, which the store takes once).
            if config.store.backend == config::StoreBackend::Postgres {
                audit.copy_to_store(store.clone(), &config.cluster.node_name);
            }
            own_quarantine(&config, &store, &audit).await?
        }
    };
    let listener = portal::bind(&config.portal).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls = listener.is_tls(), "portal listening");
    let metrics = portal::install_metrics();
    let cache = cache::Cache::from_config(&config.cache).context("opening the shared cache")?;
    let deps = portal::Deps { config, store, audit, quarantine, metrics, cache };
    Ok(tokio::spawn(portal::serve(listener, portal::AppState::new(deps), stopped)))
}

/// The portal's own quarantine when it runs alone: indexing, expiry and digests stay with the mail
/// plane. On SQLite held mail is the mail plane's to show and change (it also learns); on a shared
/// store the portal learns itself, its learner starting from the stored model as the mail plane's
/// does, so "learn as spam/ham" here updates the same weights.
async fn own_quarantine(
    config: &Arc<Config>,
    store: &store::Store,
    audit: &audit::Audit,
) -> anyhow::Result<quarantine::Quarantine> {
    let sink: Arc<dyn quarantine::AuditSink> = Arc::new(audit.clone());
    let (plane, learner) = match config.store.backend {
        config::StoreBackend::Sqlite => {
            let client = quarantine::control::client::Client::from_config(config);
            (quarantine::MailPlane::Remote(client), None)
        }
        config::StoreBackend::Postgres => {
            (quarantine::MailPlane::StoreOnly, crate::quarantine_wiring::learner(config, store).await?)
        }
    };
    Ok(quarantine::Quarantine::new(store.clone(), plane, config.clone(), sink, learner))
}

/// The one time the first admin's password is shown: on standard error, never in a log record.
fn print_first_password(password: &str) {
    eprintln!("================================================================");
    eprintln!("PORTCULLIS FIRST START: created the portal account `admin`.");
    eprintln!("One-time password (shown only now): {password}");
    eprintln!("Log in and change it, or set one with `portcullis users passwd admin`.");
    eprintln!("================================================================");
}

/// `serve --role portal`: the management plane alone (the start record is written); serve until
/// SIGTERM or SIGINT, then write the stop record.
pub(crate) async fn run_alone(config: Config, audit: audit::Audit) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let task = start(Arc::new(config), audit.clone(), None, stopped).await?;
    wait_for_signal().await?;
    let _ = stop.send(true);
    let _ = task.await;
    if let Err(e) = audit.record_durable(Event::new(Action::GatewayStop, Actor::System)).await {
        tracing::error!(error = %e, "could not write the stop record");
    }
    audit.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
