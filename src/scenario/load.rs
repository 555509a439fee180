//! `[load]`: how sign-ins arrive — the closed model (virtual users, iterations and/or a duration, ramp,
//! think time) or the open model (a rate or stages, an in-flight cap) — and the early abort.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::error::{Locator, ScenarioError};

/// How sign-ins arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// A fixed number of virtual users, each starting its next flow when the last one ends.
    Closed,
    /// Sign-ins started at a target rate, whatever the pool's latency (capped by `max_in_flight`).
    Open,
}

/// One stage of the open model: the rate ramps linearly to `rate` over `duration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub rate: f64,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// The workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    pub model: LoadModel,
    /// closed: virtual users, each on a test user of its own.
    pub users: u32,
    /// Flows per virtual user (the run also stops at `duration`).
    pub iterations: Option<u32>,
    #[serde(with = "humantime_serde::option")]
    pub duration: Option<Duration>,
    /// Virtual users start evenly over this time.
    #[serde(with = "humantime_serde")]
    pub ramp: Duration,
    /// Think time between a virtual user's flows.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Pause after a flow that ended in an error (throttling, time-out…), so a struggling pool is not
    /// hammered in a tight loop.
    #[serde(with = "humantime_serde")]
    pub error_backoff: Duration,
    /// open: a constant rate of sign-ins per second, for `duration`.
    pub rate: Option<f64>,
    /// open: stages instead of a constant rate.
    pub stages: Vec<Stage>,
    /// open: the rate the first stage ramps from (default: the first stage's rate).
    pub start_rate: Option<f64>,
    /// open: most sign-ins in flight at once (each on a test user of its own); a start with none free
    /// is dropped and counted.
    pub max_in_flight: u32,
    /// Also write goose's own report (`.html`, `.json` or `.md`) under this name in the run folder.
    pub goose_report: Option<String>,
    /// Threshold keys (from `[thresholds]`) checked every second while the load runs: the first
    /// breach ends the run early (after `abort_grace`).
    pub abort_on: Vec<String>,
    /// No early abort before the load has run this long.
    #[serde(with = "humantime_serde")]
    pub abort_grace: Duration,
    /// After Ctrl-C, SIGTERM or SIGHUP, how long the flows in flight may take to finish before the run
    /// stops waiting for them and writes its reports (keep it below the pod's or job's own grace).
    #[serde(with = "humantime_serde")]
    pub stop_grace: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            users: 1,
            iterations: None,
            duration: None,
            ramp: Duration::ZERO,
            pause: Duration::ZERO,
            error_backoff: Duration::from_millis(250),
            model: LoadModel::Closed,
            rate: None,
            stages: Vec::new(),
            start_rate: None,
            max_in_flight: 50,
            goose_report: None,
            abort_on: Vec::new(),
            abort_grace: Duration::from_secs(5),
            stop_grace: Duration::from_secs(10),
        }
    }
}

impl Load {
    /// Virtual users (closed) or the in-flight cap (open): how many test users the load signs in as.
    pub fn virtual_users(&self) -> u32 {
        match self.model {
            LoadModel::Closed => self.users,
            LoadModel::Open => self.max_in_flight,
        }
    }

    /// The open model's stages, a constant `rate` being one stage.
    pub fn open_stages(&self) -> Vec<Stage> {
        match (self.rate, self.duration) {
            (Some(rate), Some(duration)) => vec![Stage { rate, duration }],
            _ => self.stages.clone(),
        }
    }

    /// Flows per virtual user: `iterations`, else unbounded by count when a duration is set, else 5.
    pub fn iterations_per_user(&self) -> Option<u32> {
        match (self.iterations, self.duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(5),
        }
    }

    pub(super) fn validate(
        &self,
        thresholds: &BTreeMap<String, String>,
        at: &Locator<'_>,
    ) -> Result<(), ScenarioError> {
        if self.users == 0 {
            return Err(at.error("load", 0, "users", "load.users must be at least 1", "e.g. users = 5"));
        }
        match self.model {
            LoadModel::Closed => {
                for (key, set) in [
                    ("rate", self.rate.is_some()),
                    ("stages", !self.stages.is_empty()),
                    ("start_rate", self.start_rate.is_some()),
                ] {
                    if set {
                        return Err(at.error(
                            "load",
                            0,
                            key,
                            format!("load.{key} is for model = \"open\""),
                            "set model = \"open\", or use users and iterations/duration",
                        ));
                    }
                }
            }
            LoadModel::Open => self.validate_open(at)?,
        }
        for key in &self.abort_on {
            if !thresholds.contains_key(key) {
                return Err(at.error(
                    "load",
                    0,
                    "abort_on",
                    format!("load.abort_on names {key:?}, which is not in [thresholds]"),
                    "list keys of [thresholds], e.g. abort_on = [\"login.success_rate\"]",
                ));
            }
        }
        if let Some(name) = &self.goose_report {
            let ok_ext = [".html", ".htm", ".json", ".md"].iter().any(|e| name.ends_with(e));
            if !ok_ext || name.contains('/') {
                return Err(at.error(
                    "load",
                    0,
                    "goose_report",
                    format!("goose_report {name:?} must be a file name ending in .html, .json or .md"),
                    "e.g. goose_report = \"goose.html\"",
                ));
            }
        }
        if self.stop_grace > Duration::from_secs(600) {
            return Err(at.error(
                "load",
                0,
                "stop_grace",
                "load.stop_grace must be at most 10m",
                "e.g. stop_grace = \"10s\" (Kubernetes sends SIGKILL 30 s after SIGTERM by default)",
            ));
        }
        if self.iterations == Some(0) {
            return Err(at.error(
                "load",
                0,
                "iterations",
                "load.iterations must be at least 1",
                "e.g. iterations = 10, or remove it and set duration",
            ));
        }
        if self.duration.is_some_and(|d| d.is_zero() || d > Duration::from_secs(24 * 3600)) {
            return Err(at.error(
                "load",
                0,
                "duration",
                "load.duration must be between 1s and 24h",
                "e.g. duration = \"5m\"",
            ));
        }
        Ok(())
    }

    fn validate_open(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.rate.is_some() != self.stages.is_empty() {
            return Err(at.error(
                "load",
                0,
                "rate",
                "model = \"open\" needs either rate (with duration) or stages",
                "e.g. rate = 20 and duration = \"1m\", or stages = [{ rate = 50, duration = \"2m\" }]",
            ));
        }
        if self.rate.is_some() && self.duration.is_none() {
            return Err(at.error("load", 0, "rate", "a constant rate needs a duration", "add duration = \"1m\""));
        }
        if self.iterations.is_some() {
            return Err(at.error(
                "load",
                0,
                "iterations",
                "iterations are for model = \"closed\"",
                "the open model runs for its duration or stages",
            ));
        }
        let stages = self.open_stages();
        let mut rates = stages.iter().map(|s| s.rate).chain(self.start_rate);
        if rates.any(|r| !r.is_finite() || !(0.0..=100_000.0).contains(&r)) || stages.iter().all(|s| s.rate <= 0.0) {
            return Err(at.error(
                "load",
                0,
                if self.rate.is_some() { "rate" } else { "stages" },
                "rates must be between 0 and 100000 sign-ins per second, and some stage above 0",
                "e.g. rate = 20",
            ));
        }
        let total = stages.iter().try_fold(Duration::ZERO, |sum, s| sum.checked_add(s.duration));
        if total.is_none_or(|t| t.is_zero() || t > Duration::from_secs(24 * 3600)) {
            return Err(at.error(
                "load",
                0,
                "stages",
                "the open model's stages must last between 1s and 24h in all",
                "give each stage a duration like \"30s\"",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(at.error(
                "load",
                0,
                "max_in_flight",
                "load.max_in_flight must be at least 1",
                "e.g. max_in_flight = 50",
            ));
        }
        Ok(())
    }
}

impl LoadModel {
    /// As the scenario and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            LoadModel::Closed => "closed",
            LoadModel::Open => "open",
        }
    }
}
