//! A stored classifier model learned in another feature space than this build's
//! ([`classifier::FEATURE_VERSION`]): how `serve` and `scan` say so. The classifier itself
//! does not judge with such a model nor learn into it ([`classifier::VersionMismatch`]); this is the
//! one warning an operator sees, with the way out (`portcullis learn --reset`).

use classifier::{Classifier, VersionMismatch};

/// The warning for `classifier`, if the stored model it loaded is of another feature space.
pub(crate) fn warning(classifier: &Classifier) -> Option<String> {
    classifier.stale().map(message)
}

fn message(stale: VersionMismatch) -> String {
    format!(
        "{stale}. The classifier is off (no BAYES_* symbols); to use it again, {}",
        VersionMismatch::REMEDY
    )
}

/// Log the warning for a model a serving process just loaded or reloaded, if it is stale; and, when
/// a reload ends that (the model was reset), say so.
pub(crate) fn log_change(before: Option<VersionMismatch>, classifier: &Classifier) {
    let now = classifier.stale();
    match now {
        Some(stale) if before != now => {
            tracing::warn!(stored = stale.stored, current = stale.current, "{}", message(stale))
        }
        None if before.is_some() => {
            tracing::info!(
                feature_version = classifier::FEATURE_VERSION,
                "the classifier model fits this build's features again"
            )
        }
        _ => {}
    }
}
