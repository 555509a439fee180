//! `report.html`: one self-contained file that works offline (no script, no CDN, no font download):
//! the verdict, checks and thresholds, and inline SVG charts drawn from `latency.hlog` — latency over
//! time (p50 and p99 per interval), throughput over time (answers per second per step) and the
//! percentile spectrum of each step over the whole run.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

use super::hlog::LoggedInterval;
use super::{RunResult, Verdict};
use crate::checks::Status;
use crate::metrics::{Step, new_histogram};

const COLORS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#d62728"];
const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 280.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_BOTTOM: f64 = 36.0;
const MARGIN_TOP: f64 = 12.0;
const MARGIN_RIGHT: f64 = 150.0;

/// A named polyline: (x, y) points.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The whole page.
pub fn render(r: &RunResult, intervals: &[LoggedInterval]) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let verdict = match r.verdict {
        Verdict::Pass => ("pass", r.verdict.headline()),
        Verdict::ThresholdBreached => ("warn", r.verdict.headline()),
        Verdict::ConformanceFailure | Verdict::Error => ("fail", r.verdict.headline()),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>otp-harness: {name}</title>\n<style>{STYLE}</style></head><body>\n\
         <h1>otp-harness: {name} <span class=\"badge {cls}\" id=\"verdict\">{label} (exit {code})</span></h1>\n\
         <p>Target <code>{pool}</code> ({kind}, {region}), codes from <b>{source}</b>, {model} model, {vus} virtual users, \
         {secs:.1} s, started {started}.</p>\n",
        name = esc(&r.scenario),
        cls = verdict.0,
        label = verdict.1,
        code = r.exit_code,
        pool = esc(&r.target.user_pool_id),
        kind = esc(&r.target.kind),
        region = esc(&r.target.region),
        source = esc(&r.otp_source),
        model = esc(&r.load.model),
        vus = r.load.virtual_users,
        secs = r.duration_secs,
        started = esc(&r.started_at),
    );
    for note in &r.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(note));
    }
    out.push_str(&checks_table(r));
    out.push_str(&steps_table(r));

    let by_step = step_intervals(intervals);
    out.push_str("<h2>Latency over time</h2>\n<p>p50 (solid) and p99 (dashed) of each interval, milliseconds.</p>\n");
    let mut latency = Vec::new();
    for (i, step) in Step::ALL.iter().enumerate() {
        if let Some(list) = by_step.get(step.name()) {
            let color = COLORS[i % COLORS.len()];
            let p = |q: f64| list.iter().map(|(t, _, h)| (*t, h.value_at_quantile(q) as f64 / 1000.0)).collect();
            latency.push(Series { name: format!("{} p50", step.name()), color, dashed: false, points: p(0.5) });
            latency.push(Series { name: format!("{} p99", step.name()), color, dashed: true, points: p(0.99) });
        }
    }
    out.push_str(&chart("latency-over-time", &latency, "seconds into the load", "ms", false));

    out.push_str("<h2>Throughput over time</h2>\n<p>Answers per second of each step, per interval.</p>\n");
    let throughput: Vec<Series> = Step::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            by_step.get(step.name()).map(|list| Series {
                name: step.name().to_string(),
                color: COLORS[i % COLORS.len()],
                dashed: false,
                points: list.iter().map(|(t, secs, h)| (*t, h.len() as f64 / secs.max(1e-3))).collect(),
            })
        })
        .collect();
    out.push_str(&chart("throughput-over-time", &throughput, "seconds into the load", "per second", false));

    out.push_str(
        "<h2>Percentile spectrum</h2>\n<p>Latency at each percentile over the whole run (x: 1/(1−q), log scale).</p>\n",
    );
    let whole = whole_run(intervals);
    let spectrum: Vec<Series> = Step::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, step)| {
            whole.get(step.name()).filter(|h| !h.is_empty()).map(|h| Series {
                name: step.name().to_string(),
                color: COLORS[i % COLORS.len()],
                dashed: false,
                points: spectrum_points(h),
            })
        })
        .collect();
    out.push_str(&chart("percentile-spectrum", &spectrum, "percentile", "ms", true));
    out.push_str("<footer>otp-harness — this file needs no network; the raw intervals are in latency.hlog.</footer>\n</body></html>\n");
    out
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1060px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}td.n{text-align:right}\
.badge{font-size:13px;padding:2px 8px;border-radius:4px;color:#fff;vertical-align:middle}\
.pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#ef6c00}.skip{color:#777}\
.note{background:#fff8e1;padding:6px 10px;border-left:4px solid #ffb300}svg{background:#fff;border:1px solid #eee}\
footer{margin-top:32px;color:#777;font-size:12px}";

fn checks_table(r: &RunResult) -> String {
    let mut out = String::from(
        "<h2>Checks</h2>\n<table id=\"checks\"><tr><th>check</th><th>status</th><th>passed</th><th>failed</th><th>reason</th></tr>\n",
    );
    for c in &r.checks {
        let cls = match c.status {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        };
        let label = c.status.label();
        let _ = writeln!(
            out,
            "<tr><td title=\"{}\"><code>{}</code></td><td><span class=\"badge {cls}\">{label}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&c.description),
            esc(&c.name),
            c.passed,
            c.failed,
            esc(&c.reason)
        );
    }
    out.push_str("</table>\n");
    if !r.thresholds.is_empty() {
        out.push_str("<h2>Thresholds</h2>\n<table id=\"thresholds\"><tr><th>threshold</th><th>result</th></tr>\n");
        for t in &r.thresholds {
            let (cls, label) = if t.passed { ("pass", "pass") } else { ("fail", "BREACHED") };
            let _ = writeln!(
                out,
                "<tr><td><code>{} {}</code></td><td><span class=\"badge {cls}\">{label}</span> {}</td></tr>",
                esc(&t.key),
                esc(&t.condition),
                esc(&t.reason)
            );
        }
        out.push_str("</table>\n");
    }
    out
}

fn steps_table(r: &RunResult) -> String {
    let mut out = String::from(
        "<h2>Steps (ms)</h2>\n<table id=\"steps\"><tr><th>step</th><th>count</th><th>ok</th><th>failed</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>\n",
    );
    for (name, s) in r.steps_in_order() {
        let _ = writeln!(
            out,
            "<tr><td>{name}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td></tr>",
            s.count, s.ok, s.failed, s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms
        );
    }
    out.push_str("</table>\n");
    if r.flow_steps.len() > 1 {
        out.push_str(
            "<h2>Steps by flow (ms)</h2>\n<table id=\"flow-steps\"><tr><th>flow</th><th>step</th><th>count</th><th>failed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>\n",
        );
        for (flow, step, s) in r.flow_steps_in_order() {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{step}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td><td class=\"n\">{:.1}</td></tr>",
                esc(flow),
                s.count,
                s.failed,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.max_ms
            );
        }
        out.push_str("</table>\n");
    }
    out
}

/// Each step's own intervals (not the per-flow ones), in time order:
/// (seconds at the interval's end, its length in seconds, its histogram).
type StepIntervals<'a> = BTreeMap<&'a str, Vec<(f64, f64, &'a Histogram<u64>)>>;

fn step_intervals(intervals: &[LoggedInterval]) -> StepIntervals<'_> {
    let mut out: StepIntervals<'_> = BTreeMap::new();
    for i in intervals {
        if let Some(tag) = i.tag.as_deref().filter(|t| !t.contains('/')) {
            out.entry(tag).or_default().push((
                (i.start + i.duration).as_secs_f64(),
                i.duration.as_secs_f64(),
                &i.histogram,
            ));
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn whole_run(intervals: &[LoggedInterval]) -> BTreeMap<String, Histogram<u64>> {
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for i in intervals {
        if let Some(tag) = i.tag.as_deref().filter(|t| !t.contains('/')) {
            let _ = out.entry(tag.to_string()).or_insert_with(new_histogram).add(&i.histogram);
        }
    }
    out
}

/// (log10 of 1/(1−q), ms) from q = 0 to 0.9999.
fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=80)
        .map(|k| {
            let x = f64::from(k) / 20.0; // 0 … 4 decades
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

/// An SVG line chart with axes, ticks and a legend.
fn chart(id: &str, series: &[Series], x_label: &str, y_label: &str, spectrum: bool) -> String {
    let points: Vec<&(f64, f64)> = series.iter().flat_map(|s| s.points.iter()).collect();
    if points.is_empty() {
        return format!("<p id=\"{id}\" class=\"skip\">No measurements to chart.</p>\n");
    }
    let x_max = points.iter().map(|p| p.0).fold(0.0f64, f64::max).max(1e-9);
    let x_min = if spectrum { 0.0 } else { points.iter().map(|p| p.0).fold(f64::MAX, f64::min).min(x_max) };
    let y_max = nice_ceiling(points.iter().map(|p| p.1).fold(0.0f64, f64::max));
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let sx = |x: f64| MARGIN_LEFT + (x - x_min) / (x_max - x_min).max(1e-9) * plot_w;
    let sy = |y: f64| MARGIN_TOP + plot_h - y / y_max * plot_h;
    let mut out = format!(
        "<svg id=\"{id}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\n"
    );
    // Axes and grid.
    for k in 0..=4 {
        let y = y_max * f64::from(k) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT + plot_w,
            sy(y),
            sy(y),
            MARGIN_LEFT - 6.0,
            sy(y) + 4.0,
            trim(y)
        );
    }
    let x_ticks: Vec<(f64, String)> = if spectrum {
        [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%")]
            .iter()
            .map(|(x, l)| (*x, l.to_string()))
            .collect()
    } else {
        (0..=5).map(|k| x_min + (x_max - x_min) * f64::from(k) / 5.0).map(|x| (x, trim(x))).collect()
    };
    for (x, label) in x_ticks {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
            sx(x),
            MARGIN_TOP,
            MARGIN_TOP + plot_h,
            MARGIN_TOP + plot_h + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{}</text><text x=\"14\" y=\"{:.1}\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">{}</text>",
        MARGIN_LEFT + plot_w / 2.0,
        HEIGHT - 4.0,
        esc(x_label),
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        esc(y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = s.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let dash = if s.dashed { " stroke-dasharray=\"5 3\"" } else { "" };
        let _ = writeln!(
            out,
            "<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{dash} points=\"{}\"/>",
            esc(&s.name),
            s.color,
            pts.join(" ")
        );
        let ly = MARGIN_TOP + 14.0 + 16.0 * i as f64;
        let lx = WIDTH - MARGIN_RIGHT + 12.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"11\">{}</text>",
            lx + 18.0,
            ly - 4.0,
            ly - 4.0,
            s.color,
            lx + 24.0,
            esc(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v).unwrap_or(10.0 * magnitude)
}

fn trim(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

use super::escape_markup as esc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings_round_up() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
    }

    #[test]
    fn a_chart_has_a_polyline_per_series() {
        let series =
            [Series { name: "a<b".into(), color: COLORS[0], dashed: false, points: vec![(0.0, 1.0), (1.0, 2.0)] }];
        let svg = chart("x", &series, "s", "ms", false);
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("a&lt;b"), "names are escaped");
        assert!(chart("y", &[], "s", "ms", false).contains("No measurements"));
    }
}
