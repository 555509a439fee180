//! `otp-harness run`, read top to bottom as the run's sequence: resolve the target (starting the
//! embedded pool for `local`), create the test users if asked, the preflight, connect the OTP source and fetch the JWKS (failures here: exit 3), plan
//! the checks, run the probes, then the load, judge code randomness and the thresholds, stop what was
//! started, write the reports, and delete the test users if asked. With `--dashboard`, the live page
//! (`live`) serves from before the first step to after the reports, told each phase.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::admin::{AdminClients, SesEndpoint};
use crate::checks::randomness;
use crate::checks::tokens::TokenChecker;
use crate::cognito::{CognitoClient, ResolvedTarget};
use crate::flows::{FlowContext, probes};
use crate::live::{self, Dashboard};
use crate::metrics::Metrics;
use crate::otp::OtpSource;
use crate::pool::RunningPool;
use crate::preflight;
use crate::provision;
use crate::report::assemble::{Finished, assemble};
use crate::report::hlog::HlogRecorder;
use crate::report::timeline::TimelineRecorder;
use crate::report::{self, RunResult};
use crate::scenario::{Probe, Scenario, ScenarioError};
use crate::target::{self, TargetError};
use crate::workload;

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Parent folder of the run folder (default: the scenario's `report.dir`).
    pub report_dir: Option<PathBuf>,
    /// Skip the preflight of pool, client, SES and quotas (`--no-preflight`).
    pub skip_preflight: bool,
    /// Create the test users first (`--provision`; a deployed pool only: the embedded one has them).
    pub provision: bool,
    /// Delete the test users afterwards, whatever the run's outcome (`--cleanup`).
    pub cleanup: bool,
    /// The live dashboard and `/metrics` (`--dashboard`), its listener already bound; None: nothing runs.
    pub dashboard: Option<live::Options>,
}

/// Why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    #[error("the run could not happen: {0}")]
    CannotRun(String),
}

impl RunError {
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Scenario(_) => crate::exit::USAGE,
            RunError::CannotRun(_) => crate::exit::CANNOT_RUN,
        }
    }
}

impl From<TargetError> for RunError {
    fn from(e: TargetError) -> Self {
        match e {
            TargetError::Scenario(e) => RunError::Scenario(e),
            other => RunError::CannotRun(other.to_string()),
        }
    }
}

/// A finished run: its result and where the reports went.
pub struct RunOutput {
    pub result: RunResult,
    pub report_dir: PathBuf,
    /// With `--dashboard-linger`: the dashboard, still serving the final page; wait on it last.
    pub dashboard: Option<live::Lingering>,
}

/// Runs a scenario to the end: test users created first and deleted after if asked, the preflight
/// before anything signs in.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<RunOutput, RunError> {
    let dashboard = match &options.dashboard {
        Some(live) => Some(Dashboard::start(live, scenario).map_err(RunError::CannotRun)?),
        None => None,
    };
    let mut outcome = run_with(scenario, options, dashboard.as_ref()).await;
    if let Some(dashboard) = dashboard {
        let lingering = dashboard.finish(live_end(&outcome)).await;
        if let Ok(output) = &mut outcome {
            output.dashboard = lingering;
        } else if let Some(lingering) = lingering {
            // The error is printed by the caller at once; the page has shown it.
            lingering.stop().await;
        }
    }
    outcome
}

/// How the run ended, as the live page shows it.
fn live_end(outcome: &Result<RunOutput, RunError>) -> live::End {
    match outcome {
        Ok(output) => {
            let mut files: Vec<String> = std::fs::read_dir(&output.report_dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            live::End::Finished {
                headline: output.result.verdict.headline().to_string(),
                exit_code: output.result.exit_code,
                report_dir: output.report_dir.clone(),
                files,
            }
        }
        Err(e) => live::End::Failed { message: e.to_string(), exit_code: e.exit_code() },
    }
}

async fn run_with(
    scenario: &Scenario,
    options: &RunOptions,
    dashboard: Option<&Dashboard>,
) -> Result<RunOutput, RunError> {
    let started_at = SystemTime::now();
    let (target, pool) = target::resolve(scenario).await?;
    let deployed = pool.is_none();
    if (options.provision || options.cleanup) && !deployed {
        eprintln!("note: --provision/--cleanup do nothing here: the embedded pool starts with the test users");
    }
    if options.provision && deployed {
        let outcome = provision_users(scenario, &target).await;
        if let Err(e) = outcome {
            return Err(RunError::CannotRun(e));
        }
    }
    let result = run_on_target(scenario, options, started_at, target.clone(), pool, dashboard).await;
    if options.cleanup && deployed {
        if let Some(dashboard) = dashboard {
            dashboard.phase("cleanup");
        }
        cleanup_users(scenario, &target).await;
    }
    result
}

/// `--provision`: the scenario's test users, created (or found) before the run.
async fn provision_users(scenario: &Scenario, target: &ResolvedTarget) -> Result<(), String> {
    let clients = AdminClients::new(target, &SesEndpoint::default(), 1).await;
    let progress = provision::Progress::new(true);
    let outcome = provision::create(&clients, scenario, &provision::CreateOptions::default(), &progress)
        .await
        .map_err(|e| format!("--provision: {e}"))?;
    eprintln!("{}", provision::summarize_create(&outcome));
    if !outcome.failed.is_empty() {
        return Err(format!("--provision: {} test user(s) could not be created", outcome.failed.len()));
    }
    Ok(())
}

/// `--cleanup`: the test users this tool made, deleted after the run (never a user without the marker).
async fn cleanup_users(scenario: &Scenario, target: &ResolvedTarget) {
    let clients = AdminClients::new(target, &SesEndpoint::default(), 1).await;
    let progress = provision::Progress::new(true);
    match provision::delete(&clients, scenario, &provision::CreateOptions::default(), &progress).await {
        Ok(outcome) => eprintln!("{}", provision::summarize_delete(&outcome)),
        Err(e) => eprintln!("warning: --cleanup: {e}"),
    }
}

/// The preflight before anything signs in, its verdicts on stderr. A failed verdict stops the run
/// (exit 3) before the load, its files written to the run folder; otherwise they are written with the
/// run's own reports.
async fn preflight_gate(
    scenario: &Scenario,
    target: &ResolvedTarget,
    report_dir: &std::path::Path,
) -> Result<preflight::Preflight, RunError> {
    let checked = preflight::run(scenario, target).await;
    eprint!("{}", checked.render());
    if checked.failed() {
        checked.write(report_dir).map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
        return Err(RunError::CannotRun(format!(
            "the preflight failed ({} verdict(s)): see {} — fix the pool or the scenario, or run with --no-preflight",
            checked.count(preflight::Status::Fail),
            report_dir.join("preflight.json").display()
        )));
    }
    Ok(checked)
}

async fn run_on_target(
    scenario: &Scenario,
    options: &RunOptions,
    started_at: SystemTime,
    target: ResolvedTarget,
    pool: Option<RunningPool>,
    dashboard: Option<&Dashboard>,
) -> Result<RunOutput, RunError> {
    let started = Instant::now();
    let phase = |name: &'static str| {
        if let Some(dashboard) = dashboard {
            dashboard.phase(name);
        }
    };
    let report_dir =
        report::run_dir(options.report_dir.as_ref().unwrap_or(&scenario.report.dir), &scenario.name, started_at);
    let checked = if options.skip_preflight {
        None
    } else {
        phase("preflight");
        match preflight_gate(scenario, &target, &report_dir).await {
            Ok(checked) => Some(checked),
            Err(e) => {
                stop_pool(pool).await;
                return Err(e);
            }
        }
    };
    let cognito = CognitoClient::new(target.clone()).await;
    let local_outbox = pool.as_ref().and_then(|p| p.info().outbox.clone());
    let source = OtpSource::start(&scenario.otp, &target, local_outbox.as_deref(), &scenario.users)
        .await
        .map_err(|e| RunError::CannotRun(e.to_string()))?;
    let checker = match TokenChecker::fetch(&target.issuer, &target.client_id).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            source.stop().await;
            return Err(RunError::CannotRun(e));
        }
    };
    let ctx = Arc::new(FlowContext::for_scenario(scenario, cognito, Arc::clone(source.mailroom()), checker));
    for check in scenario.planned_checks() {
        ctx.verdicts.skip(check, "no flow of this kind completed");
    }
    std::fs::create_dir_all(&report_dir)
        .map_err(|e| RunError::CannotRun(format!("creating {}: {e}", report_dir.display())))?;
    if let Some(checked) = checked {
        checked.write(&report_dir).map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
    }

    if let Some(dashboard) = dashboard {
        dashboard.watch(live_feed(&ctx, scenario, pool.as_ref()));
    }
    phase("probes");
    probes::run_all(&ctx.with_metrics(Arc::new(Metrics::new())), scenario).await;
    phase("load");
    let mut load = run_load(&ctx, scenario, &report_dir).await?;
    phase("reports");
    for (auth, row) in scenario.probe_plan() {
        if row.probe == Probe::CodeRandomness
            && let Some(counts) = ctx.codes.get(&auth)
        {
            randomness::record(&ctx.verdicts, auth, counts, scenario.expect.min_codes_for_randomness as usize);
        }
    }
    load.notes.extend(ctx.diagnoses.lock().iter().map(|hint| format!("the pool is not set up for this run: {hint}")));
    let observed = ctx.metrics.observed();
    let thresholds = scenario.thresholds().iter().map(|t| t.evaluate(&observed)).collect();

    let mail = ctx.mailroom.counts();
    source.stop().await;
    let pool_stats = stop_pool(pool).await;
    let result = assemble(Finished {
        scenario,
        target: &target,
        started_at,
        duration: started.elapsed(),
        load_elapsed: load.elapsed,
        load_error: load.error,
        metrics: &ctx.metrics,
        checks: ctx.verdicts.results(),
        thresholds,
        mail,
        pool: pool_stats,
        notes: load.notes,
    });
    report::write_all(&result, &report_dir).map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
    Ok(RunOutput { result, report_dir, dashboard: None })
}

/// What the live dashboard samples: the run's metrics, checks, mail and embedded pool.
fn live_feed(ctx: &Arc<FlowContext>, scenario: &Scenario, pool: Option<&RunningPool>) -> live::Feed {
    let (verdicts, mailroom) = (Arc::clone(&ctx.verdicts), Arc::clone(&ctx.mailroom));
    let pool = pool.map(|p| Arc::clone(p.state()));
    live::Feed {
        metrics: Arc::clone(&ctx.metrics),
        checks: Box::new(move || verdicts.results()),
        mail: Box::new(move || mailroom.counts()),
        pool: pool.map(|state| -> Box<dyn Fn() -> serde_json::Value + Send + Sync> {
            Box::new(move || serde_json::to_value(state.stats_snapshot()).unwrap_or_default())
        }),
        thresholds: scenario.thresholds().to_vec(),
    }
}

/// How the load went, for the reports.
struct LoadOutcome {
    elapsed: Duration,
    error: Option<String>,
    notes: Vec<String>,
}

/// The virtual users' flows, with the latency log written as they go; skipped after a stop signal.
async fn run_load(
    ctx: &Arc<FlowContext>,
    scenario: &Scenario,
    report_dir: &std::path::Path,
) -> Result<LoadOutcome, RunError> {
    let started = Instant::now();
    let mut outcome = LoadOutcome { elapsed: Duration::ZERO, error: None, notes: Vec::new() };
    if crate::interrupt::requested() {
        let signal = crate::interrupt::signal_name().unwrap_or("a signal");
        outcome.notes.push(format!("interrupted by {signal} before the load: only the probes ran"));
        return Ok(outcome);
    }
    let hlog = HlogRecorder::start(
        report_dir,
        Arc::clone(&ctx.metrics),
        scenario.report.hlog_interval,
        started,
        SystemTime::now(),
    )
    .map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
    let timeline =
        TimelineRecorder::start(report_dir, Arc::clone(&ctx.metrics), scenario.report.hlog_interval, started)
            .map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
    let end = workload::run(Arc::clone(ctx), scenario, report_dir).await;
    if let Err(e) = hlog.finish().await {
        outcome.notes.push(format!("the latency log is incomplete: {e:#}"));
    }
    if let Err(e) = timeline.finish().await {
        outcome.notes.push(format!("the timeline of sign-ins and errors is incomplete: {e:#}"));
    }
    if let Some(signal) = end.interrupted {
        outcome.notes.push(format!("interrupted by {signal}: the results cover what ran"));
    }
    if end.abandoned > 0 {
        outcome.notes.push(format!(
            "{} flow(s) still in flight after load.stop_grace ({:?}) were abandoned and are not counted as ended",
            end.abandoned, scenario.load.stop_grace
        ));
    }
    outcome.notes.extend(end.aborted);
    if let Some(error) = end.error {
        outcome.notes.push(error.clone());
        outcome.error = Some(error);
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Stops the embedded pool, if one was started; its counters for the report.
async fn stop_pool(pool: Option<RunningPool>) -> Option<serde_json::Value> {
    let pool = pool?;
    let stats = serde_json::to_value(pool.state().stats_snapshot()).ok();
    let _ = pool.stop().await;
    stats
}
