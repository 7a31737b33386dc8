//! Building the verdict engine, one way for `serve` and `scan` alike, so an offline scan judges exactly
//! as the gateway does: the same rules, and the classifier with the weights `portcullis learn` stored.

use anyhow::Context as _;
use checks::Engine;
use checks::analyzers::bayes::Bayes;
use classifier::{Classifier, Settings};
use config::Config;
use std::sync::Arc;

/// The engine for `config` judging with `classifier` (`serve` shares one with its learner and keeps
/// it in step with the store: [`crate::model_reload`]), or `None` when `verdict.enabled` is off.
pub(crate) fn with_classifier(
    config: &Config,
    classifier: Option<Arc<Classifier>>,
) -> anyhow::Result<Option<Engine>> {
    if !config.verdict.enabled {
        return Ok(None);
    }
    let c = &config.classifier;
    c.check().map_err(|(key, message)| anyhow::anyhow!("invalid configuration: {key}: {message}"))?;
    let engine = Engine::from_config(config).context("loading the verdict engine")?;
    Ok(Some(match classifier {
        Some(c) => engine.with_analyzer(Box::new(Bayes::new(c))),
        None => engine,
    }))
}

/// The classifier with the weights from the store, or `None` when `classifier.enabled` is off. A data
/// directory without a database gives an untrained classifier (and creates nothing: `scan` must not
/// leave files behind). A stored model of another feature space gives a classifier that is not ready
/// and says why ([`crate::stale_model`]).
pub(crate) fn classifier(config: &Config) -> anyhow::Result<Option<Arc<Classifier>>> {
    if !config.classifier.enabled {
        return Ok(None);
    }
    let settings = Settings::from_config(config);
    if !store::Store::exists(&config.data_dir, &config.store) {
        return Ok(Some(Arc::new(Classifier::new(settings))));
    }
    // `serve` builds the engine inside its runtime and `scan` outside one: load on a thread of our
    // own with a runtime of its own, which works in both.
    let loaded = std::thread::scope(|s| {
        s.spawn(|| -> anyhow::Result<Classifier> {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let store = store::Store::open(&config.data_dir, &config.store).await?;
                let loaded = classifier::load(&store, settings).await;
                store.close().await;
                Ok(loaded?)
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("loading the classifier panicked"))
    })?;
    Ok(Some(Arc::new(loaded.context("loading the classifier from the store")?)))
}
