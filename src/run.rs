//! `otp-harness run`: resolves the target (starting the embedded pool for `local`), connects the OTP
//! source and fetches the JWKS (failures here: exit 3), runs the probes, then the virtual users'
//! flows, then the randomness check and the thresholds, and writes the reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;

use crate::checks::randomness::{RandomnessVerdict, digit_frequencies};
use crate::checks::tokens::TokenChecker;
use crate::checks::{Check, Verdicts};
use crate::cognito::{CognitoClient, ResolvedTarget};
use crate::flows::FlowContext;
use crate::metrics::{Metrics, Step};
use crate::otp::OtpSource;
use crate::pool::{LocalPool, RunningPool};
use crate::report::hlog::HlogRecorder;
use crate::report::{self, LoadSummary, RunResult, TargetSummary, Verdict};
use crate::scenario::{FlowKind, FlowSpec, LoadModel, OtpSourceKind, Scenario, ScenarioError, TargetKind};
use crate::thresholds::Threshold;
use crate::workload;

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Parent folder of the run folder (default: the scenario's `report.dir`).
    pub report_dir: Option<PathBuf>,
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
            RunError::Scenario(_) => 2,
            RunError::CannotRun(_) => 3,
        }
    }
}

/// A finished run: its result and where the reports went.
pub struct RunOutput {
    pub result: RunResult,
    pub report_dir: PathBuf,
}

/// Runs a scenario to the end.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Result<RunOutput, RunError> {
    let started_wall = SystemTime::now();
    let started = Instant::now();
    let (target, pool) = resolve_target(scenario).await?;
    let cognito = CognitoClient::new(target.clone()).await;
    let local_outbox = pool.as_ref().and_then(|p| p.info().outbox.clone());
    let source = OtpSource::start(&scenario.otp, &target, local_outbox.as_deref())
        .await
        .map_err(|e| RunError::CannotRun(e.to_string()))?;
    let checker = match TokenChecker::fetch(&target.issuer, &target.client_id).await {
        Ok(c) => c,
        Err(e) => {
            source.stop().await;
            return Err(RunError::CannotRun(e));
        }
    };
    let ctx = Arc::new(FlowContext {
        cognito,
        mailroom: Arc::clone(source.mailroom()),
        tokens: Arc::new(checker),
        verdicts: Arc::new(Verdicts::new()),
        metrics: Arc::new(Metrics::new()),
        expect: scenario.expect.clone(),
        otp_timeout: scenario.otp.timeout,
        settle: scenario.otp.duplicate_settle,
        get_user: scenario.checks.get_user,
        codes: Arc::new(Mutex::new(Vec::new())),
    });
    announce_checks(&ctx.verdicts, scenario);
    let parent = options.report_dir.clone().unwrap_or_else(|| scenario.report.dir.clone());
    let report_dir = report::run_dir(&parent, &scenario.name, started_wall);
    std::fs::create_dir_all(&report_dir)
        .map_err(|e| RunError::CannotRun(format!("creating {}: {e}", report_dir.display())))?;
    run_probes(&ctx.with_metrics(Arc::new(Metrics::new())), scenario).await;
    let mut notes = Vec::new();
    let mut workload_failed = false;
    let load_started = Instant::now();
    if crate::interrupt::requested() {
        notes.push("interrupted by Ctrl-C before the load: only the probes ran".to_string());
    } else {
        let hlog = HlogRecorder::start(
            &report_dir,
            Arc::clone(&ctx.metrics),
            scenario.report.hlog_interval,
            load_started,
            SystemTime::now(),
        )
        .map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
        let end = workload::run(Arc::clone(&ctx), scenario, &report_dir).await;
        if let Err(e) = hlog.finish().await {
            notes.push(format!("the latency log is incomplete: {e:#}"));
        }
        if end.interrupted {
            notes.push("interrupted by Ctrl-C: the results cover what ran".to_string());
        }
        if let Some(reason) = end.aborted {
            notes.push(reason);
        }
        if let Some(error) = end.error {
            notes.push(error);
            workload_failed = true;
        }
    }
    let load_secs = load_started.elapsed().as_secs_f64();
    check_randomness(&ctx, scenario);

    let thresholds: Vec<_> = scenario
        .thresholds
        .iter()
        .filter_map(|(k, v)| Threshold::parse(k, v).ok())
        .map(|t| t.evaluate(ctx.metrics.as_ref()))
        .collect();
    let mail = ctx.mailroom.counts();
    source.stop().await;
    let pool_stats = match &pool {
        Some(p) => serde_json::to_value(p.state().stats_snapshot()).ok(),
        None => None,
    };
    if let Some(p) = pool {
        let _ = p.stop().await;
    }

    let checks = ctx.verdicts.results();
    let flows = ctx.metrics.flows();
    let mut verdict = Verdict::of(&checks, &thresholds);
    let started_flows: u64 = flows.values().map(|f| f.started).sum();
    let completed: u64 = flows.values().map(|f| f.succeeded + f.nonconforming).sum();
    if workload_failed && verdict == Verdict::Pass {
        verdict = Verdict::Error;
    }
    if started_flows > 0 && completed == 0 {
        let errors = ctx.metrics.errors();
        let top: Vec<String> = errors.iter().map(|(k, v)| format!("{k} × {v}")).collect();
        notes.push(format!("no flow completed ({})", top.join(", ")));
        if verdict == Verdict::Pass {
            verdict = Verdict::Error;
        }
    }
    let result = RunResult {
        schema: report::SCHEMA.to_string(),
        scenario: scenario.name.clone(),
        scenario_file: scenario.path.display().to_string(),
        started_at: humantime::format_rfc3339_millis(started_wall).to_string(),
        finished_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        duration_secs: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        target: TargetSummary {
            kind: match scenario.target.kind {
                TargetKind::Local => "local",
                TargetKind::Aws => "aws",
            }
            .to_string(),
            region: target.region.clone(),
            user_pool_id: target.user_pool_id.clone(),
            client_id: target.client_id.clone(),
            endpoint: target.endpoint_url.clone(),
        },
        otp_source: match scenario.otp.source {
            OtpSourceKind::Imap => "imap",
            OtpSourceKind::S3 => "s3",
            OtpSourceKind::Outbox => "outbox",
        }
        .to_string(),
        load: LoadSummary {
            model: match scenario.load.model {
                LoadModel::Closed => "closed",
                LoadModel::Open => "open",
            }
            .to_string(),
            virtual_users: scenario.load.virtual_users(),
            iterations_per_user: match scenario.load.model {
                LoadModel::Closed => scenario.load.iterations_per_user(),
                LoadModel::Open => None,
            },
            duration_limit_secs: match scenario.load.model {
                LoadModel::Closed => scenario.load.duration.map(|d| d.as_secs_f64()),
                LoadModel::Open => Some(scenario.load.open_stages().iter().map(|s| s.duration.as_secs_f64()).sum()),
            },
            elapsed_secs: (load_secs * 1000.0).round() / 1000.0,
            dropped: ctx.metrics.dropped(),
            late: ctx.metrics.late(),
        },
        verdict,
        exit_code: verdict.exit_code(),
        checks,
        thresholds,
        steps: Step::ALL.iter().map(|s| (s.name().to_string(), ctx.metrics.step_summary(*s))).collect(),
        flow_steps: ctx.metrics.flow_steps(),
        flows,
        errors: ctx.metrics.errors(),
        throttled: ctx.metrics.throttled(),
        mail,
        pool: pool_stats,
        notes,
    };
    report::write_all(&result, &report_dir).map_err(|e| RunError::CannotRun(format!("{e:#}")))?;
    Ok(RunOutput { result, report_dir })
}

/// The target to sign in to; for `local`, the embedded pool with the scenario's test users.
async fn resolve_target(scenario: &Scenario) -> Result<(ResolvedTarget, Option<RunningPool>), RunError> {
    let t = &scenario.target;
    match t.kind {
        TargetKind::Local => {
            let mut config = scenario.local_pool_config()?;
            config.users.emails = (0..scenario.users.count).map(|i| scenario.users.address(i)).collect();
            let address = "127.0.0.1:0".parse().map_err(|e| RunError::CannotRun(format!("{e}")))?;
            let pool = LocalPool::start(config, address)
                .await
                .map_err(|e| RunError::CannotRun(format!("starting the local pool: {e:#}")))?;
            let info = pool.info().clone();
            let target = ResolvedTarget {
                region: info.region,
                user_pool_id: info.user_pool_id,
                client_id: info.client_id,
                endpoint_url: Some(info.endpoint),
                issuer: info.issuer,
                local: true,
                call_timeout: t.call_timeout,
            };
            Ok((target, Some(pool)))
        }
        TargetKind::Aws => {
            let region = t.region.clone().unwrap_or_default();
            let user_pool_id = t.user_pool_id.clone().unwrap_or_default();
            let issuer = t
                .issuer
                .clone()
                .unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"));
            let target = ResolvedTarget {
                region,
                user_pool_id,
                client_id: t.client_id.clone().unwrap_or_default(),
                endpoint_url: t.endpoint_url.clone(),
                issuer,
                local: false,
                call_timeout: t.call_timeout,
            };
            Ok((target, None))
        }
    }
}

/// Lists the checks this scenario makes, so one that never gets an observation shows as skipped.
fn announce_checks(verdicts: &Verdicts, scenario: &Scenario) {
    let never = "no flow of this kind completed";
    let kinds: Vec<FlowKind> = scenario.flows.iter().filter(|f| f.weight > 0).map(|f| f.kind).collect();
    let announce = |check: Check, on: bool| {
        if on {
            verdicts.skip(check, never);
        }
    };
    announce(Check::SignIn, kinds.contains(&FlowKind::Login));
    announce(Check::Retry, kinds.contains(&FlowKind::Retry));
    announce(Check::Tokens, kinds.contains(&FlowKind::Login) || kinds.contains(&FlowKind::Retry));
    announce(Check::Lockout, kinds.contains(&FlowKind::Lockout));
    announce(Check::LockoutRealCodeRefused, kinds.contains(&FlowKind::Lockout));
    let p = &scenario.probes;
    announce(Check::SessionReuse, p.session_reuse);
    announce(Check::CodeReuseAfterSuccess, p.code_reuse);
    announce(Check::CodeReuseInNewSession, p.code_reuse);
    announce(Check::NewCodeEachAttempt, p.new_code_each_attempt);
    announce(Check::FirstCodeAfterRetry, p.new_code_each_attempt);
    announce(Check::UnknownUserAnswer, p.unknown_user);
    announce(Check::UnknownUserTiming, p.unknown_user);
    announce(Check::ChallengeLeak, p.challenge_leak);
    announce(Check::CodeRandomness, p.code_randomness);
}

/// Each enabled probe once, on test users after the virtual users' own.
async fn run_probes(ctx: &FlowContext, scenario: &Scenario) {
    let p = &scenario.probes;
    let mut next = scenario.load.virtual_users();
    let mut take = || {
        let user = scenario.users.address(next);
        next += 1;
        user
    };
    if p.session_reuse {
        ctx.probe_session_reuse(&take()).await;
    }
    if p.code_reuse {
        ctx.probe_code_reuse_after_success(&take()).await;
        ctx.probe_code_reuse_in_new_session(&take()).await;
    }
    if p.new_code_each_attempt {
        ctx.probe_new_code_each_attempt(&take()).await;
    }
    if p.unknown_user {
        let known = take();
        ctx.probe_unknown_user(&known, |n| scenario.users.unknown_address(n), p.unknown_user_samples).await;
    }
    if p.challenge_leak {
        ctx.probe_challenge_leak(&take()).await;
    }
}

/// One cycle of the flow mix by smooth weighted round-robin: each flow appears `weight` times per
/// cycle, spread out (weights 4, 1, 1 give login, login, retry, login, lockout, login).
pub fn flow_schedule(flows: &[FlowSpec]) -> Vec<FlowSpec> {
    let total: i64 = flows.iter().map(|f| i64::from(f.weight)).sum();
    let mut current: Vec<i64> = vec![0; flows.len()];
    let mut out = Vec::with_capacity(total.max(0) as usize);
    for _ in 0..total {
        for (c, f) in current.iter_mut().zip(flows) {
            *c += i64::from(f.weight);
        }
        let Some((best, _)) = current.iter().enumerate().max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i))) else {
            break;
        };
        current[best] -= total;
        out.push(flows[best].clone());
    }
    if out.is_empty() {
        out.extend(flows.first().cloned());
    }
    out
}

fn check_randomness(ctx: &FlowContext, scenario: &Scenario) {
    if !scenario.probes.code_randomness {
        return;
    }
    let codes = ctx.codes.lock();
    match digit_frequencies(codes.iter().map(String::as_str), scenario.expect.min_codes_for_randomness as usize) {
        RandomnessVerdict::Uniform { .. } => ctx.verdicts.pass(Check::CodeRandomness),
        RandomnessVerdict::Skewed { codes, chi_squared, rarest_digit, rarest_count, expected } => ctx.verdicts.fail(
            Check::CodeRandomness,
            format!(
                "digit frequencies over {codes} codes are not uniform (chi-squared {chi_squared:.1} > 33.7, p < 0.0001): \
                 digit {rarest_digit} appeared {rarest_count} times, {expected:.0} expected"
            ),
        ),
        RandomnessVerdict::TooFew { codes, needed } => ctx
            .verdicts
            .skip(Check::CodeRandomness, format!("{codes} codes seen, {needed} needed (expect.min_codes_for_randomness)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: FlowKind, weight: u32) -> FlowSpec {
        FlowSpec { kind, weight, wrong: 1 }
    }

    #[test]
    fn the_schedule_honours_weights_and_spreads_flows() {
        let schedule = flow_schedule(&[spec(FlowKind::Login, 4), spec(FlowKind::Retry, 1), spec(FlowKind::Lockout, 1)]);
        let kinds: Vec<FlowKind> = schedule.iter().map(|f| f.kind).collect();
        use FlowKind::{Lockout as K, Login as L, Retry as R};
        assert_eq!(kinds, [L, L, R, L, K, L]);
        let only_zero = flow_schedule(&[spec(FlowKind::Login, 0)]);
        assert_eq!(only_zero.len(), 1);
    }
}
