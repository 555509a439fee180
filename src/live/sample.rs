//! What the dashboard shows, taken once a second by one sampler from the run's `Metrics` (and its
//! checks, thresholds, mail and embedded pool): a `Tick` for the page, a chart `Point` kept in the
//! history, and a `Snapshot` `/metrics` is written from. Step percentiles over time come from the
//! difference of the whole-run histograms between two samples, so the run's own interval histograms
//! (taken by the latency log) are left alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use super::End;
use crate::background::CancellationToken;
use crate::checks::CheckResult;
use crate::metrics::{FlowCounts, Metrics, Step, StepSummary};
use crate::otp::MailCounts;
use crate::report::timeline::{Counts, Rates};
use crate::scenario::{LoadModel, Scenario, WorkerSlice};
use crate::thresholds::{Metric, Threshold, ThresholdResult};

/// How often the sampler samples.
pub const TICK: Duration = Duration::from_secs(1);
/// Chart points kept; older ones are thinned (every other one dropped) beyond this.
const HISTORY: usize = 3600;

/// Where the sampler reads the run.
pub struct Feed {
    pub metrics: Arc<Metrics>,
    /// The checks' verdicts so far.
    pub checks: Box<dyn Fn() -> Vec<CheckResult> + Send + Sync>,
    /// The OTP source's counts so far.
    pub mail: Box<dyn Fn() -> MailCounts + Send + Sync>,
    /// The embedded pool's counters (its `/_pool/stats`), for local targets.
    pub pool: Option<Box<dyn Fn() -> serde_json::Value + Send + Sync>>,
    /// The scenario's thresholds, judged on every sample.
    pub thresholds: Vec<Threshold>,
}

/// What does not change during the run.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub scenario: String,
    pub target: String,
    pub model: String,
    pub virtual_users: u32,
    /// The load's planned length (closed: ramp + duration; open: the stages), if it has one.
    pub load_secs: Option<f64>,
    /// `I/N` with `--worker`.
    pub worker: Option<String>,
    /// The worker's index and count, for `/metrics` labels.
    #[serde(skip)]
    pub worker_slice: Option<WorkerSlice>,
    pub tick_secs: f64,
}

/// A step's latency in one sample's interval, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// Answers in the interval.
    pub n: u64,
}

/// One chart point: rates over the interval before `t`, all flows and per flow kind.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds since the run started.
    pub t: f64,
    pub started: f64,
    pub succeeded: f64,
    /// Flows ended by an error (throttling included).
    pub errored: f64,
    /// Throttled answers.
    pub throttled: f64,
    /// Error answers other than throttling.
    pub errors: f64,
    pub in_flight: u64,
    pub flows: BTreeMap<String, Rates>,
    /// By step; absent when the step had no answer in the interval.
    pub steps: BTreeMap<&'static str, Percentiles>,
}

/// A threshold's current value against its limit.
#[derive(Debug, Clone, Serialize)]
pub struct ThresholdView {
    pub key: String,
    pub condition: String,
    /// The current value as the limit is written (ms, %, a count), or "—".
    pub value: String,
    pub passed: bool,
    pub measured: bool,
}

/// Totals since the load started.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub started: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub nonconforming: u64,
    pub throttled: u64,
    pub errors: u64,
    pub dropped: u64,
    pub late: u64,
}

/// Everything the page shows at one sample.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub seq: u64,
    pub point: Point,
    pub phase: &'static str,
    pub elapsed: f64,
    /// Seconds of load left, when the load has a planned length and has started.
    pub remaining: Option<f64>,
    pub totals: Totals,
    /// Whole-run step summaries (ms), in pipeline order.
    pub steps: Vec<(&'static str, StepSummary)>,
    pub checks: Vec<CheckResult>,
    pub thresholds: Vec<ThresholdView>,
    pub mail: MailCounts,
    pub pool: Option<serde_json::Value>,
}

/// A step's whole-run latency as Prometheus buckets.
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    /// (upper bound in seconds, answers at or below it), ascending; `+Inf` is `count`.
    pub cumulative: Vec<(f64, u64)>,
    pub sum_secs: f64,
    pub count: u64,
}

/// What `/metrics` is written from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub elapsed: f64,
    pub remaining: Option<f64>,
    pub flows: BTreeMap<String, FlowCounts>,
    pub flow_steps: BTreeMap<String, BTreeMap<String, StepSummary>>,
    /// Whole-run step latency by step name.
    pub latency: Vec<(&'static str, Buckets)>,
    /// By error type, all of them.
    pub errors: BTreeMap<String, u64>,
    /// By flow, then error type.
    pub flow_errors: BTreeMap<String, BTreeMap<String, u64>>,
    pub throttled: u64,
    pub in_flight: u64,
    pub dropped: u64,
    pub late: u64,
    pub checks: Vec<CheckResult>,
    /// With the metric and the limit in base units (seconds for latencies).
    pub thresholds: Vec<(ThresholdResult, Metric, f64)>,
    pub mail: MailCounts,
}

/// The end of the run, as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Final {
    pub headline: String,
    /// `pass`, `warn` or `fail`: the badge's colour, as report.html has it.
    pub class: &'static str,
    pub exit_code: u8,
    pub report_dir: Option<String>,
    /// File names in the run folder, served under `/files/`.
    pub files: Vec<String>,
    pub message: Option<String>,
}

struct State {
    phase: &'static str,
    load_started: Option<Instant>,
    history: Vec<Point>,
    latest: Option<Arc<str>>,
    seq: u64,
    snapshot: Arc<Snapshot>,
    end: Option<Arc<str>>,
    report_dir: Option<std::path::PathBuf>,
    files: Vec<String>,
}

/// What the sampler, the server and the run share.
pub struct Shared {
    pub info: Info,
    started: Instant,
    state: Mutex<State>,
    notify: tokio::sync::watch::Sender<u64>,
    clients: AtomicUsize,
    /// Time spent sampling and writing what the pages and scrapes read (nanoseconds).
    busy_nanos: AtomicU64,
    pub sampler_stop: CancellationToken,
}

/// What a new page (or `/api/state`) starts from.
#[derive(Serialize)]
struct Hello<'a> {
    info: &'a Info,
    phase: &'static str,
    elapsed: f64,
    history: &'a [Point],
}

impl Shared {
    pub fn new(scenario: &Scenario, worker: Option<WorkerSlice>) -> Self {
        let load = &scenario.load;
        let load_secs = match load.model {
            LoadModel::Closed => load.duration.map(|d| (load.ramp + d).as_secs_f64()),
            LoadModel::Open => Some(load.open_stages().iter().map(|s| s.duration.as_secs_f64()).sum()),
        };
        let info = Info {
            scenario: scenario.name.clone(),
            target: scenario.target.kind.name().to_string(),
            model: match load.model {
                LoadModel::Closed => "closed",
                LoadModel::Open => "open",
            }
            .to_string(),
            virtual_users: load.virtual_users(),
            load_secs,
            worker: worker.map(|w| format!("{}/{}", w.index, w.count)),
            worker_slice: worker,
            tick_secs: TICK.as_secs_f64(),
        };
        Self {
            info,
            started: Instant::now(),
            state: Mutex::new(State {
                phase: "starting",
                load_started: None,
                history: Vec::new(),
                latest: None,
                seq: 0,
                snapshot: Arc::new(Snapshot::default()),
                end: None,
                report_dir: None,
                files: Vec::new(),
            }),
            notify: tokio::sync::watch::channel(0).0,
            clients: AtomicUsize::new(0),
            busy_nanos: AtomicU64::new(0),
            sampler_stop: CancellationToken::new(),
        }
    }

    fn bump(&self) {
        self.notify.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    pub fn set_phase(&self, phase: &'static str) {
        {
            let mut state = self.state.lock();
            state.phase = phase;
            if phase == "load" && state.load_started.is_none() {
                state.load_started = Some(Instant::now());
            }
        }
        self.bump();
    }

    pub fn phase(&self) -> &'static str {
        self.state.lock().phase
    }

    /// Seconds since the run started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// The page's starting point as JSON.
    pub fn hello_json(&self) -> String {
        let state = self.state.lock();
        let hello = Hello { info: &self.info, phase: state.phase, elapsed: self.elapsed(), history: &state.history };
        serde_json::to_string(&hello).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }

    /// The latest tick (its sequence number and JSON), if one was taken.
    pub fn latest(&self) -> (u64, Option<Arc<str>>) {
        let state = self.state.lock();
        (state.seq, state.latest.clone())
    }

    /// The final event's JSON, once the run has ended.
    pub fn end(&self) -> Option<Arc<str>> {
        self.state.lock().end.clone()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.state.lock().snapshot)
    }

    /// The run folder and a file in it, if the run has ended and wrote a file of that name.
    pub fn report_file(&self, name: &str) -> Option<std::path::PathBuf> {
        let state = self.state.lock();
        let dir = state.report_dir.as_ref()?;
        state.files.iter().any(|f| f == name).then(|| dir.join(name))
    }

    /// A page connected (the guard counts it until dropped).
    pub fn client(self: &Arc<Self>) -> ClientGuard {
        self.clients.fetch_add(1, Ordering::SeqCst);
        ClientGuard(Arc::clone(self))
    }

    /// Adds the time one piece of the dashboard's work took.
    pub fn add_busy(&self, took: Duration) {
        self.busy_nanos.fetch_add(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Seconds the dashboard has spent working (wall time of its work: an upper bound of its CPU time).
    pub fn busy_secs(&self) -> f64 {
        self.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }

    /// The run ended: the final event for every page.
    pub fn finish(&self, end: End) {
        let view = match end {
            End::Finished { headline, exit_code, report_dir, files } => {
                let class = match exit_code {
                    0 => "pass",
                    99 => "warn",
                    _ => "fail",
                };
                let mut state = self.state.lock();
                state.report_dir = Some(report_dir.clone());
                state.files = files.clone();
                Final {
                    headline,
                    class,
                    exit_code,
                    report_dir: Some(report_dir.display().to_string()),
                    files,
                    message: None,
                }
            }
            End::Failed { message, exit_code } => Final {
                headline: "THE RUN COULD NOT HAPPEN".into(),
                class: "fail",
                exit_code,
                report_dir: None,
                files: Vec::new(),
                message: Some(message),
            },
        };
        let json = serde_json::to_string(&view).unwrap_or_else(|_| "{}".into());
        {
            let mut state = self.state.lock();
            state.phase = "ended";
            state.end = Some(Arc::from(json));
        }
        self.bump();
    }
}

/// Counts a connected page while it lives.
pub struct ClientGuard(Arc<Shared>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the previous sample saw, to take differences from.
struct Previous {
    at: Instant,
    counts: Counts,
    throttled: u64,
    errors: u64,
    histograms: BTreeMap<String, Histogram<u64>>,
}

/// Samples every `TICK` until `shared.sampler_stop`, then once more.
pub async fn run(shared: Arc<Shared>, feed: Feed) {
    let mut previous = Previous {
        at: Instant::now(),
        counts: Counts::take(&feed.metrics, 0.0),
        throttled: feed.metrics.throttled(),
        errors: feed.metrics.error_count(),
        histograms: BTreeMap::new(),
    };
    loop {
        let stopping = tokio::select! {
            _ = shared.sampler_stop.cancelled() => true,
            _ = tokio::time::sleep(TICK) => false,
        };
        let at = Instant::now();
        sample(&shared, &feed, &mut previous);
        shared.add_busy(at.elapsed());
        if stopping {
            return;
        }
    }
}

/// One sample: the tick for the pages, a chart point, the snapshot for `/metrics`.
fn sample(shared: &Shared, feed: &Feed, previous: &mut Previous) {
    let metrics = &feed.metrics;
    let now = Instant::now();
    let secs = now.duration_since(previous.at).as_secs_f64().max(1e-3);
    let t = shared.elapsed();
    let mut counts = Counts::take(metrics, t);
    // Rates between the two samples, whatever their exact spacing.
    counts.secs = previous.counts.secs + secs;
    let observed = metrics.observed();
    let per_sec = |before: u64, after: u64| after.saturating_sub(before) as f64 / secs;
    let flows: BTreeMap<String, Rates> =
        counts.flows.keys().map(|flow| (flow.clone(), Rates::between(&previous.counts, &counts, flow))).collect();
    let sum = |pick: fn(&Rates) -> f64| flows.values().map(pick).sum::<f64>();
    let mut steps = BTreeMap::new();
    for step in Step::ALL {
        let Some(now_h) = observed.histograms.get(step.name()) else { continue };
        let mut delta = now_h.clone();
        if let Some(before) = previous.histograms.get(step.name())
            && delta.subtract(before).is_err()
        {
            continue;
        }
        if !delta.is_empty() {
            // Whole microseconds, as milliseconds.
            let ms = |q: f64| delta.value_at_quantile(q) as f64 / 1000.0;
            steps.insert(step.name(), Percentiles { p50: ms(0.5), p90: ms(0.9), p99: ms(0.99), n: delta.len() });
        }
    }
    let point = Point {
        t,
        started: sum(|r| r.started),
        succeeded: sum(|r| r.succeeded),
        errored: sum(|r| r.errored),
        throttled: per_sec(previous.throttled, observed.throttled),
        errors: per_sec(previous.errors, observed.errors),
        in_flight: counts.in_flight(),
        flows,
        steps,
    };
    let totals = counts.flows.values().fold(
        Totals {
            throttled: observed.throttled,
            errors: observed.errors,
            dropped: observed.dropped,
            late: metrics.late(),
            ..Totals::default()
        },
        |mut t, f| {
            t.started += f.started;
            t.succeeded += f.succeeded;
            t.errored += f.errored;
            t.nonconforming += f.nonconforming;
            t
        },
    );
    let results: Vec<(ThresholdResult, &Threshold)> =
        feed.thresholds.iter().map(|th| (th.evaluate(&observed), th)).collect();
    let thresholds = results
        .iter()
        .map(|(r, th)| ThresholdView {
            key: r.key.clone(),
            condition: r.condition.clone(),
            value: r.observed.map_or_else(|| "—".to_string(), |v| display_value(th.metric, v)),
            passed: r.passed,
            measured: r.observed.is_some(),
        })
        .collect();
    let checks = (feed.checks)();
    let mail = (feed.mail)();
    let (phase, remaining) = {
        let state = shared.state.lock();
        let remaining = match (shared.info.load_secs, state.load_started) {
            (Some(total), Some(at)) => Some((total - at.elapsed().as_secs_f64()).max(0.0)),
            _ => None,
        };
        (state.phase, remaining)
    };
    let snapshot = Snapshot {
        elapsed: t,
        remaining,
        flows: counts.flows.clone(),
        flow_steps: metrics.flow_steps(),
        latency: Step::ALL
            .iter()
            .filter_map(|s| observed.histograms.get(s.name()).map(|h| (s.name(), buckets(h))))
            .collect(),
        errors: metrics.errors(),
        flow_errors: counts.errors.clone(),
        throttled: observed.throttled,
        in_flight: point.in_flight,
        dropped: observed.dropped,
        late: totals.late,
        checks: checks.clone(),
        thresholds: results.iter().map(|(r, th)| (r.clone(), th.metric, base_unit(th.metric, th.limit))).collect(),
        mail: mail.clone(),
    };
    let tick_steps =
        Step::ALL.iter().filter_map(|s| observed.steps.get(s.name()).map(|v| (s.name(), v.clone()))).collect();
    let mut state = shared.state.lock();
    state.seq += 1;
    let tick = Tick {
        seq: state.seq,
        point: point.clone(),
        phase,
        elapsed: t,
        remaining,
        totals,
        steps: tick_steps,
        checks,
        thresholds,
        mail,
        pool: feed.pool.as_ref().map(|f| f()),
    };
    state.latest = serde_json::to_string(&tick).ok().map(Arc::from);
    state.snapshot = Arc::new(snapshot);
    state.history.push(point);
    if state.history.len() > HISTORY {
        let thinned = state.history.iter().enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, p)| p.clone()).collect();
        state.history = thinned;
    }
    drop(state);
    previous.at = now;
    previous.counts = counts;
    previous.throttled = observed.throttled;
    previous.errors = observed.errors;
    previous.histograms = observed.histograms;
    shared.bump();
}

/// The upper bounds of the latency buckets on `/metrics`, in seconds.
pub const BUCKETS: [f64; 16] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A whole-run histogram (µs) as cumulative Prometheus buckets.
fn buckets(h: &Histogram<u64>) -> Buckets {
    let mut counts = [0u64; BUCKETS.len()];
    for v in h.iter_recorded() {
        let secs = h.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            counts[i] += v.count_at_value();
        }
    }
    let mut running = 0;
    let cumulative = BUCKETS
        .iter()
        .zip(counts)
        .map(|(le, n)| {
            running += n;
            (*le, running)
        })
        .collect();
    Buckets { cumulative, sum_secs: if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 / 1e6 }, count: h.len() }
}

/// A threshold's value as its limit is written: milliseconds, a percentage or a count.
fn display_value(metric: Metric, value: f64) -> String {
    match metric {
        Metric::Percentile(_) | Metric::Max | Metric::Mean => format!("{value:.1} ms"),
        Metric::SuccessRate | Metric::ErrorRate => format!("{:.2} %", value * 100.0),
        Metric::Count => format!("{value:.0}"),
    }
}

/// A threshold's limit in base units: seconds for latencies (written in ms), else as it is.
pub fn base_unit(metric: Metric, value: f64) -> f64 {
    match metric {
        Metric::Percentile(_) | Metric::Max | Metric::Mean => value / 1000.0,
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_in_seconds() {
        let mut h = crate::metrics::new_histogram();
        for micros in [500u64, 900, 3_000, 40_000, 2_000_000, 500_000_000] {
            h.record(micros).expect("in range");
        }
        let b = buckets(&h);
        let at = |le: f64| b.cumulative.iter().find(|(l, _)| *l == le).map(|(_, n)| *n);
        assert_eq!(at(0.001), Some(2));
        assert_eq!(at(0.005), Some(3));
        assert_eq!(at(0.05), Some(4));
        assert_eq!(at(2.5), Some(5));
        assert_eq!(at(120.0), Some(5), "the 500 s answer is only in +Inf");
        assert_eq!(b.count, 6);
        assert!((b.sum_secs - 502.0444).abs() < 0.5, "{}", b.sum_secs);
    }

    #[test]
    fn threshold_values_read_as_their_limits_are_written() {
        assert_eq!(display_value(Metric::Percentile(99.0), 12.34), "12.3 ms");
        assert_eq!(display_value(Metric::SuccessRate, 0.995), "99.50 %");
        assert_eq!(display_value(Metric::Count, 3.0), "3");
        assert_eq!(base_unit(Metric::Max, 800.0), 0.8);
        assert_eq!(base_unit(Metric::SuccessRate, 0.99), 0.99);
    }
}
