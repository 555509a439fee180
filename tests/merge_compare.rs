//! `merge` adds workers' histograms exactly and re-evaluates checks and thresholds; `compare` judges a
//! run against a baseline.

mod support;

use std::path::Path;

use otp_harness::metrics::{new_histogram, summarize};
use otp_harness::report::RunResult;
use otp_harness::report::hlog;
use otp_harness::report::timeline;
use support::run::*;

fn scenario(latency: &str, threshold: &str) -> String {
    format!(
        r#"name = "spread"
[target]
kind = "local"
[target.pool.faults.latency]
InitiateAuth = "{latency}"
[users]
test_users = true
pattern = "vu+{{n}}@mail.test"
count = 20
[otp]
source = "outbox"
[otp.outbox]
poll_interval = "10ms"
[[flow]]
kind = "login"
weight = 3
[[flow]]
kind = "lockout"
[probes]
unknown_user = false
code_randomness = false
[report]
progress = "0s"
[load]
users = 4
iterations = 6
[thresholds]
{threshold}
"#
    )
}

async fn binary(args: &[&str]) -> (i32, String, String) {
    let output =
        tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness")).args(args).output().await.expect("runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_merge_into_one_exact_report() {
    // 24 flows, 3 in 4 of them sign-ins: each worker signs in 9 times; only together do they reach 15.
    let text = scenario("5ms", "\"login.count\" = \">= 15\"");
    let (w0, w1) = tokio::join!(run_with_args(&text, &["--worker", "0/2"]), run_with_args(&text, &["--worker", "1/2"]));
    for w in [&w0, &w1] {
        assert_eq!(w.code, 99, "alone, a worker misses the count: {}", w.explain());
    }
    let (d0, d1) = (w0.dir.clone().expect("worker 0"), w1.dir.clone().expect("worker 1"));
    for dir in [&d0, &d1] {
        assert_eq!(assert_reports(dir, 99)["verdict"], "threshold_breached");
    }
    let out = tempfile::tempdir().expect("out");
    let merged_dir = out.path().join("merged");
    let (code, stdout, stderr) = binary(&["merge", path(&d0), path(&d1), "--out", path(&merged_dir)]).await;
    assert_eq!(code, 0, "together they pass:\n{stdout}\n{stderr}");

    let merged = RunResult::read(&merged_dir).expect("merged summary");
    let (r0, r1) = (RunResult::read(&d0).expect("w0"), RunResult::read(&d1).expect("w1"));
    assert_eq!(merged.scenario, "spread");
    assert_eq!(merged.load.virtual_users, 4);
    for step in ["initiate", "otp_delivery", "respond", "login"] {
        let (a, b, m) = (&r0.steps[step], &r1.steps[step], &merged.steps[step]);
        assert_eq!((m.ok, m.failed), (a.ok + b.ok, a.failed + b.failed), "{step} counts add up");
        // The exact percentiles: those of every sample of both workers.
        let mut union = new_histogram();
        for dir in [&d0, &d1] {
            for i in hlog::read(&dir.join(hlog::FILE)).expect("hlog") {
                if i.tag.as_deref() == Some(step) {
                    union.add(&i.histogram).expect("adds");
                }
            }
        }
        let expected = summarize(&union, m.ok, m.failed);
        assert_eq!(m, &expected, "{step}: merged percentiles are the union's");
    }
    for check in ["sign_in", "tokens", "lockout"] {
        let sum = |r: &RunResult| r.checks.iter().find(|c| c.name == check).map_or(0, |c| c.passed);
        let merged_passed = merged.checks.iter().find(|c| c.name == check).map(|c| c.passed);
        assert_eq!(merged_passed, Some(sum(&r0) + sum(&r1)), "{check}");
    }
    let summary = assert_reports(&merged_dir, 0);
    let files = read_folder(&merged_dir);
    let outputs = [("stdout", stdout.as_str()), ("stderr", stderr.as_str())];
    assert_clean(outputs.into_iter().chain(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))), &Secrets::default());
    assert_eq!(summary["verdict"], "pass");
    let count = summary["steps"]["login"]["count"].as_u64().unwrap_or(0);
    assert_eq!(count, r0.steps["login"].count + r1.steps["login"].count, "the merged reports hold both workers");
    assert_eq!(
        merged.mail.source_requests,
        r0.mail.source_requests + r1.mail.source_requests,
        "what watching the source cost, summed"
    );
    assert_eq!(merged.mail.mode, r0.mail.mode, "both workers read the outbox the same way");

    // The merged timeline: on the latency log's clock, ending at the sum of the workers' counts, and
    // drawn in the merged report.html as in a single run's.
    let last =
        |dir: &Path| timeline::read(&dir.join(timeline::FILE)).expect("a timeline").last().cloned().expect("samples");
    let (t0, t1, tm) = (last(&d0), last(&d1), last(&merged_dir));
    for flow in tm.flows.keys() {
        let sum = |t: &timeline::Counts| t.flows.get(flow).copied().unwrap_or_default();
        let (a, b, m) = (sum(&t0), sum(&t1), sum(&tm));
        assert_eq!(m.started, a.started + b.started, "{flow} started");
        assert_eq!(m.succeeded, a.succeeded + b.succeeded, "{flow} succeeded");
        assert_eq!(m.errored, a.errored + b.errored, "{flow} errored");
    }
    assert_eq!(tm.flows.keys().collect::<Vec<_>>(), t0.flows.keys().collect::<Vec<_>>());
    let html = std::fs::read_to_string(merged_dir.join("report.html")).expect("report.html");
    assert!(html.contains("<svg id=\"sign-ins-over-time\""), "the merged report draws sign-ins over time");
    assert!(!merged.notes.iter().any(|n| n.contains("no rate charts")), "{:?}", merged.notes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_a_timeline_leaves_the_merged_report_without_rate_charts_and_says_so() {
    let text = scenario("5ms", "");
    let (w0, w1) = tokio::join!(run_with_args(&text, &["--worker", "0/2"]), run_with_args(&text, &["--worker", "1/2"]));
    let (d0, d1) = (w0.dir.clone().expect("worker 0"), w1.dir.clone().expect("worker 1"));
    std::fs::remove_file(d1.join(timeline::FILE)).expect("remove worker 1's timeline");
    let out = tempfile::tempdir().expect("out");
    let (code, stdout, stderr) = binary(&["merge", path(&d0), path(&d1), "--out", path(out.path())]).await;
    assert_eq!(code, 0, "the rest merges:\n{stdout}\n{stderr}");
    let merged = RunResult::read(out.path()).expect("merged summary");
    let note = merged.notes.iter().find(|n| n.contains("no rate charts")).expect("a note on the missing timeline");
    assert!(note.contains(&d1.display().to_string()), "{note}");
    assert!(!out.path().join(timeline::FILE).exists(), "no half-merged timeline");
    let html = std::fs::read_to_string(out.path().join("report.html")).expect("report.html");
    assert!(!html.contains("<svg id=\"sign-ins-over-time\""), "no rate chart from one worker alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merging_one_run_reproduces_it() {
    let run = run_scenario(&scenario("5ms", "")).await;
    assert_eq!(run.code, 0, "{}", run.explain());
    let dir = run.dir.clone().expect("run folder");
    let out = tempfile::tempdir().expect("out");
    let (code, _, stderr) = binary(&["merge", path(&dir), "--out", path(out.path())]).await;
    assert_eq!(code, 0, "{stderr}");
    let (original, merged) = (RunResult::read(&dir).expect("run"), RunResult::read(out.path()).expect("merged"));
    assert_eq!(original.steps, merged.steps, "the hlog carries the run's histograms in full");
    assert_eq!(original.flow_steps, merged.flow_steps);
    assert_reports(out.path(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_passes_a_run_against_itself_and_flags_a_slower_one() {
    let baseline = run_scenario(&scenario("5ms", "")).await;
    let slower = run_scenario(&scenario("80ms", "")).await;
    assert_eq!((baseline.code, slower.code), (0, 0), "{}\n{}", baseline.explain(), slower.explain());
    let (b, s) = (baseline.dir.clone().expect("baseline"), slower.dir.clone().expect("slower"));
    let (code, stdout, stderr) = binary(&["compare", path(&b), path(&b)]).await;
    assert_eq!(code, 0, "a run is no regression of itself:\n{stdout}{stderr}");
    let (code, stdout, _) = binary(&["compare", path(&b), path(&s), "--tolerance", "20%"]).await;
    assert_eq!(code, 99, "{stdout}");
    assert!(stdout.contains("| initiate | p50 |") && stdout.contains("REGRESSION"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.join("compare.json")).expect("compare.json")).expect("json");
    let initiate_p50 = json["deltas"]
        .as_array()
        .expect("deltas")
        .iter()
        .find(|d| d["step"] == "initiate" && d["metric"] == "p50")
        .cloned()
        .expect("initiate p50");
    assert_eq!(initiate_p50["regression"], true);
    // The injected 80 ms is a floor the current run cannot beat, whatever the machine's load (the
    // baseline's own latency is not bounded, so the delta is not asserted).
    assert!(initiate_p50["current"].as_f64().unwrap_or(0.0) >= 79.0, "at least the injected 80 ms: {initiate_p50}");
    let (code, _, stderr) = binary(&["compare", path(&b), "/nonexistent"]).await;
    assert_eq!(code, 2, "{stderr}");
}
