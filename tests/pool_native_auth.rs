//! The local pool's native passwordless sign-in (USER_AUTH with EMAIL_OTP) driven by the AWS SDK for
//! Rust: the preferred and the SELECT_CHALLENGE paths, wrong codes, lockout, expiry, each uncertain
//! setting in both of its values, the errors of a client or pool without the flow, Describe*, every
//! native defect next to a control on the default pool, and sign-ins through Dovecot (LMTP → IMAP) and S3.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_cognitoidentityprovider as cip;
use cip::types::{AuthFactorType, AuthFlowType, ChallengeNameType, ExplicitAuthFlowsType};
use futures::TryStreamExt;
use otp_harness::pool::config::{
    DefectsConfig, FakeChallenge, NativeConfig, NativeLockoutError, PreventUserExistenceErrors, RelayConfig,
    RelayProtocol,
};
use otp_harness::pool::{PoolConfig, RunningPool};
use otp_harness::testkit::dovecot::Dovecot;
use serde_json::Value;
use support::{USER, sdk, service_error, start_pool, wrong_code};

type InitiateResult = Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    cip::error::SdkError<cip::operation::initiate_auth::InitiateAuthError, cip::config::http::HttpResponse>,
>;
type RespondResult = Result<
    cip::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
    cip::error::SdkError<
        cip::operation::respond_to_auth_challenge::RespondToAuthChallengeError,
        cip::config::http::HttpResponse,
    >,
>;

const LOCKED: (&str, &str) = (
    "NotAuthorizedException",
    "Too many invalid credentials attempts. User temporarily locked. Please try again after few seconds.",
);
const MISMATCH: (&str, &str) = ("CodeMismatchException", "Invalid code or auth state for the user.");
const INVALID_SESSION: (&str, &str) = ("NotAuthorizedException", "Invalid session for the user.");

/// InitiateAuth USER_AUTH, with PREFERRED_CHALLENGE when given.
async fn initiate(client: &cip::Client, pool: &RunningPool, username: &str, preferred: Option<&str>) -> InitiateResult {
    let mut request = client
        .initiate_auth()
        .auth_flow(AuthFlowType::UserAuth)
        .client_id(&pool.info().client_id)
        .auth_parameters("USERNAME", username);
    if let Some(p) = preferred {
        request = request.auth_parameters("PREFERRED_CHALLENGE", p);
    }
    request.send().await
}

/// RespondToAuthChallenge EMAIL_OTP with `code`.
async fn answer_code(
    client: &cip::Client,
    pool: &RunningPool,
    session: &str,
    username: &str,
    code: &str,
) -> RespondResult {
    client
        .respond_to_auth_challenge()
        .client_id(&pool.info().client_id)
        .challenge_name(ChallengeNameType::EmailOtp)
        .session(session)
        .challenge_responses("USERNAME", username)
        .challenge_responses("EMAIL_OTP_CODE", code)
        .send()
        .await
}

/// RespondToAuthChallenge SELECT_CHALLENGE with `answer`.
async fn select(
    client: &cip::Client,
    pool: &RunningPool,
    session: &str,
    username: &str,
    answer: &str,
) -> RespondResult {
    client
        .respond_to_auth_challenge()
        .client_id(&pool.info().client_id)
        .challenge_name(ChallengeNameType::SelectChallenge)
        .session(session)
        .challenge_responses("USERNAME", username)
        .challenge_responses("ANSWER", answer)
        .send()
        .await
}

/// Mails sent to `to`, oldest first, as the outbox serves them.
async fn mails_to(pool: &RunningPool, to: &str) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/_aws/ses", pool.endpoint()))
        .query(&[("to", to)])
        .send()
        .await
        .expect("outbox answers")
        .json()
        .await
        .expect("outbox JSON");
    body["messages"].as_array().expect("messages").clone()
}

/// The code in a mail's text part, found as a harness would: `\b(\d{8})\b` (or `\b(\d{N})\b`).
fn code_of(mail: &Value, digits: usize) -> String {
    let text = mail["Body"]["text_part"].as_str().expect("text part");
    let pattern = regex::Regex::new(&format!(r"\b(\d{{{digits}}})\b")).expect("regex");
    pattern.captures(text).and_then(|c| c.get(1)).expect("a code in the mail").as_str().to_string()
}

/// The newest 8-digit code mailed to `to`.
async fn latest_code(pool: &RunningPool, to: &str) -> String {
    code_of(mails_to(pool, to).await.last().expect("a code was mailed"), 8)
}

/// Starts an EMAIL_OTP sign-in for `USER` by preference: (session, code).
async fn email_otp_session(client: &cip::Client, pool: &RunningPool) -> (String, String) {
    let started = initiate(client, pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
    assert_eq!(started.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    (started.session().expect("Session").to_string(), latest_code(pool, USER).await)
}

fn error_of<E: cip::error::ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<impl std::fmt::Debug, cip::error::SdkError<E, cip::config::http::HttpResponse>>,
) -> (String, String) {
    service_error(result.expect_err("an error"))
}

fn assert_error(got: (String, String), want: (&str, &str)) {
    assert_eq!((got.0.as_str(), got.1.as_str()), want);
}

fn signed_in(result: RespondResult) -> cip::types::AuthenticationResultType {
    result.expect("signs in").authentication_result().expect("tokens").clone()
}

fn with_native(native: NativeConfig) -> PoolConfig {
    PoolConfig { native, ..PoolConfig::default() }
}

fn with_defects(defects: DefectsConfig) -> PoolConfig {
    PoolConfig { defects, ..PoolConfig::default() }
}

/// A default pool (the control) and one with `defects`, each marked whether it is the defective one.
async fn control_and_defective(defects: DefectsConfig) -> [(bool, RunningPool); 2] {
    [(false, start_pool(PoolConfig::default()).await), (true, start_pool(with_defects(defects)).await)]
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64"))
        .expect("claims")
}

fn params(p: Option<&HashMap<String, String>>) -> HashMap<String, String> {
    p.cloned().unwrap_or_default()
}

#[tokio::test]
async fn preferred_email_otp_mails_an_8_digit_code_and_the_code_signs_in() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
    assert_eq!(started.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    assert_eq!(started.available_challenges(), [ChallengeNameType::EmailOtp]);
    let parameters = params(started.challenge_parameters());
    assert_eq!(
        parameters,
        HashMap::from([
            ("CODE_DELIVERY_DELIVERY_MEDIUM".to_string(), "EMAIL".to_string()),
            ("CODE_DELIVERY_DESTINATION".to_string(), "l***@m***".to_string()),
        ])
    );
    let mails = mails_to(&pool, USER).await;
    assert_eq!(mails.len(), 1, "one mail at InitiateAuth");
    assert_eq!(mails[0]["Subject"], "Your authentication code");
    let code = code_of(&mails[0], 8);
    assert_eq!(mails[0]["Body"]["text_part"], format!("Your authentication code is {code}"));
    assert!(mails[0]["Body"]["html_part"].as_str().expect("html").contains(&code));

    let done = answer_code(&client, &pool, started.session().expect("Session"), USER, &code).await.expect("right code");
    assert!(done.challenge_name().is_none());
    assert!(done.challenge_parameters().is_none_or(|p| p.is_empty()), "ChallengeParameters {{}} with the tokens");
    let result = done.authentication_result().expect("tokens");
    assert_eq!((result.expires_in(), result.token_type()), (3600, Some("Bearer")));
    assert!(result.refresh_token().is_some_and(|t| !t.is_empty()));
    let (id, access) = (claims(result.id_token().expect("id")), claims(result.access_token().expect("access")));
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], pool.info().client_id.as_str());
    assert_eq!(id["email"], USER);
    assert_eq!(id["iss"], pool.info().issuer.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], pool.info().client_id.as_str());
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert!(id.get("amr").is_none(), "user-pool tokens carry no amr, whatever the flow");
    let me = client.get_user().access_token(result.access_token().expect("access")).send().await.expect("GetUser");
    assert_eq!(me.username(), id["cognito:username"].as_str().expect("username"));
}

#[tokio::test]
async fn the_internal_username_answers_too() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let (session, code) = email_otp_session(&client, &pool).await;
    let user = client.admin_get_user().user_pool_id(&pool.info().user_pool_id).username(USER).send().await;
    let username = user.expect("admin get user").username().to_string();
    signed_in(answer_code(&client, &pool, &session, &username, &code).await);
    let (session, code) = email_otp_session(&client, &pool).await;
    assert_error(error_of(answer_code(&client, &pool, &session, "loadtest+2@mail.test", &code).await), INVALID_SESSION);
}

#[tokio::test]
async fn no_preference_gives_select_challenge_and_answering_email_otp_mails_the_code() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, None).await.expect("initiate");
    assert_eq!(started.challenge_name(), Some(&ChallengeNameType::SelectChallenge));
    assert_eq!(started.available_challenges(), [ChallengeNameType::EmailOtp]);
    assert!(mails_to(&pool, USER).await.is_empty(), "no mail before the user picks EMAIL_OTP");
    let select_session = started.session().expect("Session").to_string();

    let picked = select(&client, &pool, &select_session, USER, "EMAIL_OTP").await.expect("select EMAIL_OTP");
    assert_eq!(picked.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    let parameters = params(picked.challenge_parameters());
    assert_eq!(parameters.get("CODE_DELIVERY_DELIVERY_MEDIUM").map(String::as_str), Some("EMAIL"));
    assert_eq!(parameters.get("CODE_DELIVERY_DESTINATION").map(String::as_str), Some("l***@m***"));
    let session = picked.session().expect("Session").to_string();
    assert_ne!(session, select_session, "a new Session for EMAIL_OTP");
    assert_eq!(mails_to(&pool, USER).await.len(), 1);

    assert_error(error_of(select(&client, &pool, &select_session, USER, "EMAIL_OTP").await), INVALID_SESSION);
    let code = latest_code(&pool, USER).await;
    signed_in(answer_code(&client, &pool, &session, USER, &code).await);
}

#[tokio::test]
async fn an_unavailable_preference_falls_back_to_select_challenge_without_error() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    for preferred in ["WEB_AUTHN", "SMS_OTP", "PASSWORD"] {
        let started = initiate(&client, &pool, USER, Some(preferred)).await.expect("no error");
        assert_eq!(started.challenge_name(), Some(&ChallengeNameType::SelectChallenge), "{preferred}");
        assert_eq!(started.available_challenges(), [ChallengeNameType::EmailOtp]);
        assert_error(
            error_of(select(&client, &pool, started.session().expect("Session"), USER, preferred).await),
            ("InvalidParameterException", &format!("The challenge {preferred} is not available for this user.")),
        );
    }
    assert!(mails_to(&pool, USER).await.is_empty());
}

#[tokio::test]
async fn a_wrong_code_is_a_mismatch_and_the_session_and_code_stay_valid_until_used() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let (session, code) = email_otp_session(&client, &pool).await;
    for _ in 0..2 {
        assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
    }
    assert_eq!(mails_to(&pool, USER).await.len(), 1, "no new code after a wrong one");
    signed_in(answer_code(&client, &pool, &session, USER, &code).await);
    assert_error(error_of(answer_code(&client, &pool, &session, USER, &code).await), INVALID_SESSION);
}

#[tokio::test]
async fn a_new_sign_in_is_the_resend_with_a_new_code_and_the_old_code_stays_in_its_session() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let (first_session, first_code) = email_otp_session(&client, &pool).await;
    let (second_session, second_code) = email_otp_session(&client, &pool).await;
    assert_ne!(first_code, second_code, "a new code per sign-in");
    assert_error(error_of(answer_code(&client, &pool, &second_session, USER, &first_code).await), MISMATCH);
    signed_in(answer_code(&client, &pool, &first_session, USER, &first_code).await);
    signed_in(answer_code(&client, &pool, &second_session, USER, &second_code).await);
}

#[tokio::test]
async fn five_wrong_codes_lock_the_session_by_default_and_even_the_right_code_is_refused() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let (session, code) = email_otp_session(&client, &pool).await;
    for _ in 0..5 {
        assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
    }
    assert_error(error_of(answer_code(&client, &pool, &session, USER, &code).await), LOCKED);
    assert_error(error_of(answer_code(&client, &pool, &session, USER, &code).await), INVALID_SESSION);
}

#[tokio::test]
async fn the_lockout_count_and_error_are_settings() {
    let pool = start_pool(with_native(NativeConfig {
        max_wrong_codes: 2,
        lockout_error: NativeLockoutError::PasswordAttemptsExceeded,
        ..NativeConfig::default()
    }))
    .await;
    let client = sdk(&pool);
    let (session, code) = email_otp_session(&client, &pool).await;
    for _ in 0..2 {
        assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
    }
    assert_error(
        error_of(answer_code(&client, &pool, &session, USER, &code).await),
        ("NotAuthorizedException", "Password attempts exceeded"),
    );
    let (session, code) = email_otp_session(&client, &pool).await;
    signed_in(answer_code(&client, &pool, &session, USER, &code).await);
}

#[tokio::test]
async fn sessions_expire_with_auth_session_validity() {
    let pool =
        start_pool(PoolConfig { auth_session_validity: Duration::from_millis(400), ..PoolConfig::default() }).await;
    let client = sdk(&pool);
    let (session, code) = email_otp_session(&client, &pool).await;
    let started = initiate(&client, &pool, USER, None).await.expect("select");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let expired = ("NotAuthorizedException", "Invalid session for the user, session is expired.");
    assert_error(error_of(answer_code(&client, &pool, &session, USER, &code).await), expired);
    assert_error(
        error_of(select(&client, &pool, started.session().expect("Session"), USER, "EMAIL_OTP").await),
        expired,
    );
}

#[tokio::test]
async fn the_destination_mask_keeps_the_tld_only_when_told() {
    for (keep, want) in [(false, "l***@m***"), (true, "l***@m***.test")] {
        let pool = start_pool(with_native(NativeConfig { mask_keeps_tld: keep, ..NativeConfig::default() })).await;
        let started = initiate(&sdk(&pool), &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
        let parameters = params(started.challenge_parameters());
        assert_eq!(parameters.get("CODE_DELIVERY_DESTINATION").map(String::as_str), Some(want), "keep = {keep}");
    }
}

#[tokio::test]
async fn a_single_factor_skips_select_challenge_only_when_told() {
    let pool =
        start_pool(with_native(NativeConfig { single_factor_skips_select: true, ..NativeConfig::default() })).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, None).await.expect("initiate");
    assert_eq!(started.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    assert_eq!(started.available_challenges(), [ChallengeNameType::EmailOtp]);
    let code = latest_code(&pool, USER).await;
    signed_in(answer_code(&client, &pool, started.session().expect("Session"), USER, &code).await);
    // The default (SELECT_CHALLENGE) is asserted in no_preference_gives_select_challenge_…
}

#[tokio::test]
async fn the_mail_template_is_a_setting() {
    let pool = start_pool(with_native(NativeConfig {
        mail_subject: "Sign in to Example".into(),
        mail_message: "<b>{####}</b> is your code & it is yours".into(),
        ..NativeConfig::default()
    }))
    .await;
    let (_, code) = email_otp_session(&sdk(&pool), &pool).await;
    let mail = mails_to(&pool, USER).await.pop().expect("a mail");
    assert_eq!(mail["Subject"], "Sign in to Example");
    assert_eq!(mail["Body"]["text_part"], format!("<b>{code}</b> is your code & it is yours"));
    assert_eq!(
        mail["Body"]["html_part"],
        format!("<html><body><p>&lt;b&gt;{code}&lt;/b&gt; is your code &amp; it is yours</p></body></html>")
    );
}

#[tokio::test]
async fn unknown_users_get_a_fake_challenge_that_mirrors_a_real_one_by_default() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let ghost = "nobody+7@mail.test";
    let real = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("real");
    let fake = initiate(&client, &pool, ghost, Some("EMAIL_OTP")).await.expect("fake, no error");
    assert_eq!(fake.challenge_name(), real.challenge_name());
    assert_eq!(fake.available_challenges(), real.available_challenges());
    let (fake_parameters, mut real_parameters) =
        (params(fake.challenge_parameters()), params(real.challenge_parameters()));
    real_parameters.insert("CODE_DELIVERY_DESTINATION".into(), "n***@m***".into());
    assert_eq!(fake_parameters, real_parameters, "the same keys, the given address masked alike");
    assert!(mails_to(&pool, ghost).await.is_empty(), "no mail to an unknown address");
    let session = fake.session().expect("Session");
    for _ in 0..5 {
        assert_error(error_of(answer_code(&client, &pool, session, ghost, "12345678").await), MISMATCH);
    }
    assert_error(error_of(answer_code(&client, &pool, session, ghost, "12345678").await), LOCKED);

    let select_real = initiate(&client, &pool, USER, None).await.expect("real");
    let select_fake = initiate(&client, &pool, ghost, None).await.expect("fake");
    assert_eq!(select_fake.challenge_name(), Some(&ChallengeNameType::SelectChallenge));
    assert_eq!(select_fake.available_challenges(), select_real.available_challenges());
    let picked = select(&client, &pool, select_fake.session().expect("Session"), ghost, "EMAIL_OTP").await;
    assert_eq!(picked.expect("fake EMAIL_OTP").challenge_name(), Some(&ChallengeNameType::EmailOtp));
}

#[tokio::test]
async fn unknown_users_see_every_allowed_factor_with_the_all_factors_setting() {
    let pool = start_pool(with_native(NativeConfig {
        unknown_user_challenge: FakeChallenge::AllFactors,
        ..NativeConfig::default()
    }))
    .await;
    let client = sdk(&pool);
    let fake = initiate(&client, &pool, "nobody@mail.test", Some("EMAIL_OTP")).await.expect("fake");
    assert_eq!(fake.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    assert_eq!(
        fake.available_challenges(),
        [ChallengeNameType::PasswordSrp, ChallengeNameType::Password, ChallengeNameType::EmailOtp]
    );
    let real = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("real");
    assert_eq!(real.available_challenges(), [ChallengeNameType::EmailOtp]);
    let select_fake = initiate(&client, &pool, "nobody@mail.test", None).await.expect("fake");
    assert_eq!(select_fake.challenge_name(), Some(&ChallengeNameType::SelectChallenge));
    assert_eq!(select_fake.available_challenges().len(), 3);
}

#[tokio::test]
async fn unknown_users_get_user_not_found_with_legacy() {
    let pool = start_pool(PoolConfig {
        prevent_user_existence_errors: PreventUserExistenceErrors::Legacy,
        ..PoolConfig::default()
    })
    .await;
    let client = sdk(&pool);
    for preferred in [Some("EMAIL_OTP"), None] {
        assert_error(
            error_of(initiate(&client, &pool, "nobody@mail.test", preferred).await),
            ("UserNotFoundException", "User does not exist."),
        );
    }
    initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("known users still sign in");
}

#[tokio::test]
async fn a_client_without_allow_user_auth_refuses_user_auth_and_still_does_custom_auth() {
    let pool = start_pool(PoolConfig {
        explicit_auth_flows: vec!["ALLOW_CUSTOM_AUTH".into(), "ALLOW_REFRESH_TOKEN_AUTH".into()],
        ..PoolConfig::default()
    })
    .await;
    let client = sdk(&pool);
    for preferred in [Some("EMAIL_OTP"), None] {
        assert_error(
            error_of(initiate(&client, &pool, USER, preferred).await),
            ("InvalidParameterException", "USER_AUTH flow not enabled for this client"),
        );
    }
    assert!(mails_to(&pool, USER).await.is_empty());
    support::initiate(&client, &pool, USER).await.expect("custom auth still works");
    let app = client
        .describe_user_pool_client()
        .user_pool_id(&pool.info().user_pool_id)
        .client_id(&pool.info().client_id)
        .send()
        .await
        .expect("describe client");
    let flows = app.user_pool_client().expect("client").explicit_auth_flows();
    assert_eq!(flows, [ExplicitAuthFlowsType::AllowCustomAuth, ExplicitAuthFlowsType::AllowRefreshTokenAuth]);
}

#[tokio::test]
async fn a_client_without_allow_custom_auth_refuses_custom_auth_and_still_does_user_auth() {
    let pool =
        start_pool(PoolConfig { explicit_auth_flows: vec!["ALLOW_USER_AUTH".into()], ..PoolConfig::default() }).await;
    let client = sdk(&pool);
    assert_error(
        error_of(support::initiate(&client, &pool, USER).await),
        ("InvalidParameterException", "CUSTOM_AUTH flow not enabled for this client"),
    );
    let (session, code) = email_otp_session(&client, &pool).await;
    signed_in(answer_code(&client, &pool, &session, USER, &code).await);
}

#[tokio::test]
async fn a_pool_without_email_otp_offers_only_password_and_refuses_email_otp() {
    let pool =
        start_pool(PoolConfig { allowed_first_auth_factors: vec!["PASSWORD".into()], ..PoolConfig::default() }).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("no error: a fallback");
    assert_eq!(started.challenge_name(), Some(&ChallengeNameType::SelectChallenge));
    assert_eq!(started.available_challenges(), [ChallengeNameType::Password, ChallengeNameType::PasswordSrp]);
    let session = started.session().expect("Session");
    assert_error(
        error_of(select(&client, &pool, session, USER, "EMAIL_OTP").await),
        ("InvalidParameterException", "The challenge EMAIL_OTP is not available for this user."),
    );
    assert_error(
        error_of(select(&client, &pool, session, USER, "PASSWORD").await),
        ("NotAuthorizedException", "Incorrect username or password."),
    );
    assert!(mails_to(&pool, USER).await.is_empty());
    let described = client.describe_user_pool().user_pool_id(&pool.info().user_pool_id).send().await.expect("describe");
    let factors = described
        .user_pool()
        .and_then(|p| p.policies())
        .and_then(|p| p.sign_in_policy())
        .map(|s| s.allowed_first_auth_factors().to_vec());
    assert_eq!(factors, Some(vec![AuthFactorType::Password]));
}

#[tokio::test]
async fn the_default_pool_describes_both_flows_and_email_otp() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let described = client.describe_user_pool().user_pool_id(&pool.info().user_pool_id).send().await.expect("describe");
    let user_pool = described.user_pool().expect("pool");
    let factors = user_pool.policies().and_then(|p| p.sign_in_policy()).map(|s| s.allowed_first_auth_factors());
    assert_eq!(factors, Some(&[AuthFactorType::Password, AuthFactorType::EmailOtp][..]));
    assert_eq!(user_pool.user_pool_tier().map(|t| t.as_str()), Some("ESSENTIALS"));
    let app = client
        .describe_user_pool_client()
        .user_pool_id(&pool.info().user_pool_id)
        .client_id(&pool.info().client_id)
        .send()
        .await
        .expect("describe client");
    let app = app.user_pool_client().expect("client");
    assert_eq!(
        app.explicit_auth_flows(),
        [
            ExplicitAuthFlowsType::AllowCustomAuth,
            ExplicitAuthFlowsType::AllowUserAuth,
            ExplicitAuthFlowsType::AllowRefreshTokenAuth
        ]
    );
    assert_eq!(app.auth_session_validity(), Some(3));
}

#[tokio::test]
async fn a_right_code_verifies_an_unverified_email() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let fresh = "fresh@mail.test";
    client
        .admin_create_user()
        .user_pool_id(&pool.info().user_pool_id)
        .username(fresh)
        .user_attributes(cip::types::AttributeType::builder().name("email").value(fresh).build().expect("attr"))
        .message_action(cip::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("create");
    let started = initiate(&client, &pool, fresh, Some("EMAIL_OTP")).await.expect("initiate");
    let code = latest_code(&pool, fresh).await;
    let result = signed_in(answer_code(&client, &pool, started.session().expect("Session"), fresh, &code).await);
    assert_eq!(claims(result.id_token().expect("id"))["email_verified"], true);
    let user = client.admin_get_user().user_pool_id(&pool.info().user_pool_id).username(fresh).send().await;
    let verified =
        user.expect("get").user_attributes().iter().any(|a| a.name() == "email_verified" && a.value() == Some("true"));
    assert!(verified);
}

#[tokio::test]
async fn missing_members_are_cognito_errors() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let (session, _) = email_otp_session(&client, &pool).await;
    let no_code = client
        .respond_to_auth_challenge()
        .client_id(&pool.info().client_id)
        .challenge_name(ChallengeNameType::EmailOtp)
        .session(&session)
        .challenge_responses("USERNAME", USER)
        .send()
        .await;
    assert_error(error_of(no_code), ("InvalidParameterException", "Missing required parameter EMAIL_OTP_CODE"));
    let no_user = client
        .initiate_auth()
        .auth_flow(AuthFlowType::UserAuth)
        .client_id(&pool.info().client_id)
        .auth_parameters("PREFERRED_CHALLENGE", "EMAIL_OTP")
        .send()
        .await;
    assert_error(error_of(no_user), ("InvalidParameterException", "Missing required parameter USERNAME"));
    assert_error(error_of(answer_code(&client, &pool, "forged", USER, "12345678").await), INVALID_SESSION);
}

// ---- defects, each next to its control on the default pool ----

/// 8 wrong codes, then the right one: the sound pool locks after 5.
#[tokio::test]
async fn defect_native_unbounded_attempts_never_locks() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_unbounded_attempts: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let (session, code) = email_otp_session(&client, &pool).await;
        for _ in 0..5 {
            assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
        }
        if defective {
            for _ in 0..3 {
                assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
            }
            signed_in(answer_code(&client, &pool, &session, USER, &code).await);
        } else {
            assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), LOCKED);
        }
    }
}

/// A used code offered in the next sign-in's session.
#[tokio::test]
async fn defect_native_code_valid_after_success_signs_in_again() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_code_valid_after_success: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let (session, used) = email_otp_session(&client, &pool).await;
        signed_in(answer_code(&client, &pool, &session, USER, &used).await);
        let (next, _) = email_otp_session(&client, &pool).await;
        let again = answer_code(&client, &pool, &next, USER, &used).await;
        if defective {
            signed_in(again);
        } else {
            assert_error(error_of(again), MISMATCH);
        }
    }
}

/// A code from an abandoned session offered in a new one.
#[tokio::test]
async fn defect_native_code_valid_in_new_session_accepts_an_earlier_sessions_code() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_code_valid_in_new_session: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let (_, abandoned) = email_otp_session(&client, &pool).await;
        let (next, _) = email_otp_session(&client, &pool).await;
        let answer = answer_code(&client, &pool, &next, USER, &abandoned).await;
        if defective {
            signed_in(answer);
        } else {
            assert_error(error_of(answer), MISMATCH);
        }
    }
}

/// The session and code that just gave tokens, again.
#[tokio::test]
async fn defect_native_consumed_session_accepted_signs_in_twice() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_consumed_session_accepted: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let (session, code) = email_otp_session(&client, &pool).await;
        signed_in(answer_code(&client, &pool, &session, USER, &code).await);
        let replay = answer_code(&client, &pool, &session, USER, &code).await;
        if defective {
            signed_in(replay);
        } else {
            assert_error(error_of(replay), INVALID_SESSION);
        }
    }
}

/// A wrong code, then the right one on the same session.
#[tokio::test]
async fn defect_native_wrong_code_ends_session_refuses_the_retry() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_wrong_code_ends_session: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let (session, code) = email_otp_session(&client, &pool).await;
        assert_error(error_of(answer_code(&client, &pool, &session, USER, &wrong_code(&code)).await), MISMATCH);
        let retry = answer_code(&client, &pool, &session, USER, &code).await;
        if defective {
            assert_error(error_of(retry), INVALID_SESSION);
        } else {
            signed_in(retry);
        }
    }
}

/// The code's length in the mail.
#[tokio::test]
async fn defect_native_short_code_mails_six_digits() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_short_code: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
        let mail = mails_to(&pool, USER).await.pop().expect("a mail");
        let text = mail["Body"]["text_part"].as_str().expect("text").to_string();
        let code: String = text.rsplit(' ').next().expect("code").to_string();
        assert!(code.chars().all(|c| c.is_ascii_digit()));
        assert_eq!(code.len(), if defective { 6 } else { 8 }, "{text}");
        signed_in(answer_code(&client, &pool, started.session().expect("Session"), USER, &code).await);
    }
}

/// Digits over 150 codes (1,200 digits: a fair generator shows every digit about 120 times).
#[tokio::test]
async fn defect_native_weak_code_generator_never_mails_a_nine() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_weak_code_generator: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        for _ in 0..150 {
            initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
        }
        let mut counts = [0usize; 10];
        for mail in mails_to(&pool, USER).await {
            for b in code_of(&mail, 8).bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        assert_eq!(counts.iter().sum::<usize>(), 1200);
        if defective {
            assert_eq!(counts[9], 0, "{counts:?}");
        } else {
            assert!(counts.iter().all(|&n| (60..=190).contains(&n)), "{counts:?}");
        }
    }
}

/// The ChallengeParameters of the EMAIL_OTP challenge.
#[tokio::test]
async fn defect_native_code_in_challenge_parameters_leaks_the_code() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { native_code_in_challenge_parameters: true, ..Default::default() }).await
    {
        let client = sdk(&pool);
        let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
        let parameters = params(started.challenge_parameters());
        let code = latest_code(&pool, USER).await;
        if defective {
            assert_eq!(parameters.get("EMAIL_OTP_CODE"), Some(&code));
        } else {
            let mut keys: Vec<&String> = parameters.keys().collect();
            keys.sort();
            assert_eq!(keys, ["CODE_DELIVERY_DELIVERY_MEDIUM", "CODE_DELIVERY_DESTINATION"]);
            assert!(parameters.values().all(|v| !v.contains(&code)));
        }
    }
}

/// The shared unknown-user defects reach USER_AUTH too.
#[tokio::test]
async fn defect_unknown_user_error_tells_unknown_users_apart_in_user_auth() {
    for (defective, pool) in
        control_and_defective(DefectsConfig { unknown_user_error: true, ..Default::default() }).await
    {
        let answer = initiate(&sdk(&pool), &pool, "nobody@mail.test", Some("EMAIL_OTP")).await;
        if defective {
            assert_error(error_of(answer), ("NotAuthorizedException", "User does not exist."));
        } else {
            assert_eq!(answer.expect("fake challenge").challenge_name(), Some(&ChallengeNameType::EmailOtp));
        }
    }
}

#[tokio::test]
async fn native_codes_reach_dovecot_over_lmtp_and_the_code_read_over_imap_signs_in() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot starts");
    let mut config = PoolConfig::default();
    config.mail.relay = Some(RelayConfig {
        protocol: RelayProtocol::Lmtp,
        host: "127.0.0.1".into(),
        port: dovecot.lmtp_port,
        concurrency: 2,
    });
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");

    let mut imap = dovecot.login().await.expect("imap login");
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        imap.select("INBOX").await.expect("select");
        if let Some(uid) = imap.uid_search("ALL").await.expect("search").into_iter().max() {
            let fetched: Vec<_> =
                imap.uid_fetch(uid.to_string(), "BODY.PEEK[]").await.expect("fetch").try_collect().await.expect("all");
            break fetched[0].body().expect("body").to_vec();
        }
        assert!(Instant::now() < deadline, "the code mail reached the mailbox within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    imap.logout().await.ok();
    let message = mail_parser::MessageParser::default().parse(&raw).expect("MIME");
    assert_eq!(message.subject(), Some("Your authentication code"));
    let text = message.body_text(0).expect("text part").into_owned();
    let code = regex::Regex::new(r"\b(\d{8})\b").expect("regex").captures(&text).expect("a code")[1].to_string();
    signed_in(answer_code(&client, &pool, started.session().expect("Session"), USER, &code).await);
}

#[tokio::test]
async fn a_session_answers_only_its_own_challenge() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let custom = support::initiate(&client, &pool, USER).await.expect("custom");
    let custom_session = custom.session().expect("Session");
    assert_error(error_of(answer_code(&client, &pool, custom_session, USER, "12345678").await), INVALID_SESSION);
    let (session, code) = email_otp_session(&client, &pool).await;
    assert_error(error_of(support::respond(&client, &pool, &session, USER, &code).await), INVALID_SESSION);
    assert_error(error_of(select(&client, &pool, &session, USER, "EMAIL_OTP").await), INVALID_SESSION);
    let select_session = initiate(&client, &pool, USER, None).await.expect("select");
    let select_session = select_session.session().expect("Session");
    assert_error(error_of(answer_code(&client, &pool, select_session, USER, &code).await), INVALID_SESSION);
    signed_in(answer_code(&client, &pool, &session, USER, &code).await);
}

#[tokio::test]
async fn native_codes_stored_in_s3_as_a_receipt_rule_would_sign_in() {
    let s3 = otp_harness::testkit::s3server::S3Server::start().await.expect("S3 server starts");
    let mut config = PoolConfig::default();
    config.mail.s3 = Some(otp_harness::pool::config::S3SinkConfig {
        endpoint_url: s3.endpoint(),
        bucket: "otp-mail".into(),
        prefix: "inbound/".into(),
        region: "us-east-1".into(),
        create_bucket: true,
    });
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER, Some("EMAIL_OTP")).await.expect("initiate");
    let s3_client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(s3.endpoint())
            .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "tests"))
            .force_path_style(true)
            .build(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let key = loop {
        let listed = s3_client.list_objects_v2().bucket("otp-mail").prefix("inbound/").send().await.expect("list");
        if let Some(key) = listed.contents().first().and_then(|o| o.key()) {
            break key.to_string();
        }
        assert!(Instant::now() < deadline, "the code mail reached S3 within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let object = s3_client.get_object().bucket("otp-mail").key(&key).send().await.expect("get");
    let raw = object.body.collect().await.expect("body").into_bytes();
    let message = mail_parser::MessageParser::default().parse(&raw[..]).expect("MIME");
    assert_eq!(message.subject(), Some("Your authentication code"));
    let text = message.body_text(0).expect("text part").into_owned();
    let code = regex::Regex::new(r"\b(\d{8})\b").expect("regex").captures(&text).expect("a code")[1].to_string();
    signed_in(answer_code(&client, &pool, started.session().expect("Session"), USER, &code).await);
}
