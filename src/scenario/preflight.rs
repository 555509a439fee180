//! `[preflight]`: what `otp-harness preflight` (and `run` before its load) assumes when it estimates a
//! run's cost — prices change, so they are settings with documented defaults — and above which cost it
//! warns.

use serde::Deserialize;

use super::error::{Locator, ScenarioError};

/// `[preflight]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreflightOptions {
    /// USD per monthly active user (Cognito Essentials list price, us-east-1, before any free tier,
    /// read 2026-11; Lite is 0.0055, Plus 0.02).
    pub price_per_mau: f64,
    /// USD per 1,000 mails sent through SES (list price, read 2026-11; Cognito's own sender is free).
    pub price_per_1000_mails: f64,
    /// Warn when the estimate is above this many USD.
    pub warn_cost_above: f64,
}

impl Default for PreflightOptions {
    fn default() -> Self {
        Self { price_per_mau: 0.015, price_per_1000_mails: 0.10, warn_cost_above: 10.0 }
    }
}

impl PreflightOptions {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        for (key, value) in [
            ("price_per_mau", self.price_per_mau),
            ("price_per_1000_mails", self.price_per_1000_mails),
            ("warn_cost_above", self.warn_cost_above),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(at.error(
                    "preflight",
                    0,
                    key,
                    format!("preflight.{key} = {value} must be a price of zero or more (USD)"),
                    "e.g. price_per_mau = 0.015",
                ));
            }
        }
        Ok(())
    }
}
