//! `portcullis users`: local accounts of the portal, admin console and API. Every change is an audit
//! record (actor: the command line's unix user); passwords and tokens are printed once and never
//! recorded.

use anyhow::Context;
use audit::{Action, Actor, Event};
use config::Config;
use std::io::BufRead;
use std::process::ExitCode;

#[derive(clap::Subcommand, Debug)]
pub(crate) enum UsersAction {
    /// Create an account; without --password-stdin a password is generated and printed once.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A recipient address the account owns (repeatable); end users see mail addressed to these.
        #[arg(long = "address", value_name = "ADDR")]
        addresses: Vec<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (generated and printed once, or read with --password-stdin); ends the
    /// account's sessions.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account (its sessions end; its API tokens stop working).
    Disable { name: String },
    /// Enable a disabled account.
    Enable { name: String },
    /// List the accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an API token for an account and print it once.
    Token {
        name: String,
        /// A label for the token.
        #[arg(long = "name", value_name = "LABEL", default_value = "cli")]
        label: String,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum RoleArg {
    Admin,
    Helpdesk,
    User,
}

impl RoleArg {
    fn role(self) -> store::Role {
        match self {
            RoleArg::Admin => store::Role::Admin,
            RoleArg::Helpdesk => store::Role::Helpdesk,
            RoleArg::User => store::Role::User,
        }
    }
}

pub(crate) fn run(config: &Config, action: UsersAction) -> anyhow::Result<ExitCode> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a runtime")?;
    runtime.block_on(async {
        let store = store::Store::open(&config.data_dir, &config.store).await.context("opening the store")?;
        let result = act(config, &store, action).await;
        store.close().await;
        result
    })
}

async fn act(config: &Config, store: &store::Store, action: UsersAction) -> anyhow::Result<ExitCode> {
    match action {
        UsersAction::Add { name, role, addresses, password_stdin } => {
            let addresses =
                portal::accounts::parse_addresses(&addresses.join(" ")).map_err(anyhow::Error::msg)?;
            let given = if password_stdin { Some(read_password()?) } else { None };
            let password =
                portal::accounts::create_user(store, &name, role.role(), &addresses, given).await?;
            record(
                config,
                Event::new(Action::UserCreate, Actor::cli())
                    .target(&name)
                    .detail("role", role.role().as_str()),
            )?;
            if !password_stdin {
                println!("created {name}; one-time password (shown only now): {password}");
            } else {
                println!("created {name}");
            }
        }
        UsersAction::Passwd { name, password_stdin } => {
            let account = find(store, &name).await?;
            let given = if password_stdin { Some(read_password()?) } else { None };
            let password = portal::accounts::reset_password(store, account.id, given).await?;
            record(
                config,
                Event::new(Action::UserUpdate, Actor::cli()).target(&name).detail("change", "password"),
            )?;
            if password_stdin {
                println!("password of {name} changed");
            } else {
                println!("new password of {name} (shown only now): {password}");
            }
        }
        UsersAction::Disable { name } => set_disabled(config, store, &name, true).await?,
        UsersAction::Enable { name } => set_disabled(config, store, &name, false).await?,
        UsersAction::List { json } => list(store, json).await?,
        UsersAction::Token { name, label } => {
            let account = find(store, &name).await?;
            let (secret, hash) = portal::secrets::new_api_token();
            let label = label.trim();
            anyhow::ensure!((1..=64).contains(&label.chars().count()), "a label has 1 to 64 characters");
            let id = store.create_api_token(account.id, label, &hash, portal::state::now()).await?;
            record(
                config,
                Event::new(Action::TokenCreate, Actor::cli())
                    .target(&name)
                    .detail("token_id", id.to_string())
                    .detail("label", label),
            )?;
            println!("{secret}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn find(store: &store::Store, name: &str) -> anyhow::Result<store::Account> {
    store.account_by_name(name).await?.with_context(|| format!("there is no account named {name}"))
}

async fn set_disabled(
    config: &Config,
    store: &store::Store,
    name: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let account = find(store, name).await?;
    store.set_account_disabled(account.id, disabled, portal::state::now()).await?;
    store.delete_account_sessions(account.id).await?;
    let change = if disabled { "disabled" } else { "enabled" };
    record(config, Event::new(Action::UserUpdate, Actor::cli()).target(name).detail("change", change))?;
    println!("{name} {change}");
    Ok(())
}

async fn list(store: &store::Store, json: bool) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for a in store.accounts().await? {
        let addresses = store.account_addresses(a.id).await?;
        let tokens = store.api_tokens(a.id).await?.len();
        rows.push(serde_json::json!({
            "name": a.name, "role": a.role.as_str(), "disabled": a.disabled, "addresses": addresses,
            "second_factor": a.totp_secret.is_some(), "tokens": tokens,
            "created_at": a.created_at, "changed_at": a.changed_at,
        }));
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for r in rows {
        let state = if r["disabled"] == true { "disabled" } else { "active" };
        let addresses: Vec<&str> =
            r["addresses"].as_array().into_iter().flatten().filter_map(|a| a.as_str()).collect();
        println!(
            "{:<24} {:<9} {:<9} {}",
            r["name"].as_str().unwrap_or(""),
            r["role"].as_str().unwrap_or(""),
            state,
            addresses.join(",")
        );
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::Read::take(std::io::stdin().lock(), 4096)
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn record(config: &Config, event: Event) -> anyhow::Result<()> {
    crate::audit_cmd::record_cli(config, event).map(|_| ())
}
