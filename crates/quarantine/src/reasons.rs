//! Why the quarantine refuses an operation ([`crate::QuarantineError::Forbidden`]): every reason,
//! each written once, here. The control protocol maps a mail plane's refusal back onto these same
//! words ([`known`]), so a portal of its own shows what an in-process one would, and never echoes
//! other text a peer sends.

/// Defines each reason as a constant and [`ALL`] from the same list, so no reason can be given
/// without being known to [`known`].
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal;)+) => {
        $($(#[doc = $doc])* pub(crate) const $name: &str = $text;)+
        /// Every reason above.
        const ALL: &[&str] = &[$($name),+];
    };
}

reasons! {
    /// A user or helpdesk may not release this kind of item, though they see it.
    ADMIN_RELEASES = "this kind of item is released by an administrator";
    /// An item's sender cannot go on a safelist.
    NULL_SENDER = "the null sender cannot be safelisted";
    /// The caller named no enabled account.
    NOT_AN_ACCOUNT = "the caller is not an enabled portal account";
    /// A digest link used for another item or action than it was signed for.
    NOT_THIS_LINK = "the digest link does not allow this";
    /// Two nodes gave out one queue id: the other node's item is not taken for this message.
    FOREIGN_QUEUE_ID = "the queue id is another node's quarantine item";
    /// The delivery queue and digests-now are for administrators.
    ADMINS_ONLY = "administrators only";
}

/// The reason whose words are `text`, if it is one of ours.
pub(crate) fn known(text: &str) -> Option<&'static str> {
    ALL.iter().find(|r| **r == text).copied()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reason_is_known_by_its_words_and_nothing_else_is() {
        for r in super::ALL {
            assert_eq!(super::known(r), Some(*r));
        }
        assert_eq!(super::known("<script>"), None);
        assert_eq!(super::known(""), None);
    }
}
