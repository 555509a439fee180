//! Every deliberate defect of the local pool is observable from a client — and absent from a default
//! pool, which each test checks as its control: the control asserts the exact answer a sound pool gives
//! (a new challenge, tokens, or Cognito's exact error), so a pool that answers nothing cannot pass it.

mod support;

use std::time::{Duration, Instant};

use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::DefectsConfig;
use support::*;

fn with(defects: DefectsConfig) -> PoolConfig {
    PoolConfig { defects, ..PoolConfig::default() }
}

/// What an answer to a challenge got back.
#[derive(Debug, PartialEq)]
enum Answer {
    /// Tokens.
    SignedIn,
    /// Another custom challenge, with a Session.
    Challenged,
    /// A Cognito error: `__type` and message.
    Refused(String, String),
}

type RespondResult = Result<
    aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
    aws_sdk_cognitoidentityprovider::error::SdkError<
        aws_sdk_cognitoidentityprovider::operation::respond_to_auth_challenge::RespondToAuthChallengeError,
        aws_sdk_cognitoidentityprovider::config::http::HttpResponse,
    >,
>;

/// The answer (panics on a transport error or a malformed answer: a sound pool answers properly).
fn answer_of(result: RespondResult) -> Answer {
    match result {
        Ok(out) => match (out.authentication_result(), out.session()) {
            (Some(tokens), None) => {
                assert!(tokens.id_token().is_some() && tokens.access_token().is_some(), "both tokens");
                Answer::SignedIn
            }
            (None, Some(_)) => {
                assert_eq!(out.challenge_name().map(|c| c.as_str()), Some("CUSTOM_CHALLENGE"));
                Answer::Challenged
            }
            other => panic!("neither tokens nor a challenge: {other:?}"),
        },
        Err(e) => {
            let (kind, message) = service_error(e);
            Answer::Refused(kind, message)
        }
    }
}

fn refused(kind: &str, message: &str) -> Answer {
    Answer::Refused(kind.to_string(), message.to_string())
}

/// Answers up to `answers` wrong codes in a row, stopping at the first answer that is not a challenge.
async fn wrong_answers(config: PoolConfig, answers: usize) -> Vec<Answer> {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (mut session, username) = challenge_of(started.session(), started.challenge_parameters());
    let mut got = Vec::new();
    for _ in 0..answers {
        let code = latest_code(&pool, USER).await;
        let result = respond(&client, &pool, &session, &username, &wrong_code(&code)).await;
        if let Some(next_session) = result.as_ref().ok().and_then(|next| next.session()) {
            session = next_session.to_string();
        }
        let answer = answer_of(result);
        let go_on = answer == Answer::Challenged;
        got.push(answer);
        if !go_on {
            break;
        }
    }
    got
}

#[tokio::test]
async fn unbounded_retries_never_lock_the_sign_in() {
    let defective = wrong_answers(with(DefectsConfig { unbounded_retries: true, ..Default::default() }), 8).await;
    assert_eq!(defective, (0..8).map(|_| Answer::Challenged).collect::<Vec<_>>());
    assert_eq!(
        wrong_answers(PoolConfig::default(), 8).await,
        [Answer::Challenged, Answer::Challenged, refused("NotAuthorizedException", "Incorrect username or password.")],
        "control: the third wrong code locks"
    );
}

/// Codes mailed over two rounds (one wrong answer between).
async fn codes_over_two_rounds(config: PoolConfig) -> Vec<String> {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let code = latest_code(&pool, USER).await;
    respond(&client, &pool, &session, &username, &wrong_code(&code)).await.expect("second round");
    codes_for(&pool, USER).await
}

#[tokio::test]
async fn the_same_code_every_round_is_visible_in_the_mail() {
    let codes = codes_over_two_rounds(with(DefectsConfig { same_code_every_round: true, ..Default::default() })).await;
    assert_eq!(codes.len(), 2);
    assert_eq!(codes[0], codes[1]);
    let control = codes_over_two_rounds(PoolConfig::default()).await;
    assert_eq!(control.len(), 2, "control: a code each round");
    assert_ne!(control[0], control[1], "control: a new code each round");
}

/// Signs in once (if `use_first`), then answers the first session's code in a second session.
async fn old_code_in_new_session(config: PoolConfig, use_first: bool) -> Answer {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let first = initiate(&client, &pool, USER).await.expect("first sign-in");
    let (session, username) = challenge_of(first.session(), first.challenge_parameters());
    let old_code = latest_code(&pool, USER).await;
    if use_first {
        let first = respond(&client, &pool, &session, &username, &old_code).await;
        assert_eq!(answer_of(first), Answer::SignedIn, "the first sign-in succeeds");
    }
    let second = initiate(&client, &pool, USER).await.expect("second sign-in");
    let (session, username) = challenge_of(second.session(), second.challenge_parameters());
    let new_code = latest_code(&pool, USER).await;
    assert_ne!(new_code, old_code, "one chance in a million: the new round drew the same code");
    answer_of(respond(&client, &pool, &session, &username, &old_code).await)
}

#[tokio::test]
async fn a_used_code_accepted_again_is_caught() {
    let defective = with(DefectsConfig { code_valid_after_success: true, ..Default::default() });
    assert_eq!(old_code_in_new_session(defective, true).await, Answer::SignedIn);
    assert_eq!(
        old_code_in_new_session(PoolConfig::default(), true).await,
        Answer::Challenged,
        "control: a wrong answer, so the next round"
    );
}

#[tokio::test]
async fn a_code_from_an_abandoned_session_accepted_in_a_new_one_is_caught() {
    let defective = with(DefectsConfig { code_valid_in_new_session: true, ..Default::default() });
    assert_eq!(old_code_in_new_session(defective, false).await, Answer::SignedIn);
    assert_eq!(
        old_code_in_new_session(PoolConfig::default(), false).await,
        Answer::Challenged,
        "control: a wrong answer, so the next round"
    );
}

/// Answers wrong on the first Session, then answers the first code on that same (consumed) Session.
async fn consumed_session_answer(config: PoolConfig) -> Answer {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let first_code = latest_code(&pool, USER).await;
    let next = respond(&client, &pool, &session, &username, &wrong_code(&first_code)).await;
    assert_eq!(answer_of(next), Answer::Challenged, "the wrong code gets the next round");
    answer_of(respond(&client, &pool, &session, &username, &first_code).await)
}

#[tokio::test]
async fn a_consumed_session_accepted_again_is_caught() {
    assert_eq!(
        consumed_session_answer(with(DefectsConfig { consumed_session_accepted: true, ..Default::default() })).await,
        Answer::SignedIn
    );
    assert_eq!(
        consumed_session_answer(PoolConfig::default()).await,
        refused("NotAuthorizedException", "Invalid session for the user."),
        "control"
    );
}

#[tokio::test]
async fn the_answer_leaked_in_challenge_parameters_is_visible() {
    let pool = start_pool(with(DefectsConfig { answer_in_challenge_parameters: true, ..Default::default() })).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let leaked = started.challenge_parameters().and_then(|p| p.get("answer")).cloned();
    assert_eq!(leaked, Some(latest_code(&pool, USER).await));

    let control = start_pool(PoolConfig::default()).await;
    let started = initiate(&sdk(&control), &control, USER).await.expect("initiate");
    let keys: Vec<&String> = started.challenge_parameters().expect("parameters").keys().collect();
    assert_eq!(keys, ["USERNAME"], "control: USERNAME only");
}

/// How often each digit appears over `rounds` codes mailed to three users.
async fn digit_counts(config: PoolConfig, rounds: usize) -> [usize; 10] {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let users = ["loadtest+1@mail.test", "loadtest+2@mail.test", "loadtest+3@mail.test"];
    for n in 0..rounds {
        initiate(&client, &pool, users[n % users.len()]).await.expect("initiate");
    }
    let mut counts = [0; 10];
    for user in users {
        for code in codes_for(&pool, user).await {
            for digit in code.bytes() {
                counts[usize::from(digit - b'0')] += 1;
            }
        }
    }
    counts
}

#[tokio::test]
async fn a_weak_code_generator_shows_in_digit_frequencies() {
    let weak = digit_counts(with(DefectsConfig { weak_code_generator: true, ..Default::default() }), 120).await;
    assert_eq!(weak.iter().sum::<usize>(), 720);
    assert_eq!(weak[9], 0, "the weak generator never yields a 9");
    let control = digit_counts(PoolConfig::default(), 120).await;
    assert!(control.iter().all(|&n| n > 20), "control: every digit appears ({control:?})");
}

#[tokio::test]
async fn unknown_users_told_apart_by_their_error_are_caught() {
    let pool = start_pool(with(DefectsConfig { unknown_user_error: true, ..Default::default() })).await;
    let err = initiate(&sdk(&pool), &pool, "nobody@mail.test").await.unwrap_err();
    assert_eq!(service_error(err), ("NotAuthorizedException".to_string(), "User does not exist.".to_string()));
    let control = start_pool(PoolConfig::default()).await;
    let client = sdk(&control);
    let fake = initiate(&client, &control, "nobody@mail.test").await.expect("control: a fake challenge");
    let real = initiate(&client, &control, USER).await.expect("a known user's challenge");
    for started in [&fake, &real] {
        assert_eq!(started.challenge_name().map(|c| c.as_str()), Some("CUSTOM_CHALLENGE"));
        let keys: Vec<&String> = started.challenge_parameters().expect("parameters").keys().collect();
        assert_eq!(keys, ["USERNAME"]);
    }
    let (session, username) = challenge_of(fake.session(), fake.challenge_parameters());
    assert_ne!(username, "nobody@mail.test", "control: an internal-looking USERNAME, as for known users");
    assert_eq!(
        answer_of(respond(&client, &control, &session, &username, "123456").await),
        Answer::Challenged,
        "control: the fake challenge goes on like a real one"
    );
}

/// How long InitiateAuth takes for `user` (the fastest of three).
async fn initiate_time(pool: &otp_harness::pool::RunningPool, user: &str) -> Duration {
    let client = sdk(pool);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = initiate(&client, pool, user).await.expect("a challenge");
        assert!(answer.session().is_some());
        best = best.min(started.elapsed());
    }
    best
}

#[tokio::test]
async fn unknown_users_told_apart_by_their_delay_are_caught() {
    let pool =
        start_pool(with(DefectsConfig { unknown_user_delay: Duration::from_millis(300), ..Default::default() })).await;
    let (known, unknown) = (initiate_time(&pool, USER).await, initiate_time(&pool, "nobody@mail.test").await);
    assert!(unknown >= Duration::from_millis(300), "unknown user answered after {unknown:?}");
    assert!(known < Duration::from_millis(150), "a known user is answered at once: {known:?}");

    let control = start_pool(PoolConfig::default()).await;
    let (known, unknown) = (initiate_time(&control, USER).await, initiate_time(&control, "nobody@mail.test").await);
    assert!(unknown < Duration::from_millis(150), "control: no delay for unknown users: {unknown:?}");
    assert!(unknown.abs_diff(known) < Duration::from_millis(100), "control: {unknown:?} vs {known:?}");
}

/// Answers wrong once, then answers `pick(round-1 code, round-2 code)` on the round-2 Session.
async fn second_round_answer(config: PoolConfig, pick_first: bool) -> Answer {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let first = latest_code(&pool, USER).await;
    let next = respond(&client, &pool, &session, &username, &wrong_code(&first)).await.expect("round 2");
    let (session, _) = challenge_of(next.session(), next.challenge_parameters());
    let second = latest_code(&pool, USER).await;
    assert_ne!(first, second, "one chance in a million: both rounds drew the same code");
    let answer = if pick_first { first } else { second };
    answer_of(respond(&client, &pool, &session, &username, &answer).await)
}

#[tokio::test]
async fn earlier_round_codes_accepted_let_the_first_code_sign_in_in_round_two() {
    assert_eq!(
        second_round_answer(with(DefectsConfig { earlier_round_codes_accepted: true, ..Default::default() }), true)
            .await,
        Answer::SignedIn
    );
    assert_eq!(
        second_round_answer(PoolConfig::default(), true).await,
        Answer::Challenged,
        "control: the round-1 code is a wrong answer now"
    );
}

#[tokio::test]
async fn verifying_against_the_previous_round_refuses_the_code_just_mailed() {
    assert_eq!(
        second_round_answer(with(DefectsConfig { verify_against_previous_round: true, ..Default::default() }), false)
            .await,
        Answer::Challenged
    );
    assert_eq!(
        second_round_answer(PoolConfig::default(), false).await,
        Answer::SignedIn,
        "control: the round-2 code signs in"
    );
}

/// Starts sign-ins until a code with a leading zero is mailed, answers it.
async fn leading_zero_code_answer(config: PoolConfig) -> Answer {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    for _ in 0..300 {
        let started = initiate(&client, &pool, USER).await.expect("initiate");
        let code = latest_code(&pool, USER).await;
        if code.starts_with('0') {
            let (session, username) = challenge_of(started.session(), started.challenge_parameters());
            return answer_of(respond(&client, &pool, &session, &username, &code).await);
        }
    }
    panic!("300 codes without a leading zero");
}

#[tokio::test]
async fn codes_with_a_leading_zero_are_refused_by_a_numeric_comparison() {
    assert_eq!(
        leading_zero_code_answer(with(DefectsConfig { leading_zero_codes_refused: true, ..Default::default() })).await,
        Answer::Challenged
    );
    assert_eq!(leading_zero_code_answer(PoolConfig::default()).await, Answer::SignedIn, "control");
}
