//! The IMAP source signs in with OAuth access tokens (SASL XOAUTH2 and OAUTHBEARER), as Microsoft 365
//! and Gmail inboxes need: real Dovecot with its oauth2 passdb asking a token-introspection endpoint
//! the test runs (valid, expired, revoked and unverifiable tokens), codes delivered by the embedded
//! pool over LMTP. A refused token stops the run before any load, like an unreachable source (exit 3),
//! with the server's reply class named; a token command runs at every login (start, a retry after a
//! refusal, renewals, reconnects). No token appears in the run folder, stdout or stderr.
//! A missing Dovecot fails these tests; it never skips them.

mod support;

use std::path::{Path, PathBuf};

use otp_harness::otp::Extractor;
use otp_harness::otp::imap::ImapWatcher;
use otp_harness::scenario::{ImapOptions, Scenario};
use otp_harness::testkit::dovecot::{Dovecot, Introspection, TokenState};
use serde_json::Value;
use support::run::{Secrets, assert_clean, read_folder, run_command};

const USER: &str = "loadtest@mail.test";

/// A token that looks like a real one (Google's start with `ya29.`), different at every call.
fn token(kind: &str) -> String {
    let tail: String = (0..40).map(|_| char::from(b'a' + rand::random_range(0..26u8))).collect();
    format!("ya29.{kind}-{tail}")
}

/// An introspection endpoint and a Dovecot that asks it.
async fn servers() -> (Introspection, Dovecot) {
    let introspection = Introspection::start(USER).await.expect("introspection endpoint");
    let dovecot = Dovecot::start_with_oauth2(USER, &introspection).await.expect("dovecot with the oauth2 passdb");
    (introspection, dovecot)
}

/// A scenario reading codes from `dovecot` over IMAP with `auth` (the `[otp.imap]` lines after the
/// connection and username), then `rest`.
fn scenario(name: &str, dovecot: &Dovecot, auth: &str, rest: &str) -> String {
    format!(
        r#"name = "{name}"
[target]
kind = "local"
[target.pool.mail.relay]
protocol = "lmtp"
port = {lmtp}
[users]
test_users = true
pattern = "loadtest+{{n}}@mail.test"
count = 8
[otp]
source = "imap"
timeout = "10s"
[otp.imap]
host = "127.0.0.1"
port = {imap}
tls = false
mode = "poll"
poll_interval = "50ms"
username = "{user}"
{auth}
[probes]
code_randomness = false
{rest}
"#,
        lmtp = dovecot.lmtp_port,
        imap = dovecot.imap_port,
        user = dovecot.user,
    )
}

/// What a run left: exit code, output, the files of its run folder (none when it could not start).
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
    files: Vec<(String, String)>,
    summary: Value,
    folder: PathBuf,
    _temp: tempfile::TempDir,
}

impl Outcome {
    fn explain(&self) -> String {
        format!("exit {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr)
    }

    fn check(&self, name: &str) -> Option<&str> {
        self.summary["checks"].as_array()?.iter().find(|c| c["name"] == name)?["status"].as_str()
    }

    /// No token (nor anything shaped like one) in stdout, stderr or any file of the run folder.
    fn assert_no_tokens(&self, tokens: &[&str]) {
        let secrets = tokens.iter().fold(Secrets::default(), |s, t| s.with_password(t));
        let mut sources = vec![("stdout", self.stdout.as_str()), ("stderr", self.stderr.as_str())];
        sources.extend(self.files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        assert_clean(sources, &secrets);
    }
}

/// Writes `scenario` and `files` (name, content) into a temporary folder and runs the harness there
/// with `env` added to its environment.
async fn run(scenario: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Outcome {
    let temp = tempfile::tempdir().expect("temp dir");
    let file = temp.path().join("scenario.toml");
    std::fs::write(&file, scenario).expect("scenario written");
    for (name, content) in files {
        std::fs::write(temp.path().join(name), content).expect("file written");
    }
    let reports = temp.path().join("reports");
    let mut command = run_command(&file, &reports);
    // Not the test's working directory: relative paths and commands must start from the scenario's.
    command.current_dir("/");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().await.expect("otp-harness runs");
    let folder = std::fs::read_dir(&reports)
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.path())
        .unwrap_or_default();
    let files = if folder.as_os_str().is_empty() { Vec::new() } else { read_folder(&folder) };
    let summary = files
        .iter()
        .find(|(n, _)| n == "summary.json")
        .map(|(_, text)| serde_json::from_str(text).expect("summary.json is JSON"))
        .unwrap_or(Value::Null);
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        files,
        summary,
        folder,
        _temp: temp,
    }
}

/// The `[otp.imap]` options a scenario with these auth lines gives (as the harness would read them).
fn options(dovecot: &Dovecot, auth: &str, scenario_file: &Path) -> ImapOptions {
    let text = scenario("direct", dovecot, auth, "[load]\nusers = 2");
    Scenario::parse(&text, scenario_file).expect("valid scenario").otp.imap.expect("[otp.imap]")
}

async fn connect(options: ImapOptions) -> Result<ImapWatcher, String> {
    let extractor = Extractor::new(r"\b(\d{6})\b", None).expect("pattern");
    ImapWatcher::connect(options, extractor).await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_token_gets_its_own_answer_from_dovecot() {
    let (introspection, dovecot) = servers().await;
    let dir = tempfile::tempdir().expect("dir");
    let scenario_file = dir.path().join("s.toml");
    let mut tokens = Vec::new();
    for (state, auth) in [
        (TokenState::Valid, "xoauth2"),
        (TokenState::Valid, "oauthbearer"),
        (TokenState::Expired, "xoauth2"),
        (TokenState::Revoked, "oauthbearer"),
        (TokenState::Broken, "xoauth2"),
    ] {
        let secret = token(&format!("{state:?}").to_lowercase());
        introspection.add(&secret, state);
        std::fs::write(dir.path().join("token"), format!("{secret}\n")).expect("token file");
        let result =
            connect(options(&dovecot, &format!("auth = \"{auth}\"\ntoken_file = \"token\""), &scenario_file)).await;
        let mechanism = auth.to_uppercase();
        match state {
            TokenState::Valid => {
                result.unwrap_or_else(|e| panic!("{mechanism} with a valid token: {e}"));
            }
            _ => {
                let error = result.err().unwrap_or_else(|| panic!("{mechanism} with a {state:?} token signed in"));
                let class = match state {
                    TokenState::Broken => "the server could not check the token",
                    _ => "token rejected (expired or revoked?)",
                };
                let prefix = format!("imap source: IMAP {mechanism} login refused for {USER}: {class}");
                assert!(error.starts_with(&prefix), "{error}");
                assert!(error.contains("token_file gave the same token"), "read again once: {error}");
                assert!(!error.contains(&secret), "{error}");
            }
        }
        tokens.push(secret);
    }
    let asked = introspection.asked();
    for (n, secret) in tokens.iter().enumerate() {
        let times = asked.iter().filter(|t| *t == secret).count();
        // A refused token from a file is read again and tried once more.
        assert_eq!(times, if n < 2 { 1 } else { 2 }, "{asked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_signs_in_with_xoauth2_and_with_oauthbearer() {
    let (introspection, dovecot) = servers().await;
    let from_env = token("valid");
    let from_file = token("valid");
    introspection.add(&from_env, TokenState::Valid);
    introspection.add(&from_file, TokenState::Valid);
    let load = "[load]\nusers = 2\niterations = 3";

    let xoauth2 = scenario("xoauth2", &dovecot, "auth = \"xoauth2\"\ntoken_env = \"OTP_IMAP_TOKEN\"", load);
    let outcome = run(&xoauth2, &[], &[("OTP_IMAP_TOKEN", &from_env)]).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.check("sign_in"), Some("pass"), "{}", outcome.explain());
    outcome.assert_no_tokens(&[&from_env, &from_file]);

    // The token file sits next to the scenario (the harness runs elsewhere).
    let oauthbearer = scenario("oauthbearer", &dovecot, "auth = \"oauthbearer\"\ntoken_file = \"imap-token\"", load);
    let outcome = run(&oauthbearer, &[("imap-token", &format!("{from_file}\n"))], &[]).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.check("sign_in"), Some("pass"), "{}", outcome.explain());
    outcome.assert_no_tokens(&[&from_env, &from_file]);

    let asked = introspection.asked();
    assert!(asked.contains(&from_env) && asked.contains(&from_file), "both logins checked their token: {asked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_revoked_token_stops_the_run_before_any_load() {
    let (introspection, dovecot) = servers().await;
    let expired = token("expired");
    let revoked = token("revoked");
    introspection.add(&expired, TokenState::Expired);
    introspection.add(&revoked, TokenState::Revoked);
    let load = "[load]\nusers = 2\niterations = 3";
    for (secret, auth) in [(&expired, "xoauth2"), (&revoked, "oauthbearer")] {
        let text = scenario("refused", &dovecot, &format!("auth = \"{auth}\"\ntoken_env = \"OTP_IMAP_TOKEN\""), load);
        let outcome = run(&text, &[], &[("OTP_IMAP_TOKEN", secret)]).await;
        assert_eq!(outcome.code, 3, "as for an unreachable source: {}", outcome.explain());
        let expected =
            format!("IMAP {} login refused for {USER}: token rejected (expired or revoked?)", auth.to_uppercase());
        assert!(outcome.stderr.contains(&expected), "{}", outcome.explain());
        assert!(outcome.folder.as_os_str().is_empty(), "no run folder: the run never started");
        outcome.assert_no_tokens(&[&expired, &revoked]);
    }
    let asked = introspection.asked();
    assert_eq!(asked, [expired.clone(), revoked.clone()], "one try each: an environment variable cannot change");

    // A token command that fails: its last line of error output says why; nothing was sent.
    let failing =
        "auth = \"xoauth2\"\ntoken_command = \"echo 'ERROR: Please run az login to setup account.' >&2; exit 1\"";
    let outcome = run(&scenario("no-token", &dovecot, failing, load), &[], &[]).await;
    assert_eq!(outcome.code, 3, "{}", outcome.explain());
    assert!(
        outcome
            .stderr
            .contains("no IMAP access token: token_command failed (exit status: 1): ERROR: Please run az login"),
        "{}",
        outcome.explain()
    );
    assert_eq!(introspection.asked().len(), 2, "no login was tried without a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_command_runs_at_every_login_renewal_and_reconnect() {
    let (introspection, dovecot) = servers().await;
    let revoked = token("revoked");
    introspection.add(&revoked, TokenState::Revoked);
    let prefix = token("cmd");
    introspection.accept_prefix(&prefix);
    // The first token the command prints is refused; it is run again and the fresh one signs in.
    let script = format!(
        "n=$(( $(cat count 2>/dev/null || echo 0) + 1 ))\necho $n > count\n\
         if [ $n -eq 1 ]; then echo {revoked}; else echo {prefix}-$n; fi\necho 'token issued' >&2\n"
    );
    let text = scenario(
        "command",
        &dovecot,
        "auth = \"xoauth2\"\ntoken_command = \"sh token.sh\"\ntoken_refresh = \"1s\"",
        "[load]\nusers = 2\nduration = \"5s\"\nerror_backoff = \"100ms\"",
    );
    // Twice: a kick that lands while a renewal is logging in may spare the new session. A kick with no
    // session to end (the run still starting on a busy machine) fails: try again shortly.
    let kick = async {
        for _ in 0..2 {
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            for attempt in 0.. {
                match dovecot.kick() {
                    Ok(()) => break,
                    Err(e) if attempt >= 40 => panic!("kick: {e:#}"),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                }
            }
        }
    };
    let files = [("token.sh", script.as_str())];
    let (outcome, ()) = tokio::join!(run(&text, &files, &[]), kick);
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(outcome.check("sign_in"), Some("pass"), "{}", outcome.explain());
    assert!(
        outcome.stderr.contains(&format!(
            "IMAP XOAUTH2 login refused for {USER}: token rejected (expired or revoked?); getting a fresh token (token_command)"
        )),
        "{}",
        outcome.explain()
    );
    let reconnects = outcome.summary.pointer("/mail/reconnects").and_then(Value::as_u64).unwrap_or(0);
    assert!(reconnects >= 1, "reconnected after the kick: {}\n{}", outcome.summary["mail"], outcome.explain());

    let asked = introspection.asked();
    assert_eq!(asked.first(), Some(&revoked), "{asked:?}");
    let fresh: Vec<&String> = asked.iter().filter(|t| t.starts_with(&prefix)).collect();
    let distinct: std::collections::BTreeSet<&&String> = fresh.iter().collect();
    assert_eq!(distinct.len(), fresh.len(), "every login had a token of its own: {asked:?}");
    // The start (refused, then fresh), at least two renewals in 5 s at 1 s, and the reconnect.
    assert!(fresh.len() >= 4, "{} logins with a fresh token: {asked:?}", fresh.len());
    let runs: usize = std::fs::read_to_string(outcome._temp.path().join("count"))
        .expect("the command's counter")
        .trim()
        .parse()
        .expect("a number");
    assert!(runs > fresh.len(), "the command ran for every login: {runs} runs, {} logins", asked.len());
    outcome.assert_no_tokens(&[&revoked, &prefix]);
}
