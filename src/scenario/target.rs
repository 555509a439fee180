//! `[target]`: which pool a run signs in to — the embedded local pool (`kind = "local"`, configured
//! inline in `[target.pool]` or from `pool_config`) or a real Cognito-compatible one (`kind = "aws"`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, ScenarioError};
use crate::pool::PoolConfig;

/// Which pool the run signs in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The embedded local pool, started in-process.
    Local,
    /// A real (or any Cognito-compatible) pool.
    Aws,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub kind: TargetKind,
    /// local: the pool config inline (`[target.pool]`, the keys of scenarios/local-pool.toml).
    pub pool: Option<PoolConfig>,
    /// local: a pool config file, relative to the scenario file.
    pub pool_config: Option<PathBuf>,
    /// aws: the region, user pool id and app client id.
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    /// aws: another Cognito-compatible endpoint (e.g. `http://127.0.0.1:9229`).
    pub endpoint_url: Option<String>,
    /// aws: where the SES v2 API is for `preflight`, when not at `endpoint_url` (or AWS).
    pub ses_endpoint_url: Option<String>,
    /// aws: the tokens' issuer, when not `https://cognito-idp.{region}.amazonaws.com/{user_pool_id}`.
    pub issuer: Option<String>,
    /// Per-call timeout.
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
}

fn default_call_timeout() -> Duration {
    Duration::from_secs(10)
}

impl TargetKind {
    /// As the scenario and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Local => "local",
            TargetKind::Aws => "aws",
        }
    }
}

impl Target {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        match self.kind {
            TargetKind::Local => {
                for (key, set) in [
                    ("region", self.region.is_some()),
                    ("user_pool_id", self.user_pool_id.is_some()),
                    ("client_id", self.client_id.is_some()),
                    ("endpoint_url", self.endpoint_url.is_some()),
                    ("ses_endpoint_url", self.ses_endpoint_url.is_some()),
                    ("issuer", self.issuer.is_some()),
                ] {
                    if set {
                        return Err(at.error(
                            "target",
                            0,
                            key,
                            format!("target.{key} is for kind = \"aws\"; a local target starts its own pool"),
                            "remove it, or set the pool's identity in [target.pool]",
                        ));
                    }
                }
                if self.pool.is_some() && self.pool_config.is_some() {
                    return Err(at.error(
                        "target",
                        0,
                        "pool_config",
                        "both [target.pool] and target.pool_config are set",
                        "keep one of them",
                    ));
                }
                if let Some(pool) = &self.pool
                    && let Err(e) = pool.validate()
                {
                    return Err(at.error(
                        "target.pool",
                        0,
                        "",
                        format!("[target.pool]: {e}"),
                        "see scenarios/local-pool.toml for every key and its default",
                    ));
                }
            }
            TargetKind::Aws => {
                for (key, value) in
                    [("region", &self.region), ("user_pool_id", &self.user_pool_id), ("client_id", &self.client_id)]
                {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(at.error(
                            "target",
                            0,
                            key,
                            format!("target.{key} is required for kind = \"aws\""),
                            "copy it from the Cognito console or `aws cognito-idp describe-user-pool-client`",
                        ));
                    }
                }
                if self.pool.is_some() || self.pool_config.is_some() {
                    return Err(at.error(
                        "target",
                        0,
                        "pool_config",
                        "a pool config is for kind = \"local\"",
                        "remove [target.pool] / target.pool_config, or set kind = \"local\"",
                    ));
                }
            }
        }
        if self.call_timeout.is_zero() {
            return Err(at.error(
                "target",
                0,
                "call_timeout",
                "target.call_timeout must be longer than zero",
                "e.g. call_timeout = \"10s\"",
            ));
        }
        Ok(())
    }
}
