//! `otp-harness merge`: one report from the run folders of several workers (one machine each,
//! disjoint user ranges, `run --worker INDEX/COUNT`). Latency histograms are added exactly from the
//! workers' `latency.hlog` (so merged percentiles are those of all the samples, not averages of
//! percentiles); counts are summed from their `summary.json`; checks and thresholds are re-evaluated
//! and give the exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;

use crate::checks::{CheckResult, Status};
use crate::cognito::error::is_throttling;
use crate::metrics::{FlowCounts, Observed, StepSummary, new_histogram, summarize};
use crate::otp::MailCounts;
use crate::report::hlog::{self, LoggedInterval};
use crate::report::timeline;
use crate::report::{self, RunResult};
use crate::thresholds::Threshold;
use crate::verdict::{self, Evidence};

/// One worker's folder, read.
struct Worker {
    dir: PathBuf,
    result: RunResult,
    start: Option<Duration>,
    intervals: Vec<LoggedInterval>,
}

/// Merges `dirs` into `out` (created); returns the merged result (reports written there).
pub fn merge(dirs: &[PathBuf], out: &Path) -> anyhow::Result<RunResult> {
    if dirs.is_empty() {
        bail!("name at least one run folder");
    }
    let mut seen = std::collections::HashSet::new();
    for dir in dirs {
        let canonical = dir.canonicalize().with_context(|| format!("{} is not a run folder", dir.display()))?;
        if !seen.insert(canonical) {
            bail!("{} is named twice: its counts would be added twice", dir.display());
        }
    }
    let workers: Vec<Worker> = dirs
        .iter()
        .map(|dir| {
            let result = RunResult::read(dir)?;
            let (start, intervals) = hlog::read_with_start(&dir.join(hlog::FILE))
                .with_context(|| format!("{} has no readable {}", dir.display(), hlog::FILE))?;
            Ok(Worker { dir: dir.clone(), result, start, intervals })
        })
        .collect::<anyhow::Result<_>>()?;
    let first = &workers[0].result;
    let scenario = strip_worker_suffix(&first.scenario);
    for w in &workers[1..] {
        if strip_worker_suffix(&w.result.scenario) != scenario {
            bail!("{} ran scenario {:?}, not {scenario:?}", w.dir.display(), w.result.scenario);
        }
    }
    let mut worker_names = std::collections::HashSet::new();
    for w in &workers {
        if w.result.scenario != scenario && !worker_names.insert(w.result.scenario.clone()) {
            bail!("two folders come from the same worker ({}): one of them belongs to another run", w.result.scenario);
        }
    }

    // Histograms: every interval of every worker, by tag.
    let mut histograms: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for w in &workers {
        for i in &w.intervals {
            if let Some(tag) = &i.tag {
                histograms
                    .entry(tag.clone())
                    .or_insert_with(new_histogram)
                    .add(&i.histogram)
                    .map_err(|e| anyhow::anyhow!("adding {tag} from {}: {e:?}", w.dir.display()))?;
            }
        }
    }
    let sum_counts = |summaries: Vec<&StepSummary>| -> (u64, u64) {
        summaries.iter().fold((0, 0), |(ok, failed), s| (ok + s.ok, failed + s.failed))
    };
    let mut steps = BTreeMap::new();
    let step_names: std::collections::BTreeSet<&String> = workers.iter().flat_map(|w| w.result.steps.keys()).collect();
    for name in step_names {
        let (ok, failed) = sum_counts(workers.iter().filter_map(|w| w.result.steps.get(name)).collect());
        let empty = new_histogram();
        steps.insert(name.clone(), summarize(histograms.get(name).unwrap_or(&empty), ok, failed));
    }
    let mut flow_steps: BTreeMap<String, BTreeMap<String, StepSummary>> = BTreeMap::new();
    for w in &workers {
        for (flow, by_step) in &w.result.flow_steps {
            for step in by_step.keys() {
                flow_steps.entry(flow.clone()).or_default().entry(step.clone()).or_insert_with(|| {
                    let (ok, failed) = sum_counts(
                        workers
                            .iter()
                            .filter_map(|w| w.result.flow_steps.get(flow).and_then(|s| s.get(step)))
                            .collect(),
                    );
                    let empty = new_histogram();
                    summarize(histograms.get(&format!("{flow}/{step}")).unwrap_or(&empty), ok, failed)
                });
            }
        }
    }

    let mut flows: BTreeMap<String, FlowCounts> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut mail = MailCounts::default();
    let mut modes = std::collections::BTreeSet::new();
    let mut delays: Vec<(f64, u64)> = Vec::new();
    let (mut throttled, mut dropped, mut late, mut virtual_users) = (0, 0, 0, 0);
    let mut notes = vec![format!(
        "merged from {} runs: {}",
        workers.len(),
        workers.iter().map(|w| w.dir.display().to_string()).collect::<Vec<_>>().join(", ")
    )];
    for w in &workers {
        let r = &w.result;
        for (flow, c) in &r.flows {
            let m = flows.entry(flow.clone()).or_default();
            m.started += c.started;
            m.succeeded += c.succeeded;
            m.errored += c.errored;
            m.nonconforming += c.nonconforming;
        }
        for (k, v) in &r.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
        mail.code_mails += r.mail.code_mails;
        mail.ignored += r.mail.ignored;
        mail.repeated += r.mail.repeated;
        mail.reconnects += r.mail.reconnects;
        mail.others += r.mail.others;
        mail.source_requests += r.mail.source_requests;
        if let Some(mode) = &r.mail.mode {
            modes.insert(mode.clone());
        }
        if let Some(delay) = r.mail.server_delay_mean_ms {
            delays.push((delay, r.mail.code_mails));
        }
        throttled += r.throttled;
        dropped += r.load.dropped;
        late += r.load.late;
        virtual_users += r.load.virtual_users;
        notes.extend(r.notes.iter().map(|n| format!("{}: {n}", r.scenario)));
    }
    mail.mode = (!modes.is_empty()).then(|| modes.into_iter().collect::<Vec<_>>().join("; "));
    mail.server_delay_mean_ms = weighted_mean(&delays);
    let checks = merge_checks(&workers);
    let merged = Observed {
        histograms,
        steps: steps.clone(),
        throttled,
        errors: errors.iter().filter(|(k, _)| !is_throttling(k)).map(|(_, v)| v).sum(),
        dropped,
    };
    let thresholds = first
        .thresholds
        .iter()
        .map(|t| {
            Threshold::parse(&t.key, &t.condition).map(|parsed| parsed.evaluate(&merged)).map_err(|e| {
                anyhow::anyhow!("{}: threshold {:?} = {:?}: {e}", workers[0].dir.display(), t.key, t.condition)
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let load_error =
        workers.iter().find_map(|w| w.result.load.error.as_ref().map(|e| format!("{}: {e}", w.result.scenario)));
    let (verdict, note) = verdict::decide(&Evidence {
        checks: &checks,
        thresholds: &thresholds,
        flows: &flows,
        errors: &errors,
        workload_failed: load_error.is_some(),
    });
    notes.extend(note);

    let started_at = workers.iter().filter_map(|w| humantime::parse_rfc3339(&w.result.started_at).ok()).min();
    let finished_at = workers.iter().filter_map(|w| humantime::parse_rfc3339(&w.result.finished_at).ok()).max();
    let duration_secs = match (started_at, finished_at) {
        (Some(s), Some(f)) => f.duration_since(s).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        _ => workers.iter().map(|w| w.result.duration_secs).fold(0.0, f64::max),
    };
    let mut load = first.load.clone();
    load.virtual_users = virtual_users;
    load.dropped = dropped;
    load.late = late;
    load.elapsed_secs = workers.iter().map(|w| w.result.load.elapsed_secs).fold(0.0, f64::max);
    load.error = load_error;
    let result = RunResult {
        schema: report::SCHEMA.to_string(),
        scenario: scenario.to_string(),
        scenario_file: first.scenario_file.clone(),
        started_at: started_at
            .map_or_else(|| first.started_at.clone(), |t| humantime::format_rfc3339_millis(t).to_string()),
        finished_at: finished_at
            .map_or_else(|| first.finished_at.clone(), |t| humantime::format_rfc3339_millis(t).to_string()),
        duration_secs: (duration_secs * 1000.0).round() / 1000.0,
        target: first.target.clone(),
        otp_source: first.otp_source.clone(),
        load,
        verdict,
        exit_code: verdict.exit_code(),
        checks,
        thresholds,
        steps,
        flow_steps,
        flows,
        errors,
        throttled,
        mail,
        pool: None,
        notes,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_merged_log(&workers, &out.join(hlog::FILE))?;
    let mut result = result;
    if let Some(note) = write_merged_timeline(&workers, &out.join(timeline::FILE))? {
        result.notes.push(note);
    }
    report::write_all(&result, out)?;
    Ok(result)
}

/// Sums each check's observations over the workers and recomputes its status.
fn merge_checks(workers: &[Worker]) -> Vec<CheckResult> {
    let mut merged: BTreeMap<String, CheckResult> = BTreeMap::new();
    let mut order = Vec::new();
    for w in workers {
        for c in &w.result.checks {
            let m = merged.entry(c.name.clone()).or_insert_with(|| {
                order.push(c.name.clone());
                CheckResult { passed: 0, failed: 0, reason: String::new(), ..c.clone() }
            });
            m.passed += c.passed;
            m.failed += c.failed;
            if c.status == Status::Fail && !c.reason.is_empty() && !m.reason.contains(&c.reason) {
                m.reason = if m.reason.is_empty() { c.reason.clone() } else { format!("{}; {}", m.reason, c.reason) };
            }
        }
    }
    order
        .into_iter()
        .filter_map(|name| merged.remove(&name))
        .map(|mut c| {
            c.status = if c.failed > 0 {
                Status::Fail
            } else if c.passed > 0 {
                c.reason.clear();
                Status::Pass
            } else {
                c.reason = workers
                    .iter()
                    .flat_map(|w| w.result.checks.iter())
                    .find(|w| w.name == c.name && !w.reason.is_empty())
                    .map_or_else(|| "nothing was observed".to_string(), |w| w.reason.clone());
                Status::Skip
            };
            c
        })
        .collect()
}

/// All workers' intervals in one log, placed on a common clock (the earliest worker's start).
fn write_merged_log(workers: &[Worker], path: &Path) -> anyhow::Result<()> {
    let earliest = workers.iter().filter_map(|w| w.start).min().unwrap_or_default();
    let mut all: Vec<LoggedInterval> = Vec::new();
    for w in workers {
        let shift = w.start.map_or(Duration::ZERO, |s| s.saturating_sub(earliest));
        all.extend(w.intervals.iter().map(|i| LoggedInterval {
            tag: i.tag.clone(),
            start: i.start + shift,
            duration: i.duration,
            histogram: i.histogram.clone(),
        }));
    }
    all.sort_by_key(|i| i.start);
    hlog::write(path, UNIX_EPOCH + earliest, &all)
}

/// All workers' `timeline.jsonl` as one, on the common clock of the latency log. A worker without one
/// (a run from before it existed, a file lost) leaves the merged report without rate charts: the note
/// returned says which.
fn write_merged_timeline(workers: &[Worker], path: &Path) -> anyhow::Result<Option<String>> {
    let earliest = workers.iter().filter_map(|w| w.start).min().unwrap_or_default();
    let mut timelines = Vec::new();
    let mut missing = Vec::new();
    for w in workers {
        let file = w.dir.join(timeline::FILE);
        match file.exists().then(|| timeline::read(&file)) {
            Some(Ok(samples)) => {
                let offset = w.start.map_or(Duration::ZERO, |s| s.saturating_sub(earliest));
                timelines.push((offset.as_secs_f64(), samples));
            }
            Some(Err(e)) => missing.push(format!("{} ({e:#})", w.dir.display())),
            None => missing.push(w.dir.display().to_string()),
        }
    }
    if !missing.is_empty() {
        return Ok(Some(format!(
            "no rate charts: {} of the workers' folders lack a readable {}: {}",
            missing.len(),
            timeline::FILE,
            missing.join(", ")
        )));
    }
    timeline::write(path, &timeline::merge(&timelines))?;
    Ok(None)
}

/// The mean of per-worker means weighted by their counts (their code mails); none without a count.
fn weighted_mean(values: &[(f64, u64)]) -> Option<f64> {
    let total: u64 = values.iter().map(|(_, n)| n).sum();
    (total > 0).then(|| {
        let mean = values.iter().map(|(v, n)| v * *n as f64).sum::<f64>() / total as f64;
        (mean * 10.0).round() / 10.0
    })
}

/// `nightly-w3` → `nightly`.
fn strip_worker_suffix(name: &str) -> &str {
    match name.rsplit_once("-w") {
        Some((base, index)) if !index.is_empty() && index.chars().all(|c| c.is_ascii_digit()) => base,
        _ => name,
    }
}

/// The default output folder: `reports/<scenario>-merged-<UTC time>`.
pub fn default_out(first: &Path) -> anyhow::Result<PathBuf> {
    let result = RunResult::read(first)?;
    let parent = first.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("reports"));
    Ok(report::run_dir(&parent, &format!("{}-merged", strip_worker_suffix(&result.scenario)), SystemTime::now()))
}

#[cfg(test)]
mod tests {
    use super::{strip_worker_suffix, weighted_mean};

    #[test]
    fn server_delays_are_weighted_by_each_workers_mails() {
        assert_eq!(weighted_mean(&[(100.0, 1), (200.0, 3)]), Some(175.0));
        assert_eq!(weighted_mean(&[(100.0, 0)]), None);
        assert_eq!(weighted_mean(&[]), None);
    }

    #[test]
    fn worker_suffixes_are_stripped() {
        assert_eq!(strip_worker_suffix("nightly-w3"), "nightly");
        assert_eq!(strip_worker_suffix("nightly"), "nightly");
        assert_eq!(strip_worker_suffix("a-west"), "a-west");
    }
}
