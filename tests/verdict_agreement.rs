//! A run and the merge of its folder end the same way: one rule decides the verdict for both
//! (`verdict::decide`). The case that used to split them: no flow completed — `run` noted it whatever
//! the verdict, `merge` only when nothing else had failed.

mod support;

use otp_harness::report::{RunResult, Verdict};
use support::run::*;

/// Every code mail is lost, so no flow completes; `defects` may add a failing probe check.
fn nothing_completes(defects: &str) -> String {
    format!(
        r#"name = "stuck"
[target]
kind = "local"
[target.pool.faults.mail]
loss_rate = 1.0
[target.pool.defects]
{defects}
[users]
test_users = true
pattern = "vu+{{n}}@mail.test"
count = 10
[otp]
source = "outbox"
timeout = "1s"
[probes]
session_reuse = false
code_reuse = false
new_code_each_attempt = false
challenge_leak = false
code_randomness = false
unknown_user_samples = 1
[report]
progress = "0s"
[load]
users = 1
iterations = 2
error_backoff = "10ms"
"#
    )
}

async fn merge_of(dir: &std::path::Path) -> (i32, RunResult) {
    let out = tempfile::tempdir().expect("out");
    let merged = out.path().join("merged");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness"))
        .args(["merge", dir.to_str().expect("utf-8"), "--out", merged.to_str().expect("utf-8")])
        .output()
        .await
        .expect("merge runs");
    (output.status.code().unwrap_or(-1), RunResult::read(&merged).expect("merged summary.json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_no_flow_completed_and_its_merge_agree() {
    for (defects, verdict, code) in
        [("", Verdict::Error, 3), ("unknown_user_error = true", Verdict::ConformanceFailure, 98)]
    {
        let run = run_scenario(&nothing_completes(defects)).await;
        assert_eq!(run.code, code, "{defects:?}: {}", run.explain());
        let dir = run.dir.clone().expect("run folder");
        let original = RunResult::read(&dir).expect("summary.json");
        assert_eq!(original.verdict, verdict, "{defects:?}");
        let stuck = |r: &RunResult| r.notes.iter().any(|n| n.starts_with("no flow completed (OtpTimeout × 2"));
        assert!(stuck(&original), "{defects:?}: the run says why: {:?}", original.notes);

        let (merge_code, merged) = merge_of(&dir).await;
        assert_eq!(merge_code, code, "{defects:?}: the merge exits as the run did");
        assert_eq!((merged.verdict, merged.exit_code), (original.verdict, original.exit_code), "{defects:?}");
        assert!(stuck(&merged), "{defects:?}: the merge says why too: {:?}", merged.notes);
    }
}
