//! Runs the `otp-harness` binary on a scenario written to a temporary folder, as a user would, and
//! reads back its exit code, output and reports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

#[allow(unused_imports)]
pub use super::secrets::{Secrets, assert_clean, scan};

/// Every file under `dir` (recursively), by path relative to it, sorted, as (lossy UTF-8) text.
pub fn read_folder(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("folder readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).expect("file readable");
                let name = path.strip_prefix(root).expect("under root").to_string_lossy().into_owned();
                out.push((name, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What a run left behind.
pub struct RunOutcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: Option<PathBuf>,
    pub summary: Value,
    /// Every file of the run folder (sub-folders too), by path relative to it, sorted, as text.
    pub files: Vec<(String, String)>,
    _temp: tempfile::TempDir,
}

impl RunOutcome {
    /// The status of a check in summary.json ("pass", "fail", "skip"), if it is there.
    pub fn check(&self, name: &str) -> Option<String> {
        self.summary["checks"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["status"].as_str())
            .map(str::to_string)
    }

    /// A threshold's result in summary.json: passed, observed value, reason.
    pub fn threshold(&self, key: &str) -> Option<(bool, Option<f64>, String)> {
        let t = self.summary["thresholds"].as_array()?.iter().find(|t| t["key"] == key)?;
        Some((t["passed"].as_bool()?, t["observed"].as_f64(), t["reason"].as_str()?.to_string()))
    }

    /// Keys of the breached thresholds.
    pub fn breached_thresholds(&self) -> Vec<String> {
        self.summary["thresholds"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|t| t["passed"] == false)
                    .filter_map(|t| t["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn failed_checks(&self) -> Vec<String> {
        self.summary["checks"]
            .as_array()
            .map(|checks| {
                checks
                    .iter()
                    .filter(|c| c["status"] == "fail")
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All report text plus stdout and stderr.
    pub fn all_output(&self) -> String {
        let mut all = format!("{}\n{}\n", self.stdout, self.stderr);
        for (_, text) in &self.files {
            all.push_str(text);
        }
        all
    }

    /// A report file's text, by its path in the run folder.
    pub fn file(&self, name: &str) -> Option<&str> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_str())
    }

    /// Every output of the run, named: stdout, stderr and each file of the run folder.
    pub fn sources(&self) -> Vec<(&str, &str)> {
        let mut all = vec![("stdout", self.stdout.as_str()), ("stderr", self.stderr.as_str())];
        all.extend(self.files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        all
    }

    /// No code in `secrets`, password, token or Session string in any output (see `secrets::scan`).
    pub fn assert_no_secrets(&self, secrets: &Secrets) {
        assert_clean(self.sources(), secrets);
    }

    pub fn explain(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }
}

/// `otp-harness run FILE --out REPORTS`, with dummy AWS credentials in the environment (and the
/// instance-metadata lookup off) so nothing leaves the machine.
pub fn run_command(file: &Path, reports: &Path) -> tokio::process::Command {
    let mut command = harness_command();
    command.arg("run").arg(file).arg("--out").arg(reports);
    command
}

/// Every flow in the mix (login, retry, lockout), a few iterations, every probe: what each code
/// source's end-to-end test runs.
pub const EVERY_FLOW: &str = r#"[[flow]]
kind = "login"
weight = 4
[[flow]]
kind = "retry"
weight = 1
[[flow]]
kind = "lockout"
weight = 1
[expect]
min_codes_for_randomness = 10
[load]
users = 3
iterations = 4
"#;

/// The files of a run folder that got through the preflight, in name order.
pub const RUN_FILES: [&str; 8] = [
    "junit.xml",
    "latency.hlog",
    "preflight.json",
    "preflight.junit.xml",
    "report.html",
    "summary.json",
    "summary.md",
    "timeline.jsonl",
];

/// The `otp-harness` binary, with dummy AWS credentials in the environment (and the instance-metadata
/// lookup and the machine's profile off) so nothing leaves the machine.
pub fn harness_command() -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness"));
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE");
    command
}

/// A run of `scenario` started in the background, its output piped: the child, the reports' parent
/// folder and the temporary folder holding both (keep it while the run goes).
pub fn spawn_run(scenario: &str) -> (tokio::process::Child, PathBuf, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("scenario.toml");
    std::fs::write(&file, scenario).expect("scenario written");
    let reports = temp.path().join("reports");
    let child = run_command(&file, &reports)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("otp-harness starts");
    (child, reports, temp)
}

/// Writes `scenario` (TOML) and runs `otp-harness run` on it, with dummy AWS credentials in the
/// environment (and the instance-metadata lookup off) so nothing leaves the machine.
pub async fn run_scenario(scenario: &str) -> RunOutcome {
    run_with_args(scenario, &[]).await
}

pub async fn run_with_args(scenario: &str, extra: &[&str]) -> RunOutcome {
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("scenario.toml");
    std::fs::write(&file, scenario).expect("scenario written");
    let reports = temp.path().join("reports");
    let output = run_command(&file, &reports).args(extra).output().await.expect("otp-harness runs");
    let dir = std::fs::read_dir(&reports).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.path());
    let files = dir.as_deref().map(read_folder).unwrap_or_default();
    let summary = files
        .iter()
        .find(|(n, _)| n == "summary.json")
        .map(|(_, text)| serde_json::from_str(text).expect("summary.json is JSON"))
        .unwrap_or(Value::Null);
    let outcome = RunOutcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        dir,
        summary,
        files,
        _temp: temp,
    };
    // Every run of every test: no token or Session string anywhere (tests that know the codes and
    // passwords scan for those too).
    outcome.assert_no_secrets(&Secrets::default());
    outcome
}

/// A scenario against the embedded pool with codes from its outbox; `pool` is TOML for
/// `[target.pool]` (may be empty), `extra` is appended (more tables).
pub fn local_scenario(pool: &str, load_users: u32, iterations: u32, extra: &str) -> String {
    format!(
        r#"name = "test"
[target]
kind = "local"
[target.pool]
{pool}
[users]
test_users = true
pattern = "vu+{{n}}@mail.test"
count = {count}
[otp]
source = "outbox"
timeout = "5s"
duplicate_settle = "300ms"
[[flow]]
kind = "login"
weight = 6
[[flow]]
kind = "retry"
weight = 1
wrong = 2
[[flow]]
kind = "lockout"
weight = 1
[load]
users = {load_users}
iterations = {iterations}
{extra}
"#,
        count = load_users + otp_harness::scenario::Probes::default().users_needed()
    )
}

/// An aws-kind scenario for `pool`, its Cognito API at `endpoint` (the pool's own, or a proxy in front of
/// it); `otp` is the `[otp]` table and what follows it.
pub fn external_scenario(
    pool: &otp_harness::pool::RunningPool,
    endpoint: &str,
    pattern: &str,
    count: u32,
    otp: &str,
) -> String {
    format!(
        r#"name = "external"
[target]
kind = "aws"
region = "us-east-1"
user_pool_id = "{pool_id}"
client_id = "{client_id}"
endpoint_url = "{endpoint}"
issuer = "{issuer}"
[users]
test_users = true
pattern = "{pattern}"
count = {count}
{otp}
"#,
        pool_id = pool.info().user_pool_id,
        client_id = pool.info().client_id,
        issuer = pool.info().issuer,
    )
}

/// `[otp]` reading `pool`'s outbox.
pub fn outbox_otp(pool: &otp_harness::pool::RunningPool) -> String {
    format!("[otp]\nsource = \"outbox\"\n[otp.outbox]\nurl = \"{}/_aws/ses\"", pool.endpoint())
}

/// Reads back every report of a run folder and checks each says what summary.json says: summary.json
/// parses with its schema and `code`, junit.xml has a test case per check and threshold (failures
/// where they failed), report.html and summary.md show the verdict and exit code, latency.hlog parses
/// and holds as many samples per step as summary.json counts. Returns summary.json.
pub fn assert_reports(dir: &Path, code: i32) -> Value {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let summary: Value = serde_json::from_str(&read("summary.json")).expect("summary.json is JSON");
    assert_eq!(summary["schema"], "otp-harness/summary/v1");
    assert_eq!(summary["exit_code"].as_i64(), Some(i64::from(code)), "summary.json exit_code");
    let verdict = summary["verdict"].as_str().expect("verdict");
    let label = match verdict {
        "pass" => "PASS",
        "conformance_failure" => "CONFORMANCE FAILURE",
        "threshold_breached" => "THRESHOLD BREACHED",
        _ => "THE RUN COULD NOT HAPPEN",
    };
    let checks = summary["checks"].as_array().expect("checks");
    let thresholds = summary["thresholds"].as_array().expect("thresholds");
    let failures = checks.iter().filter(|c| c["status"] == "fail").count()
        + thresholds.iter().filter(|t| t["passed"] == false).count();

    let junit = read("junit.xml");
    let cases = junit.matches("<testcase ").count();
    assert!(cases > 0, "junit.xml has test cases:\n{junit}");
    assert_eq!(cases, checks.len() + thresholds.len(), "a test case per check and threshold:\n{junit}");
    assert!(junit.contains(&format!("tests=\"{cases}\" failures=\"{failures}\"")), "{junit}");
    assert_eq!(junit.matches("<failure ").count(), failures, "{junit}");
    for check in checks {
        let name = check["name"].as_str().expect("name");
        assert!(junit.contains(&format!("name=\"{name}\"")), "{name} in junit.xml");
    }

    let html = read("report.html");
    assert!(html.contains(&format!("id=\"verdict\">{label} (exit {code})</span>")), "report.html shows the verdict");
    assert!(html.trim_end().ends_with("</html>"), "report.html is complete");
    let markdown = read("summary.md");
    let first = markdown.lines().next().unwrap_or_default();
    assert!(first.starts_with("# otp-harness: ") && first.ends_with(&format!("(exit {code})")), "{first}");

    let entries = otp_harness::report::hlog::read(&dir.join("latency.hlog")).expect("latency.hlog parses");
    assert!(!entries.is_empty(), "latency.hlog holds intervals");
    for (step, stats) in summary["steps"].as_object().expect("steps") {
        let in_hlog: u64 =
            entries.iter().filter(|e| e.tag.as_deref() == Some(step.as_str())).map(|e| e.histogram.len()).sum();
        assert_eq!(Some(in_hlog), stats["count"].as_u64(), "{step}: latency.hlog and summary.json agree");
    }
    summary
}

/// The repository's own file.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A test scenario reading codes from `dovecot` over IMAP: the embedded pool relays mail to Dovecot's
/// LMTP, users are `loadtest+{n}@mail.test`. `connection` holds the `[otp.imap]` lines that say how to
/// connect (see `plain_imap`), `otp` extra `[otp]` lines, `rest` the tables after (flows, probes, load).
/// Keep the value alive while the run goes: it owns the password file.
pub struct ImapScenario {
    pub text: String,
    _password: tempfile::NamedTempFile,
}

pub fn imap_scenario(
    name: &str,
    dovecot: &otp_harness::testkit::dovecot::Dovecot,
    count: u32,
    otp: &str,
    connection: &str,
    rest: &str,
) -> ImapScenario {
    let password = tempfile::NamedTempFile::new().expect("password file");
    std::fs::write(password.path(), &dovecot.password).expect("password written");
    let text = format!(
        r#"name = "{name}"
[target]
kind = "local"
[target.pool.mail.relay]
protocol = "lmtp"
port = {lmtp}
[users]
test_users = true
pattern = "loadtest+{{n}}@mail.test"
count = {count}
[otp]
source = "imap"
{otp}
[otp.imap]
{connection}
username = "{user}"
password_file = "{password}"
{rest}
"#,
        lmtp = dovecot.lmtp_port,
        user = dovecot.user,
        password = password.path().display()
    );
    ImapScenario { text, _password: password }
}

/// `[otp.imap]` lines for Dovecot's plain-text IMAP port on loopback.
pub fn plain_imap(dovecot: &otp_harness::testkit::dovecot::Dovecot) -> String {
    format!("host = \"127.0.0.1\"\nport = {}\ntls = false", dovecot.imap_port)
}
