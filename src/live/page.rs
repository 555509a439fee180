//! The live page: one HTML file with its script inline (no CDN, no build step), drawn like report.html —
//! the same style sheet, line colours and chart geometry, and axis ticks on the same round values — and
//! fed by `/events`. Every text from the run reaches the DOM escaped.

use super::sample::Info;
use crate::report::escape_markup as esc;
use crate::report::html::{COLORS, HEIGHT, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, STYLE, WIDTH};

/// What the live page adds to report.html's style sheet.
const LIVE_STYLE: &str = ".badge.run{background:#1565c0}.cols{display:flex;gap:28px;flex-wrap:wrap}.cols>div{flex:1;min-width:300px}\
#now td{font-size:20px;text-align:right;min-width:90px}#now th{font-weight:normal;font-size:12px}\
.small svg{display:block}.grid{display:flex;flex-wrap:wrap;gap:12px}#final{margin:12px 0}";

/// The page for the run described by `info`.
pub fn render(info: &Info) -> String {
    let colors = COLORS.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(",");
    let geometry = format!(
        "{{W:{WIDTH},H:{HEIGHT},ML:{MARGIN_LEFT},MB:{MARGIN_BOTTOM},MT:{MARGIN_TOP},MR:{MARGIN_RIGHT},colors:[{colors}]}}"
    );
    let worker = info.worker.as_deref().map(|w| format!(" (worker {})", esc(w))).unwrap_or_default();
    PAGE.replace("{STYLE}", STYLE)
        .replace("{LIVE_STYLE}", LIVE_STYLE)
        .replace("{NAME}", &esc(&info.scenario))
        .replace("{WORKER}", &worker)
        .replace("{GEOMETRY}", &geometry)
        .replace("{SCRIPT}", SCRIPT)
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>otp-harness live: {NAME}{WORKER}</title>
<style>{STYLE}{LIVE_STYLE}</style></head><body>
<h1>otp-harness: {NAME}{WORKER} <span class="badge run" id="verdict">RUNNING</span></h1>
<p id="status">Connecting…</p>
<div id="final" hidden></div>
<table id="now"><tr><th>started /s</th><th>succeeded /s</th><th>errored /s</th><th>throttled /s</th><th>in flight</th><th>sign-ins</th><th>errors</th><th>throttled</th></tr>
<tr><td id="now-started">–</td><td id="now-succeeded">–</td><td id="now-errored">–</td><td id="now-throttled">–</td><td id="now-inflight">–</td><td id="now-total">–</td><td id="now-errors">–</td><td id="now-throttled-total">–</td></tr></table>
<h2>Sign-ins over time</h2>
<p>Flows started, succeeded and ended in error per second, and throttled answers per second, all flow kinds.</p>
<div id="chart-rates"></div>
<h2>Latency over time</h2>
<p>Each step's p50 (solid), p90 (short dashes) and p99 (long dashes) per second, milliseconds; otp_delivery is the request that mails a code to the code in hand.</p>
<div class="grid small" id="latency"></div>
<h2>Errors and throttling over time</h2>
<p>Error answers (solid) and throttled answers (dashed) per second, one line per flow kind.</p>
<div id="chart-errors"></div>
<div class="cols"><div><h2>Checks</h2><table id="checks"><tr><th>check</th><th>status</th><th>passed</th><th>failed</th><th>reason</th></tr></table></div>
<div><h2>Thresholds</h2><table id="thresholds"><tr><th>threshold</th><th>now</th><th>result</th></tr></table></div></div>
<div class="cols"><div><h2>Steps (ms, whole run)</h2><table id="steps"><tr><th>step</th><th>count</th><th>ok</th><th>failed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr></table></div>
<div><h2>Mail</h2><table id="mail"></table><h2>Embedded pool</h2><p class="skip" id="pool-none">The target is not the embedded pool.</p><table id="pool"></table></div></div>
<footer>otp-harness live dashboard — this page needs no network beyond this run; Prometheus metrics at <a href="/metrics">/metrics</a>.</footer>
<script>
const G = {GEOMETRY};
{SCRIPT}
</script>
</body></html>
"##;

const SCRIPT: &str = r##"
"use strict";
const STEPS = ["initiate", "otp_delivery", "respond", "login"];
let info = null, points = [], clock = null;
const $ = (id) => document.getElementById(id);
function esc(s) { return String(s).replace(/[&<>"']/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&apos;"}[c])); }
function niceStep(raw) {
  if (!(raw > 0) || !isFinite(raw)) return 1;
  const m = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const k of [1, 2, 2.5, 5, 10]) if (k * m >= raw * (1 - 1e-9)) return k * m;
  return 10 * m;
}
function axis(lo, hi, n) {
  if (!(hi > lo)) { const l = Math.min(lo, 0); hi = Math.max(lo, 0) + 1; lo = l; }
  const s = niceStep((hi - lo) / n);
  return [Math.floor(lo / s) * s, Math.ceil(hi / s - 1e-9) * s, s];
}
function ticks(lo, hi, s) { const out = []; for (let k = Math.round(lo / s); k <= Math.round(hi / s); k++) out.push(k * s); return out; }
function label(v, s) {
  let d = 0;
  while (d < 6 && Math.abs(Math.round(s * 10 ** d) - s * 10 ** d) > 1e-6) d++;
  let t = v.toFixed(d);
  if (/^-0(\.0*)?$/.test(t)) t = t.slice(1);
  return t;
}
function fmt(v, d) { return v == null ? "–" : Number(v).toFixed(d); }
// An SVG line chart as report.html draws them: series = [{name, color, dash, points: [[x, y]]}].
function chart(id, series, xLabel, yLabel, width) {
  const W = width || G.W, H = G.H, MR = width ? 110 : G.MR;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<p id="${id}" class="skip">No measurements to chart yet.</p>`;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1, xs_] = axis(Math.min(0, ...xs), Math.max(...xs), width ? 4 : 6);
  const [, y1, ys_] = axis(0, Math.max(0, ...ys), 4);
  const pw = W - G.ML - MR, ph = H - G.MT - G.MB;
  const sx = (x) => G.ML + (x - x0) / Math.max(x1 - x0, 1e-9) * pw;
  const sy = (y) => G.MT + ph - y / y1 * ph;
  let out = `<svg id="${id}" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img">`;
  for (const y of ticks(0, y1, ys_)) out += `<line x1="${G.ML}" x2="${(G.ML + pw).toFixed(1)}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/><text class="tick" x="${G.ML - 6}" y="${(sy(y) + 4).toFixed(1)}" font-size="11" text-anchor="end">${label(y, ys_)}</text>`;
  for (const x of ticks(x0, x1, xs_)) out += `<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${G.MT}" y2="${G.MT + ph}" stroke="#eee"/><text class="tick" x="${sx(x).toFixed(1)}" y="${G.MT + ph + 16}" font-size="11" text-anchor="middle">${label(x, xs_)}</text>`;
  out += `<text x="${(G.ML + pw / 2).toFixed(1)}" y="${H - 4}" font-size="12" text-anchor="middle">${esc(xLabel)}</text><text x="14" y="${G.MT + ph / 2}" font-size="12" transform="rotate(-90 14 ${G.MT + ph / 2})" text-anchor="middle">${esc(yLabel)}</text>`;
  series.forEach((s, i) => {
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : "";
    const pts = s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    out += `<polyline class="series" data-name="${esc(s.name)}" fill="none" stroke="${s.color}" stroke-width="1.8"${dash} points="${pts}"/>`;
    const ly = G.MT + 14 + 16 * i, lx = W - MR + 12;
    out += `<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash}/><text x="${lx + 24}" y="${ly}" font-size="11">${esc(s.name)}</text>`;
  });
  return out + "</svg>";
}
function drawCharts() {
  const line = (name, color, dash, pick) => ({ name, color, dash, points: points.map((p) => [p.t, pick(p)]).filter((q) => q[1] != null) });
  $("chart-rates").innerHTML = chart("rates-over-time", [
    line("started", G.colors[0], "5 3", (p) => p.started),
    line("succeeded", G.colors[2], null, (p) => p.succeeded),
    line("errored", G.colors[3], null, (p) => p.errored),
    line("throttled", G.colors[1], null, (p) => p.throttled),
  ], "seconds since the run started", "per second");
  $("latency").innerHTML = STEPS.map((step, i) => {
    const c = G.colors[i % G.colors.length];
    const pick = (q) => (p) => p.steps[step] ? p.steps[step][q] : null;
    return `<div><b>${step}</b>` + chart(`latency-${step}`, [
      line("p50", c, null, pick("p50")), line("p90", c, "2 3", pick("p90")), line("p99", c, "5 3", pick("p99")),
    ], "seconds since the run started", "ms", 420) + "</div>";
  }).join("");
  const flows = [...new Set(points.flatMap((p) => Object.keys(p.flows)))].sort();
  $("chart-errors").innerHTML = chart("errors-over-time", flows.flatMap((flow, i) => {
    const c = G.colors[i % G.colors.length];
    const pick = (k) => (p) => p.flows[flow] ? p.flows[flow][k] : 0;
    return [line(`${flow} errors`, c, null, pick("errors")), line(`${flow} throttled`, c, "5 3", pick("throttled"))];
  }), "seconds since the run started", "per second");
}
function rows(id, header, list) { $(id).innerHTML = header + list.join(""); }
function badge(cls, text) { return `<span class="badge ${cls}">${esc(text)}</span>`; }
function secs(v) { return v == null ? "–" : v < 120 ? `${v.toFixed(1)} s` : `${Math.floor(v / 60)} min ${Math.round(v % 60)} s`; }
function status(phase, elapsed, remaining) {
  clock = { phase, elapsed, remaining, at: Date.now() };
  const parts = [`<b>${esc(phase)}</b>`, `elapsed ${secs(elapsed)}`];
  if (remaining != null) parts.push(`load remaining ${secs(remaining)}`);
  if (info) parts.push(`${esc(info.target)} target, ${esc(info.model)} model, ${info.virtual_users} virtual users`);
  $("status").innerHTML = parts.join(" · ");
}
function onTick(t) {
  points.push(t.point);
  status(t.phase, t.elapsed, t.remaining);
  const p = t.point, tot = t.totals;
  $("now-started").textContent = fmt(p.started, 1);
  $("now-succeeded").textContent = fmt(p.succeeded, 1);
  $("now-errored").textContent = fmt(p.errored, 1);
  $("now-throttled").textContent = fmt(p.throttled, 1);
  $("now-inflight").textContent = p.in_flight;
  $("now-total").textContent = tot.succeeded + tot.errored + tot.nonconforming;
  $("now-errors").textContent = tot.errors;
  $("now-throttled-total").textContent = tot.throttled;
  drawCharts();
  const cls = { pass: "pass", fail: "fail", skip: "skip" };
  rows("checks", "<tr><th>check</th><th>status</th><th>passed</th><th>failed</th><th>reason</th></tr>", t.checks.map((c) =>
    `<tr><td title="${esc(c.description)}"><code>${esc(c.name)}</code></td><td>${badge(cls[c.status], c.status === "fail" ? "FAIL" : c.status)}</td><td class="n">${c.passed}</td><td class="n">${c.failed}</td><td>${esc(c.reason)}</td></tr>`));
  rows("thresholds", "<tr><th>threshold</th><th>now</th><th>result</th></tr>", t.thresholds.map((h) =>
    `<tr><td><code>${esc(h.key)} ${esc(h.condition)}</code></td><td class="n">${esc(h.value)}</td><td>${h.measured ? badge(h.passed ? "pass" : "fail", h.passed ? "holds" : "BREACHED") : badge("skip", "not measured")}</td></tr>`));
  rows("steps", "<tr><th>step</th><th>count</th><th>ok</th><th>failed</th><th>p50</th><th>p90</th><th>p99</th><th>max</th></tr>", t.steps.map(([name, s]) =>
    `<tr><td>${esc(name)}</td><td class="n">${s.count}</td><td class="n">${s.ok}</td><td class="n">${s.failed}</td><td class="n">${fmt(s.p50_ms, 1)}</td><td class="n">${fmt(s.p90_ms, 1)}</td><td class="n">${fmt(s.p99_ms, 1)}</td><td class="n">${fmt(s.max_ms, 1)}</td></tr>`));
  rows("mail", "<tr><th>mail</th><th>count</th></tr>", Object.entries(t.mail).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${esc(v)}</td></tr>`));
  if (t.pool) {
    $("pool-none").hidden = true;
    const flat = [];
    const walk = (prefix, v) => {
      if (v !== null && typeof v === "object") { for (const [k, x] of Object.entries(v)) walk(prefix ? `${prefix}.${k}` : k, x); }
      else if (v !== 0) flat.push([prefix, v]);
    };
    walk("", t.pool);
    rows("pool", "<tr><th>/_pool/stats (non-zero)</th><th>value</th></tr>", flat.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="n">${esc(v)}</td></tr>`));
  }
}
function onEnd(e) {
  const v = $("verdict");
  v.className = `badge ${e.class}`;
  v.textContent = `${e.headline} (exit ${e.exit_code})`;
  let html = `<p>The run has ended: <b>${esc(e.headline)}</b> (exit ${e.exit_code}).</p>`;
  if (e.message) html += `<p class="note">${esc(e.message)}</p>`;
  if (e.report_dir) {
    html += `<p>Reports in <code>${esc(e.report_dir)}</code>: ` + e.files.map((f) => `<a href="/files/${encodeURIComponent(f)}">${esc(f)}</a>`).join(" · ") +
      ` (the links work while this dashboard is up; see --dashboard-linger).</p>`;
  }
  const box = $("final");
  box.innerHTML = html;
  box.hidden = false;
  if (clock) status("ended", clock.elapsed + (Date.now() - clock.at) / 1000, null);
}
const source = new EventSource("/events");
source.addEventListener("hello", (m) => {
  const h = JSON.parse(m.data);
  info = h.info;
  points = h.history;
  status(h.phase, h.elapsed, null);
  drawCharts();
});
source.addEventListener("tick", (m) => onTick(JSON.parse(m.data)));
source.addEventListener("phase", (m) => { const p = JSON.parse(m.data); status(p.phase, p.elapsed, clock ? clock.remaining : null); });
source.addEventListener("end", (m) => { source.close(); onEnd(JSON.parse(m.data)); });
source.onerror = () => { if (source.readyState === EventSource.CLOSED) $("status").innerHTML += " · <b>disconnected</b>"; };
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_escapes_the_name() {
        let info = Info {
            scenario: "<nightly>".into(),
            target: "local".into(),
            model: "closed".into(),
            virtual_users: 2,
            load_secs: None,
            worker: Some("1/2".into()),
            worker_slice: None,
            tick_secs: 1.0,
        };
        let html = render(&info);
        assert!(html.contains("otp-harness: &lt;nightly&gt; (worker 1/2)"));
        assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src="), "no network");
        for placeholder in ["{STYLE}", "{LIVE_STYLE}", "{NAME}", "{WORKER}", "{GEOMETRY}", "{SCRIPT}"] {
            assert!(!html.contains(placeholder), "{placeholder} filled");
        }
        assert!(html.contains(STYLE), "report.html's style sheet");
    }
}
