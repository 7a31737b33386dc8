//! The trained classifier as symbols: one graded `BAYES_*` symbol per message, SpamAssassin style
//! (the names are kept from the Bayes classifier it replaced), named for the band the calibrated spam
//! probability falls in (`BAYES_00`: below 1%, ..., `BAYES_999`:
//! 99.9% or more). Scores per band are in `rules/default/scores.toml`: ham bands subtract, spam bands
//! add, the middle is neutral.
//!
//! Nothing is emitted until the classifier has learned `classifier.min_learned_spam` spam and
//! `classifier.min_learned_ham` ham. The weights live in memory ([`classifier::Classifier`]), so this
//! is a synchronous analyzer.

use crate::{Analyzer, Context};
use classifier::Classifier;
use message::MessageView;
use std::sync::Arc;
use verdict::Finding;

/// The bands, lowest first: a probability below `upper` (and at or above the previous band's
/// `upper`) gets `symbol`.
const BANDS: &[(f64, &str)] = &[
    (0.01, "BAYES_00"),
    (0.05, "BAYES_05"),
    (0.20, "BAYES_20"),
    (0.40, "BAYES_40"),
    (0.60, "BAYES_50"),
    (0.80, "BAYES_60"),
    (0.95, "BAYES_80"),
    (0.99, "BAYES_95"),
    (0.999, "BAYES_99"),
    (f64::INFINITY, "BAYES_999"),
];

/// The symbol for a spam probability.
pub fn symbol(probability: f64) -> &'static str {
    BANDS.iter().find(|(upper, _)| probability < *upper).map_or("BAYES_999", |(_, s)| s)
}

pub struct Bayes {
    classifier: Arc<Classifier>,
}

impl Bayes {
    pub fn new(classifier: Arc<Classifier>) -> Bayes {
        Bayes { classifier }
    }
}

impl Analyzer for Bayes {
    fn name(&self) -> &'static str {
        "bayes"
    }

    fn analyze(&self, msg: &MessageView, _: &Context<'_>, out: &mut Vec<Finding>) {
        let Some(c) = self.classifier.classify(msg) else { return };
        out.push(Finding::new(
            symbol(c.probability),
            format!(
                "spam probability {:.4} (score {:.2} from {} features)",
                c.probability, c.score, c.features
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::{Class, Learned, Settings};

    #[test]
    fn bands_cover_zero_to_one() {
        assert_eq!(symbol(0.0), "BAYES_00");
        assert_eq!(symbol(0.5), "BAYES_50");
        assert_eq!(symbol(0.995), "BAYES_99");
        assert_eq!(symbol(1.0), "BAYES_999");
    }

    #[test]
    fn silent_until_trained_then_one_graded_symbol() {
        let settings = Settings { min_learned_spam: 1, min_learned_ham: 1, ..Settings::default() };
        let classifier = Arc::new(Classifier::new(settings));
        let bayes = Bayes::new(classifier.clone());
        let limits = message::MessageLimits::default();
        let spam = message::parse(b"Subject: cheap pills\n\nbuy cheap pills now\n", &limits);
        let ham = message::parse(b"Subject: minutes\n\nnotes from the board meeting\n", &limits);
        let run = |v: &MessageView| {
            let mut out = Vec::new();
            bayes.analyze(v, &Context::default(), &mut out);
            out
        };
        assert!(run(&spam).is_empty(), "untrained: nothing");
        classifier.learn(&classifier.features(&spam), Class::Spam, Learned::Added);
        assert!(run(&spam).is_empty(), "no ham learned yet: still nothing");
        classifier.learn(&classifier.features(&ham), Class::Ham, Learned::Added);
        let found = run(&spam);
        assert_eq!(found.len(), 1);
        // Each learned message lands on its own side: the spam in a spam band, the ham in a ham band.
        assert!(["BAYES_95", "BAYES_99", "BAYES_999"].contains(&found[0].symbol.as_str()), "{found:?}");
        assert!(found[0].reason.starts_with("spam probability 0."), "{}", found[0].reason);
        let ham_found = run(&ham);
        assert!(
            ["BAYES_00", "BAYES_05", "BAYES_20"].contains(&ham_found[0].symbol.as_str()),
            "{ham_found:?}"
        );
    }
}
