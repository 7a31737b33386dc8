//! A stored classifier model learned in another feature space than this build's
//! ([`classifier::FEATURE_VERSION`]): how `serve`, `scan` and `doctor` say so. The classifier itself
//! does not judge with such a model nor learn into it ([`classifier::VersionMismatch`]); this is the
//! one warning an operator sees, with the way out (`portcullis learn --reset`).

use crate::doctor_cmd::{Finding, Severity};
use classifier::{Classifier, VersionMismatch};
use config::Config;

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

/// `doctor`'s finding on the stored model: a warning when it is of another feature space. Nothing
/// when the classifier is off, there is no store yet, or the store cannot be read (the store check
/// reports that, and pending migrations, which this does not apply).
pub(crate) fn findings(config: &Config) -> Vec<Finding> {
    if !config.classifier.enabled || !store::Store::exists(&config.data_dir, &config.store) {
        return Vec::new();
    }
    let stored = tokio::runtime::Builder::new_current_thread().enable_all().build().ok().and_then(|rt| {
        rt.block_on(async {
            let store = store::Store::open_unmigrated(&config.data_dir, &config.store).await.ok()?;
            let version = store.classifier_feature_version().await;
            store.close().await;
            version.ok()
        })
    });
    stored
        .and_then(VersionMismatch::of)
        .map(|stale| Finding {
            check: "classifier",
            severity: Severity::Warning,
            path: None,
            message: message(stale),
        })
        .into_iter()
        .collect()
}
