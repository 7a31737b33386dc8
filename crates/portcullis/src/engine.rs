//! Building the verdict engine, one way for `serve` and `scan` alike, so an offline scan judges exactly
//! as the gateway does.

use anyhow::Context as _;
use checks::Engine;
use config::Config;

/// The engine for `config`, or `None` when `verdict.enabled` is off.
pub(crate) fn build(config: &Config) -> anyhow::Result<Option<Engine>> {
    if !config.verdict.enabled {
        return Ok(None);
    }
    Engine::from_config(config).context("loading the verdict engine").map(Some)
}
