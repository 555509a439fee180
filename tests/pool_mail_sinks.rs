//! Code mail through real servers: LMTP into Dovecot and read back over IMAP, and S3 (moto) as an SES
//! receipt rule stores it; each code read back signs the user in.

mod support;

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::{RelayConfig, RelayProtocol, S3SinkConfig};
use otp_harness::testkit::dovecot::Dovecot;
use otp_harness::testkit::s3server::S3Server;
use support::*;

/// Text and HTML bodies of a raw message, parsed as MIME.
fn bodies(raw: &[u8]) -> (String, String) {
    let message = mail_parser::MessageParser::default().parse(raw).expect("MIME parses");
    (message.body_text(0).expect("text part").into_owned(), message.body_html(0).expect("html part").into_owned())
}

#[tokio::test]
async fn codes_reach_dovecot_over_lmtp_and_read_back_over_imap_sign_in() {
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

    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());

    let mut imap = dovecot.login().await.expect("imap login");
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        imap.select("INBOX").await.expect("select");
        let uids = imap.uid_search("ALL").await.expect("search");
        if let Some(uid) = uids.into_iter().max() {
            let fetched: Vec<_> = imap
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .await
                .expect("fetch")
                .try_collect()
                .await
                .expect("fetched");
            break fetched[0].body().expect("body").to_vec();
        }
        assert!(Instant::now() < deadline, "the code mail reached the mailbox within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    imap.logout().await.ok();

    let message = mail_parser::MessageParser::default().parse(&raw).expect("MIME");
    assert_eq!(message.to().and_then(|a| a.first()).and_then(|a| a.address()), Some(USER));
    assert_eq!(
        message.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("no-reply@auth.otp-harness.test")
    );
    assert_eq!(message.subject(), Some("Your sign-in code"));
    assert!(message.date().is_some() && message.message_id().is_some());
    let (text, html) = bodies(&raw);
    let code = code_in(&text);
    assert!(html.contains(&code), "the HTML part carries the same code");
    assert_eq!(code, latest_code(&pool, USER).await, "IMAP and outbox agree");

    let done = respond(&client, &pool, &session, &username, &code).await.expect("code from IMAP signs in");
    assert!(done.authentication_result().is_some());
    assert_eq!(pool.state().stats_snapshot().mail.relayed, 1);
}

#[tokio::test]
async fn codes_stored_in_s3_as_a_receipt_rule_would_sign_in() {
    let s3 = S3Server::start().await.expect("S3 server starts");
    let mut config = PoolConfig::default();
    config.mail.s3 = Some(S3SinkConfig {
        endpoint_url: s3.endpoint(),
        bucket: "otp-mail".into(),
        prefix: "inbound/".into(),
        region: "us-east-1".into(),
        create_bucket: true,
    });
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());

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
    let outbox: serde_json::Value =
        reqwest::get(format!("{}/_aws/ses", pool.endpoint())).await.expect("outbox").json().await.expect("json");
    assert_eq!(
        key,
        format!("inbound/{}", outbox["messages"][0]["Id"].as_str().expect("id")),
        "key = prefix + message id"
    );

    let object = s3_client.get_object().bucket("otp-mail").key(&key).send().await.expect("get");
    let raw = object.body.collect().await.expect("body").into_bytes();
    let message = mail_parser::MessageParser::default().parse(&raw[..]).expect("MIME");
    assert_eq!(message.header_raw("X-SES-Spam-Verdict").map(str::trim), Some("PASS"));
    assert!(message.header_raw("Received").is_some_and(|r| r.contains("inbound-smtp.us-east-1.amazonaws.com")));
    let (text, _) = bodies(&raw);
    let done = respond(&client, &pool, &session, &username, &code_in(&text)).await.expect("code from S3 signs in");
    assert!(done.authentication_result().is_some());
}
