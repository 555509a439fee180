//! Hard stops, as Kubernetes (pod eviction), CI cancellation and `timeout(1)` send them: SIGTERM and
//! SIGHUP stop a run as Ctrl-C does — flows in flight finish, every report is written and readable with
//! a note naming the signal, the exit code is the verdict of what ran; flows that outlast
//! `load.stop_grace` are abandoned and said so; a second signal quits at once with 128 + its number.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::run::*;
use support::secrets::{Secrets, assert_clean};

/// A 60-second closed run on the embedded pool; `pool` and `load` add lines to those tables.
fn scenario(pool: &str, load: &str) -> String {
    format!(
        r#"name = "signals"
[target]
kind = "local"
[target.pool]
{pool}
[users]
test_users = true
pattern = "vu+{{n}}@mail.test"
count = 10
[otp]
source = "outbox"
timeout = "20s"
[otp.outbox]
poll_interval = "10ms"
[probes]
session_reuse = false
code_reuse = false
new_code_each_attempt = false
unknown_user = false
challenge_leak = false
code_randomness = false
[report]
progress = "0s"
[load]
users = 2
duration = "60s"
{load}
"#
    )
}

async fn signal(child: &tokio::process::Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let sent = tokio::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().await.expect("kill");
    assert!(sent.success(), "kill -{name}");
}

fn run_folder(reports: &Path) -> PathBuf {
    std::fs::read_dir(reports).expect("reports").next().expect("a run folder").expect("entry").path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sighup_stop_the_run_cleanly_with_every_report() {
    for name in ["TERM", "HUP"] {
        let (child, reports, _temp) = spawn_run(&scenario("", ""));
        tokio::time::sleep(Duration::from_secs(3)).await;
        signal(&child, name).await;
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("it stops by itself after the signal")
            .expect("output");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "SIG{name}: what ran passed:\n{stderr}");
        let dir = run_folder(&reports);
        let summary = assert_reports(&dir, 0);
        let files = read_folder(&dir);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for file in ["summary.json", "summary.md", "junit.xml", "report.html", "latency.hlog"] {
            assert!(names.contains(&file), "SIG{name}: {file} written: {names:?}");
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let outputs = [("stdout", stdout.as_ref()), ("stderr", stderr.as_ref())];
        assert_clean(
            outputs.into_iter().chain(files.iter().map(|(n, t)| (n.as_str(), t.as_str()))),
            &Secrets::default(),
        );
        let notes = summary["notes"].to_string();
        assert!(notes.contains(&format!("interrupted by SIG{name}: the results cover what ran")), "{notes}");
        assert!(!notes.contains("abandoned"), "every flow in flight finished: {notes}");
        assert!(summary["flows"]["login"]["succeeded"].as_u64().unwrap_or(0) > 0, "what ran is reported");
        assert!(summary["load"]["elapsed_secs"].as_f64().unwrap_or(99.0) < 20.0, "it stopped early");
        let md = files.iter().find(|(n, _)| n == "summary.md").map(|(_, t)| t.as_str()).unwrap_or("");
        assert!(md.contains(&format!("interrupted by SIG{name}")), "the Markdown summary says so too");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_that_outlast_the_stop_grace_are_abandoned_and_said_so() {
    // Every code mail is held 8 s: a SIGTERM leaves both virtual users waiting for their codes.
    let (child, reports, _temp) =
        spawn_run(&scenario("[target.pool.faults.mail]\ndelay = \"8s\"", "stop_grace = \"1s\""));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = Instant::now();
    signal(&child, "TERM").await;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("it stops by itself")
        .expect("output");
    let waited = sent.elapsed();
    assert!(waited < Duration::from_secs(7), "did not wait for the 8 s mails: {waited:?}");
    let dir = run_folder(&reports);
    let code = output.status.code().expect("exited");
    let summary = assert_reports(&dir, code);
    let notes = summary["notes"].to_string();
    assert!(notes.contains("interrupted by SIGTERM"), "{notes}");
    assert!(notes.contains("2 flow(s) still in flight after load.stop_grace (1s) were abandoned"), "{notes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_quits_at_once() {
    let (child, _reports, _temp) =
        spawn_run(&scenario("[target.pool.faults.mail]\ndelay = \"8s\"", "stop_grace = \"60s\""));
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&child, "TERM").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM").await;
    let output = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .expect("the second signal ends it at once")
        .expect("output");
    assert_eq!(output.status.code(), Some(143), "128 + SIGTERM");
    assert!(String::from_utf8_lossy(&output.stderr).contains("SIGTERM again: exiting now"));
}
