//! `[thresholds]`: `"step.metric" = "condition"` pairs, parsed once when the scenario loads — a
//! condition that cannot be parsed is a scenario error (exit 2), never dropped.

use std::collections::BTreeMap;

use super::error::{Locator, ScenarioError};
use crate::thresholds::Threshold;

/// Parses every threshold, in key order.
pub(super) fn parse(conditions: &BTreeMap<String, String>, at: &Locator<'_>) -> Result<Vec<Threshold>, ScenarioError> {
    conditions
        .iter()
        .map(|(key, condition)| {
            Threshold::parse(key, condition).map_err(|e| {
                at.error(
                    "thresholds",
                    0,
                    key,
                    format!("threshold {key:?} = {condition:?}: {e}"),
                    "e.g. \"login.p99\" = \"2s\", \"login.success_rate\" = \">= 99%\", \"throttled.count\" = \"== 0\"",
                )
            })
        })
        .collect()
}
