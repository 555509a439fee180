//! The summary printed to the terminal at the end of a run.

use std::fmt::Write;

use super::RunResult;

pub fn render(r: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{} — {} virtual users, {:.1} s, codes from {}",
        r.scenario, r.load.virtual_users, r.duration_secs, r.otp_source
    );
    for note in &r.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(out, "\n  step           count     p50     p90     p99   p99.9     max  (ms)");
    for (name, s) in r.steps_in_order() {
        let _ = writeln!(
            out,
            "  {name:<12} {:>7} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1}{}",
            s.count,
            s.p50_ms,
            s.p90_ms,
            s.p99_ms,
            s.p999_ms,
            s.max_ms,
            if s.failed > 0 { format!("  ({} failed)", s.failed) } else { String::new() }
        );
    }
    let sign_ins: Vec<_> = r.flow_steps_in_order().filter(|(_, step, _)| *step == "login").collect();
    if sign_ins.len() > 1 {
        let _ = writeln!(out, "\n  sign-ins by flow   count     p50     p90     p99     max  (ms)");
        for (flow, _, s) in sign_ins {
            let _ = writeln!(
                out,
                "  {flow:<17} {:>6} {:>7.1} {:>7.1} {:>7.1} {:>7.1}",
                s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
            );
        }
    }
    if !r.errors.is_empty() {
        let list: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "\n  errors: {}", list.join(", "));
    }
    let _ = writeln!(out, "\n  checks:");
    for c in &r.checks {
        let mark = c.status.label();
        let detail = if c.reason.is_empty() { String::new() } else { format!(" — {}", c.reason) };
        let _ = writeln!(out, "    {mark} {:<44} {:>5}/{:<5}{detail}", c.name, c.passed, c.passed + c.failed);
    }
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\n  thresholds:");
        for t in &r.thresholds {
            let _ = writeln!(out, "    {} {}", if t.passed { "ok  " } else { "FAIL" }, t.reason);
        }
    }
    let _ = writeln!(out, "\n  verdict: {} (exit {})", r.verdict.headline(), r.exit_code);
    out
}
