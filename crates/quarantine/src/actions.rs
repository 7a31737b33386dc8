//! Release, delete, learn and safelist: each authorized, idempotent, tracked and audited.
//!
//! A status change is claimed in the store first (`held` → `released`/`deleted`, one winner), then
//! the file is moved or removed. A crash between the two leaves a row whose status says what was
//! meant and a file still in `quarantine/`: [`Quarantine::reconcile`] finishes it. If the move fails
//! for another reason, the claim is undone, so the item can be released again. On a store shared by
//! several nodes a release is queued in the store instead and delivered by a mail node ([`crate::cluster`]).

use crate::control::{Caller, Op};
use crate::item::{ActionOutcome, ReleaseOptions, Status};
use crate::reasons::{ADMIN_RELEASES, NULL_SENDER};
use crate::{Actor, Quarantine, QuarantineError, Role, Via, now_ms};
use spool::{Queue, QueueId};
use store::{ItemRow, SenderList, SenderListEntry};

impl Quarantine {
    /// Release an item: back to `active/` and on to delivery (the spam checks that held it are not
    /// run again). Virus items: admins only, recorded as such. Releasing twice delivers once.
    pub async fn release(
        &self,
        actor: &Actor,
        id: &str,
        opts: ReleaseOptions,
    ) -> Result<ActionOutcome, QuarantineError> {
        if let Some(mail) = self.remote() {
            return mail.act(Caller::of(actor)?, Op::Release, id, opts).await;
        }
        let row = self.visible(actor, id).await?;
        if !actor.may_release(row.kind, self.config().quarantine.policy_release) {
            return Err(QuarantineError::Forbidden(ADMIN_RELEASES));
        }
        if let Some(done) = already(&row) {
            return Ok(done);
        }
        // Learn before the file moves: once it is in `active/` the relay may deliver and remove it.
        let learned =
            if opts.learn_ham { Some(self.learn(&row, classifier::Class::Ham).await) } else { None };
        if self.shared() {
            if !self.release_shared(&row, &actor.name).await? {
                return self.outcome_now(&row.id).await;
            }
        } else {
            if !self.claim(&row, Status::Released, actor).await? {
                return self.outcome_now(&row.id).await;
            }
            self.release_local(&row).await?;
        }
        let virus = row.kind == store::QuarantineKind::Virus;
        let details = serde_json::json!({
            "item": row.id, "kind": row.kind.as_str(), "learn_ham": opts.learn_ham,
            "safelist_sender": opts.safelist_sender, "virus_released_by_admin": virus,
        });
        self.track(&row.queue_id, "released", actor, details).await;
        let action = if matches!(actor.via, Via::DigestLink(_)) {
            audit::Action::QuarantineDigestRelease
        } else {
            audit::Action::QuarantineRelease
        };
        let virus_note = if virus { "yes: released by an administrator" } else { "no" };
        self.audit(action, actor, &row, &[("virus", virus_note), ("learn_ham", bool_str(opts.learn_ham))]);
        if let Some(Err(e)) = learned {
            tracing::warn!(item = %row.id, error = %e, "released, but learning it as ham failed");
        }
        if opts.safelist_sender {
            self.safelist_row(actor, &row).await?;
        }
        Ok(ActionOutcome::Done)
    }

    /// Move a claimed item's file to `active/`; if that fails, undo the claim (or, the file being gone,
    /// mark the item deleted) so the index tells the truth.
    async fn release_local(&self, row: &ItemRow) -> Result<(), QuarantineError> {
        let Err(e) = self.move_to_active(row).await else { return Ok(()) };
        let (to, by) = match e {
            QuarantineError::MissingFile => (Status::Deleted, Some("system: file missing")),
            _ => (Status::Held, None),
        };
        self.store().quarantine_set_status(&row.id, Status::Released, to, by, now_ms()).await?;
        Err(e)
    }

    /// Delete an item: its file goes, its row stays as `deleted` (who and when) for the other owners.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<ActionOutcome, QuarantineError> {
        if let Some(mail) = self.remote() {
            return mail.act(Caller::of(actor)?, Op::Delete, id, ReleaseOptions::default()).await;
        }
        let row = self.visible(actor, id).await?;
        if let Some(done) = already(&row) {
            return Ok(done);
        }
        if !self.claim(&row, Status::Deleted, actor).await? {
            return self.outcome_now(&row.id).await;
        }
        self.discard(&row).await?;
        self.track(&row.queue_id, "deleted", actor, serde_json::json!({"item": row.id})).await;
        self.audit(audit::Action::QuarantineDelete, actor, &row, &[]);
        Ok(ActionOutcome::Done)
    }

    /// Learn a held item as spam (it stays held). Learning twice counts once.
    pub async fn learn_spam(&self, actor: &Actor, id: &str) -> Result<ActionOutcome, QuarantineError> {
        if let Some(mail) = self.remote() {
            return mail.act(Caller::of(actor)?, Op::LearnSpam, id, ReleaseOptions::default()).await;
        }
        let row = self.visible(actor, id).await?;
        if row.status != Status::Held {
            return Ok(already(&row).unwrap_or(ActionOutcome::Done));
        }
        let learned = self.learn(&row, classifier::Class::Spam).await?;
        let details = serde_json::json!({"item": row.id, "class": "spam", "outcome": format!("{learned:?}")});
        self.track(&row.queue_id, "learned", actor, details).await;
        self.audit(audit::Action::QuarantineLearn, actor, &row, &[("class", "spam")]);
        Ok(ActionOutcome::Done)
    }

    /// Put the item's envelope sender on the safelists of its owners (an end user: their own
    /// addresses among the owners). Idempotent.
    pub async fn safelist_sender(&self, actor: &Actor, id: &str) -> Result<ActionOutcome, QuarantineError> {
        let row = self.visible(actor, id).await?;
        self.safelist_row(actor, &row).await?;
        Ok(ActionOutcome::Done)
    }

    async fn safelist_row(&self, actor: &Actor, row: &ItemRow) -> Result<(), QuarantineError> {
        if row.sender.is_empty() {
            return Err(QuarantineError::Forbidden(NULL_SENDER));
        }
        let owners: Vec<&String> = row
            .owners
            .iter()
            .filter(|o| actor.role != Role::User || actor.addresses.iter().any(|a| a.eq_ignore_ascii_case(o)))
            .collect();
        for owner in &owners {
            let entry = SenderListEntry {
                owner: owner.to_string(),
                list: SenderList::Safe,
                sender: row.sender.clone(),
                created_at_ms: now_ms(),
                created_by: actor.name.clone(),
            };
            self.store().sender_list_add(&entry).await?;
        }
        let details = serde_json::json!({"item": row.id, "sender": row.sender, "owners": owners});
        self.track(&row.queue_id, "safelisted", actor, details).await;
        self.audit(audit::Action::SettingsChange, actor, row, &[("safelist_sender", &row.sender)]);
        Ok(())
    }

    /// Claim the move from `held` to `to` for `actor`; `false` if someone else got there first.
    pub(crate) async fn claim(
        &self,
        row: &ItemRow,
        to: Status,
        actor: &Actor,
    ) -> Result<bool, QuarantineError> {
        Ok(self.store().quarantine_set_status(&row.id, Status::Held, to, Some(&actor.name), now_ms()).await?)
    }

    /// What happened to an item someone else changed meanwhile.
    async fn outcome_now(&self, id: &str) -> Result<ActionOutcome, QuarantineError> {
        let row = self.store().quarantine_get(id).await?.ok_or(QuarantineError::NotFound)?;
        Ok(already(&row).unwrap_or(ActionOutcome::Done))
    }

    /// Move a claimed item's file to `active/` and hand it to delivery. A file already in `active/`
    /// (a move finished before a crash) counts as moved.
    pub(crate) async fn move_to_active(&self, row: &ItemRow) -> Result<(), QuarantineError> {
        let qid = QueueId::parse(&row.queue_id).map_err(|_| QuarantineError::MissingFile)?;
        let (spool, id) = (self.spool()?.clone(), qid.clone());
        let moved = crate::blocking("moving a queue file", move || {
            match spool.move_to(&id, Queue::Quarantine, Queue::Active) {
                Err(spool::SpoolError::NotFound(_)) => {
                    spool.load(Queue::Active, &id).map(drop).map_err(|e| match e {
                        spool::SpoolError::NotFound(_) => None,
                        e => Some(e),
                    })
                }
                other => other.map_err(Some),
            }
        })
        .await?;
        match moved {
            Ok(()) => {
                self.wake(&qid);
                Ok(())
            }
            Err(None) => Err(QuarantineError::MissingFile),
            Err(Some(e)) => Err(e.into()),
        }
    }

    /// Remove a claimed item's file (already gone is fine).
    pub(crate) async fn remove_file(&self, row: &ItemRow) -> Result<(), QuarantineError> {
        let Ok(qid) = QueueId::parse(&row.queue_id) else { return Ok(()) };
        let spool = self.spool()?.clone();
        let removed =
            crate::blocking("removing a queue file", move || spool.remove(Queue::Quarantine, &qid)).await?;
        match removed {
            Ok(()) | Err(spool::SpoolError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Learn a held message as `class` through the classifier's learner.
    async fn learn(
        &self,
        row: &ItemRow,
        class: classifier::Class,
    ) -> Result<classifier::Learned, QuarantineError> {
        let learner = self
            .inner
            .learner
            .as_ref()
            .ok_or_else(|| QuarantineError::Learn("the classifier is off".into()))?;
        let (_, raw) = self.held_message(row).await?;
        learner
            .learn(&raw, classifier::fingerprint(&raw), class)
            .await
            .map_err(|e| QuarantineError::Learn(e.to_string()))
    }
}

/// The outcome for an item that is no longer held.
fn already(row: &ItemRow) -> Option<ActionOutcome> {
    (row.status != Status::Held).then(|| ActionOutcome::AlreadyDone {
        status: row.status.as_str(),
        by: row.status_by.clone(),
        at_ms: row.status_at_ms,
    })
}

fn bool_str(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}
