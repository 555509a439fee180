//! Every scenario shipped in scenarios/ parses and validates (`otp-harness run --check`).

mod support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_scenario_is_valid() {
    let dir = support::run::repo_file("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !name.ends_with(".toml") || name == "local-pool.toml" {
            continue;
        }
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness"))
            .arg("run")
            .arg(&path)
            .arg("--check")
            .output()
            .await
            .expect("runs");
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        checked += 1;
    }
    assert!(checked >= 3, "the smoke and both nightly examples");
}
