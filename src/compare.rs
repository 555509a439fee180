//! `otp-harness compare BASELINE CURRENT`: a run against a baseline run (nightly CI against last
//! night): per-step percentile deltas and success-rate changes, each judged against a tolerance. A
//! regression exits 99. Writes `compare.md` and `compare.json` into the current run's folder.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use crate::metrics::Step;
use crate::report::RunResult;

/// How much worse is still fine.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Latency may grow by this fraction (0.10 = 10 %)…
    pub latency: f64,
    /// …or by this many milliseconds, whichever is larger (tiny latencies are noisy).
    pub min_delta_ms: f64,
    /// Success rate may fall by this many percentage points (as a fraction: 0.01 = 1 point).
    pub success_rate: f64,
}

/// One compared number.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub step: String,
    pub metric: String,
    pub baseline: f64,
    pub current: f64,
    /// current − baseline (milliseconds, or percentage points for success rates).
    pub delta: f64,
    /// Relative change (latencies only).
    pub change_pct: Option<f64>,
    pub regression: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub current: String,
    pub deltas: Vec<Delta>,
    pub regressions: usize,
}

/// Reads one percentile of a step summary.
type Percentile = fn(&crate::metrics::StepSummary) -> f64;

const METRICS: [(&str, Percentile); 4] =
    [("p50", |s| s.p50_ms), ("p90", |s| s.p90_ms), ("p99", |s| s.p99_ms), ("p999", |s| s.p999_ms)];

/// Compares every step both runs measured.
pub fn compare(baseline: &RunResult, current: &RunResult, tolerance: Tolerance) -> Comparison {
    let mut deltas = Vec::new();
    for step in Step::ALL {
        let (Some(b), Some(c)) = (baseline.steps.get(step.name()), current.steps.get(step.name())) else {
            continue;
        };
        if b.count == 0 || c.count == 0 {
            continue;
        }
        for (metric, value) in METRICS {
            let (bv, cv) = (value(b), value(c));
            let allowed = (bv * tolerance.latency).max(tolerance.min_delta_ms);
            deltas.push(Delta {
                step: step.name().to_string(),
                metric: metric.to_string(),
                baseline: bv,
                current: cv,
                delta: cv - bv,
                change_pct: (bv > 0.0).then(|| (cv - bv) / bv * 100.0),
                regression: cv - bv > allowed,
            });
        }
        let rate = |s: &crate::metrics::StepSummary| s.ok as f64 / s.count as f64;
        let (br, cr) = (rate(b), rate(c));
        deltas.push(Delta {
            step: step.name().to_string(),
            metric: "success_rate".into(),
            baseline: br * 100.0,
            current: cr * 100.0,
            delta: (cr - br) * 100.0,
            change_pct: None,
            regression: br - cr > tolerance.success_rate + 1e-12,
        });
    }
    let regressions = deltas.iter().filter(|d| d.regression).count();
    Comparison { baseline: baseline.started_at.clone(), current: current.started_at.clone(), deltas, regressions }
}

/// The comparison as Markdown.
pub fn render_markdown(c: &Comparison, current: &RunResult) -> String {
    let mut out = String::new();
    let verdict = if c.regressions == 0 { "✅ no regression" } else { "❌ regression" };
    let _ = writeln!(out, "# otp-harness compare: {} — {verdict}\n", current.scenario);
    let _ = writeln!(out, "Baseline started {}, current started {}.\n", c.baseline, c.current);
    let _ = writeln!(out, "| step | metric | baseline | current | change | |\n|---|---|---:|---:|---:|---|");
    for d in &c.deltas {
        let unit = if d.metric == "success_rate" { "%" } else { " ms" };
        let change = match d.change_pct {
            Some(p) => format!("{:+.1} ms ({p:+.1} %)", d.delta),
            None => format!("{:+.2} pt", d.delta),
        };
        let mark = if d.regression { "**REGRESSION**" } else { "" };
        let _ = writeln!(
            out,
            "| {} | {} | {:.2}{unit} | {:.2}{unit} | {change} | {mark} |",
            d.step, d.metric, d.baseline, d.current
        );
    }
    out
}

/// Reads both runs, compares, writes compare.md / compare.json into `out`; returns the comparison.
pub fn run(
    baseline_dir: &Path,
    current_dir: &Path,
    tolerance: Tolerance,
    out: &Path,
) -> anyhow::Result<(Comparison, String)> {
    let baseline = RunResult::read(baseline_dir)?;
    let current = RunResult::read(current_dir)?;
    let comparison = compare(&baseline, &current, tolerance);
    let markdown = render_markdown(&comparison, &current);
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("compare.md"), &markdown)?;
    std::fs::write(out.join("compare.json"), serde_json::to_string_pretty(&comparison)? + "\n")?;
    Ok((comparison, markdown))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::StepSummary;

    fn step(p50: f64, ok: u64, failed: u64) -> StepSummary {
        StepSummary {
            count: ok + failed,
            ok,
            failed,
            p50_ms: p50,
            p90_ms: p50 * 2.0,
            p99_ms: p50 * 3.0,
            p999_ms: p50 * 4.0,
            max_ms: p50 * 5.0,
            mean_ms: p50,
        }
    }

    fn result(login: StepSummary) -> RunResult {
        let json = serde_json::json!({
            "schema": crate::report::SCHEMA, "scenario": "s", "scenario_file": "s.toml",
            "started_at": "2026-11-24T00:00:00Z", "finished_at": "2026-11-24T00:01:00Z", "duration_secs": 60.0,
            "target": { "kind": "local", "region": "r", "user_pool_id": "p", "client_id": "c", "endpoint": null },
            "otp_source": "outbox",
            "load": { "model": "closed", "virtual_users": 1, "iterations_per_user": 1, "duration_limit_secs": null, "elapsed_secs": 1.0, "dropped": 0, "late": 0 },
            "verdict": "pass", "exit_code": 0, "checks": [], "thresholds": [],
            "steps": { "login": login }, "flow_steps": {}, "flows": {}, "errors": {}, "throttled": 0,
            "mail": { "code_mails": 0, "ignored": 0, "repeated": 0, "reconnects": 0 }, "pool": null, "notes": []
        });
        serde_json::from_value(json).expect("a run result")
    }

    const TOLERANCE: Tolerance = Tolerance { latency: 0.10, min_delta_ms: 1.0, success_rate: 0.01 };

    #[test]
    fn growth_within_tolerance_passes_and_beyond_it_regresses() {
        let base = result(step(100.0, 100, 0));
        let same = compare(&base, &result(step(105.0, 100, 0)), TOLERANCE);
        assert_eq!(same.regressions, 0);
        let slower = compare(&base, &result(step(120.0, 100, 0)), TOLERANCE);
        assert_eq!(slower.regressions, 4, "p50, p90, p99, p99.9 all grew 20 %");
        let failing = compare(&base, &result(step(100.0, 97, 3)), TOLERANCE);
        assert_eq!(failing.regressions, 1, "success rate fell 3 points");
        assert!(failing.deltas.iter().any(|d| d.metric == "success_rate" && d.regression));
    }

    #[test]
    fn tiny_latencies_get_the_absolute_floor() {
        // p50 +0.4 ms and p90 +0.8 ms stay under the 1 ms floor; p99 +1.2 ms and p99.9 +1.6 ms do not.
        let c = compare(&result(step(0.5, 10, 0)), &result(step(0.9, 10, 0)), TOLERANCE);
        let regressed: Vec<&str> = c.deltas.iter().filter(|d| d.regression).map(|d| d.metric.as_str()).collect();
        assert_eq!(regressed, ["p99", "p999"]);
    }
}
