//! The local pool's configuration: identity of the pool and its client, the trigger settings, the mail
//! sinks, and the faults and deliberate defects it can be told to have. Read from TOML
//! (`otp-harness pool --config FILE`, or `[target.pool]` in a scenario); every key has a default.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the local pool can be configured with. `PoolConfig::default()` is a working pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Region the pool pretends to live in (appears in the pool id and ARNs).
    pub region: String,
    /// User pool id, `{region}_{9 alphanumerics}` like a real one.
    pub user_pool_id: String,
    pub pool_name: String,
    /// App client id (26 lower-case alphanumerics like a real one).
    pub client_id: String,
    pub client_name: String,
    /// Wrong answers the Define trigger allows before it fails the authentication.
    pub max_attempts: u32,
    /// Digits in a one-time code.
    pub code_length: usize,
    /// How long a Session string stays usable (Cognito: 3 min by default, 3–15 allowed).
    #[serde(with = "humantime_serde")]
    pub auth_session_validity: Duration,
    /// Lifetime of ID and access tokens (`ExpiresIn`).
    #[serde(with = "humantime_serde")]
    pub token_validity: Duration,
    /// How unknown users are answered.
    pub prevent_user_existence_errors: PreventUserExistenceErrors,
    /// The app client's ExplicitAuthFlows: `ALLOW_CUSTOM_AUTH` lets it use custom auth, `ALLOW_USER_AUTH`
    /// choice-based sign-in (USER_AUTH).
    pub explicit_auth_flows: Vec<String>,
    /// The pool's `Policies.SignInPolicy.AllowedFirstAuthFactors` (PASSWORD is required, as in Cognito).
    pub allowed_first_auth_factors: Vec<String>,
    /// Native passwordless sign-in (USER_AUTH with EMAIL_OTP): the settings the sources leave uncertain.
    pub native: NativeConfig,
    /// The pool's feature plan (`UserPoolTier`): `LITE`, `ESSENTIALS` or `PLUS`. Native EMAIL_OTP
    /// sign-in needs ESSENTIALS or PLUS.
    pub tier: String,
    /// `EmailConfiguration.EmailSendingAccount`: `DEVELOPER` (the account's SES) or `COGNITO_DEFAULT`
    /// (Cognito's own sender, 50 mails a day per account).
    pub email_sending_account: String,
    /// `UserPoolAddOns.AdvancedSecurityMode` (threat protection): `OFF`, `AUDIT` or `ENFORCED`.
    pub threat_protection: String,
    /// The custom-auth triggers the pool has (`LambdaConfig`): any of `define`, `create`, `verify`.
    /// CUSTOM_AUTH without a Define trigger fails as Cognito's does.
    pub lambda_triggers: Vec<String>,
    /// The team's own trigger handlers (Node.js or Python), run instead of the built-in ones.
    pub triggers: crate::pool::triggers::TriggersConfig,
    /// Cognito's `UsernameAttributes`: `["email"]` — users sign in with their email and their internal
    /// username (`event.userName`, `cognito:username`) is a UUID — or `[]`: the username is what the user
    /// was created with (the email, for the harness's test users).
    pub username_attributes: Vec<String>,
    /// The app client has a secret: every InitiateAuth must then carry a SECRET_HASH, which the harness
    /// does not compute (a preflight verdict says so).
    pub client_secret: bool,
    /// Custom attributes the pool's schema declares, without the `custom:` prefix (e.g. `otp_harness`,
    /// which `otp-harness users create` uses as its marker). AdminCreateUser refuses undeclared ones.
    pub custom_attributes: Vec<String>,
    /// Users created when the pool starts.
    pub users: SeedUsers,
    pub mail: MailConfig,
    /// The SES account the pool's mail goes out through (its SES v1/v2 API).
    pub ses: crate::pool::ses::SesConfig,
    pub faults: FaultsConfig,
    pub defects: DefectsConfig,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            user_pool_id: "us-east-1_LocalOtp1".into(),
            pool_name: "otp-harness-local".into(),
            client_id: "otpharnesslocalclient00001".into(),
            client_name: "otp-harness".into(),
            max_attempts: 3,
            code_length: 6,
            auth_session_validity: Duration::from_secs(180),
            token_validity: Duration::from_secs(3600),
            prevent_user_existence_errors: PreventUserExistenceErrors::Enabled,
            explicit_auth_flows: ["ALLOW_CUSTOM_AUTH", "ALLOW_USER_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
                .map(String::from)
                .to_vec(),
            allowed_first_auth_factors: ["PASSWORD", "EMAIL_OTP"].map(String::from).to_vec(),
            native: NativeConfig::default(),
            tier: "ESSENTIALS".into(),
            email_sending_account: "DEVELOPER".into(),
            threat_protection: "OFF".into(),
            lambda_triggers: ["define", "create", "verify"].map(String::from).to_vec(),
            triggers: crate::pool::triggers::TriggersConfig::default(),
            username_attributes: vec!["email".into()],
            client_secret: false,
            custom_attributes: Vec::new(),
            users: SeedUsers::default(),
            mail: MailConfig::default(),
            ses: crate::pool::ses::SesConfig::default(),
            faults: FaultsConfig::default(),
            defects: DefectsConfig::default(),
        }
    }
}

/// Cognito's PreventUserExistenceErrors client setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PreventUserExistenceErrors {
    /// Unknown users get a normal-looking challenge that ends in `Incorrect username or password.`
    Enabled,
    /// Unknown users get `UserNotFoundException`.
    Legacy,
}

impl PreventUserExistenceErrors {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Legacy => "LEGACY",
        }
    }
}

/// The values ExplicitAuthFlows may hold (Cognito's `ExplicitAuthFlowsType`).
pub const EXPLICIT_AUTH_FLOWS: [&str; 9] = [
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_USER_AUTH",
];

/// The values AllowedFirstAuthFactors may hold (Cognito's `AuthFactorType`, less SOFTWARE_TOKEN, which
/// Cognito does not take as a first factor).
pub const FIRST_AUTH_FACTORS: [&str; 4] = ["PASSWORD", "EMAIL_OTP", "SMS_OTP", "WEB_AUTHN"];

/// Native passwordless sign-in: each setting here is something the public sources leave uncertain,
/// set to the documented (or best-supported) default; `scenarios/local-pool.toml` names the source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NativeConfig {
    /// Wrong codes answered with `CodeMismatchException` in one session; the answer after them — even
    /// the right code — gets `lockout_error` and ends the session.
    pub max_wrong_codes: u32,
    /// The error once `max_wrong_codes` is reached.
    pub lockout_error: NativeLockoutError,
    /// `CODE_DELIVERY_DESTINATION` keeps the top-level domain (`l***@m***.test`) or not (`l***@m***`).
    pub mask_keeps_tld: bool,
    /// Without PREFERRED_CHALLENGE, a user whose only available factor is EMAIL_OTP gets the code at
    /// once (ChallengeName EMAIL_OTP) instead of SELECT_CHALLENGE.
    pub single_factor_skips_select: bool,
    /// Subject of the code mail (EmailMfaConfiguration.Subject).
    pub mail_subject: String,
    /// Body of the code mail; `{####}` is replaced by the code (EmailMfaConfiguration.Message).
    pub mail_message: String,
    /// The fake challenge unknown users get with PreventUserExistenceErrors ENABLED.
    pub unknown_user_challenge: FakeChallenge,
}

impl Default for NativeConfig {
    fn default() -> Self {
        Self {
            max_wrong_codes: 5,
            lockout_error: NativeLockoutError::UserLocked,
            mask_keeps_tld: false,
            single_factor_skips_select: false,
            mail_subject: "Your authentication code".into(),
            mail_message: "Your authentication code is {####}".into(),
            unknown_user_challenge: FakeChallenge::Mirror,
        }
    }
}

/// What a session that reached `max_wrong_codes` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NativeLockoutError {
    /// `NotAuthorizedException: Too many invalid credentials attempts. User temporarily locked. Please
    /// try again after few seconds.` (what apps see after five wrong MFA codes).
    UserLocked,
    /// `NotAuthorizedException: Password attempts exceeded` (the password lockout's message).
    PasswordAttemptsExceeded,
}

/// How unknown users' fake USER_AUTH challenge looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FakeChallenge {
    /// Exactly what a known passwordless user gets (same challenge, same AvailableChallenges, a masked
    /// destination made from the given name); no mail; every code is a mismatch.
    Mirror,
    /// AvailableChallenges lists every allowed first factor (PASSWORD, PASSWORD_SRP, EMAIL_OTP, …), where a
    /// known passwordless user gets only EMAIL_OTP — the difference one developer saw on a real pool.
    AllFactors,
}

/// Users the pool creates at start: `pattern` with `{n}` replaced by 1..=count, plus explicit emails.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedUsers {
    pub pattern: Option<String>,
    pub count: u32,
    pub emails: Vec<String>,
}

impl SeedUsers {
    /// Every seed address, pattern first.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.pattern {
            Some(p) => (1..=self.count).map(|n| p.replace("{n}", &n.to_string())).collect(),
            None => Vec::new(),
        };
        out.extend(self.emails.iter().cloned());
        out
    }
}

/// Where code mails go. The outbox is on by default; relay and S3 are added when configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub from: String,
    pub subject: String,
    /// Keep every mail in the in-memory outbox served at `GET /_aws/ses`.
    pub outbox: bool,
    /// The outbox keeps at most this many messages (oldest dropped first).
    pub outbox_capacity: usize,
    /// Hand every mail to an LMTP or SMTP server (e.g. Dovecot, read back over IMAP).
    pub relay: Option<RelayConfig>,
    /// Store every mail in S3, as an SES receipt rule with an S3 action does.
    pub s3: Option<S3SinkConfig>,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            from: "no-reply@auth.otp-harness.test".into(),
            subject: "Your sign-in code".into(),
            outbox: true,
            outbox_capacity: 10_000,
            relay: None,
            s3: None,
        }
    }
}

/// The mail-transfer protocol of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayProtocol {
    Lmtp,
    Smtp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub protocol: RelayProtocol,
    #[serde(default = "default_relay_host")]
    pub host: String,
    pub port: u16,
    /// Deliveries in flight at once.
    #[serde(default = "default_relay_concurrency")]
    pub concurrency: usize,
}

fn default_relay_host() -> String {
    "127.0.0.1".into()
}

fn default_relay_concurrency() -> usize {
    8
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3SinkConfig {
    /// S3 endpoint, e.g. `http://127.0.0.1:5000` for a local S3 server.
    pub endpoint_url: String,
    pub bucket: String,
    /// Object key prefix (the receipt rule's `ObjectKeyPrefix`).
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Create the bucket at start if it does not exist.
    #[serde(default = "yes")]
    pub create_bucket: bool,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

fn yes() -> bool {
    true
}

/// Faults a real deployment shows under stress, injected on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultsConfig {
    /// Added latency per operation name, e.g. `InitiateAuth = "50ms"`.
    #[serde(with = "duration_map")]
    pub latency: BTreeMap<String, Duration>,
    /// Requests per second allowed per quota category; past it, `TooManyRequestsException`.
    pub throttle: ThrottleConfig,
    pub mail: MailFaults,
    /// Trigger failures.
    pub trigger: Vec<TriggerFault>,
    /// Operations refused with `AccessDeniedException`, as for a caller whose IAM policy lacks them:
    /// Cognito names (`DescribeUserPool`; only the admin operations, which need IAM) and SES names
    /// (`GetAccount`, `GetEmailIdentity`, `SendEmail`, v1's `SendRawEmail`, `GetSendQuota`, …).
    pub access_denied: Vec<String>,
}

/// Quota categories as Cognito groups operations; absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// InitiateAuth (Cognito default 120/s).
    pub user_authentication: Option<f64>,
    /// RespondToAuthChallenge (Cognito default 3 × UserAuthentication).
    pub respond_to_auth_challenge: Option<f64>,
    /// AdminCreateUser (50/s).
    pub user_creation: Option<f64>,
    /// AdminGetUser, GetUser (120/s).
    pub user_read: Option<f64>,
    /// ListUsers (30/s).
    pub user_list: Option<f64>,
    /// AdminDeleteUser.
    pub user_update: Option<f64>,
    /// DescribeUserPool, DescribeUserPoolClient.
    pub user_pool_read: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailFaults {
    /// Every mail is held this long before it is handed to the sinks.
    #[serde(with = "humantime_serde")]
    pub delay: Duration,
    /// Share of mails sent twice (0.0–1.0).
    pub duplicate_rate: f64,
    /// Share of mails never sent (0.0–1.0).
    pub loss_rate: f64,
}

/// Which trigger a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Define,
    Create,
    Verify,
}

impl Trigger {
    /// The Lambda trigger's name as Cognito's messages spell it.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Trigger::Define => "DefineAuthChallenge",
            Trigger::Create => "CreateAuthChallenge",
            Trigger::Verify => "VerifyAuthChallengeResponse",
        }
    }
}

/// How a trigger fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerFailure {
    /// The function threw: `UserLambdaValidationException`.
    Error,
    /// The function returned something Cognito cannot read: `InvalidLambdaResponseException`.
    BadOutput,
    /// The function ran past Cognito's 5 s limit: `UnexpectedLambdaException` after the wait.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerFault {
    pub trigger: Trigger,
    pub failure: TriggerFailure,
    /// Share of invocations that fail (0.0–1.0).
    #[serde(default = "one")]
    pub rate: f64,
    /// How long a `timeout` failure waits (Cognito: 5 s).
    #[serde(default = "lambda_timeout", with = "humantime_serde")]
    pub after: Duration,
}

fn one() -> f64 {
    1.0
}

fn lambda_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Mistakes real pools ship, switchable so the harness's checks can be proven to catch them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefectsConfig {
    /// Define never fails the authentication: wrong answers are retried forever.
    pub unbounded_retries: bool,
    /// Create reuses the previous round's code instead of making a new one.
    pub same_code_every_round: bool,
    /// A code that signed a user in is accepted again in a later session.
    pub code_valid_after_success: bool,
    /// A code mailed in an earlier session is accepted in a new one.
    pub code_valid_in_new_session: bool,
    /// A consumed Session string is accepted again.
    pub consumed_session_accepted: bool,
    /// The expected answer is leaked in the public ChallengeParameters (as `answer`).
    pub answer_in_challenge_parameters: bool,
    /// Codes come from a clock-seeded LCG that never yields the digit 9.
    pub weak_code_generator: bool,
    /// Unknown users are refused at InitiateAuth with a message of their own, even with
    /// PreventUserExistenceErrors=ENABLED.
    pub unknown_user_error: bool,
    /// Unknown users' InitiateAuth answers this much later than known users'.
    #[serde(with = "humantime_serde")]
    pub unknown_user_delay: Duration,
    /// Codes of earlier rounds of the same sign-in stay valid after a new one is mailed.
    pub earlier_round_codes_accepted: bool,
    /// Verify checks the answer against the previous round's code (an off-by-one in the trigger), so
    /// from round 2 on the code just mailed is refused.
    pub verify_against_previous_round: bool,
    /// Verify compares the answer as a number with the code as text: codes with a leading zero never match.
    pub leading_zero_codes_refused: bool,
    /// One way the issued tokens are wrong.
    pub token: TokenDefect,
    /// USER_AUTH: wrong codes never lock the session (CodeMismatchException forever).
    pub native_unbounded_attempts: bool,
    /// USER_AUTH: a code that signed a user in is accepted again in a later session.
    pub native_code_valid_after_success: bool,
    /// USER_AUTH: a code mailed in an earlier session is accepted in a new one.
    pub native_code_valid_in_new_session: bool,
    /// USER_AUTH: an EMAIL_OTP Session that produced tokens signs in again.
    pub native_consumed_session_accepted: bool,
    /// USER_AUTH: a wrong code ends the session (Cognito keeps it usable), so a retry needs a new sign-in.
    pub native_wrong_code_ends_session: bool,
    /// USER_AUTH: codes have 6 digits instead of 8.
    pub native_short_code: bool,
    /// USER_AUTH: codes come from the clock-seeded LCG that never yields the digit 9.
    pub native_weak_code_generator: bool,
    /// USER_AUTH: the code leaks in the EMAIL_OTP ChallengeParameters (as `EMAIL_OTP_CODE`).
    pub native_code_in_challenge_parameters: bool,
}

/// Ways a pool's tokens can be wrong (each breaks one check aws-jwt-verify or the harness makes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenDefect {
    #[default]
    None,
    /// The ID token is signed by a key whose kid is not in the JWKS.
    UnknownKid,
    /// The ID token names a JWKS kid but is signed by another key.
    BadSignature,
    /// `iss` is not the pool's issuer.
    WrongIssuer,
    /// The ID token's `aud` is not the client id.
    WrongAudience,
    /// Both tokens expired before they were issued.
    Expired,
    /// The ID token says `token_use: access`.
    WrongTokenUse,
    /// The two tokens carry different `origin_jti`.
    OriginJtiMismatch,
    /// Every token carries the same `jti`.
    RepeatedJti,
    /// The ID token's `sub` is not the user's.
    WrongSub,
    /// `exp - iat` is not `ExpiresIn`.
    LifetimeMismatch,
}

/// Most users a pool creates at start.
pub const MAX_SEED_USERS: u32 = 1_000_000;

impl PoolConfig {
    /// Reads and validates a pool config file; errors name the file and the offending key. A relative
    /// `triggers.code_dir` is taken relative to the file's folder.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read pool config {}: {e}", path.display()))?;
        let mut config = Self::from_toml(&text).map_err(|e| anyhow::anyhow!("pool config {}: {e}", path.display()))?;
        config.triggers.anchor(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Whether users sign in with their email as a username attribute (internal usernames are UUIDs).
    pub fn email_is_username_attribute(&self) -> bool {
        self.username_attributes.iter().any(|a| a == "email")
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: PoolConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values serde cannot: ranges, shapes and rates.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if !self.user_pool_id.starts_with(&format!("{}_", self.region)) {
            bail!(
                "user_pool_id {:?} must start with the region and an underscore ({}_…)",
                self.user_pool_id,
                self.region
            );
        }
        if self.client_id.is_empty() || !self.client_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("client_id must be non-empty and alphanumeric");
        }
        if !(4..=10).contains(&self.code_length) {
            bail!("code_length must be between 4 and 10, got {}", self.code_length);
        }
        if self.max_attempts == 0 {
            bail!("max_attempts must be at least 1");
        }
        self.validate_native()?;
        self.validate_described()?;
        if self.auth_session_validity.is_zero() || self.auth_session_validity > Duration::from_secs(15 * 60) {
            bail!("auth_session_validity must be longer than zero and at most 15m (Cognito: 3–15 min)");
        }
        if self.token_validity < Duration::from_secs(60) || self.token_validity > Duration::from_secs(24 * 3600) {
            bail!("token_validity must be between 1m and 1d");
        }
        if self.users.count > MAX_SEED_USERS {
            bail!("users.count must be at most {MAX_SEED_USERS} (every seed user is created at start)");
        }
        if self.users.count > 0 && self.users.pattern.as_deref().is_none_or(|p| !p.contains("{n}")) {
            bail!("users.pattern must contain {{n}} when users.count is set");
        }
        if self.mail.outbox && self.mail.outbox_capacity == 0 {
            bail!("mail.outbox_capacity must be at least 1");
        }
        for (name, rate) in [
            ("faults.mail.duplicate_rate", self.faults.mail.duplicate_rate),
            ("faults.mail.loss_rate", self.faults.mail.loss_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("{name} must be between 0.0 and 1.0, got {rate}");
            }
        }
        for fault in &self.faults.trigger {
            if !(0.0..=1.0).contains(&fault.rate) {
                bail!("faults.trigger rate must be between 0.0 and 1.0, got {}", fault.rate);
            }
        }
        for op in self.faults.latency.keys() {
            if !crate::pool::wire::OPERATIONS.contains(&op.as_str()) {
                bail!(
                    "faults.latency: unknown operation {op:?} (one of: {})",
                    crate::pool::wire::OPERATIONS.join(", ")
                );
            }
        }
        for op in &self.faults.access_denied {
            let known = crate::pool::wire::OPERATIONS.contains(&op.as_str())
                || crate::pool::ses::OPERATIONS.contains(&op.as_str());
            if !known {
                bail!(
                    "faults.access_denied: unknown operation {op:?} (Cognito: {}; SES: {})",
                    crate::pool::wire::OPERATIONS.join(", "),
                    crate::pool::ses::OPERATIONS.join(", ")
                );
            }
        }
        let t = &self.faults.throttle;
        for (name, rate) in [
            ("user_authentication", t.user_authentication),
            ("respond_to_auth_challenge", t.respond_to_auth_challenge),
            ("user_creation", t.user_creation),
            ("user_read", t.user_read),
            ("user_list", t.user_list),
            ("user_update", t.user_update),
            ("user_pool_read", t.user_pool_read),
        ] {
            if rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
                bail!("faults.throttle.{name} must be a positive rate per second");
            }
        }
        if self.mail.relay.as_ref().is_some_and(|r| r.concurrency == 0) {
            bail!("mail.relay.concurrency must be at least 1");
        }
        self.ses.validate()?;
        self.triggers.validate()?;
        for attribute in &self.username_attributes {
            if attribute != "email" {
                bail!(
                    "username_attributes: {attribute:?} is not supported (the local pool signs in by email: [\"email\"] or [])"
                );
            }
        }
        Ok(())
    }
}

impl PoolConfig {
    /// The client's flows, the pool's first factors and the native settings.
    /// The settings DescribeUserPool / DescribeUserPoolClient report: Cognito's own enum values.
    fn validate_described(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        for (key, value, allowed) in [
            ("tier", &self.tier, &["LITE", "ESSENTIALS", "PLUS"][..]),
            ("email_sending_account", &self.email_sending_account, &["DEVELOPER", "COGNITO_DEFAULT"][..]),
            ("threat_protection", &self.threat_protection, &["OFF", "AUDIT", "ENFORCED"][..]),
        ] {
            if !allowed.contains(&value.as_str()) {
                bail!("{key}: {value:?} is not one of {}", allowed.join(", "));
            }
        }
        for trigger in &self.lambda_triggers {
            if !["define", "create", "verify"].contains(&trigger.as_str()) {
                bail!("lambda_triggers: unknown trigger {trigger:?} (one of: define, create, verify)");
            }
        }
        if self.threat_protection != "OFF" && self.tier != "PLUS" {
            // Cognito's own rule: threat protection is a Plus feature.
            bail!("threat_protection = {:?} needs tier = \"PLUS\"", self.threat_protection);
        }
        for name in &self.custom_attributes {
            if name.is_empty() || name.len() > 20 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("custom_attributes: {name:?} must be 1 to 20 letters, digits or underscores (no custom: prefix)");
            }
        }
        Ok(())
    }

    fn validate_native(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        for flow in &self.explicit_auth_flows {
            if !EXPLICIT_AUTH_FLOWS.contains(&flow.as_str()) {
                bail!("explicit_auth_flows: unknown flow {flow:?} (one of: {})", EXPLICIT_AUTH_FLOWS.join(", "));
            }
        }
        for factor in &self.allowed_first_auth_factors {
            if !FIRST_AUTH_FACTORS.contains(&factor.as_str()) {
                bail!(
                    "allowed_first_auth_factors: unknown factor {factor:?} (one of: {})",
                    FIRST_AUTH_FACTORS.join(", ")
                );
            }
        }
        if !self.allowed_first_auth_factors.iter().any(|f| f == "PASSWORD") {
            // Cognito's own UpdateUserPool error.
            bail!(
                "allowed_first_auth_factors: Password should be configured as one of the allowed first auth factors."
            );
        }
        let n = &self.native;
        if n.max_wrong_codes == 0 {
            bail!("native.max_wrong_codes must be at least 1");
        }
        if !n.mail_message.contains("{####}") || !(6..=20_000).contains(&n.mail_message.chars().count()) {
            bail!("native.mail_message must contain {{####}} and be 6 to 20000 characters long");
        }
        if n.mail_subject.trim().is_empty() || n.mail_subject.contains(['\r', '\n']) {
            bail!("native.mail_subject must be one non-empty line");
        }
        Ok(())
    }
}

/// (De)serializes a map of humantime durations (`{ InitiateAuth = "50ms" }`).
mod duration_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Duration>, s: S) -> Result<S::Ok, S::Error> {
        let texts: BTreeMap<&String, String> =
            map.iter().map(|(k, v)| (k, humantime::format_duration(*v).to_string())).collect();
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Duration>, D::Error> {
        let texts = BTreeMap::<String, String>::deserialize(d)?;
        texts
            .into_iter()
            .map(|(k, v)| {
                humantime::parse_duration(&v)
                    .map(|d| (k.clone(), d))
                    .map_err(|e| serde::de::Error::custom(format!("latency for {k}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_round_trips() {
        let config = PoolConfig::default();
        config.validate().expect("default valid");
        let text = toml::to_string(&config).expect("serializes");
        assert_eq!(PoolConfig::from_toml(&text).expect("parses"), config);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let err = PoolConfig::from_toml("max_attempt = 3").unwrap_err().to_string();
        assert!(err.contains("max_attempt"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected() {
        for (text, needle) in [
            ("code_length = 2", "code_length"),
            ("max_attempts = 0", "max_attempts"),
            ("[faults.mail]\nloss_rate = 1.5", "loss_rate"),
            ("[faults.latency]\nInitiateAuht = \"5ms\"", "InitiateAuht"),
            ("[faults.latency]\nInitiateAuth = \"fast\"", "InitiateAuth"),
            ("user_pool_id = \"eu-west-1_X\"", "user_pool_id"),
            ("[users]\ncount = 3", "pattern"),
            ("explicit_auth_flows = [\"ALLOW_USER_AUHT\"]", "ALLOW_USER_AUHT"),
            ("allowed_first_auth_factors = [\"EMAIL_OTP\"]", "Password should be configured"),
            ("allowed_first_auth_factors = [\"PASSWORD\", \"SOFTWARE_TOKEN\"]", "SOFTWARE_TOKEN"),
            ("[native]\nmax_wrong_codes = 0", "max_wrong_codes"),
            ("[native]\nmail_message = \"Your code\"", "{####}"),
            ("[native]\nlockout_error = \"locked\"", "locked"),
            ("[ses]\nmax_send_rate = -1", "ses.max_send_rate"),
            ("[ses]\nsandbox = \"yes\"", "sandbox"),
            ("[[ses.suppressed]]\naddress = \"a@x.test\"\nreason = \"SPAM\"", "SPAM"),
        ] {
            let err = PoolConfig::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }

    #[test]
    fn seed_addresses_expand_the_pattern() {
        let seed = SeedUsers { pattern: Some("u+{n}@mail.test".into()), count: 2, emails: vec!["x@mail.test".into()] };
        assert_eq!(seed.addresses(), ["u+1@mail.test", "u+2@mail.test", "x@mail.test"]);
    }
}
