//! What the preflight reads from the deployed pool and the account: DescribeUserPool,
//! DescribeUserPoolClient, and SES v2 GetAccount, GetEmailIdentity and the suppression list. Each fact
//! is either read or a gap — refused (AccessDenied: the verdicts that need it are skipped, saying so)
//! or unavailable (not served by the endpoint, or failed).

use std::collections::BTreeSet;

use aws_sdk_sesv2::types::SuppressionListReason;
use serde::Serialize;

use crate::admin::AdminClients;
use crate::cognito::CallError;

/// A fact the preflight could not read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Gap {
    /// The caller may not call the action (e.g. `ses:GetAccount`).
    Denied(String),
    /// Not served here, or failed: the reason.
    Unavailable(String),
}

impl Gap {
    fn from_error(action: &str, error: CallError) -> Self {
        if error.type_name == "AccessDeniedException" || error.type_name == "AccessDenied" {
            Gap::Denied(action.to_string())
        } else if error.type_name == "UnknownError" && error.message.is_empty() {
            // An answer with no AWS error in it: a 404 page, typically, from an emulator without it.
            Gap::Unavailable(format!("{action} is not served by this endpoint (its answer is not an AWS error)"))
        } else {
            Gap::Unavailable(format!("{action} failed: {error}"))
        }
    }

    /// The verdict line of a check that needed this fact.
    pub fn skipped(&self) -> String {
        match self {
            Gap::Denied(action) => format!("skipped: AccessDenied for {action}"),
            Gap::Unavailable(why) => format!("skipped: {why}"),
        }
    }
}

pub type Fact<T> = Result<T, Gap>;

/// What DescribeUserPool says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PoolFacts {
    pub tier: Option<String>,
    pub first_auth_factors: Vec<String>,
    pub email_sending_account: Option<String>,
    /// `EmailConfiguration.From` (DEVELOPER).
    pub email_from: Option<String>,
    pub define_trigger: bool,
    pub create_trigger: bool,
    pub verify_trigger: bool,
    pub threat_protection: Option<String>,
}

/// What DescribeUserPoolClient says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClientFacts {
    pub explicit_auth_flows: Vec<String>,
    pub auth_session_validity_minutes: Option<i32>,
    pub prevent_user_existence_errors: Option<String>,
    pub has_secret: bool,
}

/// What SES v2 GetAccount says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SesAccount {
    pub production_access: bool,
    pub sending_enabled: bool,
    pub max_24_hour_send: f64,
    pub max_send_rate: f64,
    pub sent_last_24_hours: f64,
    pub enforcement_status: Option<String>,
}

/// An SES identity as GetEmailIdentity reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    /// The address or domain looked up.
    pub name: String,
    /// None: no such identity.
    pub verified_for_sending: Option<bool>,
}

/// Pool and client (both from the Cognito endpoint).
pub async fn pool(clients: &AdminClients) -> Fact<PoolFacts> {
    let out = clients
        .cognito
        .describe_user_pool()
        .user_pool_id(&clients.target.user_pool_id)
        .send()
        .await
        .map_err(|e| Gap::from_error("cognito-idp:DescribeUserPool", CallError::from_sdk(e)))?;
    let Some(p) = out.user_pool() else {
        return Err(Gap::Unavailable("DescribeUserPool answered without a UserPool".into()));
    };
    let lambda = p.lambda_config();
    let email = p.email_configuration();
    Ok(PoolFacts {
        tier: p.user_pool_tier().map(|t| t.as_str().to_string()),
        first_auth_factors: p
            .policies()
            .and_then(|x| x.sign_in_policy())
            .map(|s| s.allowed_first_auth_factors().iter().map(|f| f.as_str().to_string()).collect())
            .unwrap_or_default(),
        email_sending_account: email.and_then(|e| e.email_sending_account()).map(|a| a.as_str().to_string()),
        email_from: email.and_then(|e| e.from()).map(str::to_string),
        define_trigger: lambda.and_then(|l| l.define_auth_challenge()).is_some(),
        create_trigger: lambda.and_then(|l| l.create_auth_challenge()).is_some(),
        verify_trigger: lambda.and_then(|l| l.verify_auth_challenge_response()).is_some(),
        threat_protection: p.user_pool_add_ons().map(|a| a.advanced_security_mode().as_str().to_string()),
    })
}

pub async fn client(clients: &AdminClients) -> Fact<ClientFacts> {
    let out = clients
        .cognito
        .describe_user_pool_client()
        .user_pool_id(&clients.target.user_pool_id)
        .client_id(&clients.target.client_id)
        .send()
        .await
        .map_err(|e| Gap::from_error("cognito-idp:DescribeUserPoolClient", CallError::from_sdk(e)))?;
    let Some(c) = out.user_pool_client() else {
        return Err(Gap::Unavailable("DescribeUserPoolClient answered without a UserPoolClient".into()));
    };
    Ok(ClientFacts {
        explicit_auth_flows: c.explicit_auth_flows().iter().map(|f| f.as_str().to_string()).collect(),
        auth_session_validity_minutes: c.auth_session_validity(),
        prevent_user_existence_errors: c.prevent_user_existence_errors().map(|p| p.as_str().to_string()),
        // The secret's value is never kept: only that there is one.
        has_secret: c.client_secret().is_some_and(|s| !s.is_empty()),
    })
}

pub async fn ses_account(clients: &AdminClients) -> Fact<SesAccount> {
    let out = clients
        .ses
        .get_account()
        .send()
        .await
        .map_err(|e| Gap::from_error("ses:GetAccount", CallError::from_sdk(e)))?;
    let quota = out.send_quota();
    Ok(SesAccount {
        production_access: out.production_access_enabled(),
        sending_enabled: out.sending_enabled(),
        max_24_hour_send: quota.map_or(0.0, |q| q.max24_hour_send()),
        max_send_rate: quota.map_or(0.0, |q| q.max_send_rate()),
        sent_last_24_hours: quota.map_or(0.0, |q| q.sent_last24_hours()),
        enforcement_status: out.enforcement_status().map(str::to_string),
    })
}

/// GetEmailIdentity for `name` (an address or a domain).
pub async fn identity(clients: &AdminClients, name: &str) -> Fact<Identity> {
    match clients.ses.get_email_identity().email_identity(name).send().await {
        Ok(out) => {
            Ok(Identity { name: name.to_string(), verified_for_sending: Some(out.verified_for_sending_status()) })
        }
        Err(e) => {
            let error = CallError::from_sdk(e);
            if error.type_name == "NotFoundException" {
                Ok(Identity { name: name.to_string(), verified_for_sending: None })
            } else {
                Err(Gap::from_error("ses:GetEmailIdentity", error))
            }
        }
    }
}

/// The address's identity, or failing that its domain's: whichever exists (an address identity wins).
/// A policy may allow GetEmailIdentity on the domain identity only, so a refused address lookup still
/// tries the domain.
pub async fn sender_identity(clients: &AdminClients, address: &str) -> Fact<Identity> {
    let by_address = identity(clients, address).await;
    if by_address.as_ref().is_ok_and(|found| found.verified_for_sending.is_some()) {
        return by_address;
    }
    let Some((_, domain)) = address.rsplit_once('@') else {
        return by_address;
    };
    let by_domain = identity(clients, domain).await;
    match (by_address, by_domain) {
        (_, Ok(found)) if found.verified_for_sending.is_some() => Ok(found),
        // Neither exists.
        (Ok(not_found), Ok(_)) => Ok(not_found),
        // One could not be read: the verdict cannot be given.
        (Err(gap), _) | (_, Err(gap)) => Err(gap),
    }
}

/// How many pages of the suppression list are read at most (1,000 addresses each).
const MAX_SUPPRESSION_PAGES: usize = 20;
/// How many addresses are looked up one by one when the list cannot be read.
const MAX_SINGLE_LOOKUPS: usize = 10;

/// The test addresses on the account's suppression list, and how many addresses were checked.
pub async fn suppressed(clients: &AdminClients, addresses: &[String]) -> Fact<(Vec<String>, usize)> {
    let wanted: BTreeSet<String> = addresses.iter().map(|a| a.to_ascii_lowercase()).collect();
    if let Ok(Some(listed)) = list_suppressed(clients).await {
        let hits = wanted.iter().filter(|a| listed.contains(*a)).cloned().collect();
        return Ok((hits, wanted.len()));
    }
    // The list could not be read whole: look the first test addresses up one by one.
    let mut hits = Vec::new();
    let mut checked = 0;
    for address in wanted.iter().take(MAX_SINGLE_LOOKUPS) {
        match clients.ses.get_suppressed_destination().email_address(address).send().await {
            Ok(_) => hits.push(address.clone()),
            Err(e) => {
                let error = CallError::from_sdk(e);
                if error.type_name != "NotFoundException" {
                    return Err(Gap::from_error("ses:GetSuppressedDestination", error));
                }
            }
        }
        checked += 1;
    }
    Ok((hits, checked))
}

/// The whole suppression list (lower-cased), or None when it is longer than the pages read.
async fn list_suppressed(clients: &AdminClients) -> Fact<Option<BTreeSet<String>>> {
    let mut listed = BTreeSet::new();
    let mut token = None;
    for _ in 0..MAX_SUPPRESSION_PAGES {
        let out = clients
            .ses
            .list_suppressed_destinations()
            .reasons(SuppressionListReason::Bounce)
            .reasons(SuppressionListReason::Complaint)
            .page_size(1000)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| Gap::from_error("ses:ListSuppressedDestinations", CallError::from_sdk(e)))?;
        listed.extend(out.suppressed_destination_summaries().iter().map(|s| s.email_address().to_ascii_lowercase()));
        match out.next_token().filter(|t| !t.is_empty()) {
            Some(next) => token = Some(next.to_string()),
            None => return Ok(Some(listed)),
        }
    }
    Ok(None)
}
