//! `[[flow]]`: the flow mix — what each virtual user does, by weight — and the checks each kind of
//! flow makes.

use serde::Deserialize;

use super::error::{Locator, ScenarioError};
use crate::checks::Check;

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
}

pub(super) fn default_flows() -> Vec<FlowSpec> {
    vec![FlowSpec { kind: FlowKind::Login, weight: 1, wrong: 1 }]
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

    /// The checks a flow of this kind observes.
    pub fn checks(self) -> &'static [Check] {
        match self {
            FlowKind::Login => &[Check::SignIn, Check::Tokens],
            FlowKind::Retry => &[Check::Retry, Check::Tokens],
            FlowKind::Lockout => &[Check::Lockout, Check::LockoutRealCodeRefused],
        }
    }
}

/// Checks the flow mix against the expected attempt limit.
pub(super) fn validate(flows: &[FlowSpec], max_attempts: u32, at: &Locator<'_>) -> Result<(), ScenarioError> {
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
        if f.kind == FlowKind::Retry && (f.wrong == 0 || f.wrong >= max_attempts) {
            return Err(at.error(
                "flow",
                i,
                "wrong",
                format!(
                    "a retry flow with wrong = {} cannot end in a sign-in when max_attempts = {max_attempts}",
                    f.wrong
                ),
                &format!("set wrong between 1 and {}", max_attempts.saturating_sub(1).max(1)),
            ));
        }
    }
    Ok(())
}
