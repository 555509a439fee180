//! `[[flow]]`: the flow mix — what each virtual user does, by weight — and the checks each kind of
//! flow makes.

use serde::Deserialize;

use super::Expect;
use super::error::{Locator, ScenarioError};
use crate::checks::Check;
use crate::cognito::Auth;

/// A virtual user's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Initiate, code, respond, tokens checked.
    Login,
    /// `wrong` wrong codes, then the right one: tokens.
    Retry,
    /// `max_attempts` wrong codes: locked; then the real code refused.
    Lockout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub kind: FlowKind,
    #[serde(default = "one")]
    pub weight: u32,
    /// retry: wrong codes before the right one.
    #[serde(default = "one")]
    pub wrong: u32,
    /// How this flow signs in (default: the scenario's `auth`; set when the scenario loads).
    pub auth: Option<Auth>,
}

impl FlowSpec {
    /// How this flow signs in.
    pub fn auth(&self) -> Auth {
        self.auth.unwrap_or_default()
    }

    /// Its name in the step metrics and reports: `login`, or `login.email_otp` for the native flow.
    pub fn name(&self) -> &'static str {
        flow_name(self.kind, self.auth())
    }
}

/// `login`, `retry`, `lockout`, each with `.email_otp` for the native flow.
pub fn flow_name(kind: FlowKind, auth: Auth) -> &'static str {
    match (kind, auth) {
        (FlowKind::Login, Auth::Custom) => "login",
        (FlowKind::Retry, Auth::Custom) => "retry",
        (FlowKind::Lockout, Auth::Custom) => "lockout",
        (FlowKind::Login, Auth::EmailOtp) => "login.email_otp",
        (FlowKind::Retry, Auth::EmailOtp) => "retry.email_otp",
        (FlowKind::Lockout, Auth::EmailOtp) => "lockout.email_otp",
    }
}

pub(super) fn default_flows() -> Vec<FlowSpec> {
    vec![FlowSpec { kind: FlowKind::Login, weight: 1, wrong: 1, auth: None }]
}

fn one() -> u32 {
    1
}

impl FlowKind {
    /// As the scenario, the step metrics and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            FlowKind::Login => "login",
            FlowKind::Retry => "retry",
            FlowKind::Lockout => "lockout",
        }
    }

    /// The checks a flow of this kind observes when it signs in with `auth`.
    pub fn checks(self, auth: Auth) -> &'static [Check] {
        match (self, auth) {
            (FlowKind::Login, Auth::Custom) => &[Check::SignIn, Check::Tokens],
            (FlowKind::Retry, Auth::Custom) => &[Check::Retry, Check::Tokens],
            (FlowKind::Lockout, Auth::Custom) => &[Check::Lockout, Check::LockoutRealCodeRefused],
            (FlowKind::Login, Auth::EmailOtp) => &[Check::SignIn, Check::Tokens, Check::CodeLength],
            (FlowKind::Retry, Auth::EmailOtp) => &[Check::Retry, Check::Tokens, Check::CodeLength],
            (FlowKind::Lockout, Auth::EmailOtp) => &[Check::Lockout, Check::LockoutRealCodeRefused, Check::CodeLength],
        }
    }
}

/// Checks the flow mix against the expected attempt limits.
pub(super) fn validate(flows: &[FlowSpec], expect: &Expect, at: &Locator<'_>) -> Result<(), ScenarioError> {
    if flows.is_empty() || flows.iter().all(|f| f.weight == 0) {
        return Err(at.error(
            "flow",
            0,
            "weight",
            "no flow has a weight above zero",
            "add [[flow]] kind = \"login\" weight = 1",
        ));
    }
    for (i, f) in flows.iter().enumerate() {
        let most = expect.wrong_codes_before_lock(f.auth());
        if f.kind == FlowKind::Retry && (f.wrong == 0 || f.wrong > most) {
            let limit = match f.auth() {
                Auth::Custom => format!("max_attempts = {}", expect.max_attempts),
                Auth::EmailOtp => format!("email_otp_max_wrong_codes = {}", expect.email_otp_max_wrong_codes),
            };
            return Err(at.error(
                "flow",
                i,
                "wrong",
                format!("a retry flow with wrong = {} cannot end in a sign-in when {limit}", f.wrong),
                &format!("set wrong between 1 and {}", most.max(1)),
            ));
        }
    }
    Ok(())
}
