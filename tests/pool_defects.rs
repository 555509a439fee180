//! Every deliberate defect of the local pool is observable from a client — and absent from a default
//! pool, which each test checks as its control.

mod support;

use std::time::{Duration, Instant};

use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::DefectsConfig;
use support::*;

fn with(defects: DefectsConfig) -> PoolConfig {
    PoolConfig { defects, ..PoolConfig::default() }
}

/// Answers `answers` wrong codes in a row; true if every one of them got a new challenge.
async fn survives_wrong_answers(config: PoolConfig, answers: usize) -> bool {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (mut session, username) = challenge_of(started.session(), started.challenge_parameters());
    for _ in 0..answers {
        let code = latest_code(&pool, USER).await;
        match respond(&client, &pool, &session, &username, &wrong_code(&code)).await {
            Ok(next) => session = challenge_of(next.session(), next.challenge_parameters()).0,
            Err(_) => return false,
        }
    }
    true
}

#[tokio::test]
async fn unbounded_retries_never_lock_the_sign_in() {
    assert!(survives_wrong_answers(with(DefectsConfig { unbounded_retries: true, ..Default::default() }), 8).await);
    assert!(!survives_wrong_answers(PoolConfig::default(), 3).await, "control: the third wrong code locks");
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
    assert_ne!(control[0], control[1]);
}

/// Signs in once (if `use_first`), then tries the first session's code in a second session.
async fn old_code_accepted_in_new_session(config: PoolConfig, use_first: bool) -> bool {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let first = initiate(&client, &pool, USER).await.expect("first sign-in");
    let (session, username) = challenge_of(first.session(), first.challenge_parameters());
    let old_code = latest_code(&pool, USER).await;
    if use_first {
        respond(&client, &pool, &session, &username, &old_code).await.expect("first sign-in succeeds");
    }
    let second = initiate(&client, &pool, USER).await.expect("second sign-in");
    let (session, username) = challenge_of(second.session(), second.challenge_parameters());
    let new_code = latest_code(&pool, USER).await;
    if new_code == old_code {
        return false; // one chance in a million: the new round drew the same code
    }
    let answer = respond(&client, &pool, &session, &username, &old_code).await.expect("an answer");
    answer.authentication_result().is_some()
}

#[tokio::test]
async fn a_used_code_accepted_again_is_caught() {
    let defective = with(DefectsConfig { code_valid_after_success: true, ..Default::default() });
    assert!(old_code_accepted_in_new_session(defective, true).await);
    assert!(!old_code_accepted_in_new_session(PoolConfig::default(), true).await, "control");
}

#[tokio::test]
async fn a_code_from_an_abandoned_session_accepted_in_a_new_one_is_caught() {
    let defective = with(DefectsConfig { code_valid_in_new_session: true, ..Default::default() });
    assert!(old_code_accepted_in_new_session(defective, false).await);
    assert!(!old_code_accepted_in_new_session(PoolConfig::default(), false).await, "control");
}

/// Answers wrong on the first Session, then answers the first code on that same (consumed) Session.
async fn consumed_session_signs_in(config: PoolConfig) -> bool {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let first_code = latest_code(&pool, USER).await;
    respond(&client, &pool, &session, &username, &wrong_code(&first_code)).await.expect("next round");
    respond(&client, &pool, &session, &username, &first_code)
        .await
        .is_ok_and(|answer| answer.authentication_result().is_some())
}

#[tokio::test]
async fn a_consumed_session_accepted_again_is_caught() {
    assert!(
        consumed_session_signs_in(with(DefectsConfig { consumed_session_accepted: true, ..Default::default() })).await
    );
    assert!(!consumed_session_signs_in(PoolConfig::default()).await, "control");
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
    assert_eq!(started.challenge_parameters().map(|p| p.len()), Some(1), "control: USERNAME only");
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
    assert!(initiate(&sdk(&control), &control, "nobody@mail.test").await.is_ok(), "control: a fake challenge");
}

#[tokio::test]
async fn unknown_users_told_apart_by_their_delay_are_caught() {
    let pool =
        start_pool(with(DefectsConfig { unknown_user_delay: Duration::from_millis(300), ..Default::default() })).await;
    let client = sdk(&pool);
    let started = Instant::now();
    initiate(&client, &pool, "nobody@mail.test").await.expect("a fake challenge");
    assert!(started.elapsed() >= Duration::from_millis(300), "unknown user answered after {:?}", started.elapsed());
}

/// Answers wrong once, then answers `pick(round-1 code, round-2 code)` on the round-2 Session; true if
/// that signed in.
async fn second_round_accepts(config: PoolConfig, pick_first: bool) -> bool {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let first = latest_code(&pool, USER).await;
    let next = respond(&client, &pool, &session, &username, &wrong_code(&first)).await.expect("round 2");
    let (session, _) = challenge_of(next.session(), next.challenge_parameters());
    let second = latest_code(&pool, USER).await;
    let answer = if pick_first { first } else { second };
    respond(&client, &pool, &session, &username, &answer).await.is_ok_and(|a| a.authentication_result().is_some())
}

#[tokio::test]
async fn earlier_round_codes_accepted_let_the_first_code_sign_in_in_round_two() {
    assert!(
        second_round_accepts(with(DefectsConfig { earlier_round_codes_accepted: true, ..Default::default() }), true)
            .await
    );
    assert!(!second_round_accepts(PoolConfig::default(), true).await, "control: the round-1 code is refused");
}

#[tokio::test]
async fn verifying_against_the_previous_round_refuses_the_code_just_mailed() {
    assert!(
        !second_round_accepts(with(DefectsConfig { verify_against_previous_round: true, ..Default::default() }), false)
            .await
    );
    assert!(second_round_accepts(PoolConfig::default(), false).await, "control: the round-2 code signs in");
}

/// Starts sign-ins until a code with a leading zero is mailed, answers it; true if it signed in.
async fn leading_zero_code_signs_in(config: PoolConfig) -> bool {
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    for _ in 0..300 {
        let started = initiate(&client, &pool, USER).await.expect("initiate");
        let code = latest_code(&pool, USER).await;
        if code.starts_with('0') {
            let (session, username) = challenge_of(started.session(), started.challenge_parameters());
            return respond(&client, &pool, &session, &username, &code)
                .await
                .is_ok_and(|a| a.authentication_result().is_some());
        }
    }
    panic!("300 codes without a leading zero");
}

#[tokio::test]
async fn codes_with_a_leading_zero_are_refused_by_a_numeric_comparison() {
    assert!(
        !leading_zero_code_signs_in(with(DefectsConfig { leading_zero_codes_refused: true, ..Default::default() }))
            .await
    );
    assert!(leading_zero_code_signs_in(PoolConfig::default()).await, "control");
}
