//! The AWS clients of the admin side — Cognito's admin operations (`users`, `preflight`) and SES v2
//! (`preflight`) — bound to a scenario's target: the standard credential chain and region (dummy
//! credentials for a local pool), `endpoint_url` honoured, and the SDK's standard retries on, since
//! admin calls should ride out throttling (the load client keeps them off to see it).

use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use aws_sdk_sesv2 as sesv2;

use crate::cognito::ResolvedTarget;

/// Where the SES v2 API is, when not where the target's `endpoint_url` (or AWS) says.
#[derive(Debug, Clone, Default)]
pub struct SesEndpoint(pub Option<String>);

/// The admin-side clients of one target.
#[derive(Debug, Clone)]
pub struct AdminClients {
    pub cognito: cip::Client,
    pub ses: sesv2::Client,
    pub target: ResolvedTarget,
}

impl AdminClients {
    /// Builds both clients. SES goes to `ses_endpoint` if set, else to the target's `endpoint_url` (the
    /// local pool serves SES too), else to AWS (where `AWS_ENDPOINT_URL_SESV2` still applies).
    /// `retries`: attempts per call, 1 = none (user creation paces and backs off itself).
    pub async fn new(target: &ResolvedTarget, ses_endpoint: &SesEndpoint, retries: u32) -> Self {
        let region = cip::config::Region::new(target.region.clone());
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(retries.max(1)))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(target.call_timeout.min(Duration::from_secs(5)))
                    .operation_attempt_timeout(target.call_timeout)
                    .build(),
            );
        if target.local {
            loader =
                loader.credentials_provider(cip::config::Credentials::new("local", "local", None, None, "otp-harness"));
        }
        let shared = loader.load().await;
        let mut cognito = cip::config::Builder::from(&shared);
        if let Some(url) = &target.endpoint_url {
            cognito = cognito.endpoint_url(url);
        }
        let mut ses = sesv2::config::Builder::from(&shared);
        if let Some(url) = ses_endpoint.0.as_ref().or(target.endpoint_url.as_ref()) {
            ses = ses.endpoint_url(url);
        }
        Self {
            cognito: cip::Client::from_conf(cognito.build()),
            ses: sesv2::Client::from_conf(ses.build()),
            target: target.clone(),
        }
    }
}
