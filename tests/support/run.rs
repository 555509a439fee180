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
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_otp-harness"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&reports)
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .expect("otp-harness runs");
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
        count = load_users + 6
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
