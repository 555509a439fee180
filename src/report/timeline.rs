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

/// Writes `samples` as a timeline file at `path`.
pub fn write(path: &Path, samples: &[Counts]) -> anyhow::Result<()> {
    let mut text = String::new();
    for sample in samples {
        text.push_str(&serde_json::to_string(sample)?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Several workers' timelines as one: each worker's samples are placed on a common clock (`offset`:
/// seconds from the earliest worker's load start to its own), its cumulative counters interpolated
/// linearly between its samples onto a regular grid (the finest sampling interval of the workers) and
/// summed. At every grid point a worker that has not started counts nothing and one that has ended counts
/// its last sample, so the last merged sample is exactly the sum of the workers' totals.
pub fn merge(workers: &[(f64, Vec<Counts>)]) -> Vec<Counts> {
    let workers: Vec<&(f64, Vec<Counts>)> = workers.iter().filter(|(_, samples)| !samples.is_empty()).collect();
    let Some(end) = workers.iter().filter_map(|(offset, s)| s.last().map(|l| offset + l.secs)).reduce(f64::max) else {
        return Vec::new();
    };
    let step = workers
        .iter()
        .filter_map(|(_, samples)| {
            let mut gaps: Vec<f64> = samples.windows(2).map(|w| w[1].secs - w[0].secs).filter(|g| *g > 0.0).collect();
            gaps.sort_by(f64::total_cmp);
            gaps.get(gaps.len() / 2).copied()
        })
        .reduce(f64::min)
        .unwrap_or(1.0)
        .max(0.1);
    let mut grid: Vec<f64> = (0..).map(|i| i as f64 * step).take_while(|t| *t < end).collect();
    grid.push(end);
    grid.iter()
        .map(|&t| {
            let mut sum = Counts { secs: (t * 1000.0).round() / 1000.0, ..Counts::default() };
            for (offset, samples) in &workers {
                add(&mut sum, &at(samples, t - offset));
            }
            sum
        })
        .collect()
}

/// One worker's counters `secs` into its load, interpolated between its samples (sorted by time).
fn at(samples: &[Counts], secs: f64) -> Counts {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return Counts::default() };
    if secs < first.secs.min(0.0) {
        return Counts::default();
    }
    if secs <= first.secs {
        return first.clone();
    }
    if secs >= last.secs {
        return last.clone();
    }
    let i = samples.partition_point(|s| s.secs <= secs);
    let (a, b) = (&samples[i - 1], &samples[i]);
    let f = (secs - a.secs) / (b.secs - a.secs);
    let lerp = |x: u64, y: u64| x + ((y.saturating_sub(x)) as f64 * f).round() as u64;
    let mut out = Counts { secs, ..Counts::default() };
    for (flow, bc) in &b.flows {
        let ac = a.flows.get(flow).copied().unwrap_or_default();
        out.flows.insert(
            flow.clone(),
            FlowCounts {
                started: lerp(ac.started, bc.started),
                succeeded: lerp(ac.succeeded, bc.succeeded),
                errored: lerp(ac.errored, bc.errored),
                nonconforming: lerp(ac.nonconforming, bc.nonconforming),
            },
        );
    }
    for (flow, by_type) in &b.errors {
        let entry = out.errors.entry(flow.clone()).or_default();
        for (kind, n) in by_type {
            let before = a.errors.get(flow).and_then(|e| e.get(kind)).copied().unwrap_or(0);
            entry.insert(kind.clone(), lerp(before, *n));
        }
    }
    out
}

/// Adds `other`'s counters to `sum`'s.
fn add(sum: &mut Counts, other: &Counts) {
    for (flow, c) in &other.flows {
        let s = sum.flows.entry(flow.clone()).or_default();
        s.started += c.started;
        s.succeeded += c.succeeded;
        s.errored += c.errored;
        s.nonconforming += c.nonconforming;
    }
    for (flow, by_type) in &other.errors {
        let s = sum.errors.entry(flow.clone()).or_default();
        for (kind, n) in by_type {
            *s.entry(kind.clone()).or_default() += n;
        }
    }
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

    fn sample(secs: f64, started: u64, succeeded: u64, throttled: u64) -> Counts {
        let mut c = Counts { secs, ..Counts::default() };
        c.flows.insert("login".into(), FlowCounts { started, succeeded, errored: throttled, nonconforming: 0 });
        if throttled > 0 {
            c.errors.entry("login".into()).or_default().insert("TooManyRequestsException".into(), throttled);
        }
        c
    }

    #[test]
    fn merged_workers_add_up_to_their_totals_on_a_common_clock() {
        // Worker A: 10 sign-ins a second for 2 s. Worker B starts 1 s later: 20 a second for 2 s, 4 throttled.
        let a = vec![sample(0.0, 0, 0, 0), sample(1.0, 10, 10, 0), sample(2.0, 20, 20, 0)];
        let b = vec![sample(0.0, 0, 0, 0), sample(1.0, 20, 20, 0), sample(2.0, 44, 40, 4)];
        let merged = merge(&[(0.0, a), (1.0, b)]);
        let secs: Vec<f64> = merged.iter().map(|c| c.secs).collect();
        assert_eq!(secs, vec![0.0, 1.0, 2.0, 3.0]);
        let last = merged.last().expect("samples");
        assert_eq!(last.flows["login"].succeeded, 60);
        assert_eq!(last.flows["login"].started, 64);
        assert_eq!(last.throttled("login"), 4);
        // Between 1 s and 2 s both ran: 10 + 20 sign-ins a second.
        assert_eq!(Rates::between(&merged[1], &merged[2], "login").succeeded, 30.0);
        // Before B started, only A counted; after A ended, only B.
        assert_eq!(Rates::between(&merged[0], &merged[1], "login").succeeded, 10.0);
        assert_eq!(Rates::between(&merged[2], &merged[3], "login").succeeded, 20.0);
        assert_eq!(Rates::between(&merged[2], &merged[3], "login").throttled, 4.0);
    }

    #[test]
    fn samples_between_a_workers_own_are_interpolated() {
        let a = vec![sample(0.0, 0, 0, 0), sample(2.0, 40, 40, 0)];
        let b = vec![sample(0.0, 0, 0, 0), sample(1.0, 5, 5, 0), sample(2.0, 10, 10, 0)];
        let merged = merge(&[(0.0, a), (0.0, b)]);
        assert_eq!(merged.len(), 3, "the finer worker's interval sets the grid: {merged:?}");
        assert_eq!(merged[1].flows["login"].succeeded, 25);
        assert_eq!(merge(&[]), Vec::<Counts>::new());
        assert_eq!(merge(&[(0.0, Vec::new())]), Vec::<Counts>::new());
    }
}
