//! `report.html`: one self-contained file that works offline (no script, no CDN, no font download):
//! the verdict, checks and thresholds, and inline SVG charts drawn from `latency.hlog` — latency over
//! time (p50 and p99 per interval), throughput over time (answers per second per step) and the
//! percentile spectrum of each step over the whole run — and from `timeline.jsonl`: sign-ins, errors
//! and throttled answers per second over time, one line per flow kind. Axis ticks fall on round
//! values. The live dashboard (`live`) shares its style sheet, colours and chart geometry.

use std::collections::BTreeMap;
use std::fmt::Write;

use hdrhistogram::Histogram;

use super::hlog::LoggedInterval;
use super::timeline::{Counts, Rates};
use super::{RunResult, Verdict};
use crate::checks::Status;
use crate::metrics::{Step, new_histogram};

/// Line colours, in order (steps in pipeline order, flow kinds by name); the live page uses the same.
pub(crate) const COLORS: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#9467bd", "#2ca02c", "#d62728", "#8c564b", "#e377c2", "#17becf"];
pub(crate) const WIDTH: f64 = 860.0;
pub(crate) const HEIGHT: f64 = 280.0;
pub(crate) const MARGIN_LEFT: f64 = 64.0;
pub(crate) const MARGIN_BOTTOM: f64 = 36.0;
pub(crate) const MARGIN_TOP: f64 = 12.0;
pub(crate) const MARGIN_RIGHT: f64 = 150.0;

/// A named polyline: (x, y) points.
struct Series {
    name: String,
    color: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The whole page, from the run's result, its latency log and its counters' timeline.
pub fn render(r: &RunResult, intervals: &[LoggedInterval], timeline: &[Counts]) -> String {
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
    out.push_str(&timeline_charts(timeline));

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

/// The style sheet of report.html and of the live page.
pub(crate) const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1060px;color:#222}\
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}th{background:#f4f4f4}td.n{text-align:right}\
.badge{font-size:13px;padding:2px 8px;border-radius:4px;color:#fff;vertical-align:middle}\
.pass{background:#2e7d32}.fail{background:#c62828}.warn{background:#ef6c00}.skip{color:#777}\
.note{background:#fff8e1;padding:6px 10px;border-left:4px solid #ffb300}svg{background:#fff;border:1px solid #eee}\
footer{margin-top:32px;color:#777;font-size:12px}";

/// Sign-ins per second, and errors and throttled answers per second, over time: one line per flow kind.
fn timeline_charts(timeline: &[Counts]) -> String {
    let mut out = String::from(
        "<h2>Sign-ins over time</h2>\n<p>Flows started (dashed) and succeeded (solid) per second, one line per flow kind.</p>\n",
    );
    let flows: Vec<&String> = timeline.last().map(|c| c.flows.keys().collect()).unwrap_or_default();
    let rates = |flow: &str, pick: fn(&Rates) -> f64| -> Vec<(f64, f64)> {
        timeline.windows(2).map(|w| (w[1].secs, pick(&Rates::between(&w[0], &w[1], flow)))).collect()
    };
    let mut sign_ins = Vec::new();
    let mut errors = Vec::new();
    for (i, flow) in flows.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line = |what: &str, dashed: bool, pick: fn(&Rates) -> f64| Series {
            name: format!("{flow} {what}"),
            color,
            dashed,
            points: rates(flow, pick),
        };
        sign_ins.push(line("succeeded", false, |r| r.succeeded));
        sign_ins.push(line("started", true, |r| r.started));
        errors.push(line("errors", false, |r| r.errors));
        errors.push(line("throttled", true, |r| r.throttled));
    }
    out.push_str(&chart("sign-ins-over-time", &sign_ins, "seconds into the load", "per second", false));
    out.push_str(
        "<h2>Errors and throttling over time</h2>\n<p>Error answers (solid) and throttled answers (dashed) per second, \
         one line per flow kind: where a capacity test's knee shows.</p>\n",
    );
    out.push_str(&chart("errors-over-time", &errors, "seconds into the load", "per second", false));
    out
}

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

/// An SVG line chart with axes, ticks on round values and a legend.
fn chart(id: &str, series: &[Series], x_label: &str, y_label: &str, spectrum: bool) -> String {
    let points: Vec<&(f64, f64)> = series.iter().flat_map(|s| s.points.iter()).collect();
    if points.is_empty() {
        return format!("<p id=\"{id}\" class=\"skip\">No measurements to chart.</p>\n");
    }
    let data_x_max = points.iter().map(|p| p.0).fold(0.0f64, f64::max);
    let data_x_min = points.iter().map(|p| p.0).fold(f64::MAX, f64::min).min(data_x_max);
    let (x_min, x_max, x_step) = if spectrum { (0.0, 4.0, 1.0) } else { axis(data_x_min.min(0.0), data_x_max, 6) };
    let (_, y_max, y_step) = axis(0.0, points.iter().map(|p| p.1).fold(0.0f64, f64::max), 4);
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let sx = |x: f64| MARGIN_LEFT + (x - x_min) / (x_max - x_min).max(1e-9) * plot_w;
    let sy = |y: f64| MARGIN_TOP + plot_h - y / y_max * plot_h;
    let mut out = format!(
        "<svg id=\"{id}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">\n"
    );
    // Axes and grid.
    for y in ticks(0.0, y_max, y_step) {
        let _ = writeln!(
            out,
            "<line x1=\"{MARGIN_LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            MARGIN_LEFT + plot_w,
            sy(y),
            sy(y),
            MARGIN_LEFT - 6.0,
            sy(y) + 4.0,
            tick_label(y, y_step)
        );
    }
    let x_ticks: Vec<(f64, String)> = if spectrum {
        [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%")]
            .iter()
            .map(|(x, l)| (*x, l.to_string()))
            .collect()
    } else {
        ticks(x_min, x_max, x_step).into_iter().map(|x| (x, tick_label(x, x_step))).collect()
    };
    for (x, label) in x_ticks {
        let _ = writeln!(
            out,
            "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"#eee\"/><text class=\"tick\" x=\"{0:.1}\" y=\"{3:.1}\" font-size=\"11\" text-anchor=\"middle\">{label}</text>",
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

/// A round step (1, 2, 2.5 or 5 times a power of ten) at least `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// An axis over `[low, high]` with about `count` intervals: (start, end, step), both ends on multiples
/// of the round step. An empty range becomes 0 to 1.
pub(crate) fn axis(low: f64, high: f64, count: u32) -> (f64, f64, f64) {
    let (low, high) = if high > low { (low, high) } else { (low.min(0.0), low.max(0.0) + 1.0) };
    let step = nice_step((high - low) / f64::from(count.max(1)));
    ((low / step).floor() * step, (high / step - 1e-9).ceil() * step, step)
}

/// Every multiple of `step` from `low` to `high`.
pub(crate) fn ticks(low: f64, high: f64, step: f64) -> Vec<f64> {
    let first = (low / step).round() as i64;
    let last = (high / step).round() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A tick's label with as many decimals as its step needs (0, 50, 100; 0.5, 1.0; 0.25, 0.50).
pub(crate) fn tick_label(value: f64, step: f64) -> String {
    let mut decimals = 0usize;
    while decimals < 6
        && ((step * 10f64.powi(decimals as i32)).round() - step * 10f64.powi(decimals as i32)).abs() > 1e-6
    {
        decimals += 1;
    }
    let text = format!("{value:.decimals$}");
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_string()
    } else {
        text
    }
}

use super::escape_markup as esc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_fall_on_round_values() {
        assert_eq!(axis(1.0, 120.0, 6), (0.0, 120.0, 20.0));
        assert_eq!(axis(0.0, 48.8, 4), (0.0, 60.0, 20.0));
        assert_eq!(nice_step(12.2), 20.0);
        assert_eq!(nice_step(2.2), 2.5);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(axis(0.0, 0.0, 4), (0.0, 1.0, 0.25));
        assert_eq!(ticks(0.0, 1.0, 0.25), [0.0, 0.25, 0.5, 0.75, 1.0]);
        let labels: Vec<String> = ticks(0.0, 150.0, 50.0).iter().map(|v| tick_label(*v, 50.0)).collect();
        assert_eq!(labels, ["0", "50", "100", "150"]);
        assert_eq!(tick_label(0.5, 0.5), "0.5");
        assert_eq!(tick_label(0.5, 0.25), "0.50");
        assert_eq!(tick_label(7.0, 2.5), "7.0");
    }

    #[test]
    fn a_chart_draws_round_ticks() {
        let series =
            [Series { name: "s".into(), color: COLORS[0], dashed: false, points: vec![(1.0, 0.3), (24.9, 48.8)] }];
        let svg = chart("t", &series, "s", "ms", false);
        let labels: Vec<&str> =
            svg.split("<text class=\"tick\"").skip(1).filter_map(|t| t.split('>').nth(1)?.split('<').next()).collect();
        assert_eq!(labels, ["0", "20", "40", "60", "0", "5", "10", "15", "20", "25"], "{svg}");
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
