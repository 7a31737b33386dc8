//! The outbound SMTP client, written on tokio: sessions, transactions, TLS and connection reuse.

mod client;
mod pool;
mod tls;
mod transaction;
mod wire;

pub(crate) use pool::Pool;
pub(crate) use tls::TlsClients;
pub(crate) use transaction::Transaction;

use crate::outcome::{Outcome, Problem};
use crate::run::Runtime;
use client::{ConnectError, Connection, Settings};
use config::Config;
use spool::QueueId;

/// Deliver one group of recipients to the next hop `host:port` and say what became of each.
/// Holds one of the next hop's concurrency slots for the whole transaction.
pub(crate) async fn deliver(
    rt: &Runtime,
    config: &Config,
    id: &QueueId,
    (host, port): (&str, u16),
    tx: &Transaction<'_>,
) -> Vec<Outcome> {
    let key = format!("{host}:{port}");
    let shared = rt.shared.clone();
    let _slot = rt.dests.acquire(&key, move || shared.config().relay.max_concurrency_per_destination).await;
    if let Some(why) = rt.down_reason(&key) {
        return vec![Outcome::Deferred(why); tx.recipients.len()];
    }
    let generation = rt.shared.generation();
    let relay = &config.relay;
    for first_try in [true, false] {
        let reused = rt.pool.take(&key, generation, relay.connection_idle.get()).await;
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(conn) => conn,
            None => match open(rt, config, host, port).await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::info!(queue_id = %id, next_hop = %key, error = %e, "cannot open a session");
                    let problem = connect_problem(&e, host);
                    rt.mark_down(&key, &problem);
                    return vec![Outcome::Deferred(problem); tx.recipients.len()];
                }
            },
        };
        let result = transaction::send(&mut conn, host, tx).await;
        if result.unanswered && was_reused && first_try {
            tracing::debug!(queue_id = %id, next_hop = %key, "idle connection had died; reconnecting");
            continue;
        }
        release(rt, &key, conn, result.reusable, config, generation).await;
        return result.outcomes;
    }
    unreachable!("the second try always returns")
}

async fn open(rt: &Runtime, config: &Config, host: &str, port: u16) -> Result<Connection, ConnectError> {
    let relay = &config.relay;
    let settings = Settings {
        host,
        port,
        helo: crate::our_hostname(config),
        connect_timeout: relay.connect_timeout.get(),
        command_timeout: relay.command_timeout.get(),
        tls_mode: relay.tls,
        tls: rt.shared.tls().for_mode(relay.tls),
    };
    let conn = client::connect(&settings).await?;
    tracing::debug!(next_hop = %host, port, tls = conn.tls, pipelining = conn.caps.pipelining, "session open");
    Ok(conn)
}

/// Keep a healthy connection for the next message, or end it.
async fn release(
    rt: &Runtime,
    key: &str,
    conn: Connection,
    reusable: bool,
    config: &Config,
    generation: u64,
) {
    if !reusable {
        return; // broken or in an unknown state: just close it
    }
    if conn.transactions < config.relay.max_messages_per_connection && !rt.stopping() {
        rt.pool.put(key, conn, generation);
    } else {
        conn.quit().await;
    }
}

/// Session failures defer: the next hop may be back later.
fn connect_problem(e: &ConnectError, host: &str) -> Problem {
    let mut problem = match e {
        ConnectError::Refused { reply, .. } => {
            let mut p = Problem::from_reply(reply, host);
            p.status.0 = 4;
            p
        }
        ConnectError::TlsNotOffered | ConnectError::Handshake(_) => Problem::local((4, 7, 0), e.to_string()),
        ConnectError::Connect { .. } | ConnectError::Timeout { .. } => {
            Problem::local((4, 4, 1), e.to_string())
        }
        ConnectError::Wire(_) => Problem::local((4, 4, 2), format!("{host}: {e}")),
    };
    problem.remote_mta.get_or_insert_with(|| host.to_string());
    problem
}
