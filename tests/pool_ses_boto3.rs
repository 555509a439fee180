//! boto3 — an SES client nobody here wrote — sends through the local pool's SES v1 (query protocol) and
//! v2 (REST JSON) APIs, finding the pool only through `AWS_ENDPOINT_URL_SES` / `AWS_ENDPOINT_URL_SESV2`
//! (`tests/clients/boto3_ses.py`, run by the Python of `.venv`, which scripts/install-test-deps.sh makes:
//! moto brings boto3). The harness then reads each mail back from the outbox and, through the pool's
//! LMTP relay, over IMAP from a Dovecot it started, and finds each code with its own extractor
//! (`otp::extract`). A missing Python or Dovecot is a failure, not a skip.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use otp_harness::otp::extract::Extractor;
use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::{RelayConfig, RelayProtocol};
use otp_harness::pool::ses::SesConfig;
use otp_harness::testkit::dovecot::Dovecot;
use serde_json::{Value, json};
use support::start_pool;

const FROM: &str = "no-reply@auth.otp-harness.test";
const CODE_PATTERN: &str = r"\b(\d{6})\b";

/// `OTP_HARNESS_PYTHON`, or the project's `.venv`.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("OTP_HARNESS_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run scripts/install-test-deps.sh (moto brings boto3)", venv.display());
    venv
}

#[tokio::test]
async fn boto3_sends_through_ses_v1_and_v2_and_the_harness_reads_the_codes_from_outbox_and_imap() {
    let dovecot = Dovecot::start("loadtest@mail.test").await.expect("dovecot starts");
    let mut config = PoolConfig::default();
    config.mail.relay = Some(RelayConfig {
        protocol: RelayProtocol::Lmtp,
        host: "127.0.0.1".into(),
        port: dovecot.lmtp_port,
        concurrency: 2,
    });
    config.ses = SesConfig { verified_identities: Some(vec!["auth.otp-harness.test".into()]), ..SesConfig::default() };
    let pool = start_pool(config).await;

    let to = ["loadtest+v1@mail.test", "loadtest+raw@mail.test", "loadtest+v2@mail.test"];
    let codes: Vec<String> =
        (0..3).map(|i| format!("{:06}", (rand::random::<u32>() % 900_000) + 100_000 + i)).collect();
    let expected: BTreeMap<String, String> = to.iter().map(|t| t.to_string()).zip(codes.iter().cloned()).collect();
    let args = json!({ "region": pool.info().region, "from": FROM, "to": to, "codes": codes });
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/boto3_ses.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .arg(args.to_string())
        .env("AWS_ENDPOINT_URL_SES", pool.endpoint())
        .env("AWS_ENDPOINT_URL_SESV2", pool.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/nonexistent/otp-harness")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/otp-harness")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
        .output()
        .await
        .expect("python runs");
    assert!(output.status.success(), "boto3 script failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let seen: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");

    let rejected = |protocol_status: u16| {
        json!({
            "Code": "MessageRejected",
            "Message": "Email address is not verified. The following identities failed the check in region US-EAST-1: intruder@elsewhere.test",
            "Status": protocol_status,
        })
    };
    let ids = seen["message_ids"].clone();
    assert_eq!(
        seen,
        json!({
            "endpoints": { "ses": pool.endpoint(), "sesv2": pool.endpoint() },
            "v1_quota": { "Max24HourSend": 1_000_000.0, "MaxSendRate": 1_000.0, "SentLast24Hours": 0.0 },
            "v1_sending_enabled": true,
            "v2_account": { "ProductionAccessEnabled": true, "SendingEnabled": true, "EnforcementStatus": "HEALTHY" },
            "v2_identity": { "IdentityType": "DOMAIN", "VerifiedForSendingStatus": true, "VerificationStatus": "SUCCESS" },
            "message_ids": ids,
            "v1_unverified": rejected(400),
            "v2_unverified": rejected(400),
            "v2_absent_identity": {
                "Code": "NotFoundException",
                "Message": "Email identity intruder@elsewhere.test does not exist.",
                "Status": 404,
            },
        })
    );
    let ids: Vec<String> = ids.as_array().expect("ids").iter().map(|v| v.as_str().expect("id").to_string()).collect();
    assert_eq!(ids.len(), 3);

    // The outbox: each mail under the MessageId boto3 got, its code found by the harness's extractor.
    let extractor = Extractor::new(CODE_PATTERN, Some(FROM)).expect("pattern");
    let mut from_outbox = BTreeMap::new();
    for id in &ids {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/_aws/ses", pool.endpoint()))
            .query(&[("id", id)])
            .send()
            .await
            .expect("outbox")
            .json()
            .await
            .expect("json");
        let message = &body["messages"][0];
        assert_eq!(message["Id"], id.as_str());
        assert_eq!(message["Source"], FROM);
        let extracted = extractor.extract(message["RawData"].as_str().expect("raw").as_bytes()).expect("MIME");
        let recipient = extracted.recipients.first().expect("a recipient").clone();
        from_outbox.insert(recipient, extracted.code.expect("a code"));
    }
    assert_eq!(from_outbox, expected, "the outbox has every code, each for its recipient");

    // Dovecot, over IMAP: the same three mails, relayed over LMTP.
    let mut imap = dovecot.login().await.expect("imap login");
    let deadline = Instant::now() + Duration::from_secs(15);
    let raws: Vec<Vec<u8>> = loop {
        imap.select("INBOX").await.expect("select");
        let uids = imap.uid_search("ALL").await.expect("search");
        if uids.len() >= 3 {
            let fetched: Vec<_> =
                imap.uid_fetch("1:*", "BODY.PEEK[]").await.expect("fetch").try_collect().await.expect("fetched");
            break fetched.iter().filter_map(|f| f.body().map(<[u8]>::to_vec)).collect();
        }
        assert!(Instant::now() < deadline, "3 mails reached Dovecot within 15 s (saw {})", uids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    imap.logout().await.ok();
    let from_imap: BTreeMap<String, String> = raws
        .iter()
        .map(|raw| {
            let extracted = extractor.extract(raw).expect("MIME");
            (extracted.recipients.first().expect("a recipient").clone(), extracted.code.expect("a code"))
        })
        .collect();
    assert_eq!(from_imap, expected, "IMAP has every code, each for its recipient");

    let stats = pool.state().stats_snapshot();
    assert_eq!(stats.mail.relayed, 3);
    assert_eq!((stats.ses.accepted, stats.ses.errors.get("MessageRejected")), (3, Some(&2)));
    for op in ["v1:GetSendQuota", "v1:SendEmail", "v1:SendRawEmail", "v2:GetAccount", "v2:SendEmail"] {
        assert!(stats.ses.requests.get(op).is_some_and(|n| *n >= 1), "{op} counted: {:?}", stats.ses.requests);
    }
}
