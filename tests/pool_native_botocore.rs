//! botocore — a Cognito client nobody here wrote — signs in to the local pool with USER_AUTH and EMAIL_OTP
//! (`tests/clients/botocore_email_otp.py`, run by the Python of `.venv`, which scripts/install-test-deps.sh
//! makes: moto brings botocore). What it saw must be exactly Cognito's shapes.

mod support;

use std::path::PathBuf;

use otp_harness::pool::PoolConfig;
use serde_json::{Value, json};
use support::{USER, start_pool};

/// `OTP_HARNESS_PYTHON`, or the project's `.venv`.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("OTP_HARNESS_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run scripts/install-test-deps.sh (moto brings botocore)", venv.display());
    venv
}

#[tokio::test]
async fn botocore_signs_in_with_select_challenge_and_with_a_preference() {
    let pool = start_pool(PoolConfig::default()).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/botocore_email_otp.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([pool.endpoint(), &pool.info().region, &pool.info().client_id, USER])
        .output()
        .await
        .expect("python runs");
    assert!(output.status.success(), "botocore script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    let destination = json!({ "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL", "CODE_DELIVERY_DESTINATION": "l***@m***" });
    assert_eq!(
        seen,
        json!({
            "select": { "ChallengeName": "SELECT_CHALLENGE", "AvailableChallenges": ["EMAIL_OTP"] },
            "picked": { "ChallengeName": "EMAIL_OTP", "ChallengeParameters": destination },
            "wrong": {
                "Code": "CodeMismatchException",
                "Message": "Invalid code or auth state for the user.",
                "Status": 400,
            },
            "signed_in": { "ExpiresIn": 3600, "TokenType": "Bearer", "tokens": ["AccessToken", "IdToken", "RefreshToken"] },
            "preferred": {
                "ChallengeName": "EMAIL_OTP",
                "AvailableChallenges": ["EMAIL_OTP"],
                "ChallengeParameters": destination,
            },
            "get_user_email": USER,
        })
    );
    assert_eq!(pool.state().stats_snapshot().mail.generated, 2);
}
