//! `summary.md`: the verdict, checks, thresholds, step latencies and errors as Markdown tables, fit
//! for `$GITHUB_STEP_SUMMARY`.

use std::fmt::Write;

use super::{RunResult, Verdict};
use crate::checks::Status;

pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    let verdict = match r.verdict {
        Verdict::Pass => "✅ pass",
        Verdict::ConformanceFailure => "❌ conformance failure",
        Verdict::ThresholdBreached => "⚠️ threshold breached",
        Verdict::Error => "⛔ the run could not happen",
    };
    let _ = writeln!(out, "# otp-harness: {} — {verdict} (exit {})\n", r.scenario, r.exit_code);
    let _ = writeln!(
        out,
        "Target `{}` (`{}`, {}), codes from **{}**, {} virtual users, {:.1} s, started {}.\n",
        r.target.user_pool_id,
        r.target.kind,
        r.target.region,
        r.otp_source,
        r.load.virtual_users,
        r.duration_secs,
        r.started_at
    );
    for note in &r.notes {
        let _ = writeln!(out, "> {note}\n");
    }
    let _ = writeln!(out, "## Checks\n\n| check | status | passed | failed | reason |\n|---|---|---:|---:|---|");
    for c in &r.checks {
        let status = match c.status {
            Status::Fail => format!("**{}**", c.status.label()),
            other => other.label().to_string(),
        };
        let _ = writeln!(out, "| `{}` | {status} | {} | {} | {} |", c.name, c.passed, c.failed, cell(&c.reason));
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\n## Thresholds\n\n| threshold | result |\n|---|---|");
        for t in &r.thresholds {
            let mark = if t.passed { "pass" } else { "**BREACHED**" };
            let _ = writeln!(out, "| `{} {}` | {mark}: {} |", t.key, t.condition, cell(&t.reason));
        }
    }
    let _ = writeln!(
        out,
        "\n## Steps (ms)\n\n| step | count | ok | failed | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, s) in r.steps_in_order() {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            s.count, s.ok, s.failed, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
        );
    }
    if r.flow_steps.len() > 1 {
        let _ = writeln!(
            out,
            "\n## Steps by flow (ms)\n\n| flow | step | count | failed | p50 | p90 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|---:|"
        );
        for (flow, step, s) in r.flow_steps_in_order() {
            let _ = writeln!(
                out,
                "| {flow} | {step} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.count, s.failed, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Flows\n\n| flow | started | succeeded | errored | nonconforming |\n|---|---:|---:|---:|---:|"
    );
    for (name, f) in &r.flows {
        let _ = writeln!(out, "| {name} | {} | {} | {} | {} |", f.started, f.succeeded, f.errored, f.nonconforming);
    }
    let _ = writeln!(
        out,
        "\n## Errors and mail\n\nThrottled: {}. Code mails seen: {}, ignored mails: {}, repeated codes: {}, source reconnects: {}.\n",
        r.throttled, r.mail.code_mails, r.mail.ignored, r.mail.repeated, r.mail.reconnects
    );
    if !r.errors.is_empty() {
        let _ = writeln!(out, "| error | count |\n|---|---:|");
        for (name, n) in &r.errors {
            let _ = writeln!(out, "| {name} | {n} |");
        }
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}
