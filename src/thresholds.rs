//! Thresholds: `"login.p99" = "2s"`, `"login.success_rate" = ">= 99%"`, `"throttled.count" = "== 0"`.
//! Parsed when the scenario loads (a bad one is a scenario error), evaluated on the run's metrics (`metrics::Observed`, the one `MetricSource` outside tests).

use std::fmt;
use std::time::Duration;

use crate::metrics::{Observed, Step};

/// The run-wide counters a threshold can name besides the steps (`Step::ALL`).
pub const COUNTERS: [&str; 3] = ["throttled", "errors", "dropped"];

/// A metric of a step: a latency percentile, a rate or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Percentile (0–100) of the step's latency, in milliseconds.
    Percentile(f64),
    Max,
    Mean,
    /// Share of attempts that succeeded (0–1).
    SuccessRate,
    /// Share of attempts that failed (0–1).
    ErrorRate,
    Count,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Op {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => (observed - limit).abs() < 1e-9,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        }
    }
}

/// One threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written, e.g. `login.p99`.
    pub key: String,
    pub condition: String,
    pub step: String,
    pub metric: Metric,
    pub op: Op,
    /// Milliseconds for latencies, a fraction for rates, a number for counts.
    pub limit: f64,
}

/// What a threshold is evaluated against.
pub trait MetricSource {
    /// The value of `metric` for `step` (a step name or a counter), or None if nothing was measured.
    fn value(&self, step: &str, metric: Metric) -> Option<f64>;
}

/// A threshold's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    pub key: String,
    pub condition: String,
    pub observed: Option<f64>,
    pub passed: bool,
    pub reason: String,
}

impl Threshold {
    /// Parses `key = condition`.
    pub fn parse(key: &str, condition: &str) -> Result<Self, String> {
        let (step, metric_name) = key.split_once('.').ok_or("the key must be step.metric, e.g. login.p99")?;
        let steps = Step::ALL.map(Step::name);
        if !steps.contains(&step) && !COUNTERS.contains(&step) {
            return Err(format!(
                "unknown step {step:?} (steps: {}; counters: {})",
                steps.join(", "),
                COUNTERS.join(", ")
            ));
        }
        let metric = match metric_name {
            "max" => Metric::Max,
            "mean" | "avg" => Metric::Mean,
            "success_rate" => Metric::SuccessRate,
            "error_rate" => Metric::ErrorRate,
            "count" => Metric::Count,
            p if p.starts_with('p') => {
                let digits = &p[1..];
                let value: f64 = match digits {
                    "999" => 99.9,
                    "9999" => 99.99,
                    d => d.parse().map_err(|_| format!("unknown metric {p:?}"))?,
                };
                if !(0.0..=100.0).contains(&value) {
                    return Err(format!("percentile {p} is out of range"));
                }
                Metric::Percentile(value)
            }
            other => {
                return Err(format!(
                    "unknown metric {other:?} (p50, p90, p99, p999, max, mean, success_rate, error_rate, count)"
                ));
            }
        };
        if COUNTERS.contains(&step) && metric != Metric::Count {
            return Err(format!("{step} is a counter: use {step}.count"));
        }
        let text = condition.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(s, op)| text.strip_prefix(s).map(|rest| (*op, rest.trim())))
            .unwrap_or((Op::Le, text));
        let limit = match metric {
            Metric::Percentile(_) | Metric::Max | Metric::Mean => humantime::parse_duration(rest)
                .map(|d: Duration| d.as_secs_f64() * 1000.0)
                .map_err(|_| format!("{rest:?} is not a duration like 800ms or 2s"))?,
            Metric::SuccessRate | Metric::ErrorRate => {
                let number = rest.strip_suffix('%').ok_or(format!("{rest:?} is not a percentage like 99%"))?;
                let value: f64 = number.trim().parse().map_err(|_| format!("{rest:?} is not a percentage like 99%"))?;
                if !(0.0..=100.0).contains(&value) {
                    return Err(format!("{rest} is not between 0% and 100%"));
                }
                value / 100.0
            }
            Metric::Count => rest.parse().map_err(|_| format!("{rest:?} is not a number"))?,
        };
        Ok(Self { key: key.to_string(), condition: condition.to_string(), step: step.to_string(), metric, op, limit })
    }

    /// Checks the threshold; a metric with no measurement fails (a threshold must be able to fail).
    pub fn evaluate(&self, source: &dyn MetricSource) -> ThresholdResult {
        let observed = source.value(&self.step, self.metric);
        let (passed, reason) = match observed {
            None => (false, format!("nothing was measured for {}", self.key)),
            Some(v) => {
                let passed = self.op.holds(v, self.limit);
                let shown = self.show(v);
                let limit = self.show(self.limit);
                let verdict = if passed { "within" } else { "breached" };
                (passed, format!("{} = {shown}, {verdict} {} {limit}", self.key, self.op.symbol()))
            }
        };
        ThresholdResult { key: self.key.clone(), condition: self.condition.clone(), observed, passed, reason }
    }

    fn show(&self, value: f64) -> String {
        match self.metric {
            Metric::Percentile(_) | Metric::Max | Metric::Mean => format!("{value:.1}ms"),
            Metric::SuccessRate | Metric::ErrorRate => format!("{:.2}%", value * 100.0),
            Metric::Count => format!("{value}"),
        }
    }
}

impl MetricSource for Observed {
    fn value(&self, step: &str, metric: Metric) -> Option<f64> {
        match step {
            "throttled" => return Some(self.throttled as f64),
            "errors" => return Some(self.errors as f64),
            "dropped" => return Some(self.dropped as f64),
            _ => {}
        }
        let summary = self.steps.get(step)?;
        let histogram = self.histograms.get(step).filter(|h| !h.is_empty());
        match metric {
            Metric::Count => Some(summary.count as f64),
            Metric::SuccessRate if summary.count > 0 => Some(summary.ok as f64 / summary.count as f64),
            Metric::ErrorRate if summary.count > 0 => Some(summary.failed as f64 / summary.count as f64),
            Metric::Percentile(p) => histogram.map(|h| h.value_at_quantile(p / 100.0) as f64 / 1000.0),
            Metric::Max => histogram.map(|_| summary.max_ms),
            Metric::Mean => histogram.map(|_| summary.mean_ms),
            _ => None,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.condition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl MetricSource for Fixed {
        fn value(&self, step: &str, metric: Metric) -> Option<f64> {
            match (step, metric) {
                ("login", Metric::Percentile(99.0)) => Some(1500.0),
                ("login", Metric::SuccessRate) => Some(0.98),
                ("throttled", Metric::Count) => Some(0.0),
                _ => None,
            }
        }
    }

    #[test]
    fn thresholds_parse_and_evaluate() {
        let p99 = Threshold::parse("login.p99", "2s").expect("parses");
        assert_eq!((p99.op, p99.limit), (Op::Le, 2000.0));
        assert!(p99.evaluate(&Fixed).passed);
        assert!(!Threshold::parse("login.p99", "< 1s").expect("parses").evaluate(&Fixed).passed);
        let rate = Threshold::parse("login.success_rate", ">= 99%").expect("parses");
        let result = rate.evaluate(&Fixed);
        assert!(!result.passed);
        assert!(result.reason.contains("98.00%"), "{}", result.reason);
        assert!(Threshold::parse("throttled.count", "== 0").expect("parses").evaluate(&Fixed).passed);
        assert!(!Threshold::parse("respond.p50", "1s").expect("parses").evaluate(&Fixed).passed, "unmeasured fails");
    }

    #[test]
    fn bad_thresholds_are_refused() {
        for (key, condition) in [
            ("login", "2s"),
            ("logn.p99", "2s"),
            ("login.p101", "2s"),
            ("login.p99", "fast"),
            ("login.success_rate", ">= 99"),
            ("throttled.p99", "1s"),
            ("errors.count", "none"),
        ] {
            assert!(Threshold::parse(key, condition).is_err(), "{key} = {condition}");
        }
    }
}
