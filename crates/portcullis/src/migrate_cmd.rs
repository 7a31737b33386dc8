//! `portcullis migrate`: bring the store `[store]` names (SQLite under the data directory, or the
//! PostgreSQL schema) up to the schema this binary needs, and say what was applied.
//!
//! Opening the store migrates it too; this command does it on purpose (before starting nodes of a
//! new version, or to check that the database can be reached), and exits non-zero with the reason
//! when it cannot. It never prints a URL's password (the store names its database redacted).

use anyhow::Context as _;
use config::Config;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct MigrateArgs {}

pub(crate) fn run(config: &Config, _args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
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
