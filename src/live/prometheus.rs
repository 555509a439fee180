//! `/metrics`: the latest sample in the Prometheus text exposition format (0.0.4). Names follow the
//! Prometheus conventions — `otp_harness_` prefix, base units (`_seconds`), `_total` for counters — and
//! every series carries `worker="I"` when the run is one worker of `--worker I/N`. The list, with a scrape
//! config and a Grafana dashboard, is in docs/prometheus.md.

use std::fmt::Write;

use super::sample::{Info, Snapshot};
use crate::checks::Status;

/// The exposition's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family at a time, adding the worker's label to every series.
struct Writer {
    out: String,
    worker: Option<String>,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        let worker = self.worker.clone();
        let all = labels.iter().copied().chain(worker.as_deref().map(|w| ("worker", w)));
        let mut first = true;
        for (key, val) in all {
            self.out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(self.out, "{key}=\"{}\"", escape(val));
        }
        if !first {
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&number(value));
        self.out.push('\n');
    }
}

/// A label value escaped as the text format requires (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf`, `NaN`.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value}")
    }
}

/// The whole exposition of `snap`, with the dashboard's own busy time.
pub fn render(info: &Info, snap: &Snapshot, busy_secs: f64, pages: usize) -> String {
    let mut w = Writer { out: String::with_capacity(8 * 1024), worker: info.worker_slice.map(|s| s.index.to_string()) };
    let workers = info.worker_slice.map_or("1".to_string(), |s| s.count.to_string());

    w.family("otp_harness_info", "gauge", "The run: its scenario, load model and number of workers (always 1).");
    w.sample(
        "otp_harness_info",
        &[("scenario", &info.scenario), ("target", &info.target), ("model", &info.model), ("workers", &workers)],
        1.0,
    );
    w.family("otp_harness_run_elapsed_seconds", "gauge", "Seconds since the run started.");
    w.sample("otp_harness_run_elapsed_seconds", &[], snap.elapsed);
    if let Some(remaining) = snap.remaining {
        w.family("otp_harness_load_remaining_seconds", "gauge", "Seconds of the planned load left.");
        w.sample("otp_harness_load_remaining_seconds", &[], remaining);
    }
    w.family("otp_harness_virtual_users", "gauge", "Virtual users (closed model) or the in-flight cap (open model).");
    w.sample("otp_harness_virtual_users", &[], f64::from(info.virtual_users));

    w.family("otp_harness_flows_started_total", "counter", "Sign-in flows started, by flow kind.");
    for (flow, c) in &snap.flows {
        w.sample("otp_harness_flows_started_total", &[("flow", flow)], c.started as f64);
    }
    w.family(
        "otp_harness_flows_ended_total",
        "counter",
        "Sign-in flows ended, by flow kind and outcome (succeeded, errored, nonconforming).",
    );
    for (flow, c) in &snap.flows {
        for (outcome, n) in [("succeeded", c.succeeded), ("errored", c.errored), ("nonconforming", c.nonconforming)] {
            w.sample("otp_harness_flows_ended_total", &[("flow", flow), ("outcome", outcome)], n as f64);
        }
    }
    w.family("otp_harness_flows_in_flight", "gauge", "Sign-in flows started and not ended.");
    w.sample("otp_harness_flows_in_flight", &[], snap.in_flight as f64);

    w.family(
        "otp_harness_step_results_total",
        "counter",
        "Steps of a sign-in (initiate, otp_delivery, respond, login), by flow kind and result (ok, failed).",
    );
    for (flow, steps) in &snap.flow_steps {
        for (step, s) in steps {
            w.sample(
                "otp_harness_step_results_total",
                &[("flow", flow), ("step", step), ("result", "ok")],
                s.ok as f64,
            );
            w.sample(
                "otp_harness_step_results_total",
                &[("flow", flow), ("step", step), ("result", "failed")],
                s.failed as f64,
            );
        }
    }
    w.family(
        "otp_harness_step_duration_seconds",
        "histogram",
        "Latency of each step that got an answer (otp_delivery: the request that mails a code to the code in hand).",
    );
    for (step, b) in &snap.latency {
        for (le, n) in &b.cumulative {
            w.sample("otp_harness_step_duration_seconds_bucket", &[("step", step), ("le", &number(*le))], *n as f64);
        }
        w.sample("otp_harness_step_duration_seconds_bucket", &[("step", step), ("le", "+Inf")], b.count as f64);
        w.sample("otp_harness_step_duration_seconds_sum", &[("step", step)], b.sum_secs);
        w.sample("otp_harness_step_duration_seconds_count", &[("step", step)], b.count as f64);
    }

    w.family(
        "otp_harness_errors_total",
        "counter",
        "Errors by flow kind (empty outside a flow) and type (TooManyRequestsException, OtpTimeout, ...), throttling included.",
    );
    for (kind, total) in &snap.errors {
        let mut in_flows = 0;
        for (flow, errors) in &snap.flow_errors {
            if let Some(n) = errors.get(kind) {
                in_flows += n;
                w.sample("otp_harness_errors_total", &[("flow", flow), ("type", kind)], *n as f64);
            }
        }
        if *total > in_flows {
            w.sample("otp_harness_errors_total", &[("flow", ""), ("type", kind)], (total - in_flows) as f64);
        }
    }
    w.family(
        "otp_harness_throttled_total",
        "counter",
        "Throttled answers (TooManyRequestsException, LimitExceededException), all flows.",
    );
    w.sample("otp_harness_throttled_total", &[], snap.throttled as f64);
    w.family("otp_harness_dropped_starts_total", "counter", "Open model: starts no free virtual user could take.");
    w.sample("otp_harness_dropped_starts_total", &[], snap.dropped as f64);
    w.family("otp_harness_late_starts_total", "counter", "Open model: starts taken more than 10 ms late.");
    w.sample("otp_harness_late_starts_total", &[], snap.late as f64);

    w.family(
        "otp_harness_check_observations_total",
        "counter",
        "Observations of each conformance check, by result (passed, failed).",
    );
    for c in &snap.checks {
        w.sample("otp_harness_check_observations_total", &[("check", &c.name), ("result", "passed")], c.passed as f64);
        w.sample("otp_harness_check_observations_total", &[("check", &c.name), ("result", "failed")], c.failed as f64);
    }
    w.family("otp_harness_check_failing", "gauge", "1 while a conformance check has failed, else 0.");
    for c in &snap.checks {
        w.sample("otp_harness_check_failing", &[("check", &c.name)], f64::from(u8::from(c.status == Status::Fail)));
    }

    w.family(
        "otp_harness_threshold_value",
        "gauge",
        "A threshold's current value (seconds for latencies, a ratio for rates, a number for counts); absent before anything was measured.",
    );
    for (r, metric, _) in &snap.thresholds {
        if let Some(value) = r.observed {
            let value = super::sample::base_unit(*metric, value);
            w.sample("otp_harness_threshold_value", &[("threshold", &r.key)], value);
        }
    }
    w.family("otp_harness_threshold_limit", "gauge", "A threshold's limit, in the same unit as its value.");
    for (r, _, limit) in &snap.thresholds {
        w.sample("otp_harness_threshold_limit", &[("threshold", &r.key), ("condition", &r.condition)], *limit);
    }
    w.family(
        "otp_harness_threshold_breached",
        "gauge",
        "1 while a threshold does not hold (or nothing was measured), else 0.",
    );
    for (r, _, _) in &snap.thresholds {
        w.sample("otp_harness_threshold_breached", &[("threshold", &r.key)], f64::from(u8::from(!r.passed)));
    }

    w.family(
        "otp_harness_mails_total",
        "counter",
        "Mails the OTP source brought in, by kind: code (a code for this run), ignored, repeated (a code handed out before), other_run.",
    );
    for (kind, n) in [
        ("code", snap.mail.code_mails),
        ("ignored", snap.mail.ignored),
        ("repeated", snap.mail.repeated),
        ("other_run", snap.mail.others),
    ] {
        w.sample("otp_harness_mails_total", &[("kind", kind)], n as f64);
    }
    w.family(
        "otp_harness_mail_reconnects_total",
        "counter",
        "Reconnections of the OTP source after a lost connection.",
    );
    w.sample("otp_harness_mail_reconnects_total", &[], snap.mail.reconnects as f64);
    w.family(
        "otp_harness_dashboard_busy_seconds_total",
        "counter",
        "Time the dashboard itself spent sampling the run and writing its events and /metrics (wall time: an upper bound of its CPU cost).",
    );
    w.sample("otp_harness_dashboard_busy_seconds_total", &[], busy_secs);
    w.family("otp_harness_dashboard_pages", "gauge", "Live pages connected to the dashboard's event stream.");
    w.sample("otp_harness_dashboard_pages", &[], pages as f64);
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::sample::Buckets;
    use crate::metrics::FlowCounts;

    fn info(worker: Option<&str>) -> Info {
        Info {
            scenario: "a \"quoted\" name".into(),
            target: "local".into(),
            model: "closed".into(),
            virtual_users: 4,
            load_secs: Some(10.0),
            worker: worker.map(str::to_string),
            worker_slice: worker.and_then(|w| crate::scenario::WorkerSlice::parse(w).ok()),
            tick_secs: 1.0,
        }
    }

    #[test]
    fn series_carry_the_worker_and_escaped_labels() {
        let mut snap = Snapshot::default();
        snap.flows.insert("login".into(), FlowCounts { started: 5, succeeded: 3, errored: 1, nonconforming: 0 });
        snap.errors.insert("TooManyRequestsException".into(), 3);
        snap.flow_errors.entry("login".into()).or_default().insert("TooManyRequestsException".into(), 2);
        snap.latency.push(("login", Buckets { cumulative: vec![(0.001, 1), (0.0025, 2)], sum_secs: 0.004, count: 3 }));
        let text = render(&info(Some("1/3")), &snap, 0.25, 2);
        assert!(text.contains("otp_harness_info{scenario=\"a \\\"quoted\\\" name\",target=\"local\",model=\"closed\",workers=\"3\",worker=\"1\"} 1\n"), "{text}");
        assert!(text.contains("otp_harness_flows_started_total{flow=\"login\",worker=\"1\"} 5\n"));
        assert!(text.contains("otp_harness_dashboard_busy_seconds_total{worker=\"1\"} 0.25\n"));
        assert!(text.contains("otp_harness_dashboard_pages{worker=\"1\"} 2\n"));
        assert!(
            text.contains(
                "otp_harness_errors_total{flow=\"login\",type=\"TooManyRequestsException\",worker=\"1\"} 2\n"
            )
        );
        assert!(
            text.contains("otp_harness_errors_total{flow=\"\",type=\"TooManyRequestsException\",worker=\"1\"} 1\n"),
            "the rest outside a flow"
        );
        assert!(
            text.contains("otp_harness_step_duration_seconds_bucket{step=\"login\",le=\"0.0025\",worker=\"1\"} 2\n")
        );
        assert!(text.contains("otp_harness_step_duration_seconds_bucket{step=\"login\",le=\"+Inf\",worker=\"1\"} 3\n"));
        let alone = render(&info(None), &snap, 0.0, 0);
        assert!(
            alone.contains("otp_harness_flows_in_flight 0\n") && !alone.contains("worker="),
            "no worker label alone"
        );
    }

    #[test]
    fn numbers_are_written_as_the_format_wants() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
