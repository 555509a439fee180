//! Run metrics: an HDR histogram per step (`initiate`, `otp_delivery`, `respond`, `login`) in
//! microseconds, successes and failures per step, errors by type, throttling counted apart, and flow
//! outcomes. Thresholds read them through `MetricSource`.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use crate::thresholds::{Metric, MetricSource};

/// The measured steps of a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// InitiateAuth round trip.
    Initiate,
    /// From the request that makes the pool mail a code to the code in the virtual user's hand.
    OtpDelivery,
    /// RespondToAuthChallenge round trip.
    Respond,
    /// A whole sign-in, first request to tokens.
    Login,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Initiate, Step::OtpDelivery, Step::Respond, Step::Login];

    pub fn name(self) -> &'static str {
        match self {
            Step::Initiate => "initiate",
            Step::OtpDelivery => "otp_delivery",
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

impl StepStats {
    fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, MAX_MICROS, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("3 significant figures are valid"));
        Self { histogram, ok: 0, failed: 0 }
    }
}

/// Flow outcomes by flow kind.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
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

/// All metrics of a run; shared by every virtual user.
pub struct Metrics {
    steps: [Mutex<StepStats>; 4],
    errors: Mutex<BTreeMap<String, u64>>,
    flows: Mutex<BTreeMap<&'static str, FlowCounts>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A step's numbers, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
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
            ],
            errors: Mutex::new(BTreeMap::new()),
            flows: Mutex::new(BTreeMap::new()),
        }
    }

    /// A step that got an answer (`ok`: the answer the flow wanted) after `elapsed`.
    pub fn record(&self, step: Step, elapsed: Duration, ok: bool) {
        let micros = (elapsed.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut stats = self.steps[step.index()].lock();
        let _ = stats.histogram.record(micros);
        if ok {
            stats.ok += 1;
        } else {
            stats.failed += 1;
        }
    }

    /// A step that failed without a measurable answer (time-out, transport error).
    pub fn record_failure(&self, step: Step) {
        self.steps[step.index()].lock().failed += 1;
    }

    /// An error by its type (`TooManyRequestsException`, `OtpTimeout`, …).
    pub fn count_error(&self, type_name: &str) {
        *self.errors.lock().entry(type_name.to_string()).or_insert(0) += 1;
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
        let stats = self.steps[step.index()].lock();
        let h = &stats.histogram;
        let ms = |micros: u64| round3(micros as f64 / 1000.0);
        let empty = h.is_empty();
        let at = |q: f64| if empty { 0.0 } else { ms(h.value_at_quantile(q)) };
        StepSummary {
            count: stats.ok + stats.failed,
            ok: stats.ok,
            failed: stats.failed,
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: if empty { 0.0 } else { ms(h.max()) },
            mean_ms: if empty { 0.0 } else { round3(h.mean() / 1000.0) },
        }
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().clone()
    }

    pub fn flows(&self) -> BTreeMap<&'static str, FlowCounts> {
        self.flows.lock().clone()
    }

    /// Throttled calls (TooManyRequestsException), kept apart from failures.
    pub fn throttled(&self) -> u64 {
        self.errors.lock().get("TooManyRequestsException").copied().unwrap_or(0)
    }

    /// Errors other than throttling.
    pub fn error_count(&self) -> u64 {
        self.errors.lock().iter().filter(|(k, _)| k.as_str() != "TooManyRequestsException").map(|(_, v)| v).sum()
    }
}

/// Milliseconds to the microsecond.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl MetricSource for Metrics {
    fn value(&self, step: &str, metric: Metric) -> Option<f64> {
        match step {
            "throttled" => return Some(self.throttled() as f64),
            "errors" => return Some(self.error_count() as f64),
            "dropped" => return Some(0.0),
            _ => {}
        }
        let step = Step::ALL.into_iter().find(|s| s.name() == step)?;
        let summary = self.step_summary(step);
        let stats = self.steps[step.index()].lock();
        let measured = !stats.histogram.is_empty();
        match metric {
            Metric::Count => Some(summary.count as f64),
            Metric::SuccessRate if summary.count > 0 => Some(summary.ok as f64 / summary.count as f64),
            Metric::ErrorRate if summary.count > 0 => Some(summary.failed as f64 / summary.count as f64),
            Metric::Percentile(p) if measured => Some(stats.histogram.value_at_quantile(p / 100.0) as f64 / 1000.0),
            Metric::Max if measured => Some(summary.max_ms),
            Metric::Mean if measured => Some(summary.mean_ms),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_summarize_within_histogram_precision() {
        let m = Metrics::new();
        for ms in 1..=100u64 {
            m.record(Step::Initiate, Duration::from_millis(ms), true);
        }
        m.record_failure(Step::Initiate);
        let s = m.step_summary(Step::Initiate);
        assert_eq!((s.count, s.ok, s.failed), (101, 100, 1));
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.max_ms - 100.0).abs() < 0.1);
        assert_eq!(m.value("initiate", Metric::SuccessRate), Some(100.0 / 101.0));
        assert_eq!(m.value("respond", Metric::Percentile(99.0)), None, "nothing measured");
        m.count_error("TooManyRequestsException");
        m.count_error("OtpTimeout");
        assert_eq!((m.throttled(), m.error_count()), (1, 1));
    }
}
