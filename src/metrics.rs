//! Run metrics: an HDR histogram per step (`initiate`, `otp_delivery`, `otp_pickup`, `respond`, `login`) in
//! microseconds, overall and per flow, successes and failures per step, errors by type, throttling
//! counted apart, flow outcomes, and the open model's dropped and late starts. Interval histograms
//! (since the last `take_intervals`) feed the `.hlog`. Thresholds read an `Observed` snapshot.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::cognito::error::is_throttling;

/// The measured steps of a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// InitiateAuth round trip.
    Initiate,
    /// From the request that makes the pool mail a code to the code in the virtual user's hand.
    OtpDelivery,
    /// The harness's own share of `otp_delivery`: from the moment the mail existed in the source (the
    /// outbox's insertion time, the S3 event's time) to the harness having read it. Recorded only where
    /// the source tells that moment to the millisecond or better.
    OtpPickup,
    /// RespondToAuthChallenge round trip.
    Respond,
    /// A whole sign-in, first request to tokens.
    Login,
}

impl Step {
    pub const ALL: [Step; 5] = [Step::Initiate, Step::OtpDelivery, Step::OtpPickup, Step::Respond, Step::Login];

    pub fn name(self) -> &'static str {
        match self {
            Step::Initiate => "initiate",
            Step::OtpDelivery => "otp_delivery",
            Step::OtpPickup => "otp_pickup",
            Step::Respond => "respond",
            Step::Login => "login",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Highest latency recorded (longer ones are clamped): one hour.
const MAX_MICROS: u64 = 3_600_000_000;

struct StepStats {
    histogram: Histogram<u64>,
    ok: u64,
    failed: u64,
}

/// An empty latency histogram: 1 µs to one hour, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant figures are always valid"))
}

impl StepStats {
    fn new() -> Self {
        Self { histogram: new_histogram(), ok: 0, failed: 0 }
    }

    fn add(&mut self, micros: Option<u64>, ok: bool) {
        if let Some(micros) = micros {
            let _ = self.histogram.record(micros);
        }
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
    }

    fn summary(&self) -> StepSummary {
        summarize(&self.histogram, self.ok, self.failed)
    }
}

/// A step's summary from its histogram (µs) and its counts.
pub fn summarize(h: &Histogram<u64>, ok: u64, failed: u64) -> StepSummary {
    let ms = |micros: u64| round3(micros as f64 / 1000.0);
    let empty = h.is_empty();
    let at = |q: f64| if empty { 0.0 } else { ms(h.value_at_quantile(q)) };
    StepSummary {
        count: ok + failed,
        ok,
        failed,
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: if empty { 0.0 } else { ms(h.max()) },
        mean_ms: if empty { 0.0 } else { round3(h.mean() / 1000.0) },
    }
}

/// Flow outcomes by flow kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FlowCounts {
    pub started: u64,
    pub succeeded: u64,
    /// Ended by an error (throttling, time-out, lost mail, a trigger failure…).
    pub errored: u64,
    /// Ended in a failed conformance check.
    pub nonconforming: u64,
}

/// How a flow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowOutcome {
    Succeeded,
    Errored,
    Nonconforming,
}

/// An interval histogram's key: its flow (none for the step over all flows) and step.
type IntervalKey = (Option<&'static str>, Step);

/// All metrics of a run; shared by every virtual user.
pub struct Metrics {
    steps: [Mutex<StepStats>; 5],
    /// Per (flow, step).
    by_flow: Mutex<BTreeMap<(&'static str, Step), StepStats>>,
    /// Since the last `take_intervals`, by (flow or none, step): tagged `step` or `flow/step` when taken
    /// (keys of static names, so recording allocates nothing).
    intervals: Mutex<BTreeMap<IntervalKey, Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// The same errors by the flow they happened in (those outside a flow are not here).
    flow_errors: Mutex<BTreeMap<(&'static str, String), u64>>,
    flows: Mutex<BTreeMap<&'static str, FlowCounts>>,
    /// Open model: starts no free virtual user could take at their intended time.
    dropped: AtomicU64,
    /// Open model: starts taken later than intended (by more than `LATE_AFTER`).
    late: AtomicU64,
}

/// A start later than this after its intended time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(10);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A step's numbers, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepSummary {
    pub count: u64,
    pub ok: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Metrics {
    pub fn new() -> Self {
        Self {
            steps: [
                Mutex::new(StepStats::new()),
                Mutex::new(StepStats::new()),
                Mutex::new(StepStats::new()),
                Mutex::new(StepStats::new()),
                Mutex::new(StepStats::new()),
            ],
            by_flow: Mutex::new(BTreeMap::new()),
            intervals: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            flow_errors: Mutex::new(BTreeMap::new()),
            flows: Mutex::new(BTreeMap::new()),
            dropped: AtomicU64::new(0),
            late: AtomicU64::new(0),
        }
    }

    /// A step that got an answer (`ok`: the answer the flow wanted) after `elapsed`, in `flow`.
    pub fn record(&self, flow: Option<&'static str>, step: Step, elapsed: Duration, ok: bool) {
        self.add(flow, step, Some((elapsed.as_micros() as u64).clamp(1, MAX_MICROS)), ok);
    }

    /// A step that failed without a measurable answer (time-out, transport error).
    pub fn record_failure(&self, flow: Option<&'static str>, step: Step) {
        self.add(flow, step, None, false);
    }

    fn add(&self, flow: Option<&'static str>, step: Step, micros: Option<u64>, ok: bool) {
        self.steps[step.index()].lock().add(micros, ok);
        if let Some(flow) = flow {
            self.by_flow.lock().entry((flow, step)).or_insert_with(StepStats::new).add(micros, ok);
        }
        if let Some(micros) = micros {
            let mut intervals = self.intervals.lock();
            let _ = intervals.entry((None, step)).or_insert_with(new_histogram).record(micros);
            if flow.is_some() {
                let _ = intervals.entry((flow, step)).or_insert_with(new_histogram).record(micros);
            }
        }
    }

    /// The interval histograms since the last call, by tag (`step` or `flow/step`); the intervals
    /// restart empty.
    pub fn take_intervals(&self) -> BTreeMap<String, Histogram<u64>> {
        let taken = std::mem::take(&mut *self.intervals.lock());
        taken
            .into_iter()
            .map(|((flow, step), h)| match flow {
                Some(flow) => (format!("{flow}/{}", step.name()), h),
                None => (step.name().to_string(), h),
            })
            .collect()
    }

    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_late(&self) {
        self.late.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Step summaries per flow.
    pub fn flow_steps(&self) -> BTreeMap<String, BTreeMap<String, StepSummary>> {
        let mut out: BTreeMap<String, BTreeMap<String, StepSummary>> = BTreeMap::new();
        for ((flow, step), stats) in self.by_flow.lock().iter() {
            out.entry(flow.to_string()).or_default().insert(step.name().to_string(), stats.summary());
        }
        out
    }

    /// An error by its type (`TooManyRequestsException`, `OtpTimeout`, …).
    pub fn count_error(&self, type_name: &str) {
        *self.errors.lock().entry(type_name.to_string()).or_insert(0) += 1;
    }

    /// An error by its type, in `flow` (counted by type as `count_error` does, and by flow).
    pub fn count_error_in(&self, flow: Option<&'static str>, type_name: &str) {
        self.count_error(type_name);
        if let Some(flow) = flow {
            *self.flow_errors.lock().entry((flow, type_name.to_string())).or_insert(0) += 1;
        }
    }

    /// Errors by flow, then type (only those counted with their flow).
    pub fn flow_errors(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((flow, kind), n) in self.flow_errors.lock().iter() {
            out.entry(flow.to_string()).or_default().insert(kind.clone(), *n);
        }
        out
    }

    pub fn flow_started(&self, flow: &'static str) {
        self.flows.lock().entry(flow).or_default().started += 1;
    }

    pub fn flow_ended(&self, flow: &'static str, outcome: FlowOutcome) {
        let mut flows = self.flows.lock();
        let counts = flows.entry(flow).or_default();
        match outcome {
            FlowOutcome::Succeeded => counts.succeeded += 1,
            FlowOutcome::Errored => counts.errored += 1,
            FlowOutcome::Nonconforming => counts.nonconforming += 1,
        }
    }

    pub fn step_summary(&self, step: Step) -> StepSummary {
        self.steps[step.index()].lock().summary()
    }

    /// A copy of a step's whole-run histogram.
    pub fn step_histogram(&self, step: Step) -> Histogram<u64> {
        self.steps[step.index()].lock().histogram.clone()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    pub fn flows(&self) -> BTreeMap<String, FlowCounts> {
        self.flows.lock().iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Throttled calls (TooManyRequestsException, LimitExceededException), kept apart from failures.
    pub fn throttled(&self) -> u64 {
        self.errors.lock().iter().filter(|(k, _)| is_throttling(k)).map(|(_, v)| v).sum()
    }

    /// Errors other than throttling.
    pub fn error_count(&self) -> u64 {
        self.errors.lock().iter().filter(|(k, _)| !is_throttling(k)).map(|(_, v)| v).sum()
    }
}

/// Milliseconds to the microsecond.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// A run's measurements as thresholds read them: whole-run latency histograms (µs) and counts by
/// step, and the run-wide counters. Taken from live metrics (`Metrics::observed`) or added up from
/// workers' folders (`merge`), so both are judged by the same code.
pub struct Observed {
    /// By step name (`initiate`, …); other tags (`login/initiate`) may be present and are not read.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    pub steps: BTreeMap<String, StepSummary>,
    pub throttled: u64,
    /// Errors other than throttling.
    pub errors: u64,
    pub dropped: u64,
}

impl Metrics {
    /// What thresholds are judged on, as of now.
    pub fn observed(&self) -> Observed {
        let mut histograms = BTreeMap::new();
        let mut steps = BTreeMap::new();
        for step in Step::ALL {
            let stats = self.steps[step.index()].lock();
            histograms.insert(step.name().to_string(), stats.histogram.clone());
            steps.insert(step.name().to_string(), stats.summary());
        }
        Observed { histograms, steps, throttled: self.throttled(), errors: self.error_count(), dropped: self.dropped() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_summarize_within_histogram_precision() {
        let m = Metrics::new();
        for ms in 1..=100u64 {
            m.record(Some("login"), Step::Initiate, Duration::from_millis(ms), true);
        }
        m.record_failure(None, Step::Initiate);
        let s = m.step_summary(Step::Initiate);
        assert_eq!((s.count, s.ok, s.failed), (101, 100, 1));
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.max_ms - 100.0).abs() < 0.1);
        let observed = m.observed();
        assert_eq!((observed.steps["initiate"].ok, observed.histograms["initiate"].len()), (100, 100));
        assert!(observed.histograms["respond"].is_empty(), "nothing measured");
        m.count_error("TooManyRequestsException");
        m.count_error("OtpTimeout");
        assert_eq!((m.throttled(), m.error_count()), (1, 1));
        m.count_error_in(Some("login"), "TooManyRequestsException");
        m.count_error_in(None, "OtpTimeout");
        assert_eq!((m.throttled(), m.error_count()), (2, 2), "counted by type either way");
        assert_eq!(m.flow_errors()["login"]["TooManyRequestsException"], 1);
        assert_eq!(m.flow_errors().len(), 1, "an error outside a flow has no flow");
        assert_eq!(m.flow_steps()["login"]["initiate"].count, 100, "the failure had no flow");
        let intervals = m.take_intervals();
        assert_eq!(intervals["initiate"].len(), 100);
        assert_eq!(intervals["login/initiate"].len(), 100);
        assert!(m.take_intervals().is_empty(), "intervals restart");
    }
}
