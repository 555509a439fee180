//! Shared pieces of the fuzz suites (`fuzz_scenario`, `fuzz_pool_config`, `fuzz_mail`): a proptest
//! runner with a fixed seed and case count (independent of `PROPTEST_*` variables, no failure files),
//! a time bound around each case that also turns a panic into a failure naming the input, the nasty
//! TOML values the config suites put at keys, and line-level mutations of a valid TOML file.
#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestRunner};

/// The seed every fuzz suite starts from: CI and a laptop see the same cases.
pub const SEED: u64 = 0x0791_0F22;

/// A runner with `cases` cases from `SEED`, shrinking bounded, nothing persisted.
pub fn runner(cases: u32) -> TestRunner {
    let config = Config {
        cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(SEED),
        failure_persistence: None,
        max_shrink_iters: 256,
        max_shrink_time: 20_000,
        max_local_rejects: 65_536,
        max_global_rejects: 1024,
        max_flat_map_regens: 1_000_000,
        verbose: 0,
        source_file: None,
        ..Config::default()
    };
    TestRunner::new(config)
}

/// Runs `strategy`'s cases through `test` with `runner(cases)`; a failure panics with the minimized
/// input and the reason.
pub fn check<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: Debug,
{
    if let Err(e) = runner(cases).run(&strategy, test) {
        panic!("{e}");
    }
}

/// Runs `f` on a thread of its own and waits at most `limit`: a panic or an overrun is an error naming
/// what happened (an overrunning thread is left behind; the test fails anyway).
pub fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| format!("cannot spawn: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = handle.join();
            Ok(value)
        }
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("hung: no answer within {limit:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            let panic = handle.join().err().map(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            Err(format!("panicked: {}", panic.unwrap_or_default()))
        }
    }
}

/// Time bound of one config case (a debug build parses a scenario in well under a millisecond).
pub const CONFIG_LIMIT: Duration = Duration::from_secs(5);

/// `text` as a TOML basic string: quotes, backslashes and control characters escaped, the rest
/// (RTL marks, emoji, combining characters…) as is.
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Odd Unicode: bidi controls, zero-width characters, a BOM, emoji (with a ZWJ sequence), combining
/// marks, NUL and escape characters (escaped in TOML), non-characters and astral letters.
pub fn odd_unicode() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "\u{200F}",
        "\u{202E}",
        "\u{2066}",
        "\u{200B}",
        "\u{200D}",
        "\u{FEFF}",
        "🔥",
        "👩‍💻",
        "e\u{0301}",
        "\u{0300}\u{0301}\u{0302}",
        "\u{0000}",
        "\u{001B}[31m",
        "\u{007F}",
        "\u{FFFF}",
        "\u{10FFFF}",
        "𝔘𝔫𝔦",
        "ﷺ",
        "İ",
        "ß",
        "\u{2028}",
        "{n}",
        "@",
        " ",
        "\t",
        "x",
    ]);
    prop::collection::vec(pieces, 0..12).prop_map(|v| v.concat())
}

/// A TOML value text that is hostile to whatever key it is put at: wrong types, huge and negative
/// numbers, NaN and infinities, empty and very long strings, odd Unicode, durations out of range,
/// arrays and inline tables.
pub fn nasty_value() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(BOUNDARY_VALUES.to_vec()).prop_map(str::to_string);
    prop_oneof![
        4 => fixed,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        2 => odd_unicode().prop_map(|s| toml_string(&s)),
        1 => (1usize..200_000, prop::sample::select(vec!["a", "9", "é", "🔥", "{n}", "\u{202E}"]))
            .prop_map(|(n, s)| toml_string(&s.repeat(n))),
        1 => "\\PC{0,40}".prop_map(|s| toml_string(&s)),
    ]
}

/// Values at the edges of every type a key can have, tried at every key by the sweeps.
pub const BOUNDARY_VALUES: &[&str] = &[
    "18446744073709551615", // u64::MAX: above TOML's i64
    "9223372036854775807",
    "-9223372036854775808",
    "4294967295",
    "4294967296",
    "65536",
    "-1",
    "0",
    "1",
    "1e308",
    "-1e308",
    "1e309",
    "5e-324",
    "-0.0",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "\"\"",
    "\" \"",
    "''",
    "\"0s\"",
    "\"-1s\"",
    "\"1ns\"",
    "\"18446744073709551615s\"",
    "\"584942417355years\"",
    "\"99999999999999999999999h\"",
    "\"25h\"",
    "\"1e308s\"",
    "\"nan%\"",
    "\">= 1e308%\"",
    "\"== 18446744073709551615\"",
    "[]",
    "[1, \"a\"]",
    "[[]]",
    "{}",
    "{ a = 1 }",
    "\"\\u0000\"",
    "\"{n}\"",
    "\"x@{n}\"",
    "\"\u{202E}x@{n}\u{200F}\"",
    "\"🔥+{n}@e\u{0301}.test\"",
    "\"500000000000years\"",
    "\"2562047788015215h 30m\"",
];

/// One `key = value` line of a TOML file, with the table it is in (`""` for the top level).
#[derive(Debug, Clone)]
pub struct KeyLine {
    /// 0-based line index.
    pub index: usize,
    pub table: String,
    pub key: String,
}

/// The `key = value` lines and the table headers (`[x]`, `[[x]]`) of a TOML file whose values each
/// fit on one line (every seed file's do).
pub fn key_lines(text: &str) -> (Vec<KeyLine>, Vec<usize>) {
    let mut keys = Vec::new();
    let mut headers = Vec::new();
    let mut table = String::new();
    let mut depth = 0i32;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if depth > 0 {
            depth += bracket_balance(line);
        } else if line.starts_with('[') {
            table =
                line.split('#').next().unwrap_or("").trim().trim_matches(|c| c == '[' || c == ']').trim().to_string();
            headers.push(index);
        } else if !line.starts_with('#')
            && let Some((key, value)) = line.split_once('=')
        {
            depth = bracket_balance(value);
            if depth == 0 {
                keys.push(KeyLine { index, table: table.clone(), key: key.trim().trim_matches('"').to_string() });
            }
        }
    }
    (keys, headers)
}

/// Opening minus closing brackets in a line of TOML, outside strings and comments (a multi-line
/// array's first line is positive).
fn bracket_balance(line: &str) -> i32 {
    let (mut balance, mut quote, mut escaped) = (0, None, false);
    for c in line.chars() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => break,
            (None, '[') => balance += 1,
            (None, ']') => balance -= 1,
            _ => {}
        }
        escaped = false;
    }
    balance
}

/// How one valid file is changed.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// The value at a key replaced.
    SetValue { pick: prop::sample::Index, value: String },
    /// A key's line removed.
    DeleteKey { pick: prop::sample::Index },
    /// A key's line written twice.
    DuplicateKey { pick: prop::sample::Index },
    /// A key renamed to one no table knows.
    RenameKey { pick: prop::sample::Index, suffix: String },
    /// A key no table knows added after a header (or at the top).
    UnknownKey { pick: prop::sample::Index, key: String, value: String },
    /// A table header written again right after itself (a duplicated table, or an extra `[[x]]`).
    DuplicateTable { pick: prop::sample::Index },
    /// The file cut at a byte (on a character boundary).
    Truncate { pick: prop::sample::Index },
    /// Odd characters inserted at a byte (on a character boundary).
    Insert { pick: prop::sample::Index, junk: String },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        8 => (index(), nasty_value()).prop_map(|(pick, value)| Mutation::SetValue { pick, value }),
        2 => index().prop_map(|pick| Mutation::DeleteKey { pick }),
        1 => index().prop_map(|pick| Mutation::DuplicateKey { pick }),
        1 => (index(), prop_oneof![Just("_".to_string()), Just("s".to_string()), odd_unicode()])
            .prop_map(|(pick, suffix)| Mutation::RenameKey { pick, suffix }),
        1 => (index(), prop_oneof![Just("extra".to_string()), Just("Name".to_string()), odd_unicode()], nasty_value())
            .prop_map(|(pick, key, value)| Mutation::UnknownKey { pick, key, value }),
        1 => index().prop_map(|pick| Mutation::DuplicateTable { pick }),
        1 => index().prop_map(|pick| Mutation::Truncate { pick }),
        1 => (index(), odd_unicode()).prop_map(|(pick, junk)| Mutation::Insert { pick, junk }),
    ]
}

/// A mutated file, and the 1-based line of the key it touched when it touched one that exists in the
/// valid file (an error must then carry a line).
#[derive(Debug, Clone)]
pub struct Mutated {
    pub text: String,
    pub at_key: Option<KeyLine>,
}

/// A TOML key as written: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_string()
    } else {
        toml_string(key)
    }
}

/// Applies `mutation` to `text`.
pub fn apply(text: &str, mutation: &Mutation) -> Mutated {
    let (keys, headers) = key_lines(text);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let join = |lines: Vec<String>| lines.join("\n") + "\n";
    let at_a_key = matches!(
        mutation,
        Mutation::SetValue { .. }
            | Mutation::DeleteKey { .. }
            | Mutation::DuplicateKey { .. }
            | Mutation::RenameKey { .. }
    );
    if at_a_key && keys.is_empty() {
        return Mutated { text: text.to_string(), at_key: None };
    }
    match mutation {
        Mutation::SetValue { pick, value } => {
            let k = pick.get(&keys).clone();
            lines[k.index] = format!("{} = {value}", toml_key(&k.key));
            Mutated { text: join(lines), at_key: Some(k) }
        }
        Mutation::DeleteKey { pick } => {
            let k = pick.get(&keys).clone();
            lines.remove(k.index);
            Mutated { text: join(lines), at_key: None }
        }
        Mutation::DuplicateKey { pick } => {
            let k = pick.get(&keys).clone();
            let copy = lines[k.index].clone();
            lines.insert(k.index + 1, copy);
            Mutated { text: join(lines), at_key: Some(k) }
        }
        Mutation::RenameKey { pick, suffix } => {
            let k = pick.get(&keys).clone();
            let value = lines[k.index].split_once('=').map(|(_, v)| v.to_string()).unwrap_or_default();
            lines[k.index] = format!("{} ={value}", toml_key(&format!("{}{suffix}", k.key)));
            Mutated { text: join(lines), at_key: Some(k) }
        }
        Mutation::UnknownKey { pick, key, value } => {
            let at = if headers.is_empty() { 0 } else { pick.get(&headers) + 1 };
            let table = if headers.is_empty() {
                String::new()
            } else {
                lines[at - 1].trim().trim_matches(|c| c == '[' || c == ']').trim().to_string()
            };
            let key = format!("{key}_not_a_key");
            lines.insert(at, format!("{} = {value}", toml_key(&key)));
            Mutated { text: join(lines), at_key: Some(KeyLine { index: at, table, key }) }
        }
        Mutation::DuplicateTable { pick } => {
            if headers.is_empty() {
                return Mutated { text: text.to_string(), at_key: None };
            }
            let h = *pick.get(&headers);
            let copy = lines[h].clone();
            lines.insert(h + 1, copy);
            Mutated { text: join(lines), at_key: None }
        }
        Mutation::Truncate { pick } => {
            let mut cut = pick.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            Mutated { text: text[..cut].to_string(), at_key: None }
        }
        Mutation::Insert { pick, junk } => {
            let mut at = pick.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            Mutated { text: format!("{}{junk}{}", &text[..at], &text[at..]), at_key: None }
        }
    }
}
