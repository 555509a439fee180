//! The S3 source's push path end to end, on moto (S3, SQS and SNS in one process on 127.0.0.1): the
//! embedded pool's S3 sink stores each code mail as an SES receipt rule would, the bucket notifies an
//! SQS queue (directly, or through an SNS topic), and `otp-harness run` reads the codes from the queue
//! without a single listing — moto's own request log says so. A queue that never hears of the mail
//! ends in the usual OTP time-outs, not a hang; a queue that does not exist stops the run before it
//! starts.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use otp_harness::testkit::s3server::{Recorded, S3Server};
use support::run::*;

const BUCKET: &str = "inbound-mail";
const PREFIX: &str = "otp/";

/// Login only, no probes: the quick runs.
const LOGINS: &str = r#"[[flow]]
kind = "login"
[probes]
session_reuse = false
code_reuse = false
new_code_each_attempt = false
unknown_user = false
challenge_leak = false
code_randomness = false
[load]
users = 2
iterations = 2
"#;

/// A local-pool scenario whose S3 sink writes to `s3`'s bucket, the codes read through `queue_url`;
/// `otp` are extra `[otp]` lines, `rest` the tables after `[otp.s3]`.
fn push_scenario(s3: &S3Server, queue_url: &str, count: u32, otp: &str, rest: &str) -> String {
    format!(
        r#"name = "s3-push"
[target]
kind = "local"
[target.pool.mail]
outbox = false
[target.pool.mail.s3]
endpoint_url = "{endpoint}"
bucket = "{BUCKET}"
prefix = "{PREFIX}"
[users]
test_users = true
pattern = "loadtest+{{n}}@inbound.test"
count = {count}
[otp]
source = "s3"
{otp}
[otp.s3]
bucket = "{BUCKET}"
prefix = "{PREFIX}"
endpoint_url = "{endpoint}"
queue_url = "{queue_url}"
{rest}"#,
        endpoint = s3.endpoint()
    )
}

fn count(outcome: &RunOutcome, pointer: &str) -> u64 {
    outcome.summary.pointer(pointer).and_then(|v| v.as_u64()).unwrap_or(0)
}

/// `OTP_HARNESS_PYTHON`, or the project's `.venv` (moto brings boto3).
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("OTP_HARNESS_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo_file(".venv/bin/python");
    assert!(venv.is_file(), "{} is missing: run scripts/install-test-deps.sh (moto brings boto3)", venv.display());
    venv
}

async fn sqs(s3: &S3Server) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&s3.sdk_config().await)
}

/// Keys under the prefix now.
async fn keys(s3: &S3Server) -> Vec<String> {
    let listed = s3.s3_client().await.list_objects_v2().bucket(BUCKET).prefix(PREFIX).send().await.expect("listing");
    listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

/// Messages in the queue, visible or not.
async fn queued(s3: &S3Server, queue_url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = sqs(s3)
        .await
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let map = attributes.attributes().cloned().unwrap_or_default();
    [A::ApproximateNumberOfMessages, A::ApproximateNumberOfMessagesNotVisible]
        .iter()
        .map(|a| map.get(a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
        .sum()
}

fn calls<'a>(recorded: &'a [Recorded], target: &str) -> impl Iterator<Item = &'a Recorded> {
    recorded.iter().filter(move |r| r.target.as_deref() == Some(target))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_come_from_s3_event_notifications_without_a_single_listing() {
    let s3 = S3Server::start().await.expect("S3 server");
    let queue_url = s3.notify_queue(BUCKET, PREFIX, "mail-events").await.expect("bucket → queue");
    s3.start_recording().await.expect("moto records requests");
    let outcome = run_scenario(&push_scenario(&s3, &queue_url, 9, "timeout = \"10s\"", EVERY_FLOW)).await;
    let recorded = s3.recorded().await.expect("moto's request log");

    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert!(outcome.failed_checks().is_empty(), "{:?}\n{}", outcome.failed_checks(), outcome.explain());
    assert_eq!(outcome.check("sign_in").as_deref(), Some("pass"));
    let mail = &outcome.summary["mail"];
    assert!(mail["mode"].as_str().is_some_and(|m| m.starts_with("sqs: ") && m.contains("mail-events")), "{mail}");
    // Every code was dated by its event: otp_pickup for each code in hand.
    let delivered = count(&outcome, "/steps/otp_delivery/count");
    assert!(delivered >= count(&outcome, "/steps/initiate/ok"), "a code per sign-in: {}", outcome.summary["steps"]);
    assert_eq!(count(&outcome, "/steps/otp_pickup/count"), delivered, "{}", outcome.summary["steps"]);
    let pickup_p50 = outcome.summary["steps"]["otp_pickup"]["p50_ms"].as_f64().expect("otp_pickup p50");
    let delivery_p50 = outcome.summary["steps"]["otp_delivery"]["p50_ms"].as_f64().expect("otp_delivery p50");
    assert!(pickup_p50 <= delivery_p50, "the harness's share is part of delivery: {pickup_p50} vs {delivery_p50}");

    // moto's log: receives, no listing at all; one GET and one DELETE per code mail; messages deleted.
    let listings: Vec<&Recorded> = recorded.iter().filter(|r| r.is_list_objects_v2()).collect();
    assert!(listings.is_empty(), "no ListObjectsV2: {listings:?}");
    let receives = calls(&recorded, "AmazonSQS.ReceiveMessage").count() as u64;
    assert!(receives >= 1, "the source long-polled the queue");
    assert_eq!(count(&outcome, "/mail/source_requests"), receives, "summary.json counts every ReceiveMessage");
    let code_mails = count(&outcome, "/mail/code_mails");
    let object = format!("/{BUCKET}/{PREFIX}");
    let gets = recorded.iter().filter(|r| r.method == "GET" && r.url.contains(&object)).count() as u64;
    let deletes = recorded.iter().filter(|r| r.method == "DELETE" && r.url.contains(&object)).count() as u64;
    assert_eq!((gets, deletes), (code_mails, code_mails), "{}", outcome.summary["mail"]);
    assert!(calls(&recorded, "AmazonSQS.DeleteMessageBatch").count() >= 1);
    assert!(keys(&s3).await.is_empty(), "every code mail was deleted after reading");
    assert_eq!(queued(&s3, &queue_url).await, 0, "every message was deleted (the S3 test event too)");
}

/// A raw mail with a code, as the pool's S3 sink would store it.
fn code_mail(to: &str, code: &str) -> Vec<u8> {
    format!("From: no-reply@auth.otp-harness.test\r\nTo: {to}\r\nSubject: Your code\r\n\r\nYour code is {code}\r\n")
        .into_bytes()
}

async fn put(s3: &S3Server, key: &str, body: Vec<u8>) {
    let body = aws_sdk_s3::primitives::ByteStream::from(body);
    s3.s3_client().await.put_object().bucket(BUCKET).key(key).body(body).send().await.expect("PUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_relayed_by_sns_are_read_and_what_is_not_this_runs_is_left_alone() {
    let s3 = S3Server::start().await.expect("S3 server");
    let script = repo_file("tests/clients/s3_events_via_sns.py");
    let output = tokio::process::Command::new(python())
        .arg(script)
        .args([&s3.endpoint(), BUCKET, PREFIX, "via-sns"])
        .output()
        .await
        .expect("python runs");
    assert!(output.status.success(), "set-up failed:\n{}", String::from_utf8_lossy(&output.stderr));
    let queue_url = String::from_utf8(output.stdout).expect("UTF-8").trim().to_string();
    let sqs = sqs(&s3).await;

    // A previous run's leftover: its object is still there, and an event about it dated long ago is
    // in the queue (its real, fresh event is taken out first).
    let leftover = format!("{PREFIX}leftover");
    put(&s3, &leftover, code_mail("loadtest+1@inbound.test", "111111")).await;
    let mut drained = false;
    for _ in 0..10 {
        let got = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(1);
        for message in got.send().await.expect("receive").messages() {
            let handle = message.receipt_handle().expect("handle");
            if message.body().is_some_and(|b| b.contains("leftover")) {
                sqs.delete_message().queue_url(&queue_url).receipt_handle(handle).send().await.expect("deleted");
                drained = true;
            } else {
                // S3's test event (through SNS): back in the queue at once, for the run.
                let back = sqs.change_message_visibility().queue_url(&queue_url).receipt_handle(handle);
                back.visibility_timeout(0).send().await.expect("returned");
            }
        }
        if drained {
            break;
        }
    }
    assert!(drained, "the leftover's own event arrived");
    let stale = serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "2020-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "otp%2Fleftover"}}}]});
    sqs.send_message().queue_url(&queue_url).message_body(stale.to_string()).send().await.expect("sent");
    // Something that is no S3 event: it must be left where it is, and its content appear nowhere.
    let stray = "Your code is 424242 (not an S3 event)";
    sqs.send_message().queue_url(&queue_url).message_body(stray).send().await.expect("sent");
    // Another run's code mail (a queue shared by mistake): object and message are left for their owner.
    put(&s3, &format!("{PREFIX}stranger"), code_mail("someone-else@inbound.test", "525252")).await;

    let outcome = run_scenario(&push_scenario(&s3, &queue_url, 2, "timeout = \"10s\"", LOGINS)).await;
    assert_eq!(outcome.code, 0, "{}", outcome.explain());
    assert_eq!(count(&outcome, "/steps/otp_delivery/count"), 4, "{}", outcome.summary["steps"]);
    assert_eq!(count(&outcome, "/steps/otp_pickup/count"), 4, "dated through SNS too");
    let mail = &outcome.summary["mail"];
    assert!(mail["mode"].as_str().is_some_and(|m| m.starts_with("sqs")), "{mail}");
    assert_eq!((count(&outcome, "/mail/ignored"), count(&outcome, "/mail/others")), (1, 1), "{mail}");
    assert_eq!(count(&outcome, "/mail/code_mails"), 4, "the leftover's code was not read: {mail}");
    for (warning, what) in [
        ("no S3 event notification was left in the queue", "the stray message"),
        ("events for another run's or worker's test users", "the stranger's mail"),
    ] {
        let times = outcome.stderr.matches(warning).count();
        assert_eq!(times, 1, "{what} is logged once though seen again:\n{}", outcome.stderr);
    }
    for content in ["424242", "525252", "111111"] {
        assert!(!outcome.all_output().contains(content), "no message's or mail's content appears anywhere");
    }

    // Left: the stray message and the stranger's event (visible again after 1 s); the stale event and
    // S3's test event are gone. In the bucket: the leftover and the stranger's mail, untouched; every code mail of the run
    // was read and deleted.
    // (A long poll the run left open may still hold them for a moment: moto finishes it alone.)
    let mut bodies: Vec<String> = Vec::new();
    for _ in 0..5 {
        let left = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).wait_time_seconds(2);
        let left = left.visibility_timeout(30).send().await.expect("receive");
        bodies.extend(left.messages().iter().filter_map(|m| m.body().map(str::to_string)));
        if bodies.len() >= 2 {
            break;
        }
    }
    bodies.sort();
    assert_eq!(bodies.len(), 2, "{bodies:?}\n{}", outcome.stderr);
    assert_eq!(bodies[0], stray, "{bodies:?}");
    assert!(bodies[1].contains("Notification") && bodies[1].contains("stranger"), "{bodies:?}");
    assert_eq!(keys(&s3).await, vec![leftover, format!("{PREFIX}stranger")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_hears_of_nothing_ends_in_otp_timeouts_and_a_missing_queue_stops_the_run() {
    let s3 = S3Server::start().await.expect("S3 server");
    let silent = s3.create_queue("silent").await.expect("queue");
    let scenario = push_scenario(&s3, &silent, 2, "timeout = \"2s\"", LOGINS);
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(120), run_scenario(&scenario))
        .await
        .expect("the run ends on its own: every wait is bounded by the OTP timeout");
    let took = started.elapsed();
    assert_eq!(outcome.code, 3, "no flow completed: {}", outcome.explain());
    assert_eq!(count(&outcome, "/errors/OtpTimeout"), 4, "each sign-in timed out: {}", outcome.summary["errors"]);
    assert!(outcome.summary["mail"]["mode"].as_str().is_some_and(|m| m.starts_with("sqs")));
    assert!(took < Duration::from_secs(60), "no hang: {took:?}");
    // The pool did mail the codes; the source never looked at the prefix.
    assert_eq!(keys(&s3).await.len(), 4, "the four code mails are still in the bucket");

    let missing = scenario.replace(&silent, &silent.replace("/silent", "/no-such-queue"));
    let outcome = run_scenario(&missing).await;
    assert_eq!(outcome.code, 3, "{}", outcome.explain());
    assert!(outcome.stderr.contains("SQS queue") && outcome.stderr.contains("no-such-queue"), "{}", outcome.stderr);
    assert!(outcome.stderr.to_ascii_lowercase().contains("does not exist"), "{}", outcome.stderr);
}
