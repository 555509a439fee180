//! Run reports: one result type (`RunResult`) and one small writer per file — `summary.json` (stable
//! field names for machines), `summary.md` (fit for `$GITHUB_STEP_SUMMARY`), `junit.xml` (a test case
//! per check and per threshold) — plus the terminal summary. Nothing here ever holds a code, token or
//! password: only counts, timings, names and Cognito's own error messages.

pub mod assemble;
pub mod console;
pub mod hlog;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod timeline;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::checks::CheckResult;
use crate::metrics::{FlowCounts, StepSummary};
use crate::otp::MailCounts;
use crate::thresholds::ThresholdResult;
pub use crate::verdict::Verdict;

/// The schema name and version of `summary.json`.
pub const SCHEMA: &str = "otp-harness/summary/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetSummary {
    pub kind: String,
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadSummary {
    /// "closed" or "open".
    pub model: String,
    /// Closed: virtual users; open: the in-flight cap.
    pub virtual_users: u32,
    pub iterations_per_user: Option<u32>,
    /// Closed: the duration limit; open: the stages' total.
    pub duration_limit_secs: Option<f64>,
    /// How long the load ran.
    pub elapsed_secs: f64,
    /// Open model: starts dropped for want of a free virtual user.
    pub dropped: u64,
    /// Open model: starts taken more than 10 ms after their intended time.
    pub late: u64,
    /// Why the workload could not run (goose refused it), if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything a run found; every report is written from this alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub schema: String,
    pub scenario: String,
    pub scenario_file: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_secs: f64,
    pub target: TargetSummary,
    pub otp_source: String,
    pub load: LoadSummary,
    pub verdict: Verdict,
    pub exit_code: u8,
    pub checks: Vec<CheckResult>,
    pub thresholds: Vec<ThresholdResult>,
    /// Latency per step, in milliseconds.
    pub steps: BTreeMap<String, StepSummary>,
    /// The same per flow (`login`, `retry`, `lockout`).
    pub flow_steps: BTreeMap<String, BTreeMap<String, StepSummary>>,
    pub flows: BTreeMap<String, FlowCounts>,
    /// Errors by type (TooManyRequestsException, OtpTimeout, …).
    pub errors: BTreeMap<String, u64>,
    pub throttled: u64,
    pub mail: MailCounts,
    /// The embedded pool's own counters, for local targets.
    pub pool: Option<serde_json::Value>,
    /// Things a reader should know (why a run could not happen, …).
    pub notes: Vec<String>,
}

impl RunResult {
    /// Steps in pipeline order: initiate, otp_delivery, respond, login.
    pub fn steps_in_order(&self) -> impl Iterator<Item = (&'static str, &StepSummary)> + '_ {
        crate::metrics::Step::ALL
            .into_iter()
            .filter_map(|s| self.steps.get(s.name()).map(|summary| (s.name(), summary)))
    }

    /// Each flow's steps in pipeline order, flows by name (`login`, `login.email_otp`, …): the flows side by
    /// side.
    pub fn flow_steps_in_order(&self) -> impl Iterator<Item = (&str, &'static str, &StepSummary)> + '_ {
        self.flow_steps.iter().flat_map(|(flow, steps)| {
            crate::metrics::Step::ALL
                .into_iter()
                .filter_map(move |s| steps.get(s.name()).map(|summary| (flow.as_str(), s.name(), summary)))
        })
    }

    /// Reads a run folder's `summary.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let result: RunResult =
            serde_json::from_str(&text).with_context(|| format!("{} is not an otp-harness summary", path.display()))?;
        if result.schema != SCHEMA {
            anyhow::bail!("{}: schema {:?}, expected {SCHEMA:?}", path.display(), result.schema);
        }
        Ok(result)
    }
}

/// Writes every report into `dir` (created); returns the paths written. `report.html` draws its
/// charts from the folder's `latency.hlog` and `timeline.jsonl`, so those must be complete first.
pub fn write_all(result: &RunResult, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = dir.join(hlog::FILE);
    // A latency log cut short (a full disk, a killed writer) must not cost the other reports: the page is
    // then drawn without its charts, and the run's notes say the log is incomplete.
    let intervals = if log.exists() {
        hlog::read(&log).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "latency.hlog cannot be read back; report.html has no charts");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let timeline_path = dir.join(timeline::FILE);
    let timeline = if timeline_path.exists() {
        timeline::read(&timeline_path).unwrap_or_else(|e| {
            tracing::warn!(error = %format!("{e:#}"), "timeline.jsonl cannot be read back; report.html has no rate charts");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let files: [(&str, String); 4] = [
        ("summary.json", json::render(result)?),
        ("summary.md", markdown::render(result)),
        ("junit.xml", junit::render(result)),
        ("report.html", html::render(result, &intervals, &timeline)),
    ];
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `reports/<name>-<UTC time>` under `parent`.
pub fn run_dir(parent: &Path, name: &str, started: std::time::SystemTime) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(started).to_string().replace(':', "");
    parent.join(format!("{name}-{stamp}"))
}

/// Text made safe inside XML and HTML elements and attributes (junit.xml, report.html); control
/// characters other than newline and tab, which XML 1.0 forbids, become spaces.
pub(crate) fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_latency_log_cut_short_costs_no_report() {
        let json = serde_json::json!({
            "schema": SCHEMA, "scenario": "s", "scenario_file": "s.toml",
            "started_at": "2026-11-24T00:00:00Z", "finished_at": "2026-11-24T00:01:00Z", "duration_secs": 60.0,
            "target": { "kind": "local", "region": "r", "user_pool_id": "p", "client_id": "c", "endpoint": null },
            "otp_source": "outbox",
            "load": { "model": "closed", "virtual_users": 1, "iterations_per_user": 1, "duration_limit_secs": null, "elapsed_secs": 1.0, "dropped": 0, "late": 0 },
            "verdict": "pass", "exit_code": 0, "checks": [], "thresholds": [],
            "steps": {}, "flow_steps": {}, "flows": {}, "errors": {}, "throttled": 0,
            "mail": { "code_mails": 0, "ignored": 0, "repeated": 0, "reconnects": 0 }, "pool": null,
            "notes": ["the latency log is incomplete: No space left on device"]
        });
        let result: RunResult = serde_json::from_value(json).expect("a run result");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(hlog::FILE), "#[StartTime: 1.0]\n0.0,1.0,1.0,HISTFAAAA-cut-sh").expect("log");
        assert!(hlog::read(&dir.path().join(hlog::FILE)).is_err(), "the log really is broken");
        let written = write_all(&result, dir.path()).expect("every report is written");
        assert_eq!(written.len(), 4);
        assert_eq!(RunResult::read(dir.path()).expect("summary.json reads back").notes, result.notes);
        let html = std::fs::read_to_string(dir.path().join("report.html")).expect("report.html");
        assert!(html.contains("the latency log is incomplete"));
    }
}
