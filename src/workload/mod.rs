//! The workload, scheduled by goose 0.19 — configured in code (never from argv), telnet and WebSocket
//! controllers off, one shared HTTP client (goose's is never used: our steps go through the AWS SDK).
//! Each goose user is a virtual user signing in as a test user of its own. When goose's own report is
//! asked for (`load.goose_report`), every step is also handed to goose with
//! `record_custom_request_duration`, so goose's metrics agree with ours; otherwise nobody reads goose's
//! metrics, so they are off (`NoMetrics`) and the steps are not handed over — goose's per-request
//! bookkeeping was a measurable share of the harness's CPU per sign-in.
//!
//! - closed: `users` goose users, each running the flow schedule, `iterations` each and/or for a
//!   `duration`, ramped up over `ramp`;
//! - open: `max_in_flight` goose users take tickets from the pacer (`pacer`), which starts sign-ins at
//!   the target rate; latency is measured from each ticket's intended start.

pub mod pacer;
pub mod progress;
pub mod schedule;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::{
    GooseAttack, GooseDefault, GooseDefaultType, GooseError, GooseUser, Transaction, TransactionResult,
};
use tokio::sync::{Mutex, Semaphore, mpsc};

use crate::background::{self, CancellationToken};
use crate::cognito::Auth;
use crate::flows::{FlowContext, StepRecord};
use crate::metrics::{FlowOutcome, LATE_AFTER};
use crate::scenario::{FlowSpec, LoadModel, Scenario};
use schedule::flow_schedule;

/// How the workload ended.
#[derive(Debug, Clone, Default)]
pub struct WorkloadEnd {
    /// Interrupted by a stop signal: its name.
    pub interrupted: Option<&'static str>,
    /// Flows still in flight when the stop grace ran out (abandoned, not counted as ended).
    pub abandoned: i64,
    /// Ended early by a breached `abort_on` threshold: its reason.
    pub aborted: Option<String>,
    /// goose could not run (configuration refused): the reason.
    pub error: Option<String>,
}

enum Model {
    Closed { deadline: Option<Instant>, offsets: Vec<usize>, counters: Vec<AtomicU32> },
    Open { tickets: Mutex<mpsc::Receiver<pacer::Ticket>>, next: AtomicUsize },
}

/// What every goose user shares.
struct Driver {
    ctx: Arc<FlowContext>,
    /// The context of each way of signing in the flows use (they share verdicts, metrics and mail).
    contexts: BTreeMap<Auth, Arc<FlowContext>>,
    schedule: Vec<FlowSpec>,
    users: Vec<String>,
    model: Model,
    pause: Duration,
    error_backoff: Duration,
    in_flight: Arc<AtomicI64>,
    /// Hand every step to goose (only when goose's own report is written).
    to_goose: bool,
}

impl Driver {
    /// One goose transaction: one flow.
    async fn iteration(&self, user: &mut GooseUser) -> TransactionResult {
        if crate::interrupt::requested() {
            // A signal before goose started was cleared by goose's reset: pull its killswitch again.
            if !goose::is_killswitch_triggered() {
                goose::trigger_killswitch("interrupted");
            }
            // Wait for goose to stop us; returning at once would spin and starve its controller.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Ok(());
        }
        let vu = user.weighted_users_index % self.users.len().max(1);
        let address = &self.users[vu];
        let (spec, started) = match &self.model {
            Model::Closed { deadline, offsets, counters } => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Ok(());
                }
                let n = counters[vu].fetch_add(1, Ordering::Relaxed) as usize;
                (&self.schedule[(offsets[vu] + n) % self.schedule.len()], Instant::now())
            }
            Model::Open { tickets, next } => {
                let ticket = tickets.lock().await.recv().await;
                let Some(ticket) = ticket else {
                    // The stages are over: end the attack once the flows in flight are done.
                    if self.in_flight.load(Ordering::SeqCst) == 0 {
                        goose::trigger_killswitch("the open model's stages are done");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Ok(());
                };
                if ticket.intended.elapsed() > LATE_AFTER {
                    self.ctx.metrics.count_late();
                }
                let n = next.fetch_add(1, Ordering::Relaxed);
                let spec = &self.schedule[n % self.schedule.len()];
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                let outcome = self.run_flow(user, spec, address, ticket.intended).await;
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                drop(ticket);
                return self.rest(outcome).await;
            }
        };
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let outcome = self.run_flow(user, spec, address, started).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.rest(outcome).await
    }

    /// One flow, its steps handed to goose when goose's report is written.
    async fn run_flow(&self, user: &mut GooseUser, spec: &FlowSpec, address: &str, started: Instant) -> FlowOutcome {
        let ctx = self.context(spec);
        if !self.to_goose {
            return ctx.run_flow_from(spec, address, started).await;
        }
        let (outcome, steps) = ctx.run_flow_recorded(spec, address, started).await;
        report_to_goose(user, &steps).await;
        outcome
    }

    /// The context a flow signs in with.
    fn context(&self, spec: &FlowSpec) -> &FlowContext {
        self.contexts.get(&spec.auth()).unwrap_or(&self.ctx)
    }

    /// Think time, or the back-off after an errored flow.
    async fn rest(&self, outcome: FlowOutcome) -> TransactionResult {
        let wait = if outcome == FlowOutcome::Errored { self.error_backoff } else { self.pause };
        if !wait.is_zero() {
            let until = Instant::now() + wait;
            let until = match &self.model {
                Model::Closed { deadline: Some(d), .. } => until.min(*d),
                _ => until,
            };
            tokio::time::sleep_until(until.into()).await;
        }
        Ok(())
    }
}

/// Every step of a flow as a goose "custom request" (method `OTP`, name the step).
async fn report_to_goose(user: &mut GooseUser, steps: &[StepRecord]) {
    for step in steps {
        let elapsed = step.elapsed.unwrap_or_default();
        let _ = user
            .record_custom_request_duration("OTP", step.step.name(), elapsed, step.ok, None, step.error.as_deref())
            .await;
    }
}

/// Runs the scenario's load to the end (or a stop signal and its grace), with the progress line.
pub async fn run(ctx: Arc<FlowContext>, scenario: &Scenario, run_dir: &Path) -> WorkloadEnd {
    let load = &scenario.load;
    let vus = load.virtual_users().max(1) as usize;
    let users: Vec<String> = (0..vus as u32).map(|i| scenario.users.address(i)).collect();
    let schedule = flow_schedule(&scenario.flows);
    let in_flight = Arc::new(AtomicI64::new(0));
    // One token stops the pacer, the progress line and the abort watchdog once goose is done.
    let stop = CancellationToken::new();
    let mut pacer_task = None;
    let model = match load.model {
        LoadModel::Closed => Model::Closed {
            deadline: load.duration.map(|d| Instant::now() + load.ramp + d),
            offsets: (0..vus).map(|vu| (vu * schedule.len()) / vus).collect(),
            counters: (0..vus).map(|_| AtomicU32::new(0)).collect(),
        },
        LoadModel::Open => {
            let places = Arc::new(Semaphore::new(vus));
            let (tx, rx) = mpsc::channel(vus);
            let metrics = Arc::clone(&ctx.metrics);
            let (stages, start_rate) = (load.open_stages(), load.start_rate);
            let pacer_stop = stop.clone();
            pacer_task = Some(tokio::spawn(async move {
                pacer::run(stages, start_rate, places, tx, metrics, || {
                    pacer_stop.is_cancelled() || crate::interrupt::requested() || goose::is_killswitch_triggered()
                })
                .await
            }));
            Model::Open { tickets: Mutex::new(rx), next: AtomicUsize::new(0) }
        }
    };
    let driver = Arc::new(Driver {
        ctx: Arc::clone(&ctx),
        contexts: scenario.auths().into_iter().map(|auth| (auth, Arc::new(ctx.for_auth(auth)))).collect(),
        schedule,
        users,
        model,
        pause: load.pause,
        error_backoff: load.error_backoff,
        in_flight: Arc::clone(&in_flight),
        to_goose: load.goose_report.is_some(),
    });
    let progress =
        progress::start(Arc::clone(&ctx.metrics), Arc::clone(&in_flight), scenario.report.progress, stop.clone());
    let aborted = Arc::new(parking_lot::Mutex::new(None));
    let watchdog = abort_watch(scenario, Arc::clone(&ctx), Arc::clone(&aborted), stop.clone());
    let attack = attack(driver, scenario, vus, run_dir);
    tokio::pin!(attack);
    let mut abandoned = 0;
    let result = tokio::select! {
        result = &mut attack => result,
        _ = async {
            crate::interrupt::cancelled().await;
            tokio::time::sleep(load.stop_grace).await;
        } => {
            // goose's users finish their flows on their own; the run no longer waits for them.
            abandoned = in_flight.load(Ordering::SeqCst).max(0);
            Ok(())
        }
    };
    for task in [progress, pacer_task, watchdog].into_iter().flatten() {
        background::finish(&stop, task, Duration::from_secs(1)).await;
    }
    let aborted = aborted.lock().take();
    WorkloadEnd { interrupted: crate::interrupt::signal_name(), abandoned, aborted, error: result.err() }
}

/// Checks the `abort_on` thresholds every second after the grace period; the first breach stops goose.
fn abort_watch(
    scenario: &Scenario,
    ctx: Arc<FlowContext>,
    aborted: Arc<parking_lot::Mutex<Option<String>>>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let watched: Vec<crate::thresholds::Threshold> =
        scenario.thresholds().iter().filter(|t| scenario.load.abort_on.contains(&t.key)).cloned().collect();
    if watched.is_empty() {
        return None;
    }
    let grace = scenario.load.abort_grace;
    Some(tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if started.elapsed() < grace {
                continue;
            }
            let observed = ctx.metrics.observed();
            let breach = watched.iter().map(|t| t.evaluate(&observed)).find(|r| r.observed.is_some() && !r.passed);
            if let Some(result) = breach {
                let reason = format!("aborted after {:.0} s: {}", started.elapsed().as_secs_f64(), result.reason);
                *aborted.lock() = Some(reason.clone());
                goose::trigger_killswitch(&reason);
                return;
            }
        }
    }))
}

async fn attack(driver: Arc<Driver>, scenario: &Scenario, vus: usize, run_dir: &Path) -> Result<(), String> {
    let load = &scenario.load;
    let flows = Arc::clone(&driver);
    let transaction = Transaction::new(Arc::new(move |user| {
        let driver = Arc::clone(&flows);
        Box::pin(async move { driver.iteration(user).await })
    }))
    .set_name("flow");
    let sign_in = goose::goose::Scenario::new("sign-in").register_transaction(transaction);
    let host = driver.ctx.cognito.target().endpoint_url.clone().unwrap_or_else(|| "http://127.0.0.1".into());
    let increase_rate = match load.model {
        LoadModel::Closed if !load.ramp.is_zero() => vus as f64 / load.ramp.as_secs_f64(),
        _ => vus.max(1) as f64 * 10.0,
    };
    let config = || -> Result<Box<GooseAttack>, GooseError> {
        let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
            .register_scenario(sign_in)
            .set_client_builder_without_cookies(goose::client::GooseClientBuilder::new().without_cookies())?
            .set_default(GooseDefault::Host, host.as_str())?
            .set_default(GooseDefault::Users, vus)?
            .set_default(GooseDefault::IncreaseRate, increase_rate.to_string().as_str())?
            .set_default(GooseDefault::NoTelnet, true)?
            .set_default(GooseDefault::NoPrintMetrics, true)?
            .set_default(GooseDefault::NoErrorSummary, true)?
            .set_default(GooseDefault::Quiet, 1)?;
        if load.model == LoadModel::Closed {
            if let Some(n) = load.iterations_per_user() {
                attack = attack.set_default(GooseDefault::Iterations, n as usize)?;
            }
            if let Some(d) = load.duration {
                let secs = (load.ramp + d).as_secs_f64().ceil() as usize;
                attack = attack.set_default(GooseDefault::RunTime, secs.max(1))?;
            }
        }
        match &load.goose_report {
            Some(name) => {
                let path = run_dir.join(name);
                attack = attack.set_default(GooseDefault::ReportFile, path.to_string_lossy().as_ref())?;
            }
            None => {
                attack = attack
                    .set_default(GooseDefault::NoMetrics, true)?
                    .set_default(GooseDefault::NoTransactionMetrics, true)?
                    .set_default(GooseDefault::NoScenarioMetrics, true)?;
            }
        }
        Ok(attack)
    };
    let attack = config().map_err(|e| format!("goose refused the workload: {e}"))?;
    attack.execute().await.map(|_| ()).map_err(|e| format!("goose: {e}"))
}
