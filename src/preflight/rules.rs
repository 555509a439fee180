//! The preflight's rules: the facts read from the pool and the account, against what the scenario
//! plans, as verdicts — pure functions, so that each verdict is tested against the fact that makes it
//! fail. Every message names the setting and the numbers.

use crate::cognito::Auth;
use crate::scenario::{Scenario, UserExistence};

use super::facts::{ClientFacts, Fact, Identity, PoolFacts, SesAccount};
use super::plan::Plan;
use super::{Area, Verdict};

/// Cognito's documented default quotas (shared/ses-wire.md §6; may have been raised for an account).
pub mod quota {
    /// UserAuthentication: InitiateAuth and friends, per second, shared by the account's pools in a region.
    pub const USER_AUTHENTICATION: f64 = 120.0;
    /// RespondToAuthChallenge's own allowance: three times UserAuthentication.
    pub const RESPOND_TO_AUTH_CHALLENGE: f64 = 360.0;
    /// Calls per second per user (InitiateAuth, RespondToAuthChallenge, GetUser).
    pub const PER_USER: f64 = 10.0;
    /// Cognito's own sender (COGNITO_DEFAULT): mails per day per account.
    pub const COGNITO_DEFAULT_MAILS_PER_DAY: f64 = 50.0;
}

/// Share of a quota above which a plan gets a warning even though it fits.
const NEAR_LIMIT: f64 = 0.8;

fn uses(plan: &Plan, auth: Auth) -> bool {
    plan.auths.contains(&auth)
}

/// DescribeUserPool verdicts.
pub fn pool(facts: &Fact<PoolFacts>, plan: &Plan) -> Vec<Verdict> {
    let p = match facts {
        Ok(p) => p,
        Err(gap) => return vec![Verdict::skip(Area::Pool, "pool", gap.skipped())],
    };
    let mut out = Vec::new();
    if uses(plan, Auth::Custom) {
        let missing: Vec<&str> =
            [("Define", p.define_trigger), ("Create", p.create_trigger), ("Verify", p.verify_trigger)]
                .into_iter()
                .filter_map(|(name, set)| (!set).then_some(name))
                .collect();
        out.push(if missing.is_empty() {
            Verdict::pass(Area::Pool, "pool.triggers", "Define, Create and Verify auth challenge triggers are set")
        } else {
            Verdict::fail(
                Area::Pool,
                "pool.triggers",
                format!("custom auth needs the {} trigger(s): LambdaConfig lacks them", missing.join(", ")),
            )
        });
    }
    if uses(plan, Auth::EmailOtp) {
        let tier = p.tier.as_deref().unwrap_or("unknown");
        out.push(if matches!(tier, "ESSENTIALS" | "PLUS") {
            Verdict::pass(Area::Pool, "pool.tier", format!("UserPoolTier {tier} allows native EMAIL_OTP sign-in"))
        } else {
            Verdict::fail(
                Area::Pool,
                "pool.tier",
                format!("UserPoolTier {tier}: native EMAIL_OTP sign-in needs ESSENTIALS or PLUS"),
            )
        });
        out.push(if p.first_auth_factors.iter().any(|f| f == "EMAIL_OTP") {
            Verdict::pass(Area::Pool, "pool.first_factors", "SignInPolicy.AllowedFirstAuthFactors has EMAIL_OTP")
        } else {
            Verdict::fail(
                Area::Pool,
                "pool.first_factors",
                format!(
                    "SignInPolicy.AllowedFirstAuthFactors is [{}]: add EMAIL_OTP for USER_AUTH sign-in by email code",
                    p.first_auth_factors.join(", ")
                ),
            )
        });
        let account = p.email_sending_account.as_deref().unwrap_or("COGNITO_DEFAULT");
        out.push(if account == "DEVELOPER" {
            Verdict::pass(Area::Pool, "pool.email_sending", "EmailConfiguration DEVELOPER: codes go out through your SES")
        } else if plan.mails_total > quota::COGNITO_DEFAULT_MAILS_PER_DAY {
            Verdict::fail(
                Area::Pool,
                "pool.email_sending",
                format!(
                    "EmailConfiguration COGNITO_DEFAULT sends at most {} mails a day per account; the run plans about {:.0}",
                    quota::COGNITO_DEFAULT_MAILS_PER_DAY,
                    plan.mails_total
                ),
            )
        } else {
            Verdict::warn(
                Area::Pool,
                "pool.email_sending",
                format!(
                    "EmailConfiguration COGNITO_DEFAULT: {} mails a day per account, about {:.0} planned; use DEVELOPER (SES) for load",
                    quota::COGNITO_DEFAULT_MAILS_PER_DAY,
                    plan.mails_total
                ),
            )
        });
    }
    let mode = p.threat_protection.as_deref().unwrap_or("OFF");
    out.push(if matches!(mode, "AUDIT" | "ENFORCED") {
        Verdict::warn(
            Area::Pool,
            "pool.threat_protection",
            format!(
                "threat protection is {mode}: thousands of sign-ins from one address may be scored as risky and \
                 blocked or challenged (ENFORCED) — run from an allow-listed address or turn it to AUDIT/OFF for the test"
            ),
        )
    } else {
        Verdict::pass(Area::Pool, "pool.threat_protection", "threat protection is off")
    });
    out
}

/// DescribeUserPoolClient verdicts.
pub fn client(facts: &Fact<ClientFacts>, plan: &Plan, scenario: &Scenario) -> Vec<Verdict> {
    let c = match facts {
        Ok(c) => c,
        Err(gap) => return vec![Verdict::skip(Area::Client, "client", gap.skipped())],
    };
    let mut out = Vec::new();
    let needed: Vec<&str> = plan
        .auths
        .iter()
        .map(|a| match a {
            Auth::Custom => "ALLOW_CUSTOM_AUTH",
            Auth::EmailOtp => "ALLOW_USER_AUTH",
        })
        .collect();
    let missing: Vec<&str> = needed.iter().copied().filter(|f| !c.explicit_auth_flows.iter().any(|g| g == f)).collect();
    out.push(if missing.is_empty() {
        Verdict::pass(Area::Client, "client.auth_flows", format!("ExplicitAuthFlows allow {}", needed.join(", ")))
    } else {
        Verdict::fail(
            Area::Client,
            "client.auth_flows",
            format!("ExplicitAuthFlows [{}] lack {}", c.explicit_auth_flows.join(", "), missing.join(", ")),
        )
    });
    // Cognito's default is 3 minutes when the field is absent.
    let minutes = c.auth_session_validity_minutes.unwrap_or(3);
    let timeout = scenario.otp.timeout.as_secs_f64();
    out.push(if timeout <= f64::from(minutes) * 60.0 {
        Verdict::pass(
            Area::Client,
            "client.session_validity",
            format!("AuthSessionValidity {minutes} min covers the OTP time-out ({timeout:.0}s)"),
        )
    } else {
        Verdict::warn(
            Area::Client,
            "client.session_validity",
            format!(
                "AuthSessionValidity is {minutes} min but otp.timeout is {timeout:.0}s: a code that arrives late \
                 meets an expired session (NotAuthorizedException), not a slow inbox"
            ),
        )
    });
    let setting = c.prevent_user_existence_errors.as_deref().unwrap_or("LEGACY");
    let (expected, wanted) = match scenario.expect.user_existence {
        UserExistence::Hidden => ("hidden", "ENABLED"),
        UserExistence::Revealed => ("revealed", "LEGACY"),
    };
    out.push(if setting == wanted {
        Verdict::pass(
            Area::Client,
            "client.user_existence",
            format!("PreventUserExistenceErrors {setting} matches expect.user_existence = \"{expected}\""),
        )
    } else {
        Verdict::fail(
            Area::Client,
            "client.user_existence",
            format!(
                "PreventUserExistenceErrors is {setting} but expect.user_existence = \"{expected}\" wants {wanted}: \
                 the unknown-user probe would fail"
            ),
        )
    });
    out.push(if c.has_secret {
        Verdict::fail(
            Area::Client,
            "client.secret",
            "the app client has a secret: every InitiateAuth needs a SECRET_HASH, which otp-harness does not send; \
             use an app client without a secret (as public clients are)",
        )
    } else {
        Verdict::pass(Area::Client, "client.secret", "the app client has no secret")
    });
    out
}

/// Whether mail goes through the account's SES: custom auth (the triggers send it) or native
/// EMAIL_OTP with DEVELOPER.
pub fn mail_goes_through_ses(plan: &Plan, pool: &Fact<PoolFacts>) -> bool {
    let developer = pool.as_ref().map_or(true, |p| p.email_sending_account.as_deref() != Some("COGNITO_DEFAULT"));
    uses(plan, Auth::Custom) || developer
}

/// SES account verdicts: sending enabled, sandbox, daily quota and rate against the plan.
pub fn ses_account(facts: &Fact<SesAccount>, plan: &Plan) -> Vec<Verdict> {
    let a = match facts {
        Ok(a) => a,
        Err(gap) => return vec![Verdict::skip(Area::Ses, "ses.account", gap.skipped())],
    };
    let mut out = Vec::new();
    out.push(if a.sending_enabled {
        Verdict::pass(Area::Ses, "ses.sending_enabled", "SES sending is enabled")
    } else {
        Verdict::fail(
            Area::Ses,
            "ses.sending_enabled",
            format!(
                "SES sending is paused for the account (EnforcementStatus {}): no code would be mailed",
                a.enforcement_status.as_deref().unwrap_or("unknown")
            ),
        )
    });
    out.push(if a.production_access {
        Verdict::pass(Area::Ses, "ses.sandbox", "the SES account has production access")
    } else {
        Verdict::warn(
            Area::Ses,
            "ses.sandbox",
            format!(
                "the SES account is in the sandbox: {:.0} mails a day, {:.0} per second, and only to verified addresses",
                a.max_24_hour_send, a.max_send_rate
            ),
        )
    });
    if a.max_24_hour_send >= 0.0 {
        let left = (a.max_24_hour_send - a.sent_last_24_hours).max(0.0);
        let message = format!(
            "about {:.0} mails planned; SES daily quota {:.0}, {:.0} sent in the last 24 h, {left:.0} left",
            plan.mails_total, a.max_24_hour_send, a.sent_last_24_hours
        );
        out.push(if plan.mails_total > left {
            Verdict::fail(Area::Ses, "ses.daily_quota", format!("{message}: the run would exhaust it"))
        } else if plan.mails_total > NEAR_LIMIT * left {
            Verdict::warn(Area::Ses, "ses.daily_quota", format!("{message}: close to the limit"))
        } else {
            Verdict::pass(Area::Ses, "ses.daily_quota", message)
        });
    } else {
        out.push(Verdict::pass(Area::Ses, "ses.daily_quota", "SES daily quota is unlimited"));
    }
    let message =
        format!("planned peak {:.1} mails/s against SES MaxSendRate {:.1}/s", plan.mails_per_second, a.max_send_rate);
    out.push(if plan.mails_per_second > a.max_send_rate {
        Verdict::warn(
            Area::Ses,
            "ses.send_rate",
            format!("{message}: SES will throttle the triggers' sends, so the run measures SES, not the pool"),
        )
    } else if plan.mails_per_second > NEAR_LIMIT * a.max_send_rate {
        Verdict::warn(Area::Ses, "ses.send_rate", format!("{message}: close to the limit"))
    } else {
        Verdict::pass(Area::Ses, "ses.send_rate", message)
    });
    out
}

/// The sender identity (`otp.from`, else the pool's EmailConfiguration.From; `pool` says why neither
/// is known).
pub fn sender(identity: Option<&Fact<Identity>>, pool: &Fact<PoolFacts>) -> Verdict {
    match identity {
        None => Verdict::skip(
            Area::Ses,
            "ses.sender_identity",
            match pool {
                Err(gap) => format!("{} (it names the sender; or set otp.from)", gap.skipped()),
                Ok(_) => "skipped: no sender known (set otp.from to the address the codes come from)".to_string(),
            },
        ),
        Some(Err(gap)) => Verdict::skip(Area::Ses, "ses.sender_identity", gap.skipped()),
        Some(Ok(Identity { name, verified_for_sending: Some(true) })) => {
            Verdict::pass(Area::Ses, "ses.sender_identity", format!("SES identity {name} is verified for sending"))
        }
        Some(Ok(Identity { name, verified_for_sending: Some(false) })) => Verdict::fail(
            Area::Ses,
            "ses.sender_identity",
            format!("SES identity {name} is not verified for sending: SES refuses mail from it (MessageRejected)"),
        ),
        Some(Ok(Identity { name, verified_for_sending: None })) => Verdict::fail(
            Area::Ses,
            "ses.sender_identity",
            format!("{name} is not an SES identity of this account (nor is its domain): SES refuses mail from it"),
        ),
    }
}

/// In the sandbox, the test users' domain must be verified too.
pub fn sandbox_recipients(account: &Fact<SesAccount>, recipients: Option<&Fact<Identity>>) -> Option<Verdict> {
    if account.as_ref().map_or(true, |a| a.production_access) {
        return None;
    }
    Some(match recipients {
        None => return None,
        Some(Err(gap)) => Verdict::skip(Area::Ses, "ses.sandbox_recipients", gap.skipped()),
        Some(Ok(Identity { name, verified_for_sending: Some(true) })) => Verdict::pass(
            Area::Ses,
            "ses.sandbox_recipients",
            format!("sandbox: the test users' identity {name} is verified, so SES delivers to them"),
        ),
        Some(Ok(Identity { name, .. })) => Verdict::fail(
            Area::Ses,
            "ses.sandbox_recipients",
            format!("sandbox: SES delivers only to verified addresses, and {name} is not verified"),
        ),
    })
}

/// Test addresses on the suppression list.
pub fn suppression(facts: &Fact<(Vec<String>, usize)>) -> Verdict {
    match facts {
        Err(gap) => Verdict::skip(Area::Ses, "ses.suppression", gap.skipped()),
        Ok((hits, checked)) if hits.is_empty() => Verdict::pass(
            Area::Ses,
            "ses.suppression",
            format!("none of the {checked} test addresses checked is on the account's suppression list"),
        ),
        Ok((hits, checked)) => Verdict::fail(
            Area::Ses,
            "ses.suppression",
            format!(
                "{} of the {checked} test addresses checked are on the account's suppression list (first: {}): SES \
                 accepts their mail and drops it",
                hits.len(),
                hits[0]
            ),
        ),
    }
}

/// Cognito's rate quotas against the plan.
pub fn quotas(plan: &Plan) -> Vec<Verdict> {
    let mut out = Vec::new();
    for (id, name, planned, limit) in [
        (
            "quota.user_authentication",
            "InitiateAuth calls against the UserAuthentication quota",
            plan.initiate_per_second,
            quota::USER_AUTHENTICATION,
        ),
        (
            "quota.respond_to_auth_challenge",
            "RespondToAuthChallenge calls against their own allowance",
            plan.respond_per_second,
            quota::RESPOND_TO_AUTH_CHALLENGE,
        ),
        (
            "quota.per_user",
            "calls per test user against the per-user limit",
            plan.calls_per_user_per_second,
            quota::PER_USER,
        ),
    ] {
        let message = format!("planned peak {planned:.1}/s {name} (Cognito's default: {limit:.0}/s)");
        out.push(if planned > limit {
            Verdict::warn(
                Area::Quota,
                id,
                format!("{message} (shared by every pool of the account and region unless raised): expect throttling"),
            )
        } else if planned > NEAR_LIMIT * limit {
            Verdict::warn(Area::Quota, id, format!("{message}: close to the limit"))
        } else {
            Verdict::pass(Area::Quota, id, message)
        });
    }
    out
}

/// What the run will cost, from the scenario's `[preflight]` prices.
pub fn cost(plan: &Plan, scenario: &Scenario, mail_through_ses: bool) -> Verdict {
    let prices = &scenario.preflight;
    let users = f64::from(plan.distinct_users) * prices.price_per_mau;
    let mails = if mail_through_ses { plan.mails_total / 1000.0 * prices.price_per_1000_mails } else { 0.0 };
    let total = users + mails;
    let message = format!(
        "about ${total:.2}: {} monthly active users × ${} + {:.0} mails × ${}/1000 (prices from [preflight]; before any free tier)",
        plan.distinct_users, prices.price_per_mau, plan.mails_total, prices.price_per_1000_mails
    );
    if total > prices.warn_cost_above {
        Verdict::warn(
            Area::Cost,
            "cost.estimate",
            format!("{message}, above warn_cost_above = ${}", prices.warn_cost_above),
        )
    } else {
        Verdict::pass(Area::Cost, "cost.estimate", message)
    }
}
