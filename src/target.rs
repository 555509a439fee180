//! Where a run signs in: a scenario's target resolved to the region, pool, app client, endpoint and
//! token issuer the Cognito client needs — for `kind = "local"` by starting the embedded pool with the
//! scenario's test users.

use crate::cognito::ResolvedTarget;
use crate::pool::{LocalPool, RunningPool};
use crate::scenario::{Scenario, ScenarioError, TargetKind};

/// Why a target could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("starting the local pool: {0:#}")]
    PoolStart(anyhow::Error),
}

/// The scenario's target; for `local`, the embedded pool started with the scenario's test users
/// (the caller stops it).
pub async fn resolve(scenario: &Scenario) -> Result<(ResolvedTarget, Option<RunningPool>), TargetError> {
    let t = &scenario.target;
    match t.kind {
        TargetKind::Local => {
            let mut config = scenario.local_pool_config()?;
            config.users.emails = (0..scenario.users.count).map(|i| scenario.users.address(i)).collect();
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            let pool = LocalPool::start(config, address).await.map_err(TargetError::PoolStart)?;
            Ok((ResolvedTarget::local_pool(pool.info(), t.call_timeout), Some(pool)))
        }
        TargetKind::Aws => {
            let region = t.region.clone().unwrap_or_default();
            let user_pool_id = t.user_pool_id.clone().unwrap_or_default();
            let issuer = t
                .issuer
                .clone()
                .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"));
            let target = ResolvedTarget {
                region,
                user_pool_id,
                client_id: t.client_id.clone().unwrap_or_default(),
                endpoint_url: t.endpoint_url.clone(),
                issuer,
                local: false,
                call_timeout: t.call_timeout,
            };
            Ok((target, None))
        }
    }
}
