//! Fuzzed pool configs: scenarios/local-pool.toml (every key) and a config with every optional table
//! (relay, S3, throttles, latencies, trigger faults) mutated at their keys — wrong types, huge,
//! negative and non-finite numbers, empty, long and odd-Unicode strings, deleted, duplicated, renamed
//! and unknown keys, duplicated tables, cut or spliced text. Proves that `PoolConfig::from_file` never
//! panics or hangs, that a refused file gives one error naming the file and either the line (TOML
//! errors) or the key it is about (range errors), and that an accepted config serializes back to
//! itself and seeds a bounded number of users. Fixed seed (`fuzz::SEED`), bounded case counts.

mod fuzz;

use std::path::{Path, PathBuf};

use fuzz::{CONFIG_LIMIT, KeyLine, apply, bounded, check, mutation};
use otp_harness::pool::PoolConfig;
use proptest::prelude::*;

/// Every optional table of a pool config in use.
const EVERY_TABLE: &str = r#"region = "eu-west-1"
user_pool_id = "eu-west-1_Fuzz12345"
client_id = "fuzzclient0000000000000001"
max_attempts = 5
code_length = 8
[users]
pattern = "u+{n}@mail.test"
count = 3
emails = ["a@mail.test", "b@mail.test"]
[mail]
from = "no-reply@auth.test"
outbox_capacity = 5
[mail.relay]
protocol = "lmtp"
host = "127.0.0.1"
port = 24
concurrency = 2
[mail.s3]
endpoint_url = "http://127.0.0.1:5000"
bucket = "mail"
prefix = "in/"
region = "us-east-1"
create_bucket = false
[faults.latency]
InitiateAuth = "5ms"
GetUser = "1ms"
[faults.throttle]
user_authentication = 100.0
user_read = 50
[faults.mail]
delay = "10ms"
duplicate_rate = 0.5
loss_rate = 0.1
[[faults.trigger]]
trigger = "create"
failure = "timeout"
rate = 0.5
after = "1s"
[[faults.trigger]]
trigger = "verify"
failure = "bad_output"
[defects]
weak_code_generator = true
unknown_user_delay = "5ms"
token = "wrong_issuer"
"#;

fn seeds() -> Vec<(String, String)> {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/local-pool.toml");
    let seeds = vec![
        ("local-pool.toml".to_string(), std::fs::read_to_string(example).expect("example config")),
        ("EVERY_TABLE".to_string(), EVERY_TABLE.to_string()),
    ];
    for (name, text) in &seeds {
        if let Err(e) = PoolConfig::from_toml(text) {
            panic!("seed {name} must be valid: {e:#}");
        }
    }
    seeds
}

/// Writes `text` to a file of `dir` and reads it back with `from_file`, within the time bound; the
/// accepted config is also serialized and read again.
fn load_bounded(dir: &Path, text: &str) -> Result<Result<PoolConfig, String>, String> {
    let file = dir.join("pool-config.toml");
    std::fs::write(&file, text).expect("written");
    bounded(CONFIG_LIMIT, move || PoolConfig::from_file(&file).inspect(use_everything))
        .map(|r| r.map_err(|e| format!("{e:#}")))
}

/// What the pool does with a valid config before it serves anything, short of binding a port: seed
/// addresses; and a config written back out reads in again as itself.
fn use_everything(config: &PoolConfig) {
    assert!(config.users.count <= 1_000_000, "a valid config seeds a bounded number of users");
    let _ = config.users.addresses();
    let text = toml::to_string(config).expect("a valid config serializes");
    let again = PoolConfig::from_toml(&text).unwrap_or_else(|e| panic!("{e:#}\n{text}"));
    assert_eq!(&again, config, "round trip");
}

/// One error, naming the file, and the line (a TOML error) or the key (a range error) it is about.
fn assert_clear(error: &str, file: &Path, at_key: Option<&KeyLine>) -> Result<(), TestCaseError> {
    prop_assert!(error.contains(&file.display().to_string()), "names the file: {error}");
    let said = error.split_once(": ").map_or("", |(_, rest)| rest);
    prop_assert!(!said.trim().is_empty(), "says what is wrong: {error}");
    prop_assert!(!error.contains("panicked"), "{error}");
    if let Some(k) = at_key {
        let names_line = error.contains(&format!("line {}", k.index + 1));
        let names_key = error.contains(k.key.trim_matches('"'))
            || error.contains(k.table.rsplit('.').next().unwrap_or(""))
                && !k.table.is_empty()
                && !error.contains("TOML parse error");
        prop_assert!(
            names_line || names_key,
            "mutation at {}.{} (line {}): the error names neither: {error}",
            k.table,
            k.key,
            k.index + 1
        );
    }
    Ok(())
}

#[test]
fn mutated_pool_configs_load_or_give_one_clear_error() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir: PathBuf = temp.path().to_path_buf();
    check(256, (prop::sample::select(seeds()), mutation()), |((_, text), m)| {
        let mutated = apply(&text, &m);
        match load_bounded(&dir, &mutated.text) {
            Err(what) => Err(TestCaseError::fail(format!("{what}\n--- input ---\n{}", mutated.text))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => assert_clear(&e, &dir.join("pool-config.toml"), mutated.at_key.as_ref()),
        }
    });
}

/// Every boundary value at every key of the seeds (exhaustive).
#[test]
fn every_boundary_value_at_every_pool_key() {
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("pool-config.toml");
    let mut cases = 0;
    let mut swept = std::collections::BTreeSet::new();
    for (name, text) in seeds() {
        let (keys, _) = fuzz::key_lines(&text);
        // Each key once, in the first seed that has it.
        for k in keys.iter().filter(|k| swept.insert((k.table.clone(), k.key.clone()))) {
            for value in fuzz::BOUNDARY_VALUES {
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                lines[k.index] = format!("{} = {value}", k.key);
                let mutated = lines.join("\n");
                match load_bounded(temp.path(), &mutated) {
                    Err(what) => panic!("{name}: {}.{} = {value}: {what}", k.table, k.key),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        if let Err(why) = assert_clear(&e, &file, Some(k)) {
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

/// The suite can fail: a wrong type at a key is refused with that key's line.
#[test]
fn a_wrong_type_is_refused_with_its_line() {
    let temp = tempfile::tempdir().expect("temp dir");
    let text = EVERY_TABLE.replace("code_length = 8", "code_length = \"8\"");
    let e = load_bounded(temp.path(), &text).expect("no panic").expect_err("a string length");
    assert!(e.contains("line 5") && e.contains("pool-config.toml"), "{e}");
    let range = EVERY_TABLE.replace("code_length = 8", "code_length = 11");
    let e = load_bounded(temp.path(), &range).expect("no panic").expect_err("too long");
    assert!(e.contains("code_length"), "{e}");
}

/// Found by the sweep: values the pool accepted but could not live with. `users.count = 4294967295`
/// made the pool build four billion seed addresses at start (out of memory, or hours);
/// `auth_session_validity` / `token_validity = "18446744073709551615s"` were accepted and then added to
/// the clock when a session or a token is made (`now_ms + validity`, `iat + validity`: an overflow, a
/// panic in debug builds). Now refused, naming the key, within Cognito's own ranges.
#[test]
fn regression_values_the_pool_cannot_live_with_are_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    for (from, to, key) in [
        ("count = 10", "count = 4294967295", "users.count"),
        (
            "auth_session_validity = \"3m\"",
            "auth_session_validity = \"18446744073709551615s\"",
            "auth_session_validity",
        ),
        ("auth_session_validity = \"3m\"", "auth_session_validity = \"16m\"", "auth_session_validity"),
        ("token_validity = \"1h\"", "token_validity = \"18446744073709551615s\"", "token_validity"),
        ("token_validity = \"1h\"", "token_validity = \"25h\"", "token_validity"),
    ] {
        let text = seeds()[0].1.replace(from, to);
        assert_ne!(text, seeds()[0].1, "{from}");
        let e = load_bounded(temp.path(), &text).expect("no panic").expect_err(to);
        assert!(e.contains(key), "{to}: {e}");
    }
}
