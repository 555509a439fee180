//! Scenario files (TOML): the target pool, the test users, where codes are read, the flow mix, the
//! probes, what the pool is expected to do, the load and the thresholds — one submodule per table, each
//! with its own validation. `Scenario::load` parses and validates; every problem comes back as a
//! `ScenarioError` naming the file, the line and the fix.

pub mod error;
mod expect;
mod flows;
mod load;
mod otp;
mod preflight;
mod probes;
mod report;
mod target;
mod thresholds;
mod users;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use error::ScenarioError;
use error::{Locator, line_of_offset};
pub use expect::{Expect, UserExistence};
pub use flows::{FlowKind, FlowSpec, flow_name};
pub use load::{Load, LoadModel, Stage};
pub use otp::{
    AfterRead, ImapMode, ImapOptions, Otp, OtpSourceKind, OutboxOptions, S3Options, check_queue_url, is_loopback_host,
};
pub use otp::{DEFAULT_TOKEN_REFRESH, ImapAuth};
pub use preflight::PreflightOptions;
pub use probes::{CATALOGUE, Probe, ProbeRow, Probes};
pub use report::{CheckOptions, ReportOptions};
pub use target::{Target, TargetKind};
pub use users::Users;
pub use worker::WorkerSlice;

use crate::checks::CheckId;
pub use crate::cognito::Auth;
use crate::pool::PoolConfig;

/// Replaces `[target.pool.triggers].code_dir` when set: the folder of trigger handlers to test.
pub const TRIGGERS_DIR_VARIABLE: &str = "OTP_HARNESS_TRIGGERS_DIR";
use crate::thresholds::Threshold;

/// A parsed, validated scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the run and its report folder.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub target: Target,
    /// How the flows sign in unless a `[[flow]]` says otherwise: `custom` (custom auth, the default) or
    /// `email_otp` (USER_AUTH with EMAIL_OTP).
    #[serde(default)]
    pub auth: Auth,
    pub users: Users,
    pub otp: Otp,
    /// The flow mix: each virtual user takes the flows in a weighted round-robin order.
    #[serde(default = "flows::default_flows", rename = "flow")]
    pub flows: Vec<FlowSpec>,
    #[serde(default)]
    pub probes: Probes,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub load: Load,
    /// `"step.metric" = "condition"`, e.g. `"login.p99" = "2s"`, `"login.success_rate" = ">= 99%"`, as
    /// written; `thresholds()` has them parsed.
    #[serde(default, rename = "thresholds")]
    pub threshold_conditions: BTreeMap<String, String>,
    #[serde(default)]
    pub checks: CheckOptions,
    #[serde(default)]
    pub report: ReportOptions,
    /// Cost assumptions of the preflight.
    #[serde(default)]
    pub preflight: PreflightOptions,
    /// Where the file was read from (set by `load`).
    #[serde(skip)]
    pub path: PathBuf,
    /// The thresholds, parsed (set by `parse`).
    #[serde(skip)]
    thresholds: Vec<Threshold>,
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::new(path, None, format!("cannot read the scenario: {e}"), "check the path"))?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text (`path` names it in errors and anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            let quoted = line.and_then(|l| text.lines().nth(l - 1)).map(str::trim).filter(|l| !l.is_empty());
            let message = match quoted {
                Some(q) => format!("{} (in `{q}`)", e.message().trim()),
                None => e.message().trim().to_string(),
            };
            let fix = if message.contains("unknown field") {
                "remove or rename the key: the allowed keys are listed above".to_string()
            } else if message.contains("missing field") {
                "add the key; see scenarios/*.toml for commented examples".to_string()
            } else if message.contains("unknown variant") {
                "use one of the values listed above".to_string()
            } else {
                "fix the value's type or syntax; see scenarios/*.toml for commented examples".to_string()
            };
            ScenarioError::new(path, line, message, fix)
        })?;
        scenario.path = path.to_path_buf();
        scenario.otp.anchor(path);
        for flow in &mut scenario.flows {
            flow.auth.get_or_insert(scenario.auth);
        }
        if scenario.otp.code_pattern.is_none() {
            let digits: Vec<usize> = scenario.auths().iter().map(|a| a.code_digits()).collect();
            scenario.otp.code_pattern = Some(otp::default_code_pattern(&digits));
        }
        let at = Locator { path, text };
        scenario.validate(&at)?;
        scenario.thresholds = thresholds::parse(&scenario.threshold_conditions, &at)?;
        Ok(scenario)
    }

    /// The pool config of a local target: inline, from its file, or the defaults. An inline
    /// `triggers.code_dir` is relative to the scenario file; `OTP_HARNESS_TRIGGERS_DIR`, when set,
    /// replaces it (to test another folder of trigger handlers with the same scenario).
    pub fn local_pool_config(&self) -> Result<PoolConfig, ScenarioError> {
        let mut config = match (&self.target.pool, &self.target.pool_config) {
            (Some(inline), _) => {
                let mut inline = inline.clone();
                inline.triggers.anchor(self.path.parent().unwrap_or(Path::new(".")));
                inline
            }
            (None, Some(file)) => {
                let resolved = self.path.parent().unwrap_or(Path::new(".")).join(file);
                PoolConfig::from_file(&resolved)
                    .map_err(|e| ScenarioError::new(&self.path, None, format!("{e:#}"), "fix the pool config file"))?
            }
            (None, None) => PoolConfig::default(),
        };
        if let Some(dir) = std::env::var_os(TRIGGERS_DIR_VARIABLE).filter(|d| !d.is_empty())
            && config.triggers.any()
        {
            config.triggers.code_dir = Some(std::path::PathBuf::from(dir));
        }
        config.users.emails.clear();
        config.users.pattern = None;
        config.users.count = 0;
        Ok(config)
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        if self.name.trim().is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(at.error(
                "",
                0,
                "name",
                format!("name {:?} must be letters, digits, '-', '_' or '.'", self.name),
                "it names the report folder: e.g. name = \"nightly-eu\"",
            ));
        }
        self.target.validate(at)?;
        self.users.validate(at)?;
        self.validate_user_count(at)?;
        self.otp.validate(self.target.kind, at)?;
        self.report.validate(at)?;
        self.preflight.validate(at)?;
        flows::validate(&self.flows, &self.expect, at)?;
        self.expect.validate(at)?;
        self.load.validate(&self.threshold_conditions, at)
    }

    /// Enough test users for the virtual users (or the open model's in-flight cap) and the probes.
    fn validate_user_count(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let needed = self.load.virtual_users().saturating_add(self.probe_users());
        if self.users.count >= needed {
            return Ok(());
        }
        let (what, knob) = match self.load.model {
            LoadModel::Closed => ("virtual users", "load.users"),
            LoadModel::Open => ("sign-ins in flight at most", "load.max_in_flight"),
        };
        Err(at.error(
            "users",
            0,
            "count",
            format!(
                "users.count = {} but the run needs {needed} ({} {what} + {} for probes)",
                self.users.count,
                self.load.virtual_users(),
                self.probe_users()
            ),
            &format!("set users.count = {needed} or more, or lower {knob}"),
        ))
    }

    /// The thresholds, parsed.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// The ways of signing in the flows (of weight above zero) use, custom auth first.
    pub fn auths(&self) -> Vec<Auth> {
        Auth::ALL.into_iter().filter(|a| self.flows.iter().any(|f| f.weight > 0 && f.auth() == *a)).collect()
    }

    /// The probes that run, in order: each enabled probe for each way of signing in it applies to.
    pub fn probe_plan(&self) -> Vec<(Auth, &'static ProbeRow)> {
        self.auths()
            .into_iter()
            .flat_map(|auth| self.probes.enabled().filter(move |r| r.auths.contains(&auth)).map(move |r| (auth, r)))
            .collect()
    }

    /// Test users the probes sign in as, after the virtual users'.
    pub fn probe_users(&self) -> u32 {
        self.probe_plan().iter().fold(0u32, |n, (_, r)| n.saturating_add(r.users))
    }

    /// Every check this scenario makes: those of its flows (of weight above zero) and of its probes,
    /// each for the way of signing in it is made with, in check order.
    pub fn planned_checks(&self) -> Vec<CheckId> {
        let flows = self
            .flows
            .iter()
            .filter(|f| f.weight > 0)
            .flat_map(|f| f.kind.checks(f.auth()).iter().map(|c| c.of(f.auth())));
        let probes = self.probe_plan().into_iter().flat_map(|(auth, r)| r.checks.iter().map(move |c| c.of(auth)));
        let mut checks: Vec<CheckId> = flows.chain(probes).collect();
        checks.sort();
        checks.dedup();
        checks
    }
}

#[cfg(test)]
mod tests;
