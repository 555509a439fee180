//! `[otp]`: where the codes are read — an IMAP inbox, the S3 bucket of an SES receipt rule, or an
//! outbox (the local pool's or LocalStack's) — and how a code is told in a mail.

use std::path::PathBuf;
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
            ("otp.s3", "poll_interval", self.s3.as_ref().map(|s| s.poll_interval)),
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
                if imap.password_env.is_none() == imap.password_file.is_none() {
                    return Err(at.error(
                        "otp.imap",
                        0,
                        "password_env",
                        "[otp.imap] needs exactly one of password_env and password_file",
                        "e.g. password_env = \"OTP_IMAP_PASSWORD\" (the password never goes in the scenario)",
                    ));
                }
                if !imap.tls && !is_loopback_host(&imap.host) {
                    return Err(at.error(
                        "otp.imap",
                        0,
                        "tls",
                        format!("plain-text IMAP to {} would send the password in clear", imap.host),
                        "set tls = true (plain text is allowed to 127.0.0.1 / localhost only)",
                    ));
                }
            }
            OtpSourceKind::S3 => {
                if self.s3.is_none() {
                    return Err(at.error(
                        "otp",
                        0,
                        "source",
                        "otp.source = \"s3\" needs an [otp.s3] table",
                        "add [otp.s3] with bucket (and prefix) of the SES receipt rule",
                    ));
                }
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

/// True for 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
