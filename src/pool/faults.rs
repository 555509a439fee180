//! Injected faults: added latency per operation, throttling per quota category (token buckets, as
//! Cognito's quotas behave), and trigger failures. Mail faults live with the mail dispatcher.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::Rng;

use super::config::{FaultsConfig, Trigger, TriggerFailure, TriggerFault};
use super::error::{CognitoError, ErrorKind};

/// Cognito's quota categories, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuotaCategory {
    UserAuthentication,
    RespondToAuthChallenge,
    UserCreation,
    UserRead,
    UserList,
    UserUpdate,
    UserPoolRead,
}

/// A token bucket refilled at `rate` per second, holding at most one second's worth.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    fn new(rate: f64) -> Self {
        Self { rate, state: Mutex::new((rate.max(1.0), Instant::now())) }
    }

    fn try_take(&self) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.rate;
        state.0 = (state.0 + refill).min(self.rate.max(1.0));
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The fault plan of a running pool.
#[derive(Debug)]
pub struct Faults {
    latency: BTreeMap<String, Duration>,
    buckets: BTreeMap<QuotaCategory, TokenBucket>,
    triggers: Vec<TriggerFault>,
    access_denied: Vec<String>,
}

impl Faults {
    pub fn new(config: &FaultsConfig) -> Self {
        let t = &config.throttle;
        let buckets = [
            (QuotaCategory::UserAuthentication, t.user_authentication),
            (QuotaCategory::RespondToAuthChallenge, t.respond_to_auth_challenge),
            (QuotaCategory::UserCreation, t.user_creation),
            (QuotaCategory::UserRead, t.user_read),
            (QuotaCategory::UserList, t.user_list),
            (QuotaCategory::UserUpdate, t.user_update),
            (QuotaCategory::UserPoolRead, t.user_pool_read),
        ]
        .into_iter()
        .filter_map(|(category, rate)| rate.map(|r| (category, TokenBucket::new(r))))
        .collect();
        Self {
            latency: config.latency.clone(),
            buckets,
            triggers: config.trigger.clone(),
            access_denied: config.access_denied.clone(),
        }
    }

    /// The latency to add before answering `operation`.
    pub fn latency(&self, operation: &str) -> Option<Duration> {
        self.latency.get(operation).copied()
    }

    /// `AccessDeniedException` when the pool is told to refuse `operation` of `service` (`cognito-idp`,
    /// `ses`) on `resource`, as AWS refuses a caller whose policy lacks the action.
    pub fn deny(&self, service: &str, operation: &str, resource: &str) -> Result<(), CognitoError> {
        if self.access_denied.iter().any(|denied| denied == operation) {
            return Err(CognitoError::access_denied(&format!("{service}:{operation}"), resource));
        }
        Ok(())
    }

    /// `TooManyRequestsException` when the category's bucket is empty.
    pub fn admit(&self, category: QuotaCategory) -> Result<(), CognitoError> {
        match self.buckets.get(&category) {
            Some(bucket) if !bucket.try_take() => Err(CognitoError::rate_exceeded()),
            _ => Ok(()),
        }
    }

    /// Runs the fault dice for one invocation of `trigger`: the error Cognito would answer with, after
    /// waiting as a timed-out function would.
    pub async fn invoke_trigger(&self, trigger: Trigger) -> Result<(), CognitoError> {
        let Some(fault) = self.triggers.iter().find(|f| f.trigger == trigger) else {
            return Ok(());
        };
        if fault.rate < 1.0 && rand::rng().random::<f64>() >= fault.rate {
            return Ok(());
        }
        let name = trigger.lambda_name();
        Err(match fault.failure {
            TriggerFailure::Error => {
                CognitoError::new(ErrorKind::UserLambdaValidation, format!("{name} failed with error Injected fault."))
            }
            TriggerFailure::BadOutput => {
                CognitoError::new(ErrorKind::InvalidLambdaResponse, "Unrecognizable lambda output")
            }
            TriggerFailure::Timeout => {
                tokio::time::sleep(fault.after).await;
                CognitoError::new(
                    ErrorKind::UnexpectedLambda,
                    format!("{name} invocation failed due to error Socket timeout while invoking Lambda function."),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::config::ThrottleConfig;

    #[test]
    fn a_bucket_admits_its_burst_then_refuses() {
        let config = FaultsConfig {
            throttle: ThrottleConfig { user_list: Some(5.0), ..Default::default() },
            ..Default::default()
        };
        let faults = Faults::new(&config);
        let admitted = (0..20).filter(|_| faults.admit(QuotaCategory::UserList).is_ok()).count();
        assert!((5..=6).contains(&admitted), "admitted {admitted}");
        assert!(faults.admit(QuotaCategory::UserRead).is_ok(), "unconfigured categories are unlimited");
        let refused = faults.admit(QuotaCategory::UserList).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::TooManyRequests);
        assert_eq!(refused.message, "Rate exceeded");
    }
}
