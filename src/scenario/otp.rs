//! `[otp]`: where the codes are read — an IMAP inbox, the S3 bucket of an SES receipt rule, or an
//! outbox (the local pool's or LocalStack's) — and how a code is told in a mail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::TargetKind;
use super::error::{Locator, ScenarioError};

/// Where codes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OtpSourceKind {
    Imap,
    S3,
    Outbox,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Otp {
    pub source: OtpSourceKind,
    /// A regular expression whose first capture group is the code (default: the flows' code length —
    /// 6 digits for custom auth, 8 for email_otp, either in a run of both; set when the scenario loads).
    pub code_pattern: Option<String>,
    /// How long a virtual user waits for its code.
    #[serde(default = "default_otp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Only mail from this sender counts (case-insensitive); other mail is ignored.
    pub from: Option<String>,
    /// After a mail repeating a code already seen, how long to wait for a newer one before taking it.
    #[serde(default = "default_settle", with = "humantime_serde")]
    pub duplicate_settle: Duration,
    pub imap: Option<ImapOptions>,
    pub s3: Option<S3Options>,
    #[serde(default)]
    pub outbox: OutboxOptions,
}

/// The default code pattern for codes of these lengths, from the shortest to the longest (EMAIL_OTP's
/// 8 digits with custom auth's 6: `\b(\d{6,8})\b`, so a pool mailing too short a code is seen — and
/// failed by `code_length` — rather than waited for).
pub(super) fn default_code_pattern(digits: &[usize]) -> String {
    let shortest = digits.iter().copied().min().unwrap_or(6);
    match digits.iter().copied().max().unwrap_or(6) {
        8 => format!(r"\b(\d{{{},8}})\b", shortest.min(6)),
        longest if longest == shortest => format!(r"\b(\d{{{longest}}})\b"),
        longest => format!(r"\b(\d{{{shortest},{longest}}})\b"),
    }
}

fn default_otp_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_settle() -> Duration {
    Duration::from_millis(1500)
}

/// What happens to a mail once read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterRead {
    Delete,
    Flag,
    Keep,
}

/// How the IMAP watcher learns of new mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapMode {
    /// The best for the server (the default): IDLE, unless the server is one known to hold IDLE
    /// notices back (Dovecot: ~500 ms by design) or offers no IDLE — then adaptive NOOP polling.
    Auto,
    Idle,
    /// NOOP every `poll_interval` while virtual users wait for codes, every `idle_poll_interval`
    /// while none do.
    Poll,
}

/// How the IMAP source logs in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImapAuth {
    /// `LOGIN` with a password (`password_env` or `password_file`).
    #[default]
    Password,
    /// SASL XOAUTH2 with an OAuth 2.0 access token (Microsoft 365, Gmail).
    Xoauth2,
    /// SASL OAUTHBEARER (RFC 7628) with an OAuth 2.0 access token.
    Oauthbearer,
}

impl ImapAuth {
    /// As the scenario spells it.
    pub fn name(self) -> &'static str {
        match self {
            ImapAuth::Password => "password",
            ImapAuth::Xoauth2 => "xoauth2",
            ImapAuth::Oauthbearer => "oauthbearer",
        }
    }

    /// The SASL mechanism's name, or `LOGIN`.
    pub fn mechanism(self) -> &'static str {
        match self {
            ImapAuth::Password => "LOGIN",
            ImapAuth::Xoauth2 => "XOAUTH2",
            ImapAuth::Oauthbearer => "OAUTHBEARER",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapOptions {
    pub host: String,
    /// Default 993 with TLS, 143 without.
    pub port: Option<u16>,
    /// TLS (IMAPS). Plain text is allowed to loopback hosts only.
    #[serde(default = "yes")]
    pub tls: bool,
    /// Extra CA certificate (PEM) to trust, e.g. a test server's self-signed one.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    /// The environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (its first line).
    pub password_file: Option<PathBuf>,
    /// `password` (LOGIN, the default), or `xoauth2` / `oauthbearer` with an access token from exactly
    /// one of `token_env`, `token_file` and `token_command`.
    #[serde(default)]
    pub auth: ImapAuth,
    /// The environment variable holding the access token (read once, at start).
    pub token_env: Option<String>,
    /// A file holding the access token (its first line), relative to the scenario file; read again at
    /// every login, so an agent that rewrites it keeps the source signed in.
    pub token_file: Option<PathBuf>,
    /// A command (run with `sh -c` in the scenario file's folder) printing the access token on its
    /// first line; run at every login (start, reconnects, renewals, and once more after a refusal).
    pub token_command: Option<String>,
    /// With `token_file` or `token_command`: how often the session logs in again with a fresh token,
    /// before the old one expires (default 45m; access tokens usually last an hour).
    #[serde(default, with = "humantime_serde")]
    pub token_refresh: Option<Duration>,
    /// The scenario file's folder: where a relative `token_file` is found and `token_command` runs
    /// (set when the scenario loads).
    #[serde(skip)]
    pub scenario_dir: Option<PathBuf>,
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    #[serde(default = "default_imap_mode")]
    pub mode: ImapMode,
    /// Polling: the interval while virtual users wait for codes.
    #[serde(default = "default_imap_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Polling: the interval while no virtual user waits (a user starting to wait cuts it short).
    #[serde(default = "default_idle_poll", with = "humantime_serde")]
    pub idle_poll_interval: Duration,
    #[serde(default = "default_after_read_delete")]
    pub after_read: AfterRead,
    /// Several connections to this inbox (default 1), the test users shared among them by address
    /// (each connection reads only its own users' code mail): spreads a high code-mail rate over
    /// connections. With plus-addressed users in one inbox every connection still sees every mail's
    /// headers; give each shard its own inbox (`users.pattern` per worker) to spread the server's work.
    #[serde(default = "one")]
    pub connections: usize,
}

fn one() -> usize {
    1
}

fn default_idle_poll() -> Duration {
    Duration::from_secs(1)
}

fn yes() -> bool {
    true
}

fn default_mailbox() -> String {
    "INBOX".into()
}

fn default_imap_mode() -> ImapMode {
    ImapMode::Auto
}

fn default_imap_poll() -> Duration {
    Duration::from_millis(10)
}

/// How often a session logs in again with a fresh token unless `token_refresh` says otherwise.
pub const DEFAULT_TOKEN_REFRESH: Duration = Duration::from_secs(45 * 60);

impl ImapOptions {
    /// How often the session logs in again with a fresh token: only for token sources that can give
    /// a new one (a file or a command), never for a password or an environment variable.
    pub fn token_refresh(&self) -> Option<Duration> {
        let renewable = self.auth != ImapAuth::Password && (self.token_file.is_some() || self.token_command.is_some());
        renewable.then(|| self.token_refresh.unwrap_or(DEFAULT_TOKEN_REFRESH))
    }

    /// The token sources set, by key name, in the order the keys are listed.
    fn token_sources(&self) -> Vec<&'static str> {
        [
            ("token_env", self.token_env.is_some()),
            ("token_file", self.token_file.is_some()),
            ("token_command", self.token_command.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let table = "otp.imap";
        let tokens = self.token_sources();
        let secret = if self.auth == ImapAuth::Password { "the password" } else { "the access token" };
        if self.auth == ImapAuth::Password {
            if let Some(key) = tokens.first() {
                return Err(at.error(
                    table,
                    0,
                    key,
                    format!("[otp.imap] {key} is for auth = \"xoauth2\" or \"oauthbearer\", but auth is \"password\""),
                    "set auth = \"xoauth2\" (Microsoft 365, Gmail) or \"oauthbearer\", or remove the token key",
                ));
            }
            if self.token_refresh.is_some() {
                return Err(at.error(
                    table,
                    0,
                    "token_refresh",
                    "[otp.imap] token_refresh is for OAuth logins (auth = \"xoauth2\" or \"oauthbearer\")",
                    "remove token_refresh, or set auth and a token_file or token_command",
                ));
            }
            if self.password_env.is_none() == self.password_file.is_none() {
                return Err(at.error(
                    table,
                    0,
                    "password_env",
                    "[otp.imap] needs exactly one of password_env and password_file",
                    "e.g. password_env = \"OTP_IMAP_PASSWORD\" (the password never goes in the scenario)",
                ));
            }
        } else {
            let auth = self.auth.name();
            for key in ["password_env", "password_file"] {
                let set =
                    if key == "password_env" { self.password_env.is_some() } else { self.password_file.is_some() };
                if set {
                    return Err(at.error(
                        table,
                        0,
                        key,
                        format!("[otp.imap] {key} is for auth = \"password\"; auth = \"{auth}\" logs in with an access token"),
                        "remove the password key and set one of token_env, token_file and token_command",
                    ));
                }
            }
            match tokens.as_slice() {
                [] => {
                    return Err(at.error(
                        table,
                        0,
                        "auth",
                        format!("auth = \"{auth}\" needs a token source: one of token_env, token_file and token_command"),
                        "e.g. token_command = \"az account get-access-token --resource https://outlook.office365.com --query accessToken -o tsv\"",
                    ));
                }
                [_] => {}
                [first, second, ..] => {
                    return Err(at.error(
                        table,
                        0,
                        second,
                        format!("[otp.imap] takes exactly one token source, but both {first} and {second} are set"),
                        &format!("keep one of them (remove {second} or {first})"),
                    ));
                }
            }
            let blank = [
                ("token_env", self.token_env.as_deref().is_some_and(|v| v.trim().is_empty())),
                ("token_command", self.token_command.as_deref().is_some_and(|v| v.trim().is_empty())),
                ("token_file", self.token_file.as_ref().is_some_and(|p| p.as_os_str().is_empty())),
            ];
            if let Some((key, _)) = blank.into_iter().find(|(_, empty)| *empty) {
                return Err(at.error(
                    table,
                    0,
                    key,
                    format!("[otp.imap] {key} is empty"),
                    "name the variable, file or command that gives the access token",
                ));
            }
            if let Some(refresh) = self.token_refresh {
                if self.token_env.is_some() {
                    return Err(at.error(
                        table,
                        0,
                        "token_refresh",
                        "[otp.imap] token_refresh needs a token_file or token_command: an environment variable cannot give a fresh token during the run",
                        "use token_command (or token_file) to refresh, or remove token_refresh",
                    ));
                }
                if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&refresh) {
                    return Err(at.error(
                        table,
                        0,
                        "token_refresh",
                        "[otp.imap] token_refresh must be between 1s and 24h",
                        "set it below the token's lifetime, e.g. token_refresh = \"45m\" for one-hour tokens",
                    ));
                }
            }
        }
        if !self.tls && !is_loopback_host(&self.host) {
            return Err(at.error(
                table,
                0,
                "tls",
                format!("plain-text IMAP to {} would send {secret} in clear", self.host),
                "set tls = true (plain text is allowed to 127.0.0.1 / localhost only)",
            ));
        }
        Ok(())
    }
}

fn default_after_read_delete() -> AfterRead {
    AfterRead::Delete
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    /// Default: the target's region.
    pub region: Option<String>,
    /// Another S3-compatible endpoint (path-style addressing is used with it).
    pub endpoint_url: Option<String>,
    /// The listing interval while virtual users wait for codes.
    #[serde(default = "default_s3_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The listing interval while no virtual user waits (a user starting to wait cuts it short).
    #[serde(default = "default_idle_poll", with = "humantime_serde")]
    pub idle_poll_interval: Duration,
    #[serde(default = "default_after_read_delete")]
    pub after_read: AfterRead,
    /// Several prefixes to list (each its own watcher), e.g. one per receipt rule or per shard of the
    /// test users; `prefix` is listed too when set. With `queue_url`, the prefixes whose events are read.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// An SQS queue receiving the bucket's S3 event notifications (ObjectCreated), directly or through
    /// SNS: the source long-polls it instead of listing the prefix (`poll_interval` and
    /// `idle_poll_interval` are then unused). `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`, or an
    /// emulator's queue URL (its requests go to that address).
    pub queue_url: Option<String>,
    /// With `queue_url`: how many long polls (ReceiveMessage, up to 10 messages each) are kept open at
    /// once (default 1; more for a high code-mail rate over a long round trip).
    #[serde(default = "one")]
    pub queue_receivers: usize,
}

impl S3Options {
    /// Every prefix watched: `prefix` (when set, or when there is no other) and then `prefixes`.
    pub fn all_prefixes(&self) -> Vec<String> {
        let mut all = self.prefixes.clone();
        if all.is_empty() || !self.prefix.is_empty() {
            all.insert(0, self.prefix.clone());
        }
        all
    }

    fn validate(&self, at: &Locator<'_>) -> Result<(), ScenarioError> {
        let table = "otp.s3";
        if let Some(url) = &self.queue_url
            && let Err((message, fix)) = check_queue_url(url)
        {
            return Err(at.error(table, 0, "queue_url", format!("otp.s3.queue_url {message}"), &fix));
        }
        if !(1..=16).contains(&self.queue_receivers) {
            return Err(at.error(
                table,
                0,
                "queue_receivers",
                "otp.s3.queue_receivers must be between 1 and 16",
                "e.g. queue_receivers = 2 (each is one long poll kept open on the queue)",
            ));
        }
        if self.queue_url.is_none() && self.queue_receivers != 1 {
            return Err(at.error(
                table,
                0,
                "queue_receivers",
                "otp.s3.queue_receivers is for reading S3 events from an SQS queue (queue_url)",
                "set queue_url, or remove queue_receivers",
            ));
        }
        Ok(())
    }
}

/// Checks an SQS queue URL's shape: `http(s)://HOST[:PORT]/ACCOUNT-ID/QUEUE-NAME`, a standard queue
/// (S3 cannot notify a FIFO queue). Returns what is wrong and how to fix it.
pub fn check_queue_url(url: &str) -> Result<(), (String, String)> {
    let get_url = "`aws sqs get-queue-url --queue-name NAME` prints it, e.g.                    \"https://sqs.eu-west-1.amazonaws.com/123456789012/otp-mail-events\""
        .to_string();
    if url.starts_with("arn:") {
        return Err(("is a queue ARN, not its URL".into(), format!("use the queue URL: {get_url}")));
    }
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => return Err((format!("is not a URL ({e})"), format!("use the queue URL: {get_url}"))),
    };
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none_or(str::is_empty) {
        return Err((
            "must be an https:// (or http://) address with a host".into(),
            format!("use the queue URL: {get_url}"),
        ));
    }
    let segments: Vec<&str> = parsed.path().trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let [account, name] = segments.as_slice() else {
        return Err(("must end in /ACCOUNT-ID/QUEUE-NAME".into(), format!("use the whole queue URL: {get_url}")));
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err((
            "has no 12-digit account id before the queue name".into(),
            format!("use the whole queue URL: {get_url}"),
        ));
    }
    if name.ends_with(".fifo") {
        return Err((
            "names a FIFO queue; S3 sends event notifications to standard queues only".into(),
            "create a standard queue for the bucket's ObjectCreated events and use its URL".into(),
        ));
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if name.len() > 80 || !name.bytes().all(valid) {
        return Err((
            "has a queue name SQS would refuse (1–80 letters, digits, - and _)".into(),
            format!("use the queue URL: {get_url}"),
        ));
    }
    Ok(())
}

fn default_s3_poll() -> Duration {
    Duration::from_millis(50)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxOptions {
    /// `…/_aws/ses` of the local pool or LocalStack; default: the local target's outbox.
    pub url: Option<String>,
    #[serde(default = "default_outbox_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        Self { url: None, poll_interval: default_outbox_poll() }
    }
}

fn default_outbox_poll() -> Duration {
    Duration::from_millis(50)
}

impl OtpSourceKind {
    /// As the scenario and the reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            OtpSourceKind::Imap => "imap",
            OtpSourceKind::S3 => "s3",
            OtpSourceKind::Outbox => "outbox",
        }
    }
}

impl Otp {
    /// The code pattern (the default for the flows' codes unless the scenario set one).
    pub fn pattern(&self) -> std::borrow::Cow<'_, str> {
        match &self.code_pattern {
            Some(p) => p.as_str().into(),
            None => default_code_pattern(&[6]).into(),
        }
    }

    pub(super) fn validate(&self, target: TargetKind, at: &Locator<'_>) -> Result<(), ScenarioError> {
        match regex::Regex::new(&self.pattern()) {
            Err(e) => {
                return Err(at.error(
                    "otp",
                    0,
                    "code_pattern",
                    format!("otp.code_pattern is not a valid regular expression: {e}"),
                    "use a pattern with one capture group, e.g. '\\b(\\d{6})\\b' (single quotes keep backslashes)",
                ));
            }
            Ok(pattern) if pattern.captures_len() < 2 => {
                return Err(at.error(
                    "otp",
                    0,
                    "code_pattern",
                    "otp.code_pattern has no capture group",
                    "wrap the code in parentheses, e.g. '\\b(\\d{6})\\b'",
                ));
            }
            Ok(_) => {}
        }
        let polls = [
            ("otp.outbox", "poll_interval", Some(self.outbox.poll_interval)),
            ("otp.imap", "poll_interval", self.imap.as_ref().map(|i| i.poll_interval)),
            ("otp.imap", "idle_poll_interval", self.imap.as_ref().map(|i| i.idle_poll_interval)),
            ("otp.s3", "poll_interval", self.s3.as_ref().map(|s| s.poll_interval)),
            ("otp.s3", "idle_poll_interval", self.s3.as_ref().map(|s| s.idle_poll_interval)),
        ];
        for (table, key, interval) in polls {
            if interval.is_some_and(|d| d < Duration::from_millis(1)) {
                return Err(at.error(
                    table,
                    0,
                    key,
                    format!("{table}.{key} must be at least 1ms"),
                    "e.g. poll_interval = \"50ms\"",
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(at.error(
                "otp",
                0,
                "timeout",
                "otp.timeout must be longer than zero",
                "e.g. timeout = \"30s\"",
            ));
        }
        match self.source {
            OtpSourceKind::Imap => {
                let Some(imap) = &self.imap else {
                    return Err(at.error(
                        "otp",
                        0,
                        "source",
                        "otp.source = \"imap\" needs an [otp.imap] table",
                        "add [otp.imap] with host, username and password_env",
                    ));
                };
                imap.validate(at)?;
                if !(1..=16).contains(&imap.connections) {
                    return Err(at.error(
                        "otp.imap",
                        0,
                        "connections",
                        "otp.imap.connections must be between 1 and 16",
                        "e.g. connections = 2 (each connection reads its share of the test users' mail)",
                    ));
                }
            }
            OtpSourceKind::S3 => {
                let Some(s3) = &self.s3 else {
                    return Err(at.error(
                        "otp",
                        0,
                        "source",
                        "otp.source = \"s3\" needs an [otp.s3] table",
                        "add [otp.s3] with bucket (and prefix) of the SES receipt rule",
                    ));
                };
                s3.validate(at)?;
            }
            OtpSourceKind::Outbox => {
                if self.outbox.url.is_none() && target != TargetKind::Local {
                    return Err(at.error(
                        "otp.outbox",
                        0,
                        "url",
                        "otp.source = \"outbox\" with an aws target needs otp.outbox.url",
                        "set url to the emulator's /_aws/ses address",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Otp {
    /// Anchors paths and commands at the scenario file's folder: a relative `token_file` is resolved
    /// against it, and `token_command` runs in it.
    pub(super) fn anchor(&mut self, scenario: &Path) {
        let Some(imap) = self.imap.as_mut() else { return };
        let dir = match scenario.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Some(file) = imap.token_file.as_mut()
            && file.is_relative()
            && !file.as_os_str().is_empty()
        {
            *file = dir.join(&*file);
        }
        imap.scenario_dir = Some(dir);
    }
}

/// True for 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
