//! Who acts, and what they may see and do. Every operation asks here first.
//!
//! | | sees | releases | deletes, learns, safelists |
//! |---|---|---|---|
//! | admin | every item | every item (virus items too, recorded as such) | every item |
//! | helpdesk | every item but virus | spam; policy unless `policy_release = "admin"` | what it sees |
//! | user | items one of their addresses owns, not virus | spam; policy only under `policy_release = "user"` | what they see |
//!
//! An item an actor may not see is "not found", never "forbidden", so ids cannot be probed.

use crate::item::Kind;
use config::ReleaseRole;

/// What an actor may do in general.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    User,
    Helpdesk,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Helpdesk => "helpdesk",
            Role::Admin => "admin",
        }
    }
}

/// How the actor reached us (for the audit record's actor field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A portal session, by account name.
    Portal,
    /// An API token, by the token's id (never the secret).
    ApiToken(String),
    /// The command line, run by this unix user id.
    Cli { uid: u32 },
    /// A signed digest link, by the token's id (a prefix of its nonce, never the token).
    DigestLink(String),
    /// The gateway itself (holds, expiry, reconciling).
    System,
}

/// Someone acting on the quarantine: the portal builds one from a session or API token, the command
/// line as an admin named `cli:<unix user>`, a digest link as a user owning only its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Shown to other owners as "released by" and written to tracking and audit.
    pub name: String,
    pub role: Role,
    /// The recipient addresses this actor owns (lower-cased when compared).
    pub addresses: Vec<String>,
    pub via: Via,
}

impl Actor {
    /// A portal user (session).
    pub fn new(name: impl Into<String>, role: Role, addresses: Vec<String>) -> Actor {
        Actor { name: name.into(), role, addresses, via: Via::Portal }
    }

    /// A portal user acting through an API token with id `token_id`.
    pub fn api(
        name: impl Into<String>,
        role: Role,
        addresses: Vec<String>,
        token_id: impl Into<String>,
    ) -> Actor {
        Actor { name: name.into(), role, addresses, via: Via::ApiToken(token_id.into()) }
    }

    /// The command line: an admin named `cli:<unix user>`.
    pub fn cli(unix_user: &str, uid: u32) -> Actor {
        Actor {
            name: format!("cli:{unix_user}"),
            role: Role::Admin,
            addresses: Vec::new(),
            via: Via::Cli { uid },
        }
    }

    /// The gateway itself.
    pub fn system() -> Actor {
        Actor { name: "system".into(), role: Role::Admin, addresses: Vec::new(), via: Via::System }
    }

    /// A digest link for `recipient`: a user who owns that one address and nothing else.
    pub fn digest_link(recipient: &str, token_id: &str) -> Actor {
        Actor {
            name: format!("digest:{recipient}"),
            role: Role::User,
            addresses: vec![recipient.to_ascii_lowercase()],
            via: Via::DigestLink(token_id.to_string()),
        }
    }

    /// Whether one of this actor's addresses is among `owners` (lower-case).
    pub fn owns_any(&self, owners: &[String]) -> bool {
        self.addresses.iter().any(|a| owners.iter().any(|o| o.eq_ignore_ascii_case(a)))
    }

    /// Whether this actor may see an item of `kind` owned by `owners`.
    pub fn may_see(&self, kind: Kind, owners: &[String]) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Helpdesk => kind != Kind::Virus,
            Role::User => kind != Kind::Virus && self.owns_any(owners),
        }
    }

    /// Whether this actor may release an item of `kind` it can see.
    pub fn may_release(&self, kind: Kind, policy_release: ReleaseRole) -> bool {
        match kind {
            Kind::Virus => self.role == Role::Admin,
            Kind::Spam => true,
            Kind::Policy => self.role >= role_for(policy_release),
        }
    }

    /// The actor as the audit trail names it.
    pub fn audit_actor(&self) -> audit::Actor {
        match &self.via {
            Via::Portal => audit::Actor::User(self.name.clone()),
            Via::ApiToken(id) | Via::DigestLink(id) => audit::Actor::Token(id.clone()),
            Via::Cli { uid } => audit::Actor::Cli { uid: *uid },
            Via::System => audit::Actor::System,
        }
    }
}

fn role_for(r: ReleaseRole) -> Role {
    match r {
        ReleaseRole::User => Role::User,
        ReleaseRole::Helpdesk => Role::Helpdesk,
        ReleaseRole::Admin => Role::Admin,
    }
}
