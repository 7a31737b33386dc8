//! `portcullis migrate`: bring the store `[store]` names (SQLite under the data directory, or the
//! PostgreSQL schema) up to the schema this binary needs, and say what was applied.
//!
//! Opening the store migrates it too; this command does it on purpose (before starting nodes of a
//! new version, or to check that the database can be reached), and exits non-zero with the reason
//! when it cannot. It never prints a URL's password (the store names its database redacted). A SQLite
//! store at its old place in the data directory is first moved into `store/` (as the mail plane's
//! start does, with an audit record), unless a gateway is running on the data directory.

use anyhow::Context as _;
use config::Config;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct MigrateArgs {}

pub(crate) fn run(config: &Config, _args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if config.store.backend == config::StoreBackend::Sqlite {
        runtime.block_on(move_old_store(config))?;
    }
    let applied = runtime
        .block_on(store::Store::migrate(&config.data_dir, &config.store))
        .context("migrating the store")?;
    let target = describe(config);
    if applied.is_empty() {
        println!("{target}: up to date");
    }
    for m in &applied {
        println!("{target}: applied {} {}", m.version, m.description);
    }
    Ok(ExitCode::SUCCESS)
}

/// Move a SQLite store at its old place into `store/`, unless a gateway holds the data directory (its
/// next start does it then).
async fn move_old_store(config: &Config) -> anyhow::Result<()> {
    let old = config.data_dir.join(store::SQLITE_FILE);
    if !old.is_file() {
        return Ok(());
    }
    let Some(_lock) = crate::serve::try_lock_data_dir(&config.data_dir)? else {
        println!(
            "{}: at its old place; a gateway is running on the data directory, its next start moves it",
            old.display()
        );
        return Ok(());
    };
    if let Some(event) = crate::layout::move_old_store(&config.data_dir, audit::Actor::cli()).await? {
        println!("{}: moved into {}", old.display(), store::sqlite_path(&config.data_dir).display());
        crate::audit_cmd::record_cli(config, event)?;
    }
    Ok(())
}

/// The database, as an operator would name it (never with a password).
pub(crate) fn describe(config: &Config) -> String {
    match config.store.backend {
        config::StoreBackend::Sqlite => {
            format!("sqlite {}", store::sqlite_path(&config.data_dir).display())
        }
        config::StoreBackend::Postgres => {
            format!("postgres {} schema {}", config.store.redacted_url(), config.store.schema)
        }
    }
}
