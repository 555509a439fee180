//! `[checks]` and `[report]`: the optional GetUser cross-check of every access token, and where and
//! how often the run writes what it measured.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, ScenarioError};

/// `[checks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckOptions {
    /// Call GetUser with every access token.
    pub get_user: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { get_user: true }
    }
}

/// `[report]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportOptions {
    /// Parent folder of the run folders.
    pub dir: PathBuf,
    /// How often the progress line is printed to stderr ("0s": never).
    #[serde(with = "humantime_serde")]
    pub progress: Duration,
    /// Length of one interval in `latency.hlog`.
    #[serde(with = "humantime_serde")]
    pub hlog_interval: Duration,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { dir: PathBuf::from("reports"), progress: Duration::from_secs(2), hlog_interval: Duration::from_secs(1) }
    }
}

impl ReportOptions {
    pub(super) fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.hlog_interval < Duration::from_millis(100) {
            return Err(at.error(
                "report",
                0,
                "hlog_interval",
                "report.hlog_interval must be at least 100ms",
                "e.g. hlog_interval = \"1s\"",
            ));
        }
        Ok(())
    }
}
