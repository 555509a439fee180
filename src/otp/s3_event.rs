//! S3 event notifications as an SQS queue delivers them: the body of one SQS message read as S3's
//! event JSON (`Records[].s3.bucket.name`, `.s3.object.key` URL-encoded with `+` for a space,
//! `eventTime` to the millisecond), S3's one-time `s3:TestEvent`, or either of them wrapped in an SNS
//! notification (`{"Type": "Notification", "Message": "<the S3 JSON as a string>"}`, for S3 → SNS →
//! SQS set-ups without raw message delivery). Errors name what is wrong, never the message's content.

use std::time::SystemTime;

use serde::Deserialize;

/// What one SQS message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum S3Message {
    /// S3's test message, sent once when a notification configuration is saved.
    TestEvent,
    /// One or more object events (S3 sends one per message).
    Records(Vec<S3Record>),
}

/// One object event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Record {
    /// `ObjectCreated:Put`, `ObjectRemoved:Delete`, … (without the `s3:` prefix, as S3 writes it).
    pub event_name: String,
    pub bucket: String,
    /// The object key, URL-decoded.
    pub key: String,
    /// When S3 finished the request that made the event; None unless `eventTime` has fractional
    /// seconds (a whole-second time is too coarse to date a mail's pickup).
    pub event_time: Option<SystemTime>,
}

impl S3Record {
    /// True for `ObjectCreated:*` events (a new mail object).
    pub fn is_object_created(&self) -> bool {
        self.event_name.starts_with("ObjectCreated:") || self.event_name.starts_with("s3:ObjectCreated:")
    }
}

/// Why a message is not an S3 event notification. Says what is missing, never what the message holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3EventError {
    #[error("the message body is not JSON")]
    NotJson,
    #[error("the SNS notification's Message is not JSON")]
    SnsMessageNotJson,
    #[error("the JSON is neither an S3 event notification (Records) nor an s3:TestEvent")]
    NotAnS3Event,
    #[error("record {index} lacks {field}")]
    MissingField { index: usize, field: &'static str },
    #[error("record {index}: s3.object.key is not valid URL encoding")]
    BadKey { index: usize },
}

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

#[derive(Deserialize)]
struct TestEvent {
    #[serde(rename = "Event")]
    event: String,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
struct RawRecord {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    s3: Option<RawS3>,
}

#[derive(Deserialize)]
struct RawS3 {
    bucket: Option<RawName>,
    object: Option<RawKey>,
}

#[derive(Deserialize)]
struct RawName {
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawKey {
    key: Option<String>,
}

/// Reads one SQS message body.
pub fn parse(body: &str) -> Result<S3Message, S3EventError> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|_| S3EventError::NotJson)?;
    if let Ok(envelope) = serde_json::from_value::<SnsEnvelope>(value.clone())
        && envelope.kind == "Notification"
    {
        let inner: serde_json::Value =
            serde_json::from_str(&envelope.message).map_err(|_| S3EventError::SnsMessageNotJson)?;
        return parse_value(inner);
    }
    parse_value(value)
}

fn parse_value(value: serde_json::Value) -> Result<S3Message, S3EventError> {
    if value.get("Records").is_none() {
        return match serde_json::from_value::<TestEvent>(value) {
            Ok(test) if test.event == "s3:TestEvent" => Ok(S3Message::TestEvent),
            _ => Err(S3EventError::NotAnS3Event),
        };
    }
    let notification: Notification = serde_json::from_value(value).map_err(|_| S3EventError::NotAnS3Event)?;
    let mut records = Vec::with_capacity(notification.records.len());
    for (index, raw) in notification.records.into_iter().enumerate() {
        let missing = |field| S3EventError::MissingField { index, field };
        let event_name = raw.event_name.ok_or(missing("eventName"))?;
        let s3 = raw.s3.ok_or(missing("s3"))?;
        let bucket = s3.bucket.and_then(|b| b.name).ok_or(missing("s3.bucket.name"))?;
        let encoded = s3.object.and_then(|o| o.key).ok_or(missing("s3.object.key"))?;
        let key = decode_key(&encoded).ok_or(S3EventError::BadKey { index })?;
        let event_time = raw.event_time.as_deref().and_then(fine_time);
        records.push(S3Record { event_name, bucket, key, event_time });
    }
    Ok(S3Message::Records(records))
}

/// `eventTime` (`2026-11-26T06:07:06.857Z`) when it has fractional seconds.
fn fine_time(stamp: &str) -> Option<SystemTime> {
    let seconds = stamp.split('T').nth(1)?;
    if !seconds.contains('.') {
        return None;
    }
    humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok()
}

/// An event's object key as S3 writes it: form-URL-encoded (`+` for a space, `%XX` for other bytes),
/// the bytes UTF-8. None if it is not.
pub fn decode_key(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let byte = std::str::from_utf8(hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok())?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// An event as S3 (and moto) write it, with `key` already encoded.
    fn event(name: &str, key: &str, time: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": time, "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "mail",
                   "bucket": {"name": "inbound-mail", "arn": "arn:aws:s3:::inbound-mail"},
                   "object": {"key": key, "size": 5, "eTag": "5d41402abc4b2a76b9719d911017c592"}}}]})
        .to_string()
    }

    fn one(message: S3Message) -> S3Record {
        match message {
            S3Message::Records(mut records) if records.len() == 1 => records.remove(0),
            other => panic!("one record expected, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_url_decoded_with_plus_for_a_space() {
        // moto encodes like Python's quote_plus (slashes too); AWS leaves slashes as they are.
        let record =
            one(parse(&event("ObjectCreated:Put", "otp%2Fa+b%2Bc%3Dd%C3%A9", "2026-11-26T06:07:06.857Z")).unwrap());
        assert_eq!(record.key, "otp/a b+c=dé");
        assert_eq!(record.bucket, "inbound-mail");
        assert!(record.is_object_created());
        let aws = one(parse(&event("ObjectCreated:Put", "otp/0100018c+x", "2026-11-26T06:07:06.857Z")).unwrap());
        assert_eq!(aws.key, "otp/0100018c x");
        for bad in ["otp%2", "otp%zz", "otp%FF"] {
            let err = parse(&event("ObjectCreated:Put", bad, "2026-11-26T06:07:06.857Z")).unwrap_err();
            assert_eq!(err, S3EventError::BadKey { index: 0 }, "{bad}");
        }
    }

    #[test]
    fn the_event_time_dates_the_object_to_the_millisecond_or_not_at_all() {
        let record = one(parse(&event("ObjectCreated:Put", "k", "2023-11-14T22:13:20.123Z")).unwrap());
        let at = record.event_time.expect("dated").duration_since(SystemTime::UNIX_EPOCH).expect("after 1970");
        assert_eq!(at, Duration::from_millis(1_700_000_000_123));
        let coarse = one(parse(&event("ObjectCreated:Put", "k", "2023-11-14T22:13:20Z")).unwrap());
        assert_eq!(coarse.event_time, None);
        let odd = one(parse(&event("ObjectCreated:Put", "k", "yesterday.5")).unwrap());
        assert_eq!(odd.event_time, None);
        let removed = one(parse(&event("ObjectRemoved:Delete", "k", "2023-11-14T22:13:20.123Z")).unwrap());
        assert!(!removed.is_object_created());
    }

    #[test]
    fn the_test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T06:07:06.857Z","Bucket":"inbound-mail","RequestId":"X","HostId":"Y"}"#;
        assert_eq!(parse(body), Ok(S3Message::TestEvent));
        let other = r#"{"Service":"Amazon S3","Event":"s3:SomethingElse"}"#;
        assert_eq!(parse(other), Err(S3EventError::NotAnS3Event));
    }

    #[test]
    fn an_sns_wrapped_event_is_unwrapped() {
        let inner = event("ObjectCreated:Put", "otp%2Fmail+1", "2026-11-26T06:07:06.857Z");
        let wrapped = serde_json::json!({
            "Type": "Notification", "MessageId": "8fee77cb", "TopicArn": "arn:aws:sns:us-east-1:123456789012:mail",
            "Subject": "Amazon S3 Notification", "Message": inner, "Timestamp": "2026-11-26T06:07:06.900Z",
            "SignatureVersion": "1", "Signature": "c2ln", "SigningCertURL": "https://sns.example/cert.pem",
        })
        .to_string();
        assert_eq!(one(parse(&wrapped).unwrap()).key, "otp/mail 1");
        let test = serde_json::json!({"Type": "Notification", "Message": r#"{"Event":"s3:TestEvent"}"#}).to_string();
        assert_eq!(parse(&test), Ok(S3Message::TestEvent));
        let not_json = serde_json::json!({"Type": "Notification", "Message": "hello"}).to_string();
        assert_eq!(parse(&not_json), Err(S3EventError::SnsMessageNotJson));
        // Any other SNS message type (a subscription confirmation) is no S3 event.
        let confirm = serde_json::json!({"Type": "SubscriptionConfirmation", "Message": "{}"}).to_string();
        assert_eq!(parse(&confirm), Err(S3EventError::NotAnS3Event));
    }

    #[test]
    fn garbage_is_refused_without_repeating_it() {
        let secret = "Your code is 123456";
        for (body, expected) in [
            (secret.to_string(), S3EventError::NotJson),
            ("".to_string(), S3EventError::NotJson),
            (serde_json::json!({"note": secret}).to_string(), S3EventError::NotAnS3Event),
            (serde_json::json!({"Records": secret}).to_string(), S3EventError::NotAnS3Event),
            (serde_json::json!([1, 2]).to_string(), S3EventError::NotAnS3Event),
            (
                serde_json::json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}]})
                    .to_string(),
                S3EventError::MissingField { index: 0, field: "s3.object.key" },
            ),
            (
                serde_json::json!({"Records": [{"s3": {}}]}).to_string(),
                S3EventError::MissingField { index: 0, field: "eventName" },
            ),
        ] {
            let err = parse(&body).unwrap_err();
            assert_eq!(err, expected, "{body}");
            assert!(!err.to_string().contains("123456"), "{err}");
        }
        assert_eq!(parse(r#"{"Records": []}"#), Ok(S3Message::Records(Vec::new())));
    }
}
