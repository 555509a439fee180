//! The local pool's SES v2 API through the AWS SDK for Rust (aws-sdk-sesv2, endpoint_url = the pool):
//! GetAccount (defaults, sandbox, SentLast24Hours), GetEmailIdentity (verified, pending, absent), the
//! suppression list, SendEmail (Simple and Raw, read back from the outbox), each sending rule's error,
//! and `faults.access_denied`.

mod support;

use std::time::Duration;

use aws_sdk_sesv2 as ses;
use otp_harness::pool::ses::{SesConfig, SuppressedAddress, SuppressionReason};
use otp_harness::pool::{PoolConfig, RunningPool};
use serde_json::Value;
use ses::error::{ProvideErrorMetadata, SdkError};
use ses::types::{Body, Content, Destination, EmailContent, Message, RawMessage, SuppressionListReason};
use support::{USER, start_pool};

const FROM: &str = "no-reply@auth.otp-harness.test";

/// aws-sdk-sesv2 pointed at the pool: dummy credentials, retries off.
fn client(pool: &RunningPool) -> ses::Client {
    let config = ses::Config::builder()
        .behavior_version(ses::config::BehaviorVersion::latest())
        .region(ses::config::Region::new(pool.info().region.clone()))
        .endpoint_url(pool.endpoint())
        .credentials_provider(ses::config::Credentials::new("test", "test", None, None, "tests"))
        .retry_config(ses::config::retry::RetryConfig::disabled())
        .timeout_config(
            ses::config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build(),
        )
        .build();
    ses::Client::from_conf(config)
}

async fn pool_with(ses: SesConfig) -> RunningPool {
    start_pool(PoolConfig { ses, ..PoolConfig::default() }).await
}

/// Error code, message and HTTP status of a service error (panics on anything else).
fn ses_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    err: SdkError<E, ses::config::http::HttpResponse>,
) -> (String, String, u16) {
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    match err.as_service_error() {
        Some(e) => (e.code().unwrap_or("").to_string(), e.message().unwrap_or("").to_string(), status),
        None => panic!("expected a service error, got {err:?}"),
    }
}

fn text(data: &str) -> Content {
    Content::builder().data(data).build().expect("content")
}

fn simple(subject: &str, body_text: &str, body_html: Option<&str>) -> EmailContent {
    let mut body = Body::builder().text(text(body_text));
    if let Some(html) = body_html {
        body = body.html(text(html));
    }
    EmailContent::builder().simple(Message::builder().subject(text(subject)).body(body.build()).build()).build()
}

fn to(addresses: &[&str]) -> Destination {
    let mut d = Destination::builder();
    for a in addresses {
        d = d.to_addresses(*a);
    }
    d.build()
}

/// Sends one simple mail; the MessageId or the error's code, message and status.
async fn send(client: &ses::Client, from: &str, recipients: &[&str]) -> Result<String, (String, String, u16)> {
    client
        .send_email()
        .from_email_address(from)
        .destination(to(recipients))
        .content(simple("Hello", "Your code is 123456", None))
        .send()
        .await
        .map(|o| o.message_id().unwrap_or("").to_string())
        .map_err(ses_error)
}

/// The outbox's messages matching `query` (`id=…`, `to=…`).
async fn outbox(pool: &RunningPool, query: &[(&str, &str)]) -> Vec<Value> {
    let body: Value = reqwest::Client::new()
        .get(format!("{}/_aws/ses", pool.endpoint()))
        .query(query)
        .send()
        .await
        .expect("outbox answers")
        .json()
        .await
        .expect("outbox JSON");
    body["messages"].as_array().expect("messages").clone()
}

#[tokio::test]
async fn get_account_shows_production_access_by_default_and_a_sandbox_when_told() {
    let pool = start_pool(PoolConfig::default()).await;
    let account = client(&pool).get_account().send().await.expect("GetAccount");
    assert!(account.production_access_enabled());
    assert!(account.sending_enabled());
    assert_eq!(account.enforcement_status(), Some("HEALTHY"));
    let quota = account.send_quota().expect("SendQuota");
    assert_eq!(
        (quota.max24_hour_send(), quota.max_send_rate(), quota.sent_last24_hours()),
        (1_000_000.0, 1_000.0, 0.0)
    );
    let reasons = account.suppression_attributes().map(|s| s.suppressed_reasons().to_vec()).unwrap_or_default();
    assert_eq!(reasons, [SuppressionListReason::Bounce, SuppressionListReason::Complaint]);
    // The pool's own code mail goes out through the account: it counts.
    let cognito = support::sdk(&pool);
    support::initiate(&cognito, &pool, USER).await.expect("initiate mails a code");
    let quota = client(&pool).get_account().send().await.expect("GetAccount").send_quota.expect("quota");
    assert_eq!(quota.sent_last24_hours(), 1.0, "code mail counts toward SentLast24Hours");

    let sandbox = pool_with(SesConfig {
        sandbox: true,
        max_24_hour_send: 200.0,
        max_send_rate: 1.0,
        sent_last_24_hours: 17,
        enforcement_status: "PROBATION".into(),
        ..SesConfig::default()
    })
    .await;
    let account = client(&sandbox).get_account().send().await.expect("GetAccount");
    assert!(!account.production_access_enabled());
    assert_eq!(account.enforcement_status(), Some("PROBATION"));
    let quota = account.send_quota().expect("SendQuota");
    assert_eq!((quota.max24_hour_send(), quota.max_send_rate(), quota.sent_last24_hours()), (200.0, 1.0, 17.0));
    assert!(account.details().is_none(), "no production-access details in the sandbox");
}

#[tokio::test]
async fn identities_are_verified_pending_or_absent() {
    let pool = pool_with(SesConfig {
        verified_identities: Some(vec!["auth.otp-harness.test".into(), "tester+x@mail.test".into()]),
        pending_identities: vec!["new@mail.test".into()],
        ..SesConfig::default()
    })
    .await;
    let client = client(&pool);
    let domain = client.get_email_identity().email_identity("auth.otp-harness.test").send().await.expect("domain");
    assert_eq!(domain.identity_type().map(|t| t.as_str()), Some("DOMAIN"));
    assert!(domain.verified_for_sending_status());
    assert_eq!(domain.verification_status().map(|s| s.as_str()), Some("SUCCESS"));
    assert_eq!(domain.dkim_attributes().and_then(|d| d.status()).map(|s| s.as_str()), Some("SUCCESS"));

    // '+' and '@' travel percent-encoded in the path.
    let address = client.get_email_identity().email_identity("tester+x@mail.test").send().await.expect("address");
    assert_eq!(address.identity_type().map(|t| t.as_str()), Some("EMAIL_ADDRESS"));
    assert!(address.verified_for_sending_status());

    let pending = client.get_email_identity().email_identity("new@mail.test").send().await.expect("pending");
    assert!(!pending.verified_for_sending_status());
    assert_eq!(pending.verification_status().map(|s| s.as_str()), Some("PENDING"));

    let absent = client.get_email_identity().email_identity("nobody@example.com").send().await.expect_err("absent");
    assert!(absent.as_service_error().is_some_and(|e| e.is_not_found_exception()));
    assert_eq!(
        ses_error(absent),
        ("NotFoundException".into(), "Email identity nobody@example.com does not exist.".into(), 404)
    );

    // Without a list, every identity is there and verified (the default: a preflight passes).
    let open = start_pool(PoolConfig::default()).await;
    let from = open.state().config.mail.from.clone();
    let identity = self::client(&open).get_email_identity().email_identity(&from).send().await.expect("mail.from");
    assert!(identity.verified_for_sending_status());
}

#[tokio::test]
async fn the_suppression_list_is_read_one_address_or_page_by_page() {
    let suppressed = |address: &str, reason| SuppressedAddress { address: address.into(), reason };
    let pool = pool_with(SesConfig {
        suppressed: vec![
            suppressed("c@mail.test", SuppressionReason::Bounce),
            suppressed("a@mail.test", SuppressionReason::Bounce),
            suppressed("b@mail.test", SuppressionReason::Complaint),
        ],
        ..SesConfig::default()
    })
    .await;
    let client = client(&pool);
    let got = client.get_suppressed_destination().email_address("b@mail.test").send().await.expect("get");
    let destination = got.suppressed_destination().expect("destination");
    assert_eq!(destination.email_address(), "b@mail.test");
    assert_eq!(destination.reason(), &SuppressionListReason::Complaint);
    assert_eq!(destination.last_update_time().secs() as f64, pool.state().created);

    let absent = client.get_suppressed_destination().email_address("z@mail.test").send().await.expect_err("absent");
    assert_eq!(
        ses_error(absent),
        ("NotFoundException".into(), "Email address z@mail.test does not exist on your suppression list.".into(), 404)
    );

    let bounces = client
        .list_suppressed_destinations()
        .reasons(SuppressionListReason::Bounce)
        .send()
        .await
        .expect("list bounces");
    let addresses: Vec<&str> = bounces.suppressed_destination_summaries().iter().map(|s| s.email_address()).collect();
    assert_eq!(addresses, ["a@mail.test", "c@mail.test"]);
    assert!(bounces.next_token().is_none());

    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_suppressed_destinations()
            .page_size(2)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("a page");
        pages.push(
            page.suppressed_destination_summaries().iter().map(|s| s.email_address().to_string()).collect::<Vec<_>>(),
        );
        token = page.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [vec!["a@mail.test", "b@mail.test"], vec!["c@mail.test"]]);

    let bad = client.list_suppressed_destinations().next_token("garbage").send().await.expect_err("bad token");
    assert_eq!(ses_error(bad).0, "InvalidNextTokenException");
}

#[tokio::test]
async fn simple_and_raw_mail_reach_the_outbox_and_suppressed_recipients_do_not() {
    let pool = pool_with(SesConfig {
        suppressed: vec![SuppressedAddress { address: "gone@mail.test".into(), reason: SuppressionReason::Bounce }],
        ..SesConfig::default()
    })
    .await;
    let client = client(&pool);
    let sent = client
        .send_email()
        .from_email_address(format!("Sign-in <{FROM}>"))
        .destination(Destination::builder().to_addresses("Ann <a@mail.test>").cc_addresses("b@mail.test").build())
        .content(simple("Your code", "Your code is 424242", Some("<p>Your code is <b>424242</b></p>")))
        .send()
        .await
        .expect("SendEmail");
    let id = sent.message_id().expect("MessageId");
    let found = outbox(&pool, &[("id", id)]).await;
    assert_eq!(found.len(), 1, "the outbox holds it under SES's MessageId");
    let m = &found[0];
    assert_eq!(m["Source"], format!("Sign-in <{FROM}>"));
    assert_eq!(m["Destination"]["ToAddresses"], serde_json::json!(["a@mail.test", "b@mail.test"]));
    assert_eq!(m["Subject"], "Your code");
    assert_eq!(m["Body"]["text_part"], "Your code is 424242");
    assert_eq!(m["Body"]["html_part"], "<p>Your code is <b>424242</b></p>");
    let parsed = mail_parser::MessageParser::default().parse(m["RawData"].as_str().expect("raw")).expect("MIME");
    assert_eq!(parsed.from().and_then(|a| a.first()).and_then(|a| a.address()), Some(FROM));
    assert_eq!(parsed.cc().and_then(|a| a.first()).and_then(|a| a.address()), Some("b@mail.test"));
    assert_eq!(outbox(&pool, &[("to", "b@mail.test")]).await.len(), 1, "found by its Cc recipient");

    // Raw: the MIME message goes as it is; recipients from its headers when Destination is absent.
    let mime = format!(
        "From: {FROM}\r\nTo: raw@mail.test\r\nSubject: Raw code\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nYour code is 777111\r\n"
    );
    let raw = RawMessage::builder().data(ses::primitives::Blob::new(mime.as_bytes())).build().expect("raw");
    let sent =
        client.send_email().content(EmailContent::builder().raw(raw).build()).send().await.expect("SendEmail raw");
    let found = outbox(&pool, &[("id", sent.message_id().expect("id"))]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["Destination"]["ToAddresses"], serde_json::json!(["raw@mail.test"]));
    assert_eq!(found[0]["Source"], FROM);
    assert_eq!(found[0]["Subject"], "Raw code");
    assert_eq!(found[0]["RawData"], mime, "raw mail is delivered unchanged");
    assert_eq!(found[0]["Body"]["text_part"].as_str().map(str::trim_end), Some("Your code is 777111"));

    // A suppressed recipient: accepted (a MessageId), never delivered.
    let before = outbox(&pool, &[]).await.len();
    let id = send(&client, FROM, &["gone@mail.test"]).await.expect("accepted");
    assert!(!id.is_empty());
    assert_eq!(outbox(&pool, &[]).await.len(), before, "nothing delivered to a suppressed address");
    // The mailbox simulator: accepted, not delivered to the sinks, not counted in the daily quota.
    send(&client, FROM, &["success@simulator.amazonses.com"]).await.expect("simulator");
    assert_eq!(outbox(&pool, &[]).await.len(), before);

    let stats = pool.state().stats_snapshot().ses;
    assert_eq!((stats.accepted, stats.recipients, stats.suppressed, stats.simulator), (4, 5, 1, 1));
    assert_eq!(stats.requests.get("v2:SendEmail"), Some(&4));
    let quota = client.get_account().send().await.expect("GetAccount").send_quota.expect("quota");
    assert_eq!(quota.sent_last24_hours(), 4.0, "2 + 1 + the suppressed one; not the simulator");
    let stats: Value =
        reqwest::get(format!("{}/_pool/stats", pool.endpoint())).await.expect("stats").json().await.expect("json");
    assert_eq!(stats["ses"]["requests"]["v2:GetAccount"], 1);
}

#[tokio::test]
async fn each_sending_rule_answers_with_its_ses_error() {
    // An unverified sender; in the sandbox, an unverified recipient too (the simulator is always fine).
    let sandbox = pool_with(SesConfig {
        sandbox: true,
        verified_identities: Some(vec!["auth.otp-harness.test".into(), "ok@mail.test".into()]),
        ..SesConfig::default()
    })
    .await;
    let c = client(&sandbox);
    send(&c, FROM, &["ok@mail.test"]).await.expect("verified recipient");
    send(&c, FROM, &["bounce+x@simulator.amazonses.com"]).await.expect("simulator");
    let (code, message, status) = send(&c, FROM, &["ok@mail.test", "stranger@mail.test"]).await.expect_err("sandbox");
    assert_eq!((code.as_str(), status), ("MessageRejected", 400));
    assert_eq!(
        message,
        "Email address is not verified. The following identities failed the check in region US-EAST-1: stranger@mail.test"
    );
    let (code, message, _) = send(&c, "me@elsewhere.test", &["ok@mail.test"]).await.expect_err("sender");
    assert_eq!(code, "MessageRejected");
    assert!(message.ends_with(": me@elsewhere.test"), "{message}");

    let paused = pool_with(SesConfig { sending_enabled: false, ..SesConfig::default() }).await;
    let (code, _, status) = send(&client(&paused), FROM, &["a@mail.test"]).await.expect_err("paused");
    assert_eq!((code.as_str(), status), ("SendingPausedException", 400));
    let account = client(&paused).get_account().send().await.expect("GetAccount");
    assert!(!account.sending_enabled());

    let shut = pool_with(SesConfig { enforcement_status: "SHUTDOWN".into(), ..SesConfig::default() }).await;
    let (code, _, _) = send(&client(&shut), FROM, &["a@mail.test"]).await.expect_err("shut down");
    assert_eq!(code, "AccountSuspendedException");

    // One recipient per ~17 minutes: the second send in a row is over the rate, whatever the clock does.
    let slow = pool_with(SesConfig { max_send_rate: 0.001, ..SesConfig::default() }).await;
    let c = client(&slow);
    send(&c, FROM, &["a@mail.test"]).await.expect("first");
    let refused = c
        .send_email()
        .from_email_address(FROM)
        .destination(to(&["a@mail.test"]))
        .content(simple("s", "t", None))
        .send()
        .await
        .expect_err("over the rate");
    assert!(refused.as_service_error().is_some_and(|e| e.is_too_many_requests_exception()));
    assert_eq!(ses_error(refused), ("TooManyRequestsException".into(), "Maximum sending rate exceeded.".into(), 429));

    // The daily quota counts recipients: two fit, the third does not.
    let daily = pool_with(SesConfig { max_24_hour_send: 2.0, count_code_mail: false, ..SesConfig::default() }).await;
    let c = client(&daily);
    send(&c, FROM, &["a@mail.test", "b@mail.test"]).await.expect("two recipients");
    let (code, message, status) = send(&c, FROM, &["c@mail.test"]).await.expect_err("quota spent");
    assert_eq!(
        (code.as_str(), message.as_str(), status),
        ("LimitExceededException", "Daily message quota exceeded.", 400)
    );
    send(&c, FROM, &["success@simulator.amazonses.com"]).await.expect("the simulator is outside the daily quota");

    // Templates are not rendered: a clear BadRequest.
    let pool = start_pool(PoolConfig::default()).await;
    let template = ses::types::Template::builder().template_name("welcome").template_data("{}").build();
    let refused = client(&pool)
        .send_email()
        .from_email_address(FROM)
        .destination(to(&["a@mail.test"]))
        .content(EmailContent::builder().template(template).build())
        .send()
        .await
        .expect_err("template");
    let (code, message, _) = ses_error(refused);
    assert_eq!(code, "BadRequestException");
    assert!(message.contains("templates"), "{message}");
    assert_eq!(pool.state().stats_snapshot().ses.errors.get("BadRequestException"), Some(&1));
}

#[tokio::test]
async fn access_denied_refuses_the_named_operations_only() {
    let mut config = PoolConfig::default();
    config.faults.access_denied = vec!["GetAccount".into(), "SendEmail".into()];
    let pool = start_pool(config).await;
    let c = client(&pool);
    let (code, message, status) = ses_error(c.get_account().send().await.expect_err("denied"));
    assert_eq!((code.as_str(), status), ("AccessDeniedException", 403));
    assert!(message.contains("ses:GetAccount"), "{message}");
    let (code, message, _) = send(&c, FROM, &["a@mail.test"]).await.expect_err("denied");
    assert_eq!(code, "AccessDeniedException");
    assert!(message.contains(&format!("identity/{FROM}")), "the sender identity is the resource: {message}");
    c.get_email_identity().email_identity(FROM).send().await.expect("not denied");
}
