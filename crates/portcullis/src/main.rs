//! `portcullis`: the command line. Parses arguments, loads the configuration, and hands over to the
//! crate that owns the work; no business logic lives here.
//!
//! # Security
//! Arguments are operator input, but ids given on the command line are still checked by the spool before
//! they name a file, and nothing here starts another program.

#![forbid(unsafe_code)]

mod audit_cmd;
mod backup_cmd;
mod control_wiring;
mod doctor_cmd;
mod engine;
mod gate;
mod heartbeat;
mod layout;
mod learn_cmd;
mod migrate_cmd;
mod model_reload;
mod portal_wiring;
mod quarantine_cmd;
mod quarantine_wiring;
mod queue_cmd;
mod sandbox;
mod scan_cmd;
mod serve;
mod stale_model;
mod users_cmd;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Portcullis, a secure inbound email gateway.
#[derive(Parser, Debug)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// Configuration file (TOML); without it the embedded defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one setting, e.g. `--set smtp.max_recipients=50` (repeatable; applied after the environment).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve(serve::ServeArgs),
    /// Judge `.eml` files or directories offline, one verdict per message.
    Scan(scan_cmd::ScanArgs),
    /// Train the classifier: learn messages (files, directories, queue ids) as spam or ham.
    Learn(learn_cmd::LearnArgs),
    /// Inspect and operate the delivery queue.
    Queue {
        #[command(subcommand)]
        action: queue_cmd::QueueAction,
    },
    /// Show or check the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Verify or show the hash-chained audit trail.
    Audit {
        #[command(subcommand)]
        action: audit_cmd::AuditAction,
    },
    /// Write one archive of everything (configuration, spool, quarantine, store, audit trail, keys), or
    /// check one with `--verify`.
    Backup(backup_cmd::BackupArgs),
    /// Restore an archive onto a fresh data directory.
    Restore(backup_cmd::RestoreArgs),
    /// Manage the accounts of the portal, admin console and API.
    Users {
        #[command(subcommand)]
        action: users_cmd::UsersAction,
    },
    /// Inspect and act on held mail (as an admin named `cli:<unix user>`).
    Quarantine {
        #[command(subcommand)]
        action: quarantine_cmd::QuarantineAction,
    },
    /// Message tracking: find messages and show their timelines.
    Tracking {
        #[command(subcommand)]
        action: quarantine_cmd::TrackingAction,
    },
    /// Check the installation: configuration, exposure, permissions, foreign files, binary, audit chain.
    Doctor(doctor_cmd::DoctorArgs),
    /// Apply the store's pending migrations (SQLite or PostgreSQL) and print what was applied.
    Migrate(migrate_cmd::MigrateArgs),
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the effective configuration (defaults, file and overrides applied) as TOML.
    Show,
    /// Check the configuration and exit 0 if it is valid.
    Check,
}

/// How the configuration was asked for, so `serve` can load it again on SIGHUP.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSource {
    file: Option<PathBuf>,
    set: Vec<String>,
}

impl ConfigSource {
    pub(crate) fn load(&self) -> anyhow::Result<config::Config> {
        let mut overrides = config::Source::from_env(std::env::vars());
        overrides.extend(self.set.iter().cloned().map(config::Source::Arg));
        Ok(config::load(self.file.as_deref(), &overrides)?)
    }
}

fn main() -> std::process::ExitCode {
    // Everything Portcullis creates is private to its user, whichever crate creates it (SQLite, markers),
    // except what the data directory's layout shares with a portal's user: `datadir` sets those modes
    // explicitly.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let source = ConfigSource { file: cli.config.clone(), set: cli.set.clone() };
    match run(cli.command, source) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portcullis: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn run(command: Command, source: ConfigSource) -> anyhow::Result<std::process::ExitCode> {
    let config = source.load()?;
    match command {
        Command::Serve(args) => serve::run(config, source, args),
        Command::Scan(args) => scan_cmd::run(config, args),
        Command::Learn(args) => learn_cmd::run(config, args),
        Command::Queue { action } => {
            let event = audit_cmd::queue_event(&action);
            let code = queue_cmd::run(&config, action)?;
            if let Some(event) = event {
                audit_cmd::record_cli(&config, event)?;
            }
            Ok(code)
        }
        Command::Audit { action } => audit_cmd::run(&config, action),
        Command::Backup(args) => backup_cmd::backup(&config, &source, args),
        Command::Restore(args) => backup_cmd::restore(&config, args),
        Command::Users { action } => users_cmd::run(&config, action),
        Command::Quarantine { action } => quarantine_cmd::run(&config, action),
        Command::Tracking { action } => quarantine_cmd::tracking(&config, action),
        Command::Doctor(args) => doctor_cmd::run(&config, &source, args),
        Command::Migrate(args) => migrate_cmd::run(&config, args),
        Command::Config { action: ConfigAction::Show } => {
            print!("{}", toml::to_string(&config).context("rendering the configuration")?);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Config { action: ConfigAction::Check } => {
            println!("configuration is valid");
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
