//! `timeline.jsonl`: the run's counters — flows started and ended by flow kind, errors by flow and type —
//! sampled every interval while the load goes, one JSON line per sample, cumulative. report.html draws
//! sign-ins, errors and throttled answers per second over time from it (where a capacity test's knee
//! shows); the live dashboard (`live`) samples the same `Counts`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::background::{self, CancellationToken};
use crate::cognito::error::is_throttling;
use crate::metrics::{FlowCounts, Metrics};

/// The file name in a run folder.
pub const FILE: &str = "timeline.jsonl";

/// The counters at one moment, cumulative since the load started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Seconds into the load.
    pub secs: f64,
    /// By flow kind (`login`, `retry`, `login.email_otp`, …).
    pub flows: BTreeMap<String, FlowCounts>,
    /// By flow kind, then error type (`TooManyRequestsException`, `OtpTimeout`, …).
    pub errors: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Counts {
    /// The counters of `metrics` now, `secs` into the load.
    pub fn take(metrics: &Metrics, secs: f64) -> Self {
        Self { secs, flows: metrics.flows(), errors: metrics.flow_errors() }
    }

    /// Throttled answers in `flow` (TooManyRequestsException, LimitExceededException).
    pub fn throttled(&self, flow: &str) -> u64 {
        self.errors.get(flow).map_or(0, |e| e.iter().filter(|(k, _)| is_throttling(k)).map(|(_, n)| n).sum())
    }

    /// Errors other than throttling in `flow`.
    pub fn errors(&self, flow: &str) -> u64 {
        self.errors.get(flow).map_or(0, |e| e.iter().filter(|(k, _)| !is_throttling(k)).map(|(_, n)| n).sum())
    }

    /// Flows started and not ended (abandoned ones stay counted here).
    pub fn in_flight(&self) -> u64 {
        self.flows.values().map(|f| f.started.saturating_sub(f.succeeded + f.errored + f.nonconforming)).sum()
    }
}

/// Per-second rates between two samples of one flow kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    pub started: f64,
    pub succeeded: f64,
    /// Flows that ended in an error (throttling included).
    pub errored: f64,
    pub nonconforming: f64,
    /// Error answers other than throttling.
    pub errors: f64,
    /// Throttled answers.
    pub throttled: f64,
}

impl Rates {
    /// From `before` to `after`, for `flow`; zero rates when no time passed.
    pub fn between(before: &Counts, after: &Counts, flow: &str) -> Self {
        let secs = after.secs - before.secs;
        if secs <= 0.0 {
            return Self::default();
        }
        let (b, a) =
            (before.flows.get(flow).copied().unwrap_or_default(), after.flows.get(flow).copied().unwrap_or_default());
        let per_sec = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        Self {
            started: per_sec(b.started, a.started),
            succeeded: per_sec(b.succeeded, a.succeeded),
            errored: per_sec(b.errored, a.errored),
            nonconforming: per_sec(b.nonconforming, a.nonconforming),
            errors: per_sec(before.errors(flow), after.errors(flow)),
            throttled: per_sec(before.throttled(flow), after.throttled(flow)),
        }
    }
}

/// Samples the counters every `interval` into `dir/timeline.jsonl` until finished.
pub struct TimelineRecorder {
    path: PathBuf,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TimelineRecorder {
    /// Starts sampling, seconds counted from `started`; the first line is the zero sample.
    pub fn start(dir: &Path, metrics: Arc<Metrics>, interval: Duration, started: Instant) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let mut file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let interval = interval.max(Duration::from_millis(100));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let shown = path.display().to_string();
        let mut write = move |counts: &Counts| -> anyhow::Result<()> {
            let line = serde_json::to_string(counts)?;
            writeln!(file, "{line}").with_context(|| format!("writing {shown}"))
        };
        write(&Counts::take(&metrics, 0.0))?;
        let task = tokio::spawn(async move {
            loop {
                let stopping = tokio::select! {
                    _ = stopped.cancelled() => true,
                    _ = tokio::time::sleep(interval) => false,
                };
                write(&Counts::take(&metrics, started.elapsed().as_secs_f64()))?;
                if stopping {
                    return Ok(());
                }
            }
        });
        Ok(Self { path, stop, task })
    }

    /// Writes the last sample and closes the file; returns its path.
    pub async fn finish(self) -> anyhow::Result<PathBuf> {
        match background::finish(&self.stop, self.task, Duration::from_secs(5)).await {
            Some(result) => result.map(|()| self.path),
            None => anyhow::bail!("the timeline sampler did not end"),
        }
    }
}

/// Reads a timeline back, samples in time order; lines that do not parse (a file cut short) are left out.
pub fn read(path: &Path) -> anyhow::Result<Vec<Counts>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut samples: Vec<Counts> = text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    samples.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::FlowOutcome;

    #[test]
    fn rates_come_from_two_samples() {
        let m = Metrics::new();
        let before = Counts::take(&m, 1.0);
        for _ in 0..4 {
            m.flow_started("login");
        }
        m.flow_ended("login", FlowOutcome::Succeeded);
        m.flow_ended("login", FlowOutcome::Errored);
        m.count_error_in(Some("login"), "TooManyRequestsException");
        m.count_error_in(Some("login"), "OtpTimeout");
        m.count_error_in(Some("login"), "OtpTimeout");
        let after = Counts::take(&m, 3.0);
        let r = Rates::between(&before, &after, "login");
        assert_eq!((r.started, r.succeeded, r.errored), (2.0, 0.5, 0.5));
        assert_eq!((r.errors, r.throttled), (1.0, 0.5));
        assert_eq!(after.in_flight(), 2);
        assert_eq!(Rates::between(&after, &after, "login"), Rates::default(), "no time, no rate");
        assert_eq!(Rates::between(&before, &after, "retry"), Rates::default(), "an unknown flow");
    }

    #[tokio::test]
    async fn the_recorder_writes_a_sample_per_interval_and_a_last_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = Arc::new(Metrics::new());
        let recorder = TimelineRecorder::start(dir.path(), Arc::clone(&m), Duration::from_millis(100), Instant::now())
            .expect("start");
        m.flow_started("login");
        m.flow_ended("login", FlowOutcome::Succeeded);
        let path = recorder.finish().await.expect("finish");
        let samples = read(&path).expect("read back");
        assert!(samples.len() >= 2, "the zero sample and the last: {samples:?}");
        assert_eq!(samples[0].flows.len(), 0);
        assert_eq!(samples.last().expect("last").flows["login"].succeeded, 1);
    }
}
