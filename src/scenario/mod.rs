//! Scenario files (TOML): the target pool, the test users, where codes are read, the flow mix, the
//! probes, what the pool is expected to do, the load and the thresholds. `Scenario::load` parses and
//! validates; every problem comes back as a `ScenarioError` naming the file, the line and the fix.

pub mod error;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use error::ScenarioError;
use error::{line_of_key, line_of_offset};

use crate::pool::PoolConfig;

/// A parsed, validated scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the run and its report folder.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub target: Target,
    pub users: Users,
    pub otp: Otp,
    /// The flow mix: each virtual user takes the flows in a weighted round-robin order.
    #[serde(default = "default_flows", rename = "flow")]
    pub flows: Vec<FlowSpec>,
    #[serde(default)]
    pub probes: Probes,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub load: Load,
    /// `"step.metric" = "condition"`, e.g. `"login.p99" = "2s"`, `"login.success_rate" = ">= 99%"`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, String>,
    #[serde(default)]
    pub checks: CheckOptions,
    #[serde(default)]
    pub report: ReportOptions,
    /// Where the file was read from (set by `load`).
    #[serde(skip)]
    pub path: PathBuf,
}

/// Which pool the run signs in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The embedded local pool, started in-process.
    Local,
    /// A real (or any Cognito-compatible) pool.
    Aws,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub kind: TargetKind,
    /// local: the pool config inline (`[target.pool]`, the keys of scenarios/local-pool.toml).
    pub pool: Option<PoolConfig>,
    /// local: a pool config file, relative to the scenario file.
    pub pool_config: Option<PathBuf>,
    /// aws: the region, user pool id and app client id.
    pub region: Option<String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    /// aws: another Cognito-compatible endpoint (e.g. `http://127.0.0.1:9229`).
    pub endpoint_url: Option<String>,
    /// aws: the tokens' issuer, when not `https://cognito-idp.{region}.amazonaws.com/{user_pool_id}`.
    pub issuer: Option<String>,
    /// Per-call timeout.
    #[serde(default = "default_call_timeout", with = "humantime_serde")]
    pub call_timeout: Duration,
}

fn default_call_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The test users: addresses from a plus-addressing pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    /// Must be `true`: a statement that these addresses are test users that may be locked out.
    #[serde(default)]
    pub test_users: bool,
    /// `{n}` is replaced by the user's number, e.g. `loadtest+{n}@mail.example.test`.
    pub pattern: String,
    pub count: u32,
    /// The first `{n}`.
    #[serde(default = "one")]
    pub first: u32,
    /// Addresses that are not users, for the unknown-user probe (default: the pattern's domain with
    /// `otp-harness-unknown+{n}`).
    pub unknown_pattern: Option<String>,
}

fn one() -> u32 {
    1
}

impl Users {
    /// The address of user `n` (0-based index into the range).
    pub fn address(&self, index: u32) -> String {
        self.pattern.replace("{n}", &(self.first + index).to_string())
    }

    /// An address that is not a user.
    pub fn unknown_address(&self, index: u32) -> String {
        match &self.unknown_pattern {
            Some(p) => p.replace("{n}", &index.to_string()),
            None => {
                let domain = self.pattern.rsplit_once('@').map_or("example.test", |(_, d)| d);
                format!("otp-harness-unknown+{index}-{}@{domain}", std::process::id())
            }
        }
    }
}

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
    /// A regular expression whose first capture group is the code.
    #[serde(default = "default_code_pattern")]
    pub code_pattern: String,
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

fn default_code_pattern() -> String {
    r"\b(\d{6})\b".into()
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
    Idle,
    Poll,
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
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    #[serde(default = "default_imap_mode")]
    pub mode: ImapMode,
    #[serde(default = "default_imap_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_after_read_delete")]
    pub after_read: AfterRead,
}

fn yes() -> bool {
    true
}

fn default_mailbox() -> String {
    "INBOX".into()
}

fn default_imap_mode() -> ImapMode {
    ImapMode::Idle
}

fn default_imap_poll() -> Duration {
    Duration::from_millis(100)
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
    #[serde(default = "default_s3_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_after_read_delete")]
    pub after_read: AfterRead,
}

fn default_s3_poll() -> Duration {
    Duration::from_millis(200)
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

/// A virtual user's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowKind {
    /// Initiate, code, respond, tokens checked.
    Login,
    /// `wrong` wrong codes, then the right one: tokens.
    Retry,
    /// `max_attempts` wrong codes: locked; then the real code refused.
    Lockout,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    pub kind: FlowKind,
    #[serde(default = "one")]
    pub weight: u32,
    /// retry: wrong codes before the right one.
    #[serde(default = "one")]
    pub wrong: u32,
}

fn default_flows() -> Vec<FlowSpec> {
    vec![FlowSpec { kind: FlowKind::Login, weight: 1, wrong: 1 }]
}

/// Conformance probes, run once each before the load, on users of their own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Probes {
    pub session_reuse: bool,
    pub code_reuse: bool,
    pub new_code_each_attempt: bool,
    pub unknown_user: bool,
    pub challenge_leak: bool,
    /// Digit frequencies over every code the run saw.
    pub code_randomness: bool,
    /// Sign-in starts per side (known, unknown) for the unknown-user timing comparison.
    pub unknown_user_samples: u32,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            session_reuse: true,
            code_reuse: true,
            new_code_each_attempt: true,
            unknown_user: true,
            challenge_leak: true,
            code_randomness: true,
            unknown_user_samples: 5,
        }
    }
}

impl Probes {
    /// Test users the probes need (each probe signs in on users of its own).
    pub fn users_needed(&self) -> u32 {
        let mut n = 0;
        n += u32::from(self.session_reuse);
        n += 2 * u32::from(self.code_reuse);
        n += u32::from(self.new_code_each_attempt);
        n += u32::from(self.unknown_user);
        n += u32::from(self.challenge_leak);
        n
    }
}

/// Whether unknown users must look like known ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserExistence {
    /// PreventUserExistenceErrors=ENABLED: same answer, same timing.
    Hidden,
    /// LEGACY: `UserNotFoundException` is expected.
    Revealed,
}

/// What the pool is supposed to do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    pub max_attempts: u32,
    pub new_code_each_attempt: bool,
    pub user_existence: UserExistence,
    /// Largest difference of median InitiateAuth latency between known and unknown users.
    #[serde(with = "humantime_serde")]
    pub timing_tolerance: Duration,
    /// Fewest codes for the randomness check to give a verdict.
    pub min_codes_for_randomness: u32,
}

impl Default for Expect {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            new_code_each_attempt: true,
            user_existence: UserExistence::Hidden,
            timing_tolerance: Duration::from_millis(100),
            min_codes_for_randomness: 50,
        }
    }
}

/// How sign-ins arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// A fixed number of virtual users, each starting its next flow when the last one ends.
    Closed,
    /// Sign-ins started at a target rate, whatever the pool's latency (capped by `max_in_flight`).
    Open,
}

/// One stage of the open model: the rate ramps linearly to `rate` over `duration`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub rate: f64,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
}

/// The workload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Load {
    pub model: LoadModel,
    /// closed: virtual users, each on a test user of its own.
    pub users: u32,
    /// Flows per virtual user (the run also stops at `duration`).
    pub iterations: Option<u32>,
    #[serde(with = "humantime_serde::option")]
    pub duration: Option<Duration>,
    /// Virtual users start evenly over this time.
    #[serde(with = "humantime_serde")]
    pub ramp: Duration,
    /// Think time between a virtual user's flows.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Pause after a flow that ended in an error (throttling, time-out…), so a struggling pool is not
    /// hammered in a tight loop.
    #[serde(with = "humantime_serde")]
    pub error_backoff: Duration,
    /// open: a constant rate of sign-ins per second, for `duration`.
    pub rate: Option<f64>,
    /// open: stages instead of a constant rate.
    pub stages: Vec<Stage>,
    /// open: the rate the first stage ramps from (default: the first stage's rate).
    pub start_rate: Option<f64>,
    /// open: most sign-ins in flight at once (each on a test user of its own); a start with none free
    /// is dropped and counted.
    pub max_in_flight: u32,
    /// Also write goose's own report (`.html`, `.json` or `.md`) under this name in the run folder.
    pub goose_report: Option<String>,
    /// Threshold keys (from `[thresholds]`) checked every second while the load runs: the first
    /// breach ends the run early (after `abort_grace`).
    pub abort_on: Vec<String>,
    /// No early abort before the load has run this long.
    #[serde(with = "humantime_serde")]
    pub abort_grace: Duration,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            users: 1,
            iterations: None,
            duration: None,
            ramp: Duration::ZERO,
            pause: Duration::ZERO,
            error_backoff: Duration::from_millis(250),
            model: LoadModel::Closed,
            rate: None,
            stages: Vec::new(),
            start_rate: None,
            max_in_flight: 50,
            goose_report: None,
            abort_on: Vec::new(),
            abort_grace: Duration::from_secs(5),
        }
    }
}

impl Load {
    /// Virtual users (closed) or the in-flight cap (open): how many test users the load signs in as.
    pub fn virtual_users(&self) -> u32 {
        match self.model {
            LoadModel::Closed => self.users,
            LoadModel::Open => self.max_in_flight,
        }
    }

    /// The open model's stages, a constant `rate` being one stage.
    pub fn open_stages(&self) -> Vec<Stage> {
        match (self.rate, self.duration) {
            (Some(rate), Some(duration)) => vec![Stage { rate, duration }],
            _ => self.stages.clone(),
        }
    }

    /// Flows per virtual user: `iterations`, else unbounded by count when a duration is set, else 5.
    pub fn iterations_per_user(&self) -> Option<u32> {
        match (self.iterations, self.duration) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(5),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckOptions {
    /// Call GetUser with every access token.
    pub get_user: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self { get_user: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportOptions {
    /// Parent folder of the run folders.
    pub dir: PathBuf,
    /// How often the progress line is printed to stderr ("0s": never).
    #[serde(with = "humantime_serde")]
    pub progress: Duration,
    /// Length of one interval in `latency.hlog`.
    #[serde(with = "humantime_serde")]
    pub hlog_interval: Duration,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { dir: PathBuf::from("reports"), progress: Duration::from_secs(2), hlog_interval: Duration::from_secs(1) }
    }
}

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::new(path, None, format!("cannot read the scenario: {e}"), "check the path"))?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text (`path` names it in errors and anchors relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            let quoted = line.and_then(|l| text.lines().nth(l - 1)).map(str::trim).filter(|l| !l.is_empty());
            let message = match quoted {
                Some(q) => format!("{} (in `{q}`)", e.message().trim()),
                None => e.message().trim().to_string(),
            };
            let fix = if message.contains("unknown field") {
                "remove or rename the key: the allowed keys are listed above".to_string()
            } else if message.contains("missing field") {
                "add the key; see scenarios/*.toml for commented examples".to_string()
            } else if message.contains("unknown variant") {
                "use one of the values listed above".to_string()
            } else {
                "fix the value's type or syntax; see scenarios/*.toml for commented examples".to_string()
            };
            ScenarioError::new(path, line, message, fix)
        })?;
        scenario.path = path.to_path_buf();
        scenario.validate(text)?;
        Ok(scenario)
    }

    /// The pool config of a local target: inline, from its file, or the defaults.
    pub fn local_pool_config(&self) -> Result<PoolConfig, ScenarioError> {
        let mut config = match (&self.target.pool, &self.target.pool_config) {
            (Some(inline), _) => inline.clone(),
            (None, Some(file)) => {
                let resolved = self.path.parent().unwrap_or(Path::new(".")).join(file);
                PoolConfig::from_file(&resolved)
                    .map_err(|e| ScenarioError::new(&self.path, None, format!("{e:#}"), "fix the pool config file"))?
            }
            (None, None) => PoolConfig::default(),
        };
        config.users.emails.clear();
        config.users.pattern = None;
        config.users.count = 0;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), ScenarioError> {
        let err = |table: &str, index: usize, key: &str, message: String, fix: &str| {
            Err(ScenarioError::new(&self.path, line_of_key(text, table, index, key), message, fix))
        };
        if self.name.trim().is_empty()
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return err(
                "",
                0,
                "name",
                format!("name {:?} must be letters, digits, '-', '_' or '.'", self.name),
                "it names the report folder: e.g. name = \"nightly-eu\"",
            );
        }
        let t = &self.target;
        match t.kind {
            TargetKind::Local => {
                for (key, set) in [
                    ("region", t.region.is_some()),
                    ("user_pool_id", t.user_pool_id.is_some()),
                    ("client_id", t.client_id.is_some()),
                    ("endpoint_url", t.endpoint_url.is_some()),
                    ("issuer", t.issuer.is_some()),
                ] {
                    if set {
                        return err(
                            "target",
                            0,
                            key,
                            format!("target.{key} is for kind = \"aws\"; a local target starts its own pool"),
                            "remove it, or set the pool's identity in [target.pool]",
                        );
                    }
                }
                if t.pool.is_some() && t.pool_config.is_some() {
                    return err(
                        "target",
                        0,
                        "pool_config",
                        "both [target.pool] and target.pool_config are set".into(),
                        "keep one of them",
                    );
                }
                if let Some(pool) = &t.pool
                    && let Err(e) = pool.validate()
                {
                    return err(
                        "target.pool",
                        0,
                        "",
                        format!("[target.pool]: {e}"),
                        "see scenarios/local-pool.toml for every key and its default",
                    );
                }
            }
            TargetKind::Aws => {
                for (key, value) in
                    [("region", &t.region), ("user_pool_id", &t.user_pool_id), ("client_id", &t.client_id)]
                {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return err(
                            "target",
                            0,
                            key,
                            format!("target.{key} is required for kind = \"aws\""),
                            "copy it from the Cognito console or `aws cognito-idp describe-user-pool-client`",
                        );
                    }
                }
                if t.pool.is_some() || t.pool_config.is_some() {
                    return err(
                        "target",
                        0,
                        "pool_config",
                        "a pool config is for kind = \"local\"".into(),
                        "remove [target.pool] / target.pool_config, or set kind = \"local\"",
                    );
                }
            }
        }
        if t.call_timeout.is_zero() {
            return err(
                "target",
                0,
                "call_timeout",
                "target.call_timeout must be longer than zero".into(),
                "e.g. call_timeout = \"10s\"",
            );
        }
        let u = &self.users;
        if !u.test_users {
            return err(
                "users",
                0,
                "test_users",
                "the users are not marked as test users".into(),
                "set users.test_users = true to confirm these addresses are test users: lockout and probe flows lock them out",
            );
        }
        if !u.pattern.contains("{n}") || !u.pattern.contains('@') {
            return err(
                "users",
                0,
                "pattern",
                format!("users.pattern {:?} needs {{n}} and an @domain", u.pattern),
                "e.g. pattern = \"loadtest+{n}@mail.example.test\"",
            );
        }
        if let Some(p) = &u.unknown_pattern
            && (!p.contains("{n}") || !p.contains('@'))
        {
            return err(
                "users",
                0,
                "unknown_pattern",
                format!("users.unknown_pattern {p:?} needs {{n}} and an @domain"),
                "e.g. unknown_pattern = \"nobody+{n}@mail.example.test\"",
            );
        }
        let needed = self.load.virtual_users() + self.probes.users_needed();
        if u.count < needed {
            let (what, knob) = match self.load.model {
                LoadModel::Closed => ("virtual users", "load.users"),
                LoadModel::Open => ("sign-ins in flight at most", "load.max_in_flight"),
            };
            return err(
                "users",
                0,
                "count",
                format!(
                    "users.count = {} but the run needs {needed} ({} {what} + {} for probes)",
                    u.count,
                    self.load.virtual_users(),
                    self.probes.users_needed()
                ),
                &format!("set users.count = {needed} or more, or lower {knob}"),
            );
        }
        if let Err(e) = regex::Regex::new(&self.otp.code_pattern) {
            return err(
                "otp",
                0,
                "code_pattern",
                format!("otp.code_pattern is not a valid regular expression: {e}"),
                "use a pattern with one capture group, e.g. '\\b(\\d{6})\\b' (single quotes keep backslashes)",
            );
        }
        if regex::Regex::new(&self.otp.code_pattern).is_ok_and(|r| r.captures_len() < 2) {
            return err(
                "otp",
                0,
                "code_pattern",
                "otp.code_pattern has no capture group".into(),
                "wrap the code in parentheses, e.g. '\\b(\\d{6})\\b'",
            );
        }
        let polls = [
            ("otp.outbox", "poll_interval", Some(self.otp.outbox.poll_interval)),
            ("otp.imap", "poll_interval", self.otp.imap.as_ref().map(|i| i.poll_interval)),
            ("otp.s3", "poll_interval", self.otp.s3.as_ref().map(|s| s.poll_interval)),
        ];
        for (table, key, interval) in polls {
            if interval.is_some_and(|d| d < Duration::from_millis(1)) {
                return err(
                    table,
                    0,
                    key,
                    format!("{table}.{key} must be at least 1ms"),
                    "e.g. poll_interval = \"50ms\"",
                );
            }
        }
        if self.report.hlog_interval < Duration::from_millis(100) {
            return err(
                "report",
                0,
                "hlog_interval",
                "report.hlog_interval must be at least 100ms".into(),
                "e.g. hlog_interval = \"1s\"",
            );
        }
        if self.otp.timeout.is_zero() {
            return err("otp", 0, "timeout", "otp.timeout must be longer than zero".into(), "e.g. timeout = \"30s\"");
        }
        match self.otp.source {
            OtpSourceKind::Imap => {
                let Some(imap) = &self.otp.imap else {
                    return err(
                        "otp",
                        0,
                        "source",
                        "otp.source = \"imap\" needs an [otp.imap] table".into(),
                        "add [otp.imap] with host, username and password_env",
                    );
                };
                if imap.password_env.is_none() == imap.password_file.is_none() {
                    return err(
                        "otp.imap",
                        0,
                        "password_env",
                        "[otp.imap] needs exactly one of password_env and password_file".into(),
                        "e.g. password_env = \"OTP_IMAP_PASSWORD\" (the password never goes in the scenario)",
                    );
                }
                if !imap.tls && !is_loopback_host(&imap.host) {
                    return err(
                        "otp.imap",
                        0,
                        "tls",
                        format!("plain-text IMAP to {} would send the password in clear", imap.host),
                        "set tls = true (plain text is allowed to 127.0.0.1 / localhost only)",
                    );
                }
            }
            OtpSourceKind::S3 => {
                if self.otp.s3.is_none() {
                    return err(
                        "otp",
                        0,
                        "source",
                        "otp.source = \"s3\" needs an [otp.s3] table".into(),
                        "add [otp.s3] with bucket (and prefix) of the SES receipt rule",
                    );
                }
            }
            OtpSourceKind::Outbox => {
                if self.otp.outbox.url.is_none() && self.target.kind != TargetKind::Local {
                    return err(
                        "otp.outbox",
                        0,
                        "url",
                        "otp.source = \"outbox\" with an aws target needs otp.outbox.url".into(),
                        "set url to the emulator's /_aws/ses address",
                    );
                }
            }
        }
        if self.flows.is_empty() || self.flows.iter().all(|f| f.weight == 0) {
            return err(
                "flow",
                0,
                "weight",
                "no flow has a weight above zero".into(),
                "add [[flow]] kind = \"login\" weight = 1",
            );
        }
        for (i, f) in self.flows.iter().enumerate() {
            if f.kind == FlowKind::Retry && (f.wrong == 0 || f.wrong >= self.expect.max_attempts) {
                return err(
                    "flow",
                    i,
                    "wrong",
                    format!(
                        "a retry flow with wrong = {} cannot end in a sign-in when max_attempts = {}",
                        f.wrong, self.expect.max_attempts
                    ),
                    &format!("set wrong between 1 and {}", self.expect.max_attempts.saturating_sub(1).max(1)),
                );
            }
        }
        if self.expect.max_attempts == 0 {
            return err(
                "expect",
                0,
                "max_attempts",
                "expect.max_attempts must be at least 1".into(),
                "the seed's Define trigger allows 3",
            );
        }
        let l = &self.load;
        if l.users == 0 {
            return err("load", 0, "users", "load.users must be at least 1".into(), "e.g. users = 5");
        }
        match l.model {
            LoadModel::Closed => {
                for (key, set) in [
                    ("rate", l.rate.is_some()),
                    ("stages", !l.stages.is_empty()),
                    ("start_rate", l.start_rate.is_some()),
                ] {
                    if set {
                        return err(
                            "load",
                            0,
                            key,
                            format!("load.{key} is for model = \"open\""),
                            "set model = \"open\", or use users and iterations/duration",
                        );
                    }
                }
            }
            LoadModel::Open => {
                if l.rate.is_some() != l.stages.is_empty() {
                    return err(
                        "load",
                        0,
                        "rate",
                        "model = \"open\" needs either rate (with duration) or stages".into(),
                        "e.g. rate = 20 and duration = \"1m\", or stages = [{ rate = 50, duration = \"2m\" }]",
                    );
                }
                if l.rate.is_some() && l.duration.is_none() {
                    return err("load", 0, "rate", "a constant rate needs a duration".into(), "add duration = \"1m\"");
                }
                if l.iterations.is_some() {
                    return err(
                        "load",
                        0,
                        "iterations",
                        "iterations are for model = \"closed\"".into(),
                        "the open model runs for its duration or stages",
                    );
                }
                let stages = l.open_stages();
                let mut rates = stages.iter().map(|s| s.rate).chain(l.start_rate);
                if rates.any(|r| !r.is_finite() || !(0.0..=100_000.0).contains(&r))
                    || stages.iter().all(|s| s.rate <= 0.0)
                {
                    return err(
                        "load",
                        0,
                        if l.rate.is_some() { "rate" } else { "stages" },
                        "rates must be between 0 and 100000 sign-ins per second, and some stage above 0".into(),
                        "e.g. rate = 20",
                    );
                }
                let total: Duration = stages.iter().map(|s| s.duration).sum();
                if total.is_zero() || total > Duration::from_secs(24 * 3600) {
                    return err(
                        "load",
                        0,
                        "stages",
                        "the open model's stages must last between 1s and 24h in all".into(),
                        "give each stage a duration like \"30s\"",
                    );
                }
                if l.max_in_flight == 0 {
                    return err(
                        "load",
                        0,
                        "max_in_flight",
                        "load.max_in_flight must be at least 1".into(),
                        "e.g. max_in_flight = 50",
                    );
                }
            }
        }
        for key in &l.abort_on {
            if !self.thresholds.contains_key(key) {
                return err(
                    "load",
                    0,
                    "abort_on",
                    format!("load.abort_on names {key:?}, which is not in [thresholds]"),
                    "list keys of [thresholds], e.g. abort_on = [\"login.success_rate\"]",
                );
            }
        }
        if let Some(name) = &l.goose_report {
            let ok_ext = [".html", ".htm", ".json", ".md"].iter().any(|e| name.ends_with(e));
            if !ok_ext || name.contains('/') {
                return err(
                    "load",
                    0,
                    "goose_report",
                    format!("goose_report {name:?} must be a file name ending in .html, .json or .md"),
                    "e.g. goose_report = \"goose.html\"",
                );
            }
        }
        if l.iterations == Some(0) {
            return err(
                "load",
                0,
                "iterations",
                "load.iterations must be at least 1".into(),
                "e.g. iterations = 10, or remove it and set duration",
            );
        }
        if l.duration.is_some_and(|d| d.is_zero() || d > Duration::from_secs(24 * 3600)) {
            return err(
                "load",
                0,
                "duration",
                "load.duration must be between 1s and 24h".into(),
                "e.g. duration = \"5m\"",
            );
        }
        for (key, condition) in &self.thresholds {
            if let Err(e) = crate::thresholds::Threshold::parse(key, condition) {
                return err(
                    "thresholds",
                    0,
                    key,
                    format!("threshold {key:?} = {condition:?}: {e}"),
                    "e.g. \"login.p99\" = \"2s\", \"login.success_rate\" = \">= 99%\", \"throttled.count\" = \"== 0\"",
                );
            }
        }
        Ok(())
    }
}

/// Which slice of a run one machine takes (`run --worker INDEX/COUNT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerSlice {
    pub index: u32,
    pub count: u32,
}

impl WorkerSlice {
    /// Parses `INDEX/COUNT` (0-based index), e.g. `2/8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (index, count) = text.split_once('/').ok_or("expected INDEX/COUNT, e.g. 0/4")?;
        let index: u32 = index.trim().parse().map_err(|_| format!("{index:?} is not a worker index"))?;
        let count: u32 = count.trim().parse().map_err(|_| format!("{count:?} is not a worker count"))?;
        if count == 0 || index >= count {
            return Err(format!("worker index {index} is not below the worker count {count}"));
        }
        Ok(Self { index, count })
    }

    /// This worker's share of `total` (the first `total % count` workers take one more).
    pub fn share(self, total: u32) -> u32 {
        total / self.count + u32::from(self.index < total % self.count)
    }
}

impl Scenario {
    /// The part of this scenario one worker runs: a disjoint range of the test users, its share of the
    /// virtual users (closed) or of the rate and in-flight cap (open); probes on worker 0 only. The
    /// report folder is named `{name}-w{index}`.
    pub fn for_worker(&self, slice: WorkerSlice) -> Result<Scenario, ScenarioError> {
        let mut s = self.clone();
        let per_worker = self.users.count / slice.count;
        s.users.first = self.users.first + slice.index * per_worker;
        s.users.count = per_worker;
        if slice.index != 0 {
            s.probes = Probes {
                session_reuse: false,
                code_reuse: false,
                new_code_each_attempt: false,
                unknown_user: false,
                challenge_leak: false,
                code_randomness: false,
                ..self.probes.clone()
            };
        }
        let divide = |rate: f64| rate / f64::from(slice.count);
        match self.load.model {
            LoadModel::Closed => s.load.users = slice.share(self.load.users).max(1),
            LoadModel::Open => {
                s.load.rate = self.load.rate.map(divide);
                s.load.start_rate = self.load.start_rate.map(divide);
                for stage in &mut s.load.stages {
                    stage.rate = divide(stage.rate);
                }
                s.load.max_in_flight = self.load.max_in_flight.div_ceil(slice.count).max(1);
            }
        }
        s.name = format!("{}-w{}", self.name, slice.index);
        let needed = s.load.virtual_users() + s.probes.users_needed();
        if s.users.count < needed {
            return Err(ScenarioError::new(
                &self.path,
                None,
                format!(
                    "worker {}/{} gets {} of the {} test users but needs {needed}",
                    slice.index, slice.count, s.users.count, self.users.count
                ),
                format!("raise users.count to at least {}", needed * slice.count),
            ));
        }
        Ok(s)
    }
}

/// True for 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
