//! The load side: the closed and open models run to the end with thresholds met (exit 0) or breached
//! (exit 99), injected latency shows in the step percentiles, the open model counts dropped starts,
//! and latency.hlog holds exactly what summary.json reports.

mod support;

use std::collections::BTreeMap;

use support::run::*;

const NO_PROBES: &str = "[probes]\nsession_reuse = false\ncode_reuse = false\nnew_code_each_attempt = false\nunknown_user = false\nchallenge_leak = false\ncode_randomness = false\n";

/// A scenario with `load` as the `[load]` table's body, `pool` for `[target.pool]`, `extra` after.
fn scenario(pool: &str, load: &str, extra: &str) -> String {
    format!(
        r#"name = "load"
[target]
kind = "local"
[target.pool]
{pool}
[users]
test_users = true
pattern = "vu+{{n}}@mail.test"
count = 40
[otp]
source = "outbox"
timeout = "5s"
[otp.outbox]
poll_interval = "10ms"
[[flow]]
kind = "login"
[report]
progress = "0s"
{NO_PROBES}
[load]
{load}
{extra}
"#
    )
}

fn f(outcome: &RunOutcome, pointer: &str) -> f64 {
    outcome.summary.pointer(pointer).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_meets_its_thresholds() {
    let outcome = run_scenario(&scenario(
        "",
        "model = \"closed\"\nusers = 4\niterations = 5\nramp = \"400ms\"",
        "[thresholds]\n\"login.success_rate\" = \">= 99%\"\n\"initiate.p99\" = \"2s\"",
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.summary["load"]["model"], "closed");
    assert_eq!(f(&outcome, "/flows/login/started"), 20.0, "4 users × 5 iterations");
    assert_eq!(f(&outcome, "/flow_steps/login/login/count"), 20.0);
    // Both thresholds were evaluated against what was measured.
    let (passed, observed, reason) = outcome.threshold("login.success_rate").expect("login.success_rate evaluated");
    assert!(passed && observed == Some(1.0), "{reason}");
    assert_eq!(reason, "login.success_rate = 100.00%, within >= 99.00%");
    let (passed, observed, reason) = outcome.threshold("initiate.p99").expect("initiate.p99 evaluated");
    let p99 = observed.expect("an observed p99");
    assert!(passed && p99 > 0.0 && p99 < 2000.0, "{reason}");
    assert_eq!(p99, f(&outcome, "/steps/initiate/p99_ms"), "the p99 reported for the step");
    assert!(outcome.stdout.contains("ok   initiate.p99 = "), "{}", outcome.stdout);
    assert_eq!(outcome.summary["thresholds"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_model_starts_sign_ins_at_the_rate_and_meets_its_thresholds() {
    let outcome = run_scenario(&scenario(
        "",
        "model = \"open\"\nrate = 15\nduration = \"3s\"\nmax_in_flight = 10",
        "[thresholds]\n\"login.success_rate\" = \">= 99%\"\n\"dropped.count\" = \"== 0\"",
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.summary["load"]["model"], "open");
    let started = f(&outcome, "/flows/login/started");
    assert!((43.0..=45.0).contains(&started), "15/s for 3 s: {started}");
    assert_eq!(f(&outcome, "/load/dropped"), 0.0);
    assert_eq!(outcome.threshold("dropped.count").map(|t| (t.0, t.1)), Some((true, Some(0.0))));
    let (passed, observed, _) = outcome.threshold("login.success_rate").expect("evaluated");
    assert!(passed && observed == Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_without_enough_room_drops_starts_and_breaches() {
    let outcome = run_scenario(&scenario(
        "[target.pool.faults.latency]\nInitiateAuth = \"400ms\"",
        "model = \"open\"\nrate = 10\nduration = \"2s\"\nmax_in_flight = 1",
        "[thresholds]\n\"dropped.count\" = \"== 0\"",
    ))
    .await;
    assert_eq!(outcome.code, 99, "{}", outcome.explain());
    let dropped = f(&outcome, "/load/dropped");
    let started = f(&outcome, "/flows/login/started");
    assert!(dropped >= 10.0, "one user at 400 ms+ cannot take 10 starts a second: dropped {dropped}");
    assert!((18.0..=20.0).contains(&(dropped + started)), "every start was taken or dropped: {dropped} + {started}");
    assert_eq!(outcome.breached_thresholds(), ["dropped.count"]);
    assert_eq!(outcome.threshold("dropped.count").and_then(|t| t.1), Some(dropped), "the count observed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_shows_in_the_step_percentiles() {
    let outcome = run_scenario(&scenario(
        "[target.pool.faults.latency]\nInitiateAuth = \"50ms\"",
        "users = 2\niterations = 6",
        "",
    ))
    .await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    let p50 = f(&outcome, "/steps/initiate/p50_ms");
    // HDR precision: 3 significant digits, so 50 ms reads at least 49.95 ms.
    assert!(p50 >= 49.95, "initiate p50 {p50} ms includes the 50 ms added");
    assert!(p50 < 150.0, "and not much more: {p50} ms");
    let respond = f(&outcome, "/steps/respond/p50_ms");
    assert!(respond < 50.0, "the latency was added to InitiateAuth only: respond p50 {respond} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hlog_holds_what_the_summary_reports() {
    let outcome = run_scenario(&scenario("", "users = 3\niterations = 4", "[[flow]]\nkind = \"lockout\"")).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    let dir = outcome.dir.clone().expect("run folder");
    let entries = otp_harness::report::hlog::read(&dir.join("latency.hlog")).expect("hlog reads back");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut max_by_tag: BTreeMap<String, u64> = BTreeMap::new();
    for entry in &entries {
        let tag = entry.tag.clone().expect("every interval is tagged");
        *counts.entry(tag.clone()).or_default() += entry.histogram.len();
        let max = max_by_tag.entry(tag).or_default();
        *max = (*max).max(entry.histogram.max());
    }
    for step in ["initiate", "otp_delivery", "respond", "login"] {
        assert_eq!(
            counts.get(step).copied().unwrap_or(0) as f64,
            f(&outcome, &format!("/steps/{step}/count")),
            "{step}"
        );
        let max_ms = max_by_tag[step] as f64 / 1000.0;
        let reported = f(&outcome, &format!("/steps/{step}/max_ms"));
        assert!((max_ms - reported).abs() <= reported * 0.001 + 0.001, "{step} max {max_ms} vs {reported}");
    }
    for flow_step in ["login/initiate", "lockout/respond"] {
        let (flow, step) = flow_step.split_once('/').expect("tag");
        assert_eq!(counts[flow_step] as f64, f(&outcome, &format!("/flow_steps/{flow}/{step}/count")), "{flow_step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breached_abort_on_threshold_ends_the_run_early() {
    let outcome = run_scenario(&scenario(
        "[target.pool.faults.throttle]\nuser_authentication = 2",
        "users = 3\nduration = \"60s\"\nerror_backoff = \"50ms\"\nabort_on = [\"throttled.count\"]\nabort_grace = \"1s\"",
        "[thresholds]\n\"throttled.count\" = \"== 0\"",
    ))
    .await;
    assert_eq!(outcome.code, 99, "{}", outcome.explain());
    let elapsed = f(&outcome, "/load/elapsed_secs");
    assert!(elapsed < 20.0, "stopped long before the 60 s: {elapsed}");
    let notes = outcome.summary["notes"].to_string();
    assert!(notes.contains("aborted after") && notes.contains("throttled.count"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_run_cleanly_and_still_writes_every_report() {
    let (child, reports, _temp) = spawn_run(&scenario("", "users = 2\nduration = \"60s\"", ""));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let pid = child.id().expect("running").to_string();
    let killed = tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.expect("kill");
    assert!(killed.success());
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it stops by itself after Ctrl-C")
        .expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "what ran passed:\n{stderr}");
    let dir = std::fs::read_dir(&reports).expect("reports").next().expect("a run folder").expect("entry").path();
    // Every report written in full, each saying what summary.json says.
    let summary = assert_reports(&dir, 0);
    let files = read_folder(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let outputs = [("stdout", stdout.as_ref()), ("stderr", stderr.as_ref())];
    assert_clean(outputs.into_iter().chain(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))), &Secrets::default());
    assert!(summary["steps"]["login"]["count"].as_u64().unwrap_or(0) > 0, "sign-ins in the reports");
    assert!(summary["notes"].to_string().contains("interrupted by Ctrl-C"), "{}", summary["notes"]);
    assert!(summary["load"]["elapsed_secs"].as_f64().unwrap_or(99.0) < 20.0);
    assert!(summary["flows"]["login"]["succeeded"].as_u64().unwrap_or(0) > 0, "what ran is reported");
}
