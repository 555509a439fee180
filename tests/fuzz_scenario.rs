//! Fuzzed scenario files: valid scenarios (every example in scenarios/ and the shapes the tests use)
//! mutated at their keys — wrong types, huge, negative and non-finite numbers, empty, very long and
//! odd-Unicode strings, deleted, duplicated, renamed and unknown keys, duplicated tables, cut or
//! spliced text. Proves that `Scenario::parse` never panics or hangs, that what it refuses comes back
//! as one error naming the file, a line (always, when the mutation is at a key) and a fix, and that
//! what it accepts can be used (addresses, worker slices, stages, the pool config) without a panic.
//! A handful of cases go through the binary's `run --check`: exit 2 and one `error:` line, or exit 0.
//! Fixed seed (`fuzz::SEED`), bounded case counts.

mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fuzz::{CONFIG_LIMIT, Mutated, apply, bounded, check, mutation};
use otp_harness::scenario::{Scenario, ScenarioError, TargetKind, WorkerSlice};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const FILE: &str = "fuzzed/scenario.toml";

const GOOD: &str = otp_harness::testkit::MINIMAL_SCENARIO;

/// Every table in use at once: inline pool config, retry flows, probes, open stages, thresholds.
const FULL: &str = r#"name = "full.fuzz_1"
description = "every table"
[target]
kind = "local"
call_timeout = "5s"
[target.pool]
max_attempts = 3
code_length = 6
auth_session_validity = "3m"
prevent_user_existence_errors = "ENABLED"
[target.pool.mail]
from = "no-reply@auth.test"
outbox_capacity = 100
[target.pool.faults.latency]
InitiateAuth = "1ms"
[target.pool.faults.mail]
duplicate_rate = 0.1
loss_rate = 0.0
[target.pool.defects]
same_code_every_round = false
[users]
test_users = true
pattern = "vu+{n}@mail.test"
count = 40
first = 3
unknown_pattern = "nobody+{n}@mail.test"
[otp]
source = "outbox"
code_pattern = '\b(\d{6})\b'
timeout = "10s"
from = "no-reply@auth.test"
duplicate_settle = "1s"
[otp.outbox]
poll_interval = "20ms"
[[flow]]
kind = "login"
weight = 5
[[flow]]
kind = "retry"
weight = 1
wrong = 2
[[flow]]
kind = "lockout"
weight = 1
[probes]
session_reuse = true
code_reuse = false
unknown_user_samples = 7
[expect]
max_attempts = 3
new_code_each_attempt = true
user_existence = "hidden"
timing_tolerance = "100ms"
min_codes_for_randomness = 50
[load]
model = "open"
start_rate = 1
stages = [{ rate = 5, duration = "5s" }, { rate = 10, duration = "5s" }]
max_in_flight = 20
abort_on = ["login.success_rate"]
abort_grace = "1s"
stop_grace = "5s"
goose_report = "goose.html"
[thresholds]
"login.success_rate" = ">= 99%"
"login.p99" = "2s"
"throttled.count" = "== 0"
[checks]
get_user = true
[report]
dir = "reports"
progress = "0s"
hlog_interval = "1s"
"#;

/// The open model with `[[load.stages]]` tables, so a stage's rate and duration are keys of their own.
const STAGES: &str = r#"name = "stages"
[target]
kind = "local"
[users]
test_users = true
pattern = "vu+{n}@mail.test"
count = 16
[otp]
source = "outbox"
[load]
model = "open"
max_in_flight = 10
[[load.stages]]
rate = 5
duration = "2s"
[[load.stages]]
rate = 10
duration = "3s"
"#;

/// The valid files mutations start from.
fn seeds() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("scenarios/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && !p.ends_with("local-pool.toml"))
        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).expect("readable")))
        .collect();
    seeds.sort();
    seeds.push(("GOOD".into(), GOOD.into()));
    seeds.push(("FULL".into(), FULL.into()));
    seeds.push(("STAGES".into(), STAGES.into()));
    for (name, text) in &seeds {
        if let Err(e) = Scenario::parse(text, &dir.join("seed.toml")) {
            panic!("seed {name} must be valid: {e}");
        }
    }
    seeds
}

/// Parses `text` within the time bound: Ok(result) or the panic or hang.
fn parse_bounded(text: &str) -> Result<Result<Scenario, ScenarioError>, String> {
    let text = text.to_string();
    bounded(CONFIG_LIMIT, move || {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(FILE);
        Scenario::parse(&text, &path).inspect(use_everything)
    })
}

/// What a run does first with a valid scenario, so a value that parses but breaks later is found here.
fn use_everything(s: &Scenario) {
    let _ = s.thresholds();
    let _ = s.planned_checks();
    let _ = s.load.open_stages();
    let _ = s.load.iterations_per_user();
    let _ = s.users.address(0);
    let _ = s.users.address(s.users.count.saturating_sub(1));
    let _ = s.users.unknown_address(0);
    for slice in ["0/1", "1/2", "3/4", "0/3"] {
        let _ = s.for_worker(WorkerSlice::parse(slice).expect("slice"));
    }
    if s.target.kind == TargetKind::Local && s.target.pool_config.is_none() {
        s.local_pool_config().expect("an inline or default pool config of a valid scenario is usable");
    }
}

/// The rule every refused file follows: this file, a line inside it (required when the mutation is at
/// a key), a message and a fix.
fn assert_clear(e: &ScenarioError, mutated: &Mutated) -> Result<(), TestCaseError> {
    prop_assert!(e.file.ends_with(FILE), "names the file: {e}");
    prop_assert!(!e.message.trim().is_empty(), "says what is wrong: {e:?}");
    prop_assert!(!e.fix.trim().is_empty(), "says how to fix it: {e:?}");
    let lines = mutated.text.lines().count().max(1);
    if let Some(line) = e.line {
        prop_assert!((1..=lines + 1).contains(&line), "line {line} is in the file ({lines} lines): {e}");
    }
    if let Some(k) = &mutated.at_key {
        prop_assert!(e.line.is_some(), "mutation at {}.{} (line {}) but no line in: {e}", k.table, k.key, k.index + 1);
    }
    Ok(())
}

#[test]
fn mutated_scenarios_parse_or_give_one_clear_error() {
    let seeds = seeds();
    let strategy = (prop::sample::select(seeds), mutation());
    check(256, strategy, |((_, text), m)| {
        let mutated = apply(&text, &m);
        match parse_bounded(&mutated.text) {
            Err(what) => Err(TestCaseError::fail(format!("{what}\n--- input ---\n{}", mutated.text))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => assert_clear(&e, &mutated),
        }
    });
}

/// Two and three mutations on one file: errors still clear, nothing panics.
#[test]
fn stacked_mutations_parse_or_give_one_clear_error() {
    let strategy = (prop::sample::select(seeds()), prop::collection::vec(mutation(), 2..4));
    check(128, strategy, |((_, text), ms)| {
        let mut mutated = Mutated { text, at_key: None };
        for m in &ms {
            mutated = Mutated { text: apply(&mutated.text, m).text, at_key: None };
        }
        match parse_bounded(&mutated.text) {
            Err(what) => Err(TestCaseError::fail(format!("{what}\n--- input ---\n{}", mutated.text))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => assert_clear(&e, &mutated),
        }
    });
}

/// The suite can fail: a wrong type at every key of the minimal scenario is refused on that key's line.
#[test]
fn a_wrong_type_at_each_key_is_refused_on_its_line() {
    let (keys, _) = fuzz::key_lines(GOOD);
    assert_eq!(keys.len(), 7, "{keys:?}");
    for k in keys {
        let mut lines: Vec<&str> = GOOD.lines().collect();
        let replaced = format!("{} = [[]]", k.key);
        lines[k.index] = &replaced;
        let text = lines.join("\n");
        let e = parse_bounded(&text).expect("no panic").expect_err("an array of arrays fits no key");
        assert_eq!(e.line, Some(k.index + 1), "{}.{}: {e}", k.table, k.key);
        assert!(!e.message.is_empty() && !e.fix.is_empty(), "{e:?}");
    }
}

/// `run --check` on `text`: (exit code, stderr), within a time bound.
fn check_with_binary(dir: &Path, text: &str) -> (i32, String) {
    let file: PathBuf = dir.join("scenario.toml");
    std::fs::write(&file, text).expect("written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_otp-harness"))
        .args(["run", "--check"])
        .arg(&file)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waits") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().expect("stderr"), &mut stderr).expect("reads");
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("run --check hung on:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A few fuzzed files through the binary: the in-process verdict and the exit code agree, a refused
/// file gets exactly one `error:` line naming the file (and its line), then a fix.
#[test]
fn the_binary_agrees_on_a_handful_of_fuzzed_files() {
    let temp = tempfile::tempdir().expect("temp dir");
    let strategy = (prop::sample::select(seeds()), mutation());
    let (mut refused, mut accepted) = (0, 0);
    let mut runner = fuzz::runner(12);
    for _ in 0..12 {
        let ((_, text), m) = strategy.new_tree(&mut runner).expect("case").current();
        let mutated = apply(&text, &m);
        if mutated.text.len() > 100_000 {
            continue;
        }
        let in_process = Scenario::parse(&mutated.text, &temp.path().join("scenario.toml"));
        let (code, stderr) = check_with_binary(temp.path(), &mutated.text);
        match in_process {
            Ok(_) => {
                accepted += 1;
                assert_eq!(code, 0, "accepted in process, refused by the binary: {stderr}\n{}", mutated.text);
            }
            Err(e) => {
                refused += 1;
                assert_eq!(code, 2, "{stderr}\n{}", mutated.text);
                assert_eq!(stderr.matches("error:").count(), 1, "one error: {stderr}");
                let place = match e.line {
                    Some(line) => format!("scenario.toml:{line}:"),
                    None => "scenario.toml:".to_string(),
                };
                assert!(stderr.contains(&place), "names {place}: {stderr}");
                assert!(stderr.contains("fix:"), "says how to fix it: {stderr}");
                assert!(!stderr.contains("panicked"), "{stderr}");
            }
        }
    }
    assert!(refused >= 3, "the handful includes refused files ({refused} refused, {accepted} accepted)");
}

/// Found by the fuzzer: capacity-open.toml configures its pool only in `[target.pool.faults.latency]`;
/// a bad operation name there was refused with no line (no `[target.pool]` header to point at).
#[test]
fn regression_a_pool_error_under_a_sub_table_only_names_its_line() {
    let text = GOOD.replace("[users]", "[target.pool.faults.latency]\nInitiateAuth_ = \"40ms\"\n[users]");
    let e = parse_bounded(&text).expect("no panic").expect_err("unknown operation");
    assert_eq!(e.line, Some(4), "{e}");
    let inline = GOOD.replace("kind = \"local\"", "kind = \"local\"\npool = { max_attempts = 0 }");
    let e = parse_bounded(&inline).expect("no panic").expect_err("max_attempts = 0");
    assert_eq!(e.line, Some(4), "{e}");
}

/// Every boundary value at every key of every seed (exhaustive, no sampling): parse or one clear error
/// on a line; a valid result usable.
#[test]
fn every_boundary_value_at_every_key() {
    let mut cases = 0;
    let mut swept = std::collections::BTreeSet::new();
    for (name, text) in seeds() {
        let (keys, _) = fuzz::key_lines(&text);
        // Each key once, in the first seed that has it (the seeds share most keys).
        for k in keys.iter().filter(|k| swept.insert((k.table.clone(), k.key.clone()))) {
            for value in fuzz::BOUNDARY_VALUES {
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                lines[k.index] = format!("{} = {value}", toml_key_as_written(&k.key));
                let mutated = Mutated { text: lines.join("\n"), at_key: Some(k.clone()) };
                match parse_bounded(&mutated.text) {
                    Err(what) => panic!("{name}: {}.{} = {value}: {what}", k.table, k.key),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        if let Err(why) = assert_clear(&e, &mutated) {
                            panic!("{name}: {}.{} = {value}: {why}", k.table, k.key);
                        }
                    }
                }
                cases += 1;
            }
        }
    }
    assert!(cases > 1000, "{cases} cases");
}

fn toml_key_as_written(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { key.into() } else { format!("{key:?}") }
}

/// Found by the sweep: `max_in_flight = 4294967295` (or `load.users`) plus the probes' 6 users
/// overflowed u32 while counting the users needed — a panic in a debug build, a wrong count in release.
/// Now refused with the users.count line. A worker slice of a maximal valid file computes its needs
/// without overflowing too.
#[test]
fn regression_user_counts_near_u32_max_do_not_overflow() {
    for text in [GOOD.replace("users = 2", "users = 4294967295"), GOOD.replace("users = 2", "users = 4294967290")] {
        let e = parse_bounded(&text).expect("no panic").expect_err("more users than test users");
        assert_eq!(e.line, Some(7), "the users.count line: {e}");
    }
    let max = GOOD.replace("count = 8", "count = 4294967295").replace("users = 2", "users = 4294967289");
    let s = parse_bounded(&max).expect("no panic").expect("exactly enough users");
    let e = s.for_worker(WorkerSlice::parse("0/2").expect("slice")).expect_err("worker 0 also runs the probes");
    assert!(e.fix.contains("4294967302"), "{e}");
}

/// Found by the sweep: `users.count = 4294967295` with `first = 3` was accepted, and numbering the
/// last user (`first + count - 1`) overflowed u32 — a panic in a debug build.
#[test]
fn regression_user_numbers_past_u32_max_are_refused() {
    let text = FULL.replace("count = 40", "count = 4294967295");
    let e = parse_bounded(&text).expect("no panic").expect_err("numbers past u32::MAX");
    assert!(e.message.contains("users.first") && e.line.is_some(), "{e}");
}

/// Found by the sweep: two stages of `duration = "18446744073709551615s"` (each a valid Duration)
/// overflowed adding up the stages' total — a panic, in release builds too. Now refused on a line.
#[test]
fn regression_stage_durations_that_overflow_their_sum_are_refused() {
    let text = STAGES.replace("\"2s\"", "\"18446744073709551615s\"").replace("\"3s\"", "\"18446744073709551615s\"");
    let e = parse_bounded(&text).expect("no panic").expect_err("too long in all");
    assert!(e.message.contains("24h") && e.line.is_some(), "{e}");
}
