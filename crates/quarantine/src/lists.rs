//! Per-user safelists and blocklists, and digest preferences, for the portal's "my settings" pages.
//! End users act only on their own addresses (others: `NotFound`); helpdesk and admins on any.

use crate::{Actor, Quarantine, QuarantineError, Role, now_ms};
use store::{DigestPrefs, SenderList, SenderListEntry};

/// A sender list entry's sender: an address or a domain, lower-case, plain.
fn sender_term(s: &str) -> Result<String, QuarantineError> {
    let s = s.trim().to_ascii_lowercase();
    let ok = !s.is_empty()
        && s.len() <= 254
        && s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b',' | b';' | b'\\'));
    if ok { Ok(s) } else { Err(QuarantineError::BadQuery("not an address or domain".into())) }
}

impl Quarantine {
    /// The actor's entries (end users: their addresses'; helpdesk and admins: everyone's).
    pub async fn sender_lists(&self, actor: &Actor) -> Result<Vec<SenderListEntry>, QuarantineError> {
        if actor.role != Role::User {
            return Ok(self.store().sender_list_all().await?);
        }
        let mut out = Vec::new();
        for a in &actor.addresses {
            out.extend(self.store().sender_list_entries(&a.to_ascii_lowercase()).await?);
        }
        Ok(out)
    }

    /// Put `sender` on `owner`'s list. Idempotent; audited.
    pub async fn add_sender_list_entry(
        &self,
        actor: &Actor,
        owner: &str,
        list: SenderList,
        sender: &str,
    ) -> Result<bool, QuarantineError> {
        let owner = self.owned(actor, owner)?;
        let entry = SenderListEntry {
            owner: owner.clone(),
            list,
            sender: sender_term(sender)?,
            created_at_ms: now_ms(),
            created_by: actor.name.clone(),
        };
        let added = self.store().sender_list_add(&entry).await?;
        self.record_list_change(actor, &owner, list, &entry.sender, "add");
        Ok(added)
    }

    /// Take `sender` off `owner`'s list.
    pub async fn remove_sender_list_entry(
        &self,
        actor: &Actor,
        owner: &str,
        list: SenderList,
        sender: &str,
    ) -> Result<bool, QuarantineError> {
        let owner = self.owned(actor, owner)?;
        let sender = sender_term(sender)?;
        let removed = self.store().sender_list_remove(&owner, list, &sender).await?;
        self.record_list_change(actor, &owner, list, &sender, "remove");
        Ok(removed)
    }

    /// `address`'s digest preferences.
    pub async fn digest_prefs(&self, actor: &Actor, address: &str) -> Result<DigestPrefs, QuarantineError> {
        let address = self.owned(actor, address)?;
        Ok(self.store().digest_prefs(&address).await?)
    }

    /// Turn digests on or off for `address`.
    pub async fn set_digest_enabled(
        &self,
        actor: &Actor,
        address: &str,
        enabled: bool,
    ) -> Result<(), QuarantineError> {
        let address = self.owned(actor, address)?;
        self.store().digest_set_enabled(&address, enabled).await?;
        let e = audit::Event::new(audit::Action::SettingsChange, actor.audit_actor())
            .target(&address)
            .detail("digest_enabled", if enabled { "yes" } else { "no" })
            .detail("actor_name", &actor.name);
        self.inner.audit.record(e);
        Ok(())
    }

    /// `address` lower-cased, if the actor may act for it.
    fn owned(&self, actor: &Actor, address: &str) -> Result<String, QuarantineError> {
        let a = address.trim().to_ascii_lowercase();
        let mine = actor.addresses.iter().any(|x| x.eq_ignore_ascii_case(&a));
        if a.is_empty() || a.len() > 320 || (actor.role == Role::User && !mine) {
            return Err(QuarantineError::NotFound);
        }
        Ok(a)
    }

    fn record_list_change(&self, actor: &Actor, owner: &str, list: SenderList, sender: &str, op: &str) {
        let e = audit::Event::new(audit::Action::SettingsChange, actor.audit_actor())
            .target(owner)
            .detail("list", list.as_str())
            .detail("sender", sender)
            .detail("op", op)
            .detail("actor_name", &actor.name);
        self.inner.audit.record(e);
    }
}
