//! The pool's SES side: the SES account the pool's mail goes out through — sandbox or production
//! access, sending enabled or paused, the quotas (recipients per second and per 24 hours), the verified
//! identities and the account-level suppression list — and the rules SES applies to a send. Knows
//! nothing of HTTP: `v2` (REST JSON) and `v1` (query protocol, XML) put it on the wire. A mail it
//! accepts goes to the same sinks as the pool's own code mail, through `MailDispatcher`.
//!
//! Sources: /work/shared/ses-wire.md. Where SES's behaviour is not documented the choice is marked [L].

pub mod v1;
pub mod v2;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::faults::Faults;
use super::mail::{MailDispatcher, SimpleMessage, bare_address};

/// The mailbox simulator's domain: always a valid recipient, even in the sandbox.
pub const SIMULATOR_DOMAIN: &str = "simulator.amazonses.com";
/// GetAccount's EnforcementStatus values.
pub const ENFORCEMENT_STATUSES: [&str; 3] = ["HEALTHY", "PROBATION", "SHUTDOWN"];
/// Most recipients (To, Cc and Bcc together) of one message.
pub const MAX_RECIPIENTS: usize = 50;
/// The SES operations the pool serves (v2 and v1 names), which `faults.access_denied` may name.
pub const OPERATIONS: [&str; 8] = [
    "GetAccount",
    "GetEmailIdentity",
    "GetSuppressedDestination",
    "ListSuppressedDestinations",
    "SendEmail",
    "SendRawEmail",
    "GetSendQuota",
    "GetAccountSendingEnabled",
];
/// The account id in ARNs.
const ACCOUNT_ID: &str = "000000000000";

/// The SES account (`[ses]` in the pool config). The defaults are an account a preflight passes:
/// production access, sending enabled, every identity verified, nothing suppressed, large quotas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SesConfig {
    /// In the sandbox (ProductionAccessEnabled false): mail only to verified identities and the
    /// mailbox simulator.
    pub sandbox: bool,
    /// false: every send is refused (SendingPausedException / AccountSendingPausedException).
    pub sending_enabled: bool,
    /// HEALTHY, PROBATION or SHUTDOWN (SHUTDOWN refuses every send: AccountSuspendedException).
    pub enforcement_status: String,
    /// Recipients per rolling 24 hours; -1 is unlimited, as SES writes it.
    pub max_24_hour_send: f64,
    /// Recipients per second (a token bucket holding one second's worth).
    pub max_send_rate: f64,
    /// Recipients counted as sent just before the pool started (they age out 24 hours later).
    pub sent_last_24_hours: u64,
    /// Absent: every identity exists and is verified (a permissive emulator). Set: only these
    /// addresses and domains are; a domain verifies every address in it and in its subdomains.
    pub verified_identities: Option<Vec<String>>,
    /// Identities that exist but are not verified yet (VerificationStatus PENDING).
    pub pending_identities: Vec<String>,
    /// The account-level suppression list.
    pub suppressed: Vec<SuppressedAddress>,
    /// The pool's own code mail counts as one recipient sent through SES (SentLast24Hours and the daily
    /// quota), as a Cognito pool with EmailSendingAccount DEVELOPER uses the account's quota. It is never
    /// refused or throttled for it: code mail failures are `faults.trigger` and `faults.mail`.
    pub count_code_mail: bool,
}

impl Default for SesConfig {
    fn default() -> Self {
        Self {
            sandbox: false,
            sending_enabled: true,
            enforcement_status: "HEALTHY".into(),
            max_24_hour_send: 1_000_000.0,
            max_send_rate: 1_000.0,
            sent_last_24_hours: 0,
            verified_identities: None,
            pending_identities: Vec::new(),
            suppressed: Vec::new(),
            count_code_mail: true,
        }
    }
}

/// One address on the suppression list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressedAddress {
    pub address: String,
    pub reason: SuppressionReason,
}

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SuppressionReason {
    Bounce,
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "BOUNCE",
            Self::Complaint => "COMPLAINT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "BOUNCE" => Some(Self::Bounce),
            "COMPLAINT" => Some(Self::Complaint),
            _ => None,
        }
    }
}

impl SesConfig {
    /// Checks the values serde cannot; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if !ENFORCEMENT_STATUSES.contains(&self.enforcement_status.as_str()) {
            bail!(
                "ses.enforcement_status: unknown status {:?} (one of: {})",
                self.enforcement_status,
                ENFORCEMENT_STATUSES.join(", ")
            );
        }
        let max = self.max_24_hour_send;
        if !max.is_finite() || (max < 0.0 && max != -1.0) {
            bail!("ses.max_24_hour_send must be -1 (unlimited) or a count of 0 or more");
        }
        if !self.max_send_rate.is_finite() || self.max_send_rate <= 0.0 {
            bail!("ses.max_send_rate must be a positive rate per second");
        }
        for (key, list) in [
            ("verified_identities", self.verified_identities.as_deref().unwrap_or(&[])),
            ("pending_identities", &self.pending_identities),
        ] {
            if let Some(bad) = list.iter().find(|i| !is_identity(i)) {
                bail!("ses.{key}: {bad:?} is neither an email address nor a domain");
            }
        }
        if let Some(both) = self
            .pending_identities
            .iter()
            .find(|p| self.verified_identities.iter().flatten().any(|v| same_identity(v, p)))
        {
            bail!("ses.pending_identities: {both:?} is in ses.verified_identities too");
        }
        if let Some(bad) = self.suppressed.iter().find(|s| !is_address(&s.address)) {
            bail!("ses.suppressed: {:?} is not an email address", bad.address);
        }
        Ok(())
    }
}

/// `local@domain` with both parts non-empty and no spaces.
fn is_address(text: &str) -> bool {
    matches!(text.split_once('@'), Some((local, domain)) if !local.is_empty() && is_domain(domain))
}

fn is_domain(text: &str) -> bool {
    !text.is_empty()
        && !text.starts_with('.')
        && !text.ends_with('.')
        && text.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

fn is_identity(text: &str) -> bool {
    if text.contains('@') { is_address(text) && !text.contains(char::is_whitespace) } else { is_domain(text) }
}

/// The same identity: domains compare without case; an address's local part is case-sensitive, as the
/// SES guide says of verified addresses [M].
fn same_identity(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        (None, None) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// Whether identity `listed` lets `candidate` (an address or a domain) send: the same identity, or a
/// domain that is `candidate`'s domain or a parent of it (SES: a verified domain covers its
/// subdomains [M]).
fn covers(listed: &str, candidate: &str) -> bool {
    if listed.contains('@') {
        return same_identity(listed, candidate);
    }
    let domain = candidate.rsplit_once('@').map_or(candidate, |(_, d)| d).to_ascii_lowercase();
    let listed = listed.to_ascii_lowercase();
    domain == listed || domain.strip_suffix(&listed).is_some_and(|rest| rest.ends_with('.'))
}

/// A mailbox-simulator address (`success@simulator.amazonses.com`, labels allowed).
pub fn is_simulator(address: &str) -> bool {
    address.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(SIMULATOR_DOMAIN))
}

/// The account's identities.
#[derive(Debug, Clone)]
pub struct Identities {
    verified: Option<Vec<String>>,
    pending: Vec<String>,
}

/// What GetEmailIdentity finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    Verified,
    Pending,
}

impl Identities {
    pub fn new(config: &SesConfig) -> Self {
        Self { verified: config.verified_identities.clone(), pending: config.pending_identities.clone() }
    }

    /// Whether mail may be sent as (or, in the sandbox, to) `address`.
    pub fn is_verified_for_sending(&self, address: &str) -> bool {
        match &self.verified {
            Some(list) => list.iter().any(|v| covers(v, address)),
            None => !self.pending.iter().any(|p| covers(p, address)),
        }
    }

    /// The identity object `identity` (exactly that address or domain), if the account has it. An address
    /// in a verified domain is not an identity of its own (SES answers NotFoundException for it too).
    pub fn lookup(&self, identity: &str) -> Option<IdentityStatus> {
        if self.pending.iter().any(|p| same_identity(p, identity)) {
            return Some(IdentityStatus::Pending);
        }
        match &self.verified {
            None => is_identity(identity).then_some(IdentityStatus::Verified),
            Some(list) => list.iter().any(|v| same_identity(v, identity)).then_some(IdentityStatus::Verified),
        }
    }
}

/// Recipients sent in the last 24 hours, counted per minute since the pool started: at most 1,440
/// buckets however much is sent, and a count that ages out within a minute of its 24 hours.
#[derive(Debug)]
pub struct SendLedger {
    origin: Instant,
    minutes: Mutex<VecDeque<(u64, u64)>>,
}

const DAY_MINUTES: u64 = 24 * 60;

impl SendLedger {
    /// A ledger holding `starting` recipients sent at start.
    pub fn new(starting: u64) -> Self {
        let origin = Instant::now();
        let minutes = if starting > 0 { VecDeque::from([(0, starting)]) } else { VecDeque::new() };
        Self { origin, minutes: Mutex::new(minutes) }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / 60
    }

    fn expire(minutes: &mut VecDeque<(u64, u64)>, minute: u64) {
        while minutes.front().is_some_and(|(m, _)| m + DAY_MINUTES <= minute) {
            minutes.pop_front();
        }
    }

    fn add(minutes: &mut VecDeque<(u64, u64)>, minute: u64, n: u64) {
        match minutes.back_mut() {
            Some((m, count)) if *m == minute => *count = count.saturating_add(n),
            _ => minutes.push_back((minute, n)),
        }
    }

    /// Counts `n` recipients sent now.
    pub fn record(&self, n: u64) {
        self.record_at(n, Instant::now());
    }

    fn record_at(&self, n: u64, now: Instant) {
        let minute = self.minute(now);
        let mut minutes = self.minutes.lock();
        Self::expire(&mut minutes, minute);
        Self::add(&mut minutes, minute, n);
    }

    /// Recipients sent in the last 24 hours.
    pub fn sent_last_24_hours(&self) -> u64 {
        self.count_at(Instant::now())
    }

    fn count_at(&self, now: Instant) -> u64 {
        let minute = self.minute(now);
        let mut minutes = self.minutes.lock();
        Self::expire(&mut minutes, minute);
        minutes.iter().map(|(_, n)| n).sum()
    }

    /// Under one lock: refuses when `n` more recipients would pass `max` (-1: no limit), else asks `then`
    /// (the rate check) and, when it agrees, counts them.
    fn admit_at(
        &self,
        n: u64,
        max: f64,
        now: Instant,
        then: impl FnOnce() -> Result<(), SesError>,
    ) -> Result<(), SesError> {
        let minute = self.minute(now);
        let mut minutes = self.minutes.lock();
        Self::expire(&mut minutes, minute);
        let sent: u64 = minutes.iter().map(|(_, n)| n).sum();
        if max >= 0.0 && n > 0 && (sent.saturating_add(n)) as f64 > max {
            return Err(SesError::new(SesErrorKind::DailyQuotaExceeded, "Daily message quota exceeded."));
        }
        then()?;
        if n > 0 {
            Self::add(&mut minutes, minute, n);
        }
        Ok(())
    }
}

/// The maximum send rate: a token bucket of recipients refilled at `rate` per second, holding one
/// second's worth (at least one). A message with more recipients than the bucket holds goes when the
/// bucket is full and leaves it in debt, so the rate holds over time [L].
#[derive(Debug)]
pub struct SendRate {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl SendRate {
    pub fn new(rate: f64, now: Instant) -> Self {
        Self { rate, state: Mutex::new((rate.max(1.0), now)) }
    }

    /// Takes `n` recipients' tokens at `now`, or refuses without taking any.
    pub fn try_take_at(&self, n: u64, now: Instant) -> bool {
        let capacity = self.rate.max(1.0);
        let mut state = self.state.lock();
        let refill = now.saturating_duration_since(state.1).as_secs_f64() * self.rate;
        state.0 = (state.0 + refill).min(capacity);
        state.1 = now.max(state.1);
        let n = n as f64;
        if state.0 >= n.min(capacity) {
            state.0 -= n;
            true
        } else {
            false
        }
    }
}

/// What SES refuses with, apart from how each protocol spells it (`v2::error_response`,
/// `v1::error_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SesErrorKind {
    /// A malformed or incomplete request.
    BadRequest,
    NotFound,
    InvalidNextToken,
    /// An unverified sender, or in the sandbox an unverified recipient.
    MessageRejected,
    /// Sending is disabled for the account.
    SendingPaused,
    /// The account is shut down (EnforcementStatus SHUTDOWN).
    AccountSuspended,
    MaxSendRateExceeded,
    DailyQuotaExceeded,
    /// `faults.access_denied` names the operation.
    AccessDenied,
}

/// An SES error: a kind and the message SES sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SesError {
    pub kind: SesErrorKind,
    pub message: String,
}

impl SesError {
    pub fn new(kind: SesErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(SesErrorKind::BadRequest, message)
    }
}

impl std::fmt::Display for SesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for SesError {}

/// GetAccount's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub production_access: bool,
    pub sending_enabled: bool,
    pub enforcement_status: String,
    pub max_24_hour_send: f64,
    pub max_send_rate: f64,
    pub sent_last_24_hours: f64,
}

/// A suppressed address as GetSuppressedDestination shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressedView {
    pub address: String,
    pub reason: SuppressionReason,
    /// Epoch seconds (the pool's start).
    pub last_update_time: f64,
}

/// The filters of ListSuppressedDestinations.
#[derive(Debug, Clone, Default)]
pub struct SuppressionQuery {
    pub reasons: Vec<SuppressionReason>,
    /// Epoch seconds, inclusive.
    pub start: Option<f64>,
    pub end: Option<f64>,
    pub page_size: Option<usize>,
    pub next_token: Option<String>,
}

/// What a send carries, whichever protocol it came in on.
#[derive(Clone)]
pub struct SendRequest {
    /// Source / FromEmailAddress (perhaps `Name <a@b>`); for raw content the message's From when absent.
    pub from: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    pub content: SendContent,
}

/// Simple (parts) or raw (MIME) content.
#[derive(Clone)]
pub enum SendContent {
    Simple { subject: String, text: Option<String>, html: Option<String> },
    Raw(Vec<u8>),
}

/// Counters of the SES API, served under `ses` at `GET /_pool/stats`.
#[derive(Debug, Default)]
pub struct SesStats {
    requests: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    accepted: AtomicU64,
    recipients: AtomicU64,
    suppressed: AtomicU64,
    simulator: AtomicU64,
}

/// A snapshot of `SesStats`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SesStatsSnapshot {
    /// Requests per operation (`v2:SendEmail`, `v1:SendRawEmail`, …).
    pub requests: BTreeMap<&'static str, u64>,
    /// Errors per error code as the wire spelled it.
    pub errors: BTreeMap<String, u64>,
    /// Messages accepted (sent, as SES counts them).
    pub accepted: u64,
    /// Recipients of accepted messages.
    pub recipients: u64,
    /// Recipients not delivered because they are on the suppression list.
    pub suppressed: u64,
    /// Recipients at the mailbox simulator (not delivered to the sinks).
    pub simulator: u64,
}

/// The SES account of a running pool.
pub struct SesAccount {
    config: SesConfig,
    region: String,
    /// Epoch seconds at start (the suppression list's LastUpdateTime).
    started: f64,
    identities: Identities,
    ledger: Arc<SendLedger>,
    rate: SendRate,
    mail: Arc<MailDispatcher>,
    faults: Arc<Faults>,
    stats: SesStats,
}

impl std::fmt::Debug for SesAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesAccount").field("region", &self.region).finish_non_exhaustive()
    }
}

impl SesAccount {
    /// The account of `config`; when code mail counts, `mail` counts it in this account's ledger.
    pub fn new(config: &SesConfig, region: &str, started: f64, mail: Arc<MailDispatcher>, faults: Arc<Faults>) -> Self {
        let ledger = Arc::new(SendLedger::new(config.sent_last_24_hours));
        if config.count_code_mail {
            mail.count_code_mail_in(Arc::clone(&ledger));
        }
        Self {
            config: config.clone(),
            region: region.to_string(),
            started,
            identities: Identities::new(config),
            ledger,
            rate: SendRate::new(config.max_send_rate, Instant::now()),
            mail,
            faults,
            stats: SesStats::default(),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// `arn:aws:ses:{region}:{account}:identity/{identity}`.
    pub fn identity_arn(&self, identity: &str) -> String {
        format!("arn:aws:ses:{}:{ACCOUNT_ID}:identity/{identity}", self.region)
    }

    /// AccessDeniedException when `faults.access_denied` names `operation` (resource `*` when none).
    pub fn deny(&self, operation: &str, resource: Option<&str>) -> Result<(), SesError> {
        self.faults
            .deny("ses", operation, resource.unwrap_or("*"))
            .map_err(|e| SesError::new(SesErrorKind::AccessDenied, e.message))
    }

    pub fn count_request(&self, operation: &'static str) {
        *self.stats.requests.lock().entry(operation).or_insert(0) += 1;
    }

    pub fn count_error(&self, code: &str) {
        *self.stats.errors.lock().entry(code.to_string()).or_insert(0) += 1;
    }

    pub fn stats(&self) -> SesStatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SesStatsSnapshot {
            requests: self.stats.requests.lock().clone(),
            errors: self.stats.errors.lock().clone(),
            accepted: get(&self.stats.accepted),
            recipients: get(&self.stats.recipients),
            suppressed: get(&self.stats.suppressed),
            simulator: get(&self.stats.simulator),
        }
    }

    /// GetAccount / GetSendQuota.
    pub fn account(&self) -> AccountView {
        AccountView {
            production_access: !self.config.sandbox,
            sending_enabled: self.config.sending_enabled && self.config.enforcement_status != "SHUTDOWN",
            enforcement_status: self.config.enforcement_status.clone(),
            max_24_hour_send: self.config.max_24_hour_send,
            max_send_rate: self.config.max_send_rate,
            sent_last_24_hours: self.ledger.sent_last_24_hours() as f64,
        }
    }

    /// GetEmailIdentity: the identity's status, or NotFoundException.
    pub fn identity(&self, identity: &str) -> Result<IdentityStatus, SesError> {
        self.identities
            .lookup(identity)
            .ok_or_else(|| SesError::new(SesErrorKind::NotFound, format!("Email identity {identity} does not exist.")))
    }

    /// Epoch seconds at start.
    pub fn started(&self) -> f64 {
        self.started
    }

    fn suppression_entry(&self, address: &str) -> Option<&SuppressedAddress> {
        self.config.suppressed.iter().find(|s| s.address.eq_ignore_ascii_case(address))
    }

    /// GetSuppressedDestination.
    pub fn suppressed(&self, address: &str) -> Result<SuppressedView, SesError> {
        let entry = self.suppression_entry(address).ok_or_else(|| {
            SesError::new(
                SesErrorKind::NotFound,
                format!("Email address {address} does not exist on your suppression list."),
            )
        })?;
        Ok(SuppressedView { address: entry.address.clone(), reason: entry.reason, last_update_time: self.started })
    }

    /// ListSuppressedDestinations: one page, sorted by address, and the token of the next.
    pub fn list_suppressed(&self, query: &SuppressionQuery) -> Result<(Vec<SuppressedView>, Option<String>), SesError> {
        let page_size = query.page_size.unwrap_or(1000);
        if !(1..=1000).contains(&page_size) {
            return Err(SesError::bad_request("PageSize must be between 1 and 1000."));
        }
        let start = match query.next_token.as_deref() {
            None | Some("") => 0,
            Some(token) => decode_token(token).ok_or_else(|| {
                SesError::new(SesErrorKind::InvalidNextToken, "The specified NextToken is not valid.")
            })?,
        };
        let mut all: Vec<SuppressedView> = self
            .config
            .suppressed
            .iter()
            .filter(|s| query.reasons.is_empty() || query.reasons.contains(&s.reason))
            .filter(|_| query.start.is_none_or(|t| self.started >= t) && query.end.is_none_or(|t| self.started <= t))
            .map(|s| SuppressedView { address: s.address.clone(), reason: s.reason, last_update_time: self.started })
            .collect();
        all.sort_by(|a, b| a.address.cmp(&b.address));
        let page: Vec<SuppressedView> = all.iter().skip(start).take(page_size).cloned().collect();
        let next = (start + page.len() < all.len()).then(|| encode_token(start + page.len()));
        Ok((page, next))
    }

    /// SendEmail / SendRawEmail: applies SES's rules, then hands the mail to the sinks. Returns the
    /// MessageId. `operation` is the name `faults.access_denied` matches.
    pub fn send(&self, operation: &str, request: SendRequest) -> Result<String, SesError> {
        let (from, recipients) = resolve(&request)?;
        let sender = bare_address(&from).to_string();
        self.deny(operation, Some(&self.identity_arn(&sender)))?;
        if !is_address(&sender) {
            return Err(SesError::bad_request("Missing final '@domain'"));
        }
        if recipients.is_empty() {
            return Err(SesError::bad_request("Missing required header 'To'."));
        }
        if recipients.len() > MAX_RECIPIENTS {
            return Err(SesError::bad_request(format!("Recipient count exceeds {MAX_RECIPIENTS}.")));
        }
        if recipients.iter().any(|r| !is_address(r)) {
            return Err(SesError::bad_request("Missing final '@domain'"));
        }
        if self.config.enforcement_status == "SHUTDOWN" {
            // [L] wording: the model's description of AccountSuspendedException.
            return Err(SesError::new(
                SesErrorKind::AccountSuspended,
                "The message can't be sent because the account's ability to send email has been permanently restricted.",
            ));
        }
        if !self.config.sending_enabled {
            // [L] wording: the model's description of SendingPausedException.
            return Err(SesError::new(
                SesErrorKind::SendingPaused,
                "The message can't be sent because the account's ability to send email is currently paused.",
            ));
        }
        let mut failed: Vec<&str> = Vec::new();
        if !self.identities.is_verified_for_sending(&sender) {
            failed.push(&sender);
        }
        if self.config.sandbox {
            failed.extend(
                recipients
                    .iter()
                    .filter(|r| !is_simulator(r) && !self.identities.is_verified_for_sending(r))
                    .map(String::as_str),
            );
        }
        if !failed.is_empty() {
            return Err(SesError::new(
                SesErrorKind::MessageRejected,
                format!(
                    "Email address is not verified. The following identities failed the check in region {}: {}",
                    self.region.to_ascii_uppercase(),
                    failed.join(", ")
                ),
            ));
        }
        // Simulator mail takes its share of the sending rate but not of the daily quota (ses-wire.md §8).
        let counted = recipients.iter().filter(|r| !is_simulator(r)).count() as u64;
        let now = Instant::now();
        self.ledger.admit_at(counted, self.config.max_24_hour_send, now, || {
            match self.rate.try_take_at(recipients.len() as u64, now) {
                true => Ok(()),
                false => Err(SesError::new(SesErrorKind::MaxSendRateExceeded, "Maximum sending rate exceeded.")),
            }
        })?;
        let id = message_id();
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.stats.recipients.fetch_add(recipients.len() as u64, Ordering::Relaxed);
        // SES accepts mail to a suppressed address and then drops it (the send counts, nothing is
        // delivered); the simulator's mail goes to the simulator, not to the pool's sinks.
        let deliver = |r: &String| !is_simulator(r) && self.suppression_entry(r).is_none();
        let suppressed = recipients.iter().filter(|r| !is_simulator(r) && self.suppression_entry(r).is_some()).count();
        let simulator = recipients.iter().filter(|r| is_simulator(r)).count();
        self.stats.suppressed.fetch_add(suppressed as u64, Ordering::Relaxed);
        self.stats.simulator.fetch_add(simulator as u64, Ordering::Relaxed);
        match request.content {
            SendContent::Simple { subject, text, html } => {
                // Display names (`Name <a@b.test>`) are dropped: the sinks need addresses.
                let keep = |list: &[String]| {
                    list.iter().map(|r| bare_address(r).to_string()).filter(|r| deliver(r)).collect::<Vec<_>>()
                };
                let (to, cc, bcc) = (keep(&request.to), keep(&request.cc), keep(&request.bcc));
                if !(to.is_empty() && cc.is_empty() && bcc.is_empty()) {
                    self.mail.send_message(SimpleMessage {
                        id: &id,
                        from: &from,
                        to: &to,
                        cc: &cc,
                        bcc: &bcc,
                        reply_to: &request.reply_to,
                        subject: &subject,
                        text: text.as_deref(),
                        html: html.as_deref(),
                    });
                }
            }
            SendContent::Raw(raw) => {
                let kept: Vec<String> = recipients.iter().filter(|r| deliver(r)).cloned().collect();
                if !kept.is_empty() {
                    self.mail.send_raw(&id, &sender, &kept, raw);
                }
            }
        }
        Ok(id)
    }
}

/// The sender and every recipient of a send: given ones first, else (raw content) the message's own
/// From, To, Cc and Bcc headers, as SES reads them.
fn resolve(request: &SendRequest) -> Result<(String, Vec<String>), SesError> {
    let mut recipients: Vec<String> =
        request.to.iter().chain(&request.cc).chain(&request.bcc).map(|a| bare_address(a).to_string()).collect();
    let mut from = request.from.clone().filter(|f| !f.trim().is_empty());
    if let SendContent::Raw(raw) = &request.content {
        let message = mail_parser::MessageParser::default()
            .parse(raw)
            .ok_or_else(|| SesError::bad_request("Unable to parse the raw message."))?;
        if from.is_none() {
            from = message.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_string);
        }
        if recipients.is_empty() {
            for header in [message.to(), message.cc(), message.bcc()].into_iter().flatten() {
                recipients.extend(header.iter().filter_map(|a| a.address()).map(str::to_string));
            }
        }
    }
    let from = from.ok_or_else(|| SesError::bad_request("Missing required header 'From'."))?;
    Ok((from, recipients))
}

/// An SES-shaped MessageId (`0100…-uuid-000000`): 16 hex digits of milliseconds, a UUID, a suffix.
fn message_id() -> String {
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    format!("{millis:016x}-{}-000000", uuid::Uuid::new_v4())
}

fn encode_token(index: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("suppression:{index}"))
}

fn decode_token(token: &str) -> Option<usize> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("suppression:")?.parse().ok()
}

/// Splits an `application/x-www-form-urlencoded` text (a v1 body or a v2 query string) into pairs,
/// percent-decoding both sides and reading `+` as a space. Invalid UTF-8 is replaced, never refused.
pub fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    text.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |b| *b == b'=');
            let key = halves.next().unwrap_or_default();
            let value = halves.next().unwrap_or_default();
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(bytes: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Epoch seconds of an ISO-8601 date-time (`2026-01-01T00:00:00Z`) or of epoch seconds given as a number.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds.is_finite().then_some(seconds);
    }
    let time = humantime::parse_rfc3339_weak(text).ok()?;
    time.duration_since(std::time::UNIX_EPOCH).ok().map(|d: Duration| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_verify_their_addresses_and_subdomains_addresses_only_themselves() {
        let config = SesConfig {
            verified_identities: Some(vec!["Mail.Test".into(), "Boss@other.test".into()]),
            pending_identities: vec!["new@other.test".into()],
            ..Default::default()
        };
        config.validate().expect("valid");
        let ids = Identities::new(&config);
        assert!(ids.is_verified_for_sending("a@mail.test"));
        assert!(ids.is_verified_for_sending("a+tag@MAIL.TEST"));
        assert!(ids.is_verified_for_sending("a@eu.mail.test"), "a subdomain");
        assert!(!ids.is_verified_for_sending("a@evilmail.test"), "not a subdomain, a suffix");
        assert!(ids.is_verified_for_sending("Boss@OTHER.test"), "domain without case");
        assert!(!ids.is_verified_for_sending("boss@other.test"), "the local part keeps its case");
        assert!(!ids.is_verified_for_sending("new@other.test"));
        assert_eq!(ids.lookup("mail.test"), Some(IdentityStatus::Verified));
        assert_eq!(ids.lookup("new@other.test"), Some(IdentityStatus::Pending));
        assert_eq!(ids.lookup("a@mail.test"), None, "an address in a verified domain is no identity of its own");
        assert_eq!(ids.lookup("nobody@x.test"), None);

        let open = Identities::new(&SesConfig { pending_identities: vec!["wait.test".into()], ..Default::default() });
        assert!(open.is_verified_for_sending("anyone@anywhere.test"));
        assert!(!open.is_verified_for_sending("a@wait.test"));
        assert_eq!(open.lookup("anyone@anywhere.test"), Some(IdentityStatus::Verified));
        assert_eq!(open.lookup("wait.test"), Some(IdentityStatus::Pending));
        assert_eq!(open.lookup("not an identity"), None);
        assert!(is_simulator("bounce+label@Simulator.AmazonSES.com"));
    }

    #[test]
    fn the_rate_bucket_counts_recipients_and_refills() {
        let start = Instant::now();
        let rate = SendRate::new(2.0, start);
        assert!(rate.try_take_at(1, start));
        assert!(rate.try_take_at(1, start));
        assert!(!rate.try_take_at(1, start), "two per second");
        assert!(rate.try_take_at(1, start + Duration::from_millis(500)), "half a second refills one");
        assert!(!rate.try_take_at(1, start + Duration::from_millis(500)));
        // Five recipients in one message: waits for a full bucket, then leaves it in debt.
        let later = start + Duration::from_secs(10);
        assert!(rate.try_take_at(5, later));
        assert!(!rate.try_take_at(1, later + Duration::from_secs(1)), "still paying the debt (−3 + 2)");
        assert!(rate.try_take_at(1, later + Duration::from_secs(2)));
        let slow = SendRate::new(0.001, start);
        assert!(slow.try_take_at(1, start), "a rate below one still holds one recipient");
        assert!(!slow.try_take_at(1, start + Duration::from_secs(1)));
    }

    #[test]
    fn the_ledger_counts_a_rolling_day_and_enforces_the_daily_quota() {
        let ledger = SendLedger::new(5);
        let t0 = ledger.origin;
        let ok = || Ok(());
        assert_eq!(ledger.count_at(t0), 5);
        ledger.record_at(2, t0 + Duration::from_secs(3600));
        assert!(ledger.admit_at(3, 10.0, t0 + Duration::from_secs(3600), ok).is_ok());
        assert_eq!(ledger.count_at(t0 + Duration::from_secs(3600)), 10);
        let refused = ledger.admit_at(1, 10.0, t0 + Duration::from_secs(3600), ok).expect_err("full");
        assert_eq!(refused.kind, SesErrorKind::DailyQuotaExceeded);
        assert_eq!(refused.message, "Daily message quota exceeded.");
        assert!(ledger.admit_at(1, -1.0, t0 + Duration::from_secs(3600), ok).is_ok(), "-1 is unlimited");
        let rate_refused = ledger.admit_at(1, -1.0, t0, || Err(SesError::new(SesErrorKind::MaxSendRateExceeded, "x")));
        assert!(rate_refused.is_err());
        // The starting five age out a day after start; the rest a day after they were sent.
        assert_eq!(ledger.count_at(t0 + Duration::from_secs(24 * 3600)), 6);
        assert_eq!(ledger.count_at(t0 + Duration::from_secs(25 * 3600)), 0);
        assert!(ledger.admit_at(10, 10.0, t0 + Duration::from_secs(25 * 3600), ok).is_ok());
    }

    #[test]
    fn config_values_are_checked_by_key() {
        SesConfig::default().validate().expect("default valid");
        for (config, needle) in [
            (SesConfig { enforcement_status: "OK".into(), ..Default::default() }, "ses.enforcement_status"),
            (SesConfig { max_24_hour_send: -2.0, ..Default::default() }, "ses.max_24_hour_send"),
            (SesConfig { max_send_rate: 0.0, ..Default::default() }, "ses.max_send_rate"),
            (
                SesConfig { verified_identities: Some(vec!["a b".into()]), ..Default::default() },
                "ses.verified_identities",
            ),
            (
                SesConfig {
                    suppressed: vec![SuppressedAddress { address: "x.test".into(), reason: SuppressionReason::Bounce }],
                    ..Default::default()
                },
                "ses.suppressed",
            ),
        ] {
            let err = config.validate().expect_err("invalid").to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn form_text_decodes_and_tokens_round_trip() {
        assert_eq!(
            form_pairs(b"Action=SendEmail&Source=a%40b.test&M=x+y%2Bz&bad=%zz&&flag"),
            [
                ("Action".into(), "SendEmail".into()),
                ("Source".into(), "a@b.test".into()),
                ("M".into(), "x y+z".into()),
                ("bad".into(), "%zz".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        assert_eq!(decode_token("nonsense!"), None);
        assert_eq!(parse_timestamp("1970-01-01T00:01:00Z"), Some(60.0));
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000.0));
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
