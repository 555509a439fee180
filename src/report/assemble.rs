//! A finished run's `RunResult`, put together from what the run planned (the scenario), where it
//! signed in (the target), what it measured (the metrics), what it judged (checks and thresholds,
//! then the verdict by `verdict::decide`) and what it has to say (notes).

use std::time::{Duration, SystemTime};

use super::{LoadSummary, RunResult, SCHEMA, TargetSummary};
use crate::checks::CheckResult;
use crate::cognito::ResolvedTarget;
use crate::metrics::{Metrics, Step};
use crate::otp::MailCounts;
use crate::scenario::{LoadModel, Scenario};
use crate::thresholds::ThresholdResult;
use crate::verdict::{self, Evidence};

/// Everything a finished run hands to its reports.
pub struct Finished<'a> {
    pub scenario: &'a Scenario,
    pub target: &'a ResolvedTarget,
    pub started_at: SystemTime,
    /// The whole run, start to reports.
    pub duration: Duration,
    /// The load alone.
    pub load_elapsed: Duration,
    /// Why the workload could not run, if it could not.
    pub load_error: Option<String>,
    pub metrics: &'a Metrics,
    pub checks: Vec<CheckResult>,
    pub thresholds: Vec<ThresholdResult>,
    pub mail: MailCounts,
    /// The embedded pool's own counters.
    pub pool: Option<serde_json::Value>,
    pub notes: Vec<String>,
}

/// The run's result, its verdict decided.
pub fn assemble(run: Finished<'_>) -> RunResult {
    let Finished { scenario, target, metrics, mut notes, .. } = run;
    let flows = metrics.flows();
    let errors = metrics.errors();
    let (verdict, note) = verdict::decide(&Evidence {
        checks: &run.checks,
        thresholds: &run.thresholds,
        flows: &flows,
        errors: &errors,
        workload_failed: run.load_error.is_some(),
    });
    notes.extend(note);
    let load = &scenario.load;
    RunResult {
        schema: SCHEMA.to_string(),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        started_at: humantime::format_rfc3339_millis(run.started_at).to_string(),
        finished_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        duration_secs: millis_precision(run.duration),
        target: TargetSummary {
            kind: scenario.target.kind.name().to_string(),
            region: target.region.clone(),
            user_pool_id: target.user_pool_id.clone(),
            client_id: target.client_id.clone(),
            endpoint: target.endpoint_url.clone(),
        },
        otp_source: scenario.otp.source.name().to_string(),
        load: LoadSummary {
            model: load.model.name().to_string(),
            virtual_users: load.virtual_users(),
            iterations_per_user: match load.model {
                LoadModel::Closed => load.iterations_per_user(),
                LoadModel::Open => None,
            },
            duration_limit_secs: match load.model {
                LoadModel::Closed => load.duration.map(|d| d.as_secs_f64()),
                LoadModel::Open => Some(load.open_stages().iter().map(|s| s.duration.as_secs_f64()).sum()),
            },
            elapsed_secs: millis_precision(run.load_elapsed),
            dropped: metrics.dropped(),
            late: metrics.late(),
            error: run.load_error,
        },
        verdict,
        exit_code: verdict.exit_code(),
        checks: run.checks,
        thresholds: run.thresholds,
        steps: Step::ALL.iter().map(|s| (s.name().to_string(), metrics.step_summary(*s))).collect(),
        flow_steps: metrics.flow_steps(),
        flows,
        errors,
        throttled: metrics.throttled(),
        mail: run.mail,
        pool: run.pool,
        notes,
    }
}

/// Seconds, rounded to the millisecond.
fn millis_precision(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
