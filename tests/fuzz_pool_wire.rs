//! Fuzzed requests to the local pool's Cognito endpoint (`POST /`, JSON 1.1), sent over real HTTP to a
//! pool started in-process on 127.0.0.1:0: malformed, cut and non-object JSON, invalid UTF-8, huge
//! numbers, deep nesting and empty bodies; wrong JSON types at every member of every operation;
//! missing, unknown and odd `X-Amz-Target`s, wrong Content-Types and Authorization headers; bodies of
//! several MB (with a length and chunked), broken chunked framing and methods other than POST (the
//! rejections axum and hyper make before an operation runs); both sign-in flows (CUSTOM_AUTH,
//! USER_AUTH with and without PREFERRED_CHALLENGE) and every ChallengeName with garbage
//! ChallengeResponses and Sessions (made up, shaped like the pool's own, expired, and real ones). Proves that the pool never panics (a panic hook
//! watches its threads, and a valid sign-in still works every few cases and after every batch), never
//! hangs (a time bound per request), answers every bad request in Cognito's error shape (4xx,
//! `{"__type","message"}`, `x-amzn-ErrorType`), with a SerializationException whenever the body is not
//! a JSON object of the right member types, never with a Rust panic message or a debug dump, and never
//! echoes a Session, a code or a token. Fixed seed (`fuzz::SEED`), bounded case counts.

mod fuzz;
mod support;

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fuzz::{check, odd_unicode};
use otp_harness::pool::wire::OPERATIONS;
use otp_harness::pool::{PoolConfig, RunningPool};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

const PREFIX: &str = "AWSCognitoIdentityProviderService.";
const AMZ_JSON: &str = "application/x-amz-json-1.1";
/// Any SigV4 header passes the pool's check (dummy credentials work).
const SIGV4: &str = "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/cognito-idp/aws4_request, \
                     SignedHeaders=host;x-amz-date;x-amz-target, Signature=00";
/// Time bound of one ordinary request (a debug build answers in milliseconds).
const LIMIT: Duration = Duration::from_secs(10);
/// Time bound of a request with a body of several MB.
const GIANT_LIMIT: Duration = Duration::from_secs(60);
/// A known-good sign-in every this many cases.
const PROBE_EVERY: u32 = 16;
/// Stands for a Session or a token: must never come back in an answer.
const SECRET: &str = "S3cr3tS3ss10nT0k3nX";
/// Stands for a one-time code (8 digits, like a native code): must never come back in an answer.
const SECRET_CODE: &str = "90817263";
/// The user the fuzzed requests sign in as, create and delete: never `support::USER`, which the
/// known-good probe signs in as.
const FUZZ_USER: &str = "loadtest+2@mail.test";
/// The name of the pool runtime's threads, which the panic hook watches.
const POOL_THREAD: &str = "wire-pool";

/// Every ChallengeName Cognito knows, and some it does not.
const CHALLENGE_NAMES: &[&str] = &[
    "CUSTOM_CHALLENGE",
    "SELECT_CHALLENGE",
    "EMAIL_OTP",
    "SMS_OTP",
    "SMS_MFA",
    "EMAIL_MFA",
    "SOFTWARE_TOKEN_MFA",
    "SELECT_MFA_TYPE",
    "MFA_SETUP",
    "PASSWORD",
    "PASSWORD_SRP",
    "PASSWORD_VERIFIER",
    "WEB_AUTHN",
    "DEVICE_SRP_AUTH",
    "DEVICE_PASSWORD_VERIFIER",
    "ADMIN_NO_SRP_AUTH",
    "NEW_PASSWORD_REQUIRED",
    "",
    "custom_challenge",
    "EMAIL_OTP ",
];

/// Text that must never be in any answer: a panic, a backtrace, a Rust debug dump or a library's
/// internals.
const FORBIDDEN: &[&str] = &[
    "panicked",
    "RUST_BACKTRACE",
    "stack backtrace",
    ".rs:",
    "src/",
    "CognitoError",
    "ErrorKind",
    "Error {",
    "Some(",
    "None,",
    "kind:",
    "Failed to buffer",
    "length limit",
    "serde",
    "axum",
    "hyper",
];

/// Threads of this name prove the panic hook counts (their own counter, not the pool's).
const SELF_TEST_THREAD: &str = "hook-self-test";

static POOL_PANICS: AtomicUsize = AtomicUsize::new(0);
static SELF_TEST_PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts panics on the pool's threads (any test's pool: a panic anywhere fails the suite).
fn watch_pool_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            match std::thread::current().name() {
                Some(name) if name.starts_with(POOL_THREAD) => POOL_PANICS.fetch_add(1, Ordering::SeqCst),
                Some(name) if name.starts_with(SELF_TEST_THREAD) => SELF_TEST_PANICS.fetch_add(1, Ordering::SeqCst),
                _ => 0,
            };
            default(info);
        }));
    });
}

/// One request to `POST /`.
#[derive(Clone, Default)]
struct Request {
    target: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    body: Vec<u8>,
}

impl Request {
    /// A well-formed request of `operation` with `body` (signed when the operation is an admin one).
    fn to(operation: &str, body: impl Into<Vec<u8>>) -> Self {
        Request {
            target: Some(format!("{PREFIX}{operation}").into_bytes()),
            content_type: Some(AMZ_JSON.as_bytes().to_vec()),
            authorization: is_admin(operation).then(|| SIGV4.as_bytes().to_vec()),
            body: body.into(),
        }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned();
        f.debug_struct("Request")
            .field("target", &text(&self.target))
            .field("content_type", &text(&self.content_type))
            .field("authorization", &text(&self.authorization))
            .field("body_len", &self.body.len())
            .field("body", &body)
            .finish()
    }
}

fn is_admin(operation: &str) -> bool {
    !matches!(operation, "InitiateAuth" | "RespondToAuthChallenge" | "GetUser")
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A pool on its own runtime (threads named `POOL_THREAD`) and a client on another.
struct Wire {
    pool: RunningPool,
    client_rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    cases: AtomicU32,
    // Dropped last: the pool's tasks run here.
    _pool_rt: tokio::runtime::Runtime,
}

impl Wire {
    fn start() -> Self {
        watch_pool_panics();
        let pool_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(POOL_THREAD)
            .enable_all()
            .build()
            .expect("pool runtime");
        let pool = pool_rt.block_on(support::start_pool(PoolConfig::default()));
        let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        let http = reqwest::Client::builder().timeout(GIANT_LIMIT).build().expect("client");
        Wire { pool, client_rt, http, cases: AtomicU32::new(0), _pool_rt: pool_rt }
    }

    fn client_id(&self) -> &str {
        &self.pool.info().client_id
    }

    fn pool_id(&self) -> &str {
        &self.pool.info().user_pool_id
    }

    /// Sends `request`; an error when no HTTP answer came within `limit` (a hang, or a connection the
    /// pool dropped).
    fn send(&self, request: &Request, limit: Duration) -> Result<Answer, String> {
        let mut builder = self.http.post(self.pool.endpoint()).timeout(limit);
        for (name, value) in [
            ("x-amz-target", &request.target),
            ("content-type", &request.content_type),
            ("authorization", &request.authorization),
        ] {
            if let Some(value) = value {
                let value = HeaderValue::from_bytes(value).map_err(|e| format!("test bug: header {name}: {e}"))?;
                builder = builder.header(name, value);
            }
        }
        let builder = builder.body(request.body.clone());
        let started = Instant::now();
        self.client_rt.block_on(async {
            let response =
                builder.send().await.map_err(|e| format!("no HTTP answer after {:?}: {e:?}", started.elapsed()))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(|e| format!("answer body cut: {e:?}"))?.to_vec();
            Ok(Answer { status, headers, body })
        })
    }

    /// Sends `request` with a chunked body (no Content-Length), over a plain socket.
    fn send_chunked(&self, request: &Request, chunk: usize, limit: Duration) -> Result<Answer, String> {
        let address = self.pool.endpoint().trim_start_matches("http://").to_string();
        let mut stream = TcpStream::connect(&address).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(limit)).map_err(|e| e.to_string())?;
        let mut head = format!("POST / HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\n").into_bytes();
        for (name, value) in [
            ("x-amz-target", &request.target),
            ("content-type", &request.content_type),
            ("authorization", &request.authorization),
        ] {
            if let Some(value) = value {
                head.extend_from_slice(format!("{name}: ").as_bytes());
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        stream.write_all(&head).map_err(|e| format!("writing the head: {e}"))?;
        // The pool may answer (and close) before it has read everything: stop writing then.
        for piece in request.body.chunks(chunk.max(1)) {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
            if stream.write_all(&framed).is_err() {
                break;
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        let mut raw = Vec::new();
        let mut buffer = [0u8; 65536];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buffer[..n]),
                Err(e) if raw.is_empty() => return Err(format!("no HTTP answer: {e}")),
                Err(_) => break,
            }
            if let Some(answer) = parse_http_answer(&raw) {
                return Ok(answer);
            }
        }
        parse_http_answer(&raw).ok_or_else(|| format!("no complete HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
    }

    /// A valid custom-auth InitiateAuth for `support::USER`: the pool still serves.
    fn probe(&self) -> Result<(), String> {
        let body = json!({
            "AuthFlow": "CUSTOM_AUTH",
            "ClientId": self.client_id(),
            "AuthParameters": { "USERNAME": support::USER },
        });
        let answer = self.send(&Request::to("InitiateAuth", body.to_string()), LIMIT)?;
        let json = answer.json().unwrap_or_default();
        if answer.status != 200 || json["ChallengeName"] != "CUSTOM_CHALLENGE" || !json["Session"].is_string() {
            return Err(format!("the known-good InitiateAuth failed: {} {}", answer.status, answer.text()));
        }
        self.no_panics()
    }

    fn no_panics(&self) -> Result<(), String> {
        match POOL_PANICS.load(Ordering::SeqCst) {
            0 => Ok(()),
            n => Err(format!("{n} panic(s) on the pool's threads (see stderr)")),
        }
    }

    /// A whole sign-in and a GetUser with its token, after a batch: the pool still works end to end.
    fn sign_in(&self) {
        let initiate = json!({
            "AuthFlow": "CUSTOM_AUTH",
            "ClientId": self.client_id(),
            "AuthParameters": { "USERNAME": support::USER },
        });
        let answer = self.send(&Request::to("InitiateAuth", initiate.to_string()), LIMIT).expect("initiate");
        assert_eq!(answer.status, 200, "initiate: {}", answer.text());
        let challenge = answer.json().expect("json");
        let code = self.client_rt.block_on(support::latest_code(&self.pool, support::USER));
        let respond = json!({
            "ClientId": self.client_id(),
            "ChallengeName": "CUSTOM_CHALLENGE",
            "Session": challenge["Session"],
            "ChallengeResponses": { "USERNAME": challenge["ChallengeParameters"]["USERNAME"], "ANSWER": code },
        });
        let answer = self.send(&Request::to("RespondToAuthChallenge", respond.to_string()), LIMIT).expect("respond");
        assert_eq!(answer.status, 200, "respond: {}", answer.text());
        let token = answer.json().expect("json")["AuthenticationResult"]["AccessToken"].clone();
        assert!(token.is_string(), "tokens after the right code: {}", answer.text());
        let get_user = json!({ "AccessToken": token });
        let answer = self.send(&Request::to("GetUser", get_user.to_string()), LIMIT).expect("get user");
        assert_eq!(answer.status, 200, "get user: {}", answer.text());
        self.no_panics().expect("no panics in the pool");
    }

    /// Runs `cases` cases of `strategy`: each sends what `request` builds, then `judge` rules on the
    /// answer; a known-good InitiateAuth every `PROBE_EVERY` cases; a whole sign-in at the end.
    fn run<S: Strategy>(
        &self,
        cases: u32,
        strategy: S,
        request: impl Fn(&Self, &S::Value) -> Result<Request, String>,
        judge: impl Fn(&Self, &S::Value, &Answer) -> Result<(), String>,
    ) where
        S::Value: fmt::Debug,
    {
        check(cases, strategy, |case| {
            let fail = |e: String| TestCaseError::fail(e);
            let request = request(self, &case).map_err(fail)?;
            let answer = self.send(&request, LIMIT).map_err(|e| fail(format!("{e}\nrequest: {request:?}")))?;
            judge(self, &case, &answer)
                .and_then(|()| plain(&answer))
                .map_err(|e| fail(format!("{e}\nrequest: {request:?}\nanswer: {} {}", answer.status, answer.text())))?;
            if self.cases.fetch_add(1, Ordering::Relaxed) % PROBE_EVERY == PROBE_EVERY - 1 {
                self.probe().map_err(|e| fail(format!("after {request:?}: {e}")))?;
            }
            self.no_panics().map_err(|e| fail(format!("{e}\nrequest: {request:?}")))
        });
        self.probe().expect("the pool serves after the batch");
        self.sign_in();
        eprintln!("pool stats after the batch: {}", self.stats());
    }

    /// The pool's counters (`GET /_pool/stats`).
    fn stats(&self) -> Value {
        let url = format!("{}/_pool/stats", self.pool.endpoint());
        self.client_rt
            .block_on(async { self.http.get(url).send().await.expect("stats").json().await.expect("stats JSON") })
    }

    /// The batch reached `error` (the fuzz is not stopped short of what it is about).
    fn reached(&self, errors: &[&str]) {
        let stats = self.stats();
        for error in errors {
            assert!(stats["errors"][error].as_u64().unwrap_or(0) > 0, "no {error} in the batch: {stats}");
        }
    }
}

/// The answer of a complete HTTP/1.1 response with a Content-Length in `raw`, if it is all there.
fn parse_http_answer(raw: &[u8]) -> Option<Answer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).ok()?;
        headers.append(name, HeaderValue::from_str(value.trim()).ok()?);
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = raw.get(end + 4..end + 4 + length)?.to_vec();
    Some(Answer { status, headers, body })
}

/// Cognito's error shape: a 4xx, `application/x-amz-json-1.1`, a body of exactly `__type` and
/// `message` (strings), `x-amzn-ErrorType` = `__type` and a colon, and a request id. Returns `__type`.
fn cognito_error(answer: &Answer) -> Result<String, String> {
    if !(400..500).contains(&answer.status) {
        return Err(format!("status {} for a bad request (Cognito answers 4xx)", answer.status));
    }
    let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type != AMZ_JSON {
        return Err(format!("content-type {content_type:?}, not {AMZ_JSON}"));
    }
    let Some(Value::Object(body)) = answer.json() else {
        return Err("the body is not a JSON object".into());
    };
    let (Some(Value::String(kind)), Some(Value::String(_))) = (body.get("__type"), body.get("message")) else {
        return Err("the body lacks a string __type or message".into());
    };
    if body.len() != 2 {
        return Err(format!("the body has members besides __type and message: {:?}", body.keys().collect::<Vec<_>>()));
    }
    if !kind.ends_with("Exception") || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("__type {kind:?} is not a Cognito error type"));
    }
    let header = answer.headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()).unwrap_or("");
    if header.split(':').next() != Some(kind.as_str()) || !header.contains(':') {
        return Err(format!("x-amzn-ErrorType {header:?} does not name {kind}"));
    }
    if !answer.headers.contains_key("x-amzn-requestid") {
        return Err("no x-amzn-RequestId".into());
    }
    Ok(kind.clone())
}

/// A 200 with a JSON object in `application/x-amz-json-1.1`, or Cognito's error shape.
fn answered(answer: &Answer) -> Result<Option<String>, String> {
    if answer.status == 200 {
        let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        return match answer.json() {
            Some(Value::Object(_)) if content_type == AMZ_JSON => Ok(None),
            _ => Err("a 200 without a JSON object in Cognito's content type".into()),
        };
    }
    cognito_error(answer).map(Some)
}

/// The error must be `expected`.
fn error_of(answer: &Answer, expected: &str) -> Result<(), String> {
    let kind = cognito_error(answer)?;
    if kind != expected {
        return Err(format!("{kind}, expected {expected}"));
    }
    Ok(())
}

/// No panic, backtrace, debug dump or library internals in the body or the error headers.
fn plain(answer: &Answer) -> Result<(), String> {
    let mut text = answer.text();
    for name in ["x-amzn-errortype", "x-amzn-errormessage"] {
        if let Some(v) = answer.headers.get(name) {
            text.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
    }
    match FORBIDDEN.iter().find(|f| text.contains(*f)) {
        Some(f) => Err(format!("the answer contains {f:?}")),
        None => Ok(()),
    }
}

/// None of `secrets` (each at least 8 characters) in the body or any header.
fn no_echo(answer: &Answer, secrets: &[&str]) -> Result<(), String> {
    let mut text = answer.text();
    for value in answer.headers.values() {
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    match secrets.iter().filter(|s| s.len() >= 8).find(|s| text.contains(*s)) {
        Some(s) => Err(format!("the answer echoes a secret: {s:?}")),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------------
// Malformed bodies

/// What a body must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not a JSON object (or malformed inside): SerializationException.
    Serialization,
    /// A JSON object: any answer in Cognito's shape.
    Any,
}

/// A valid body of `operation` (admin ones about users the probe does not use).
fn valid_body(operation: &str, client_id: &str, pool_id: &str) -> Value {
    match operation {
        "InitiateAuth" => json!({
            "AuthFlow": "CUSTOM_AUTH",
            "ClientId": client_id,
            "AuthParameters": { "USERNAME": FUZZ_USER },
            "ClientMetadata": { "k": "v" },
        }),
        "RespondToAuthChallenge" => json!({
            "ClientId": client_id,
            "ChallengeName": "CUSTOM_CHALLENGE",
            "Session": SECRET,
            "ChallengeResponses": { "USERNAME": FUZZ_USER, "ANSWER": SECRET_CODE },
        }),
        "GetUser" => json!({ "AccessToken": SECRET }),
        "AdminCreateUser" => json!({
            "UserPoolId": pool_id,
            "Username": "fuzz.new@mail.test",
            "UserAttributes": [{ "Name": "email", "Value": "fuzz.new@mail.test" }],
            "MessageAction": "SUPPRESS",
            "TemporaryPassword": "Passw0rd!",
        }),
        "AdminGetUser" => json!({ "UserPoolId": pool_id, "Username": FUZZ_USER }),
        "AdminDeleteUser" => json!({ "UserPoolId": pool_id, "Username": "fuzz.nobody@mail.test" }),
        "ListUsers" => json!({
            "UserPoolId": pool_id,
            "Filter": "email ^= \"loadtest\"",
            "Limit": 10,
            "PaginationToken": "",
            "AttributesToGet": ["email"],
        }),
        "DescribeUserPool" => json!({ "UserPoolId": pool_id }),
        _ => json!({ "UserPoolId": pool_id, "ClientId": client_id }),
    }
}

/// A malformed body for an operation.
#[derive(Debug, Clone)]
enum BadBody {
    /// Random bytes.
    Bytes(Vec<u8>),
    /// The valid body cut at a byte.
    Cut(prop::sample::Index),
    /// The valid body with odd text spliced in at a byte.
    Splice(prop::sample::Index, String),
    /// A JSON text that is not an object.
    NotObject(&'static str),
    /// `depth` nested arrays or objects, closed or not, at the top or as an unknown member.
    Deep { depth: usize, objects: bool, closed: bool, as_member: bool },
    /// The valid body with an unknown member holding a huge or odd number.
    HugeNumber(String),
    /// The valid body with odd Unicode (escaped or raw) in an unknown member and its value.
    OddMember(String),
    /// Raw bytes that are not UTF-8 inside a string member.
    NotUtf8(Vec<u8>),
    /// A control character written raw inside a string (invalid JSON).
    RawControl(char),
    /// The valid body with every member written twice.
    Duplicated,
    /// The valid body followed by more text.
    Trailing(String),
    /// A byte-order mark before the valid body.
    Bom,
    /// Nothing.
    Empty,
}

fn bad_body() -> impl Strategy<Value = BadBody> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 0..300).prop_map(BadBody::Bytes),
        3 => any::<prop::sample::Index>().prop_map(BadBody::Cut),
        2 => (any::<prop::sample::Index>(), prop_oneof![odd_unicode(), "[{}\\[\\]:,\"\\\\]{1,4}"])
            .prop_map(|(i, s)| BadBody::Splice(i, s)),
        2 => prop::sample::select(vec![
            "[]", "[{}]", "\"AuthFlow\"", "1", "-0", "1e400", "null", "true", "false", " ", "\n\t", "{", "}",
            "{}}", "{\"a\"}", "{\"a\":}", "{,}", "{\"a\":1,}", "[1,]", "NaN", "Infinity", "{'a':1}",
            "{\"a\":\"\\ud800\"}", "{\"a\":\"\\x41\"}", "{\"a\":\"\\u12\"}", "{\"a\":01}", "{\"a\":.5}",
        ])
        .prop_map(BadBody::NotObject),
        2 => (prop_oneof![1usize..140, 100usize..20_000], any::<bool>(), any::<bool>(), any::<bool>())
            .prop_map(|(depth, objects, closed, as_member)| BadBody::Deep { depth, objects, closed, as_member }),
        1 => prop_oneof![
            Just("1e400".to_string()),
            Just("-1e400".to_string()),
            Just("18446744073709551616".to_string()),
            Just("-9223372036854775809".to_string()),
            Just("1e-400".to_string()),
            Just(format!("1{}", "0".repeat(5000))),
            Just(format!("0.{}1", "0".repeat(5000))),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| format!("{f:e}")),
        ]
        .prop_map(BadBody::HugeNumber),
        2 => odd_unicode().prop_map(BadBody::OddMember),
        1 => prop::collection::vec(0x80u8..=0xff, 1..8).prop_map(BadBody::NotUtf8),
        1 => prop::sample::select(vec!['\u{0}', '\u{1}', '\n', '\r', '\t', '\u{1b}', '\u{1f}']).prop_map(BadBody::RawControl),
        1 => Just(BadBody::Duplicated),
        1 => prop_oneof![Just(" x".to_string()), Just("{}".to_string()), Just(",".to_string()), odd_unicode()]
            .prop_map(BadBody::Trailing),
        1 => Just(BadBody::Bom),
        1 => Just(BadBody::Empty),
    ]
}

/// Builds a bad body from the valid one, and what it must get.
fn build_bad_body(valid: &str, bad: &BadBody) -> (Vec<u8>, Expect) {
    let with_member = |member: &str| format!("{{{member},{}", &valid[1..]).into_bytes();
    let by_oracle = |body: Vec<u8>| {
        let expect = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(_)) => Expect::Any,
            _ => Expect::Serialization,
        };
        (body, expect)
    };
    match bad {
        BadBody::Bytes(bytes) if bytes.is_empty() => (Vec::new(), Expect::Any),
        BadBody::Bytes(bytes) => by_oracle(bytes.clone()),
        BadBody::Cut(at) => {
            let cut = at.index(valid.len());
            let expect = if cut == 0 { Expect::Any } else { Expect::Serialization };
            (valid.as_bytes()[..cut].to_vec(), expect)
        }
        BadBody::Splice(at, junk) => {
            let at = at.index(valid.len() + 1);
            let mut body = valid.as_bytes()[..at].to_vec();
            body.extend_from_slice(junk.as_bytes());
            body.extend_from_slice(&valid.as_bytes()[at..]);
            by_oracle(body)
        }
        BadBody::NotObject(text) => by_oracle(text.as_bytes().to_vec()),
        BadBody::Deep { depth, objects, closed, as_member } => {
            let (open, close) = if *objects { ("{\"a\":", "}") } else { ("[", "]") };
            let mut nest = open.repeat(*depth);
            nest.push('1');
            if *closed {
                nest.push_str(&close.repeat(*depth));
            }
            let body = if *as_member { with_member(&format!("\"Deep\":{nest}")) } else { nest.into_bytes() };
            // An unknown member ("Deep", or "a" of nested objects at the top) is skipped at any depth;
            // nested arrays at the top are not an object.
            let fits = *closed && (*as_member || *objects);
            (body, if fits { Expect::Any } else { Expect::Serialization })
        }
        BadBody::HugeNumber(number) => (with_member(&format!("\"Huge\":{number}")), Expect::Any),
        BadBody::OddMember(text) => {
            let escaped = serde_json::to_string(text).expect("string");
            let raw = format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""));
            let member = format!("{escaped}:{escaped},{escaped}x:{raw}");
            // A raw control character inside a string is invalid JSON.
            let expect = if text.chars().any(|c| c < ' ') { Expect::Serialization } else { Expect::Any };
            (with_member(&member), expect)
        }
        BadBody::NotUtf8(bytes) => {
            let mut member = b"\"Odd\":\"".to_vec();
            member.extend_from_slice(bytes);
            member.extend_from_slice(b"\"");
            let mut body = b"{".to_vec();
            body.extend_from_slice(&member);
            body.push(b',');
            body.extend_from_slice(&valid.as_bytes()[1..]);
            by_oracle(body)
        }
        BadBody::RawControl(c) => (with_member(&format!("\"Odd\":\"a{c}b\"")), Expect::Serialization),
        BadBody::Duplicated => {
            let inner = &valid[1..valid.len() - 1];
            (format!("{{{inner},{inner}}}").into_bytes(), Expect::Any)
        }
        BadBody::Trailing(tail) => by_oracle(format!("{valid}{tail}").into_bytes()),
        BadBody::Bom => {
            let mut body = "\u{FEFF}".as_bytes().to_vec();
            body.extend_from_slice(valid.as_bytes());
            (body, Expect::Serialization)
        }
        BadBody::Empty => (Vec::new(), Expect::Any),
    }
}

fn operation() -> impl Strategy<Value = &'static str> {
    prop::sample::select(OPERATIONS.to_vec())
}

#[test]
fn malformed_bodies_get_serialization_errors_in_cognitos_shape() {
    let wire = Wire::start();
    wire.run(
        512,
        (operation(), bad_body()),
        |wire, (operation, bad)| {
            let valid = valid_body(operation, wire.client_id(), wire.pool_id()).to_string();
            Ok(Request::to(operation, build_bad_body(&valid, bad).0))
        },
        |wire, (operation, bad), answer| {
            let valid = valid_body(operation, wire.client_id(), wire.pool_id()).to_string();
            match build_bad_body(&valid, bad).1 {
                Expect::Serialization => error_of(answer, "SerializationException"),
                Expect::Any => answered(answer).map(|_| ()),
            }?;
            if *operation == "RespondToAuthChallenge" || *operation == "GetUser" {
                no_echo(answer, &[SECRET, SECRET_CODE])?;
            }
            Ok(())
        },
    );
    wire.reached(&["SerializationException", "InvalidParameterException"]);
}

// ---------------------------------------------------------------------------------------------------
// Wrong types at every member

/// The type a member has in Cognito's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    /// A map of strings to strings.
    Map,
    Int,
    /// A list of `{Name, Value}` attributes.
    Attributes,
    /// A member the pool does not model: any JSON value is taken.
    Unmodelled,
}

/// Every member of every operation the fuzz replaces, its kind, and whether it carries a secret (a
/// Session, a code, a token) that must not come back.
fn members(operation: &str) -> Vec<(&'static str, Kind, bool)> {
    use Kind::*;
    match operation {
        "InitiateAuth" => vec![
            ("AuthFlow", Str, false),
            ("ClientId", Str, false),
            ("AuthParameters", Map, false),
            ("AuthParameters.USERNAME", Str, false),
            ("AuthParameters.PREFERRED_CHALLENGE", Str, false),
            ("ClientMetadata", Unmodelled, false),
            ("AnalyticsMetadata", Unmodelled, false),
            ("UserContextData", Unmodelled, false),
        ],
        "RespondToAuthChallenge" => vec![
            ("ClientId", Str, false),
            ("ChallengeName", Str, false),
            ("Session", Str, true),
            ("ChallengeResponses", Map, true),
            ("ChallengeResponses.USERNAME", Str, false),
            ("ChallengeResponses.ANSWER", Str, true),
            ("ChallengeResponses.EMAIL_OTP_CODE", Str, true),
            ("ClientMetadata", Unmodelled, false),
        ],
        "GetUser" => vec![("AccessToken", Str, true)],
        "AdminCreateUser" => vec![
            ("UserPoolId", Str, false),
            ("Username", Str, false),
            ("UserAttributes", Attributes, false),
            ("UserAttributes.0", Unmodelled, false),
            ("UserAttributes.0.Name", Str, false),
            ("UserAttributes.0.Value", Str, false),
            ("MessageAction", Str, false),
            ("TemporaryPassword", Unmodelled, false),
            ("DesiredDeliveryMediums", Unmodelled, false),
            ("ForceAliasCreation", Unmodelled, false),
        ],
        "AdminGetUser" | "AdminDeleteUser" => vec![("UserPoolId", Str, false), ("Username", Str, false)],
        "ListUsers" => vec![
            ("UserPoolId", Str, false),
            ("Filter", Str, false),
            ("Limit", Int, false),
            ("PaginationToken", Str, false),
            ("AttributesToGet", Unmodelled, false),
        ],
        "DescribeUserPool" => vec![("UserPoolId", Str, false)],
        _ => vec![("UserPoolId", Str, false), ("ClientId", Str, false)],
    }
}

/// The JSON type of a raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Null,
    Bool,
    /// An integer within i64.
    Int,
    Float,
    /// A number no integer type holds.
    Huge,
    Str,
    /// An object whose values are all strings (empty included).
    StrMap,
    /// An object with a value that is not a string.
    Obj,
    /// An array of `{Name, Value}` string objects (empty included).
    AttrList,
    Arr,
    /// Not JSON.
    Invalid,
    /// A string with a lone surrogate escape (`\ud800`): serde_json refuses it where it reads the
    /// string, Jackson takes it; either way.
    LoneSurrogate,
    /// Nested deeper than serde_json parses a value (a member the pool does not model is skipped, at
    /// any depth).
    TooDeep,
}

/// A raw JSON value and its type.
#[derive(Debug, Clone)]
struct Raw {
    text: String,
    ty: Ty,
}

fn raw(text: impl Into<String>, ty: Ty) -> Raw {
    Raw { text: text.into(), ty }
}

fn raw_value() -> impl Strategy<Value = Raw> {
    let string = |s: String| raw(serde_json::to_string(&s).expect("string"), Ty::Str);
    let fixed = prop::sample::select(vec![
        raw("null", Ty::Null),
        raw("true", Ty::Bool),
        raw("false", Ty::Bool),
        raw("0", Ty::Int),
        raw("-1", Ty::Int),
        raw(SECRET_CODE, Ty::Int),
        raw("9223372036854775807", Ty::Int),
        raw("-9223372036854775808", Ty::Int),
        raw("1.5", Ty::Float),
        raw("-0.0", Ty::Float),
        raw("10.0", Ty::Float),
        raw("5e-324", Ty::Float),
        raw("1e-400", Ty::Float),
        raw("1e400", Ty::Huge),
        raw("-1e400", Ty::Huge),
        raw("18446744073709551616", Ty::Huge),
        raw("123456789012345678901234567890", Ty::Huge),
        raw(format!("1{}", "0".repeat(4000)), Ty::Huge),
        raw("\"\"", Ty::Str),
        raw(format!("\"{SECRET}\""), Ty::Str),
        raw(format!("\"{SECRET_CODE}\""), Ty::Str),
        raw("\"\\ud83d\\udd25\"", Ty::Str),
        raw("\"\\u0000\"", Ty::Str),
        raw("\"\\ud800\"", Ty::LoneSurrogate),
        raw("\"\\x\"", Ty::Invalid),
        raw("{}", Ty::StrMap),
        raw(format!("{{\"USERNAME\":\"{FUZZ_USER}\",\"ANSWER\":\"{SECRET_CODE}\"}}"), Ty::StrMap),
        raw(format!("{{\"{SECRET}\":{SECRET_CODE}}}"), Ty::Obj),
        raw("{\"a\":null}", Ty::Obj),
        raw("{\"a\":{\"b\":[]}}", Ty::Obj),
        raw("{\"Name\":\"email\",\"Value\":\"x@mail.test\"}", Ty::StrMap),
        raw("[]", Ty::AttrList),
        raw("[{\"Name\":\"locale\",\"Value\":\"en\"}]", Ty::AttrList),
        raw(format!("[\"{SECRET}\"]"), Ty::Arr),
        raw(format!("[{SECRET_CODE}]"), Ty::Arr),
        raw("[1,\"a\",null,{}]", Ty::Arr),
        raw("[{\"Name\":1}]", Ty::Arr),
        raw(format!("{}1{}", "[".repeat(100), "]".repeat(100)), Ty::Arr),
        raw(format!("{}1{}", "[".repeat(5000), "]".repeat(5000)), Ty::TooDeep),
        raw(format!("{}{{}}{}", "{\"a\":".repeat(3000), "}".repeat(3000)), Ty::TooDeep),
    ]);
    prop_oneof![
        6 => fixed,
        1 => any::<i64>().prop_map(|n| raw(n.to_string(), Ty::Int)),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite() && f.fract() != 0.0)
            .prop_map(|f| raw(format!("{f:e}"), Ty::Float)),
        2 => odd_unicode().prop_map(string),
        1 => (1usize..20_000).prop_map(move |n| string(format!("{SECRET}{}", "é".repeat(n)))),
    ]
}

/// Whether a value of type `ty` must be refused at a member of `kind` (`None`: either way).
fn must_refuse(kind: Kind, ty: Ty) -> Option<bool> {
    use Ty::*;
    match (kind, ty) {
        (_, Invalid) => Some(true),
        (_, Null) | (_, LoneSurrogate) | (Kind::Unmodelled, _) => None,
        (_, TooDeep) => Some(true),
        // Whether 10.0 is an integer is not for the pool to decide here.
        (Kind::Int, Float) => None,
        (Kind::Str, Str) | (Kind::Map, StrMap) | (Kind::Int, Int) | (Kind::Attributes, AttrList) => Some(false),
        _ => Some(true),
    }
}

const HOLE: &str = "\u{1}HOLE\u{1}";

/// `valid` with the member at `path` (dots, numbers index arrays) replaced by `text`, as JSON text.
fn with_member(valid: &Value, path: &str, text: &str) -> String {
    let mut body = valid.clone();
    let mut at = &mut body;
    for step in path.split('.') {
        at = match step.parse::<usize>() {
            Ok(index) => &mut at[index],
            Err(_) => &mut at[step],
        };
    }
    *at = Value::String(HOLE.into());
    body.to_string().replace(&serde_json::to_string(HOLE).expect("hole"), text)
}

#[test]
fn wrong_types_at_every_member_of_every_operation_are_refused_in_cognitos_shape() {
    let wire = Wire::start();
    let case = operation().prop_flat_map(|op| (Just(op), 0..members(op).len(), raw_value()));
    wire.run(
        768,
        case,
        |wire, (operation, member, value)| {
            let valid = valid_body(operation, wire.client_id(), wire.pool_id());
            Ok(Request::to(operation, with_member(&valid, members(operation)[*member].0, &value.text)))
        },
        |_, (operation, member, value), answer| {
            let (_, kind, secret) = members(operation)[*member];
            match must_refuse(kind, value.ty) {
                Some(true) => error_of(answer, "SerializationException")?,
                Some(false) => {
                    if answered(answer)?.as_deref() == Some("SerializationException") {
                        return Err("a value of the right type was refused as malformed".into());
                    }
                }
                None => {
                    answered(answer)?;
                }
            }
            // The valid bodies carry the secrets at Session, ANSWER and AccessToken; a wrong ChallengeName
            // or ClientId is named back, as Cognito does.
            let path = members(operation)[*member].0;
            let named_back = matches!(path, "ChallengeName" | "ClientId");
            if (secret || matches!(*operation, "RespondToAuthChallenge" | "GetUser")) && !named_back {
                no_echo(answer, &[SECRET, SECRET_CODE])?;
            }
            Ok(())
        },
    );
    wire.reached(&["SerializationException", "NotAuthorizedException", "ResourceNotFoundException"]);
}

// ---------------------------------------------------------------------------------------------------
// Sign-in: both flows, every ChallengeName, garbage answers and Sessions

/// A Session to send.
#[derive(Debug, Clone)]
enum SessionKind {
    Absent,
    Null,
    Text(String),
    /// 40 bytes shaped like the pool's own (32 random, 8 of expiry), base64url.
    Forged {
        random: [u8; 32],
        expiry: u64,
    },
    /// A real one from a fresh InitiateAuth of `FUZZ_USER`: CUSTOM_AUTH, USER_AUTH (SELECT_CHALLENGE) or
    /// USER_AUTH with PREFERRED_CHALLENGE EMAIL_OTP.
    Real(RealFlow),
}

#[derive(Debug, Clone, Copy)]
enum RealFlow {
    Custom,
    Select,
    EmailOtp,
}

/// One sign-in request.
#[derive(Debug, Clone)]
enum SignIn {
    Initiate { flow: String, parameters: Vec<(String, String)> },
    Respond { challenge: String, session: SessionKind, responses: Vec<(String, String)> },
}

fn garbage_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(SECRET_CODE.to_string()),
        1 => Just(SECRET.to_string()),
        1 => Just(String::new()),
        1 => Just("EMAIL_OTP".to_string()),
        1 => Just("PASSWORD".to_string()),
        1 => Just("000000".to_string()),
        2 => odd_unicode(),
        1 => "\\PC{0,40}",
        1 => (1usize..5000).prop_map(|n| format!("{SECRET_CODE}{}", "9".repeat(n))),
    ]
}

fn username() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => Just(FUZZ_USER.to_string()),
        1 => Just("LOADTEST+2@MAIL.TEST".to_string()),
        1 => Just("nobody@mail.test".to_string()),
        1 => Just(String::new()),
        1 => odd_unicode(),
        1 => odd_unicode().prop_map(|u| format!("{u}@{u}.test")),
        1 => (1usize..50_000).prop_map(|n| format!("{}@mail.test", "a".repeat(n))),
    ]
}

/// Optional `key = value` pairs: each key present or not, plus garbage keys.
fn parameters(keys: Vec<(&'static str, BoxedStrategy<String>)>) -> impl Strategy<Value = Vec<(String, String)>> {
    let known: Vec<_> = keys
        .into_iter()
        .map(|(key, value)| prop::option::weighted(0.8, value).prop_map(move |v| v.map(|v| (key.to_string(), v))))
        .collect();
    let extra = prop::collection::vec((prop_oneof![odd_unicode(), "[A-Z_]{1,20}"], garbage_text()), 0..3);
    (known, extra).prop_map(|(known, extra)| known.into_iter().flatten().chain(extra).collect())
}

fn session_kind() -> impl Strategy<Value = SessionKind> {
    prop_oneof![
        1 => Just(SessionKind::Absent),
        1 => Just(SessionKind::Null),
        2 => garbage_text().prop_map(SessionKind::Text),
        2 => (any::<[u8; 32]>(), prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()])
            .prop_map(|(random, expiry)| SessionKind::Forged { random, expiry }),
        4 => prop_oneof![Just(RealFlow::Custom), Just(RealFlow::Select), Just(RealFlow::EmailOtp)]
            .prop_map(SessionKind::Real),
    ]
}

fn sign_in_case() -> impl Strategy<Value = SignIn> {
    let flow = prop_oneof![
        4 => Just("CUSTOM_AUTH".to_string()),
        4 => Just("USER_AUTH".to_string()),
        1 => prop::sample::select(vec![
            "USER_SRP_AUTH", "USER_PASSWORD_AUTH", "REFRESH_TOKEN_AUTH", "ADMIN_NO_SRP_AUTH", "user_auth", "",
        ])
        .prop_map(str::to_string),
        1 => odd_unicode(),
    ];
    let preferred = prop_oneof![
        3 => Just("EMAIL_OTP".to_string()),
        1 => prop::sample::select(vec!["PASSWORD", "PASSWORD_SRP", "SMS_OTP", "WEB_AUTHN", "", "email_otp"])
            .prop_map(str::to_string),
        1 => garbage_text(),
    ];
    let initiate =
        (flow, parameters(vec![("USERNAME", username().boxed()), ("PREFERRED_CHALLENGE", preferred.boxed())]))
            .prop_map(|(flow, parameters)| SignIn::Initiate { flow, parameters });
    let respond = (
        prop_oneof![
            3 => Just(None),
            1 => prop::sample::select(CHALLENGE_NAMES.to_vec()).prop_map(|name| Some(name.to_string())),
        ],
        session_kind(),
        parameters(vec![
            ("USERNAME", username().boxed()),
            ("ANSWER", garbage_text().boxed()),
            ("EMAIL_OTP_CODE", garbage_text().boxed()),
        ]),
    )
        .prop_map(|(challenge, session, responses)| {
            // Mostly the challenge the session is at, so that the answers reach the state machines.
            let challenge = challenge.unwrap_or_else(|| {
                match session {
                    SessionKind::Real(RealFlow::Select) => "SELECT_CHALLENGE",
                    SessionKind::Real(RealFlow::EmailOtp) => "EMAIL_OTP",
                    _ => "CUSTOM_CHALLENGE",
                }
                .to_string()
            });
            SignIn::Respond { challenge, session, responses }
        });
    prop_oneof![1 => initiate, 2 => respond]
}

/// Starts a real sign-in of `FUZZ_USER` and returns its Session.
fn real_session(wire: &Wire, flow: RealFlow) -> Result<String, String> {
    let (auth_flow, parameters) = match flow {
        RealFlow::Custom => ("CUSTOM_AUTH", json!({ "USERNAME": FUZZ_USER })),
        RealFlow::Select => ("USER_AUTH", json!({ "USERNAME": FUZZ_USER })),
        RealFlow::EmailOtp => ("USER_AUTH", json!({ "USERNAME": FUZZ_USER, "PREFERRED_CHALLENGE": "EMAIL_OTP" })),
    };
    let body = json!({ "AuthFlow": auth_flow, "ClientId": wire.client_id(), "AuthParameters": parameters });
    let answer = wire.send(&Request::to("InitiateAuth", body.to_string()), LIMIT)?;
    match answer.json().and_then(|j| j["Session"].as_str().map(str::to_string)) {
        Some(session) if answer.status == 200 => Ok(session),
        _ => Err(format!("a real {auth_flow} InitiateAuth failed: {} {}", answer.status, answer.text())),
    }
}

fn sign_in_request(wire: &Wire, case: &SignIn) -> Result<(Request, Option<String>), String> {
    let map = |pairs: &[(String, String)]| {
        Value::Object(pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
    };
    match case {
        SignIn::Initiate { flow, parameters } => {
            let body = json!({ "AuthFlow": flow, "ClientId": wire.client_id(), "AuthParameters": map(parameters) });
            Ok((Request::to("InitiateAuth", body.to_string()), None))
        }
        SignIn::Respond { challenge, session, responses } => {
            let mut body = json!({
                "ClientId": wire.client_id(),
                "ChallengeName": challenge,
                "ChallengeResponses": map(responses),
            });
            let sent = match session {
                SessionKind::Absent => None,
                SessionKind::Null => {
                    body["Session"] = Value::Null;
                    None
                }
                SessionKind::Text(text) => Some(text.clone()),
                SessionKind::Forged { random, expiry } => {
                    let mut bytes = random.to_vec();
                    bytes.extend_from_slice(&expiry.to_be_bytes());
                    Some(URL_SAFE_NO_PAD.encode(bytes))
                }
                SessionKind::Real(flow) => Some(real_session(wire, *flow)?),
            };
            if let Some(session) = &sent {
                body["Session"] = Value::String(session.clone());
            }
            Ok((Request::to("RespondToAuthChallenge", body.to_string()), sent))
        }
    }
}

#[test]
fn both_flows_and_every_challenge_with_garbage_answers_and_sessions() {
    let wire = Wire::start();
    // The Session each case sent when it is one that must not come back (a real or forged one, or the
    // marker; garbage such as "PASSWORD" may coincide with a ChallengeName the pool names).
    let sent = std::sync::Mutex::new(None::<String>);
    wire.run(
        512,
        sign_in_case(),
        |wire, case| {
            let (request, session) = sign_in_request(wire, case)?;
            let secret =
                matches!(case, SignIn::Respond { session: SessionKind::Real(_) | SessionKind::Forged { .. }, .. })
                    || session.as_deref() == Some(SECRET);
            *sent.lock().expect("lock") = session.filter(|_| secret);
            Ok(request)
        },
        |_, case, answer| {
            let error = answered(answer)?;
            let json = answer.json().unwrap_or_default();
            if json.get("AuthenticationResult").is_some() {
                return Err("garbage signed in".into());
            }
            if error.is_none() && !(json["ChallengeName"].is_string() && json["Session"].is_string()) {
                return Err("a 200 that is neither a challenge nor tokens".into());
            }
            let session = sent.lock().expect("lock").clone().unwrap_or_default();
            // SELECT_CHALLENGE's ANSWER is a challenge name, not a code: the pool may name it.
            let select_answer = match case {
                SignIn::Respond { challenge, responses, .. } if challenge == "SELECT_CHALLENGE" => {
                    responses.iter().find(|(k, _)| k == "ANSWER").map(|(_, v)| v.as_str())
                }
                _ => None,
            };
            let mut secrets: Vec<&str> = [SECRET_CODE, SECRET]
                .into_iter()
                .filter(|marker| !select_answer.is_some_and(|a| a.contains(marker)))
                .collect();
            secrets.push(session.as_str());
            if let SignIn::Initiate { .. } = case {
                // InitiateAuth has no Session or code to echo; USERNAME comes back in challenges.
                secrets.clear();
            }
            no_echo(answer, &secrets)
        },
    );
    wire.reached(&["CodeMismatchException", "NotAuthorizedException", "InvalidParameterException"]);
}

// ---------------------------------------------------------------------------------------------------
// Headers

/// Headers around a valid or bad body.
#[derive(Debug, Clone)]
struct HeaderCase {
    operation: &'static str,
    target: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
    valid_body: bool,
}

fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        odd_unicode().prop_map(|s| s.into_bytes().into_iter().filter(|b| *b >= 0x20 && *b != 0x7f).collect()),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 1..40),
        (1usize..6000).prop_map(|n| vec![b'A'; n]),
    ]
}

fn header_case() -> impl Strategy<Value = HeaderCase> {
    let target = |op: &'static str| {
        prop_oneof![
            4 => Just(Some(format!("{PREFIX}{op}").into_bytes())),
            1 => Just(None),
            1 => Just(Some(op.as_bytes().to_vec())),
            1 => Just(Some(PREFIX.as_bytes().to_vec())),
            1 => Just(Some(format!("{PREFIX}{}", op.to_lowercase()).into_bytes())),
            1 => Just(Some(format!("{}{op}", PREFIX.to_lowercase()).into_bytes())),
            1 => Just(Some(format!("AWSCognitoIdentityService.{op}").into_bytes())),
            1 => Just(Some(format!("{PREFIX}{op}x").into_bytes())),
            1 => Just(Some(format!("{PREFIX}{PREFIX}{op}").into_bytes())),
            1 => Just(Some(format!("{PREFIX}SignUp").into_bytes())),
            2 => header_bytes().prop_map(move |junk| {
                let mut t = PREFIX.as_bytes().to_vec();
                t.extend(junk);
                Some(t)
            }),
            1 => header_bytes().prop_map(Some),
        ]
    };
    let content_type = prop_oneof![
        3 => Just(Some(AMZ_JSON.as_bytes().to_vec())),
        1 => Just(None),
        1 => prop::sample::select(vec![
            "application/json", "text/plain", "application/x-amz-json-1.0", "application/xml",
            "multipart/form-data; boundary=x", "application/x-www-form-urlencoded", "application/x-amz-json-1.1; charset=utf-16",
            "*/*", "",
        ])
        .prop_map(|s| Some(s.as_bytes().to_vec())),
        1 => header_bytes().prop_map(Some),
    ];
    let authorization = prop_oneof![
        3 => Just(Some(SIGV4.as_bytes().to_vec())),
        2 => Just(None),
        1 => prop::sample::select(vec!["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 ", "Bearer x", "aws4-hmac-sha256 x", "Basic dGVzdA=="])
            .prop_map(|s| Some(s.as_bytes().to_vec())),
        1 => header_bytes().prop_map(Some),
    ];
    operation().prop_flat_map(move |op| {
        (Just(op), target(op), content_type.clone(), authorization.clone(), any::<bool>()).prop_map(
            |(operation, target, content_type, authorization, valid_body)| HeaderCase {
                operation,
                target,
                content_type,
                authorization,
                valid_body,
            },
        )
    })
}

#[test]
fn missing_unknown_and_odd_headers_are_refused_in_cognitos_shape() {
    let wire = Wire::start();
    wire.run(
        384,
        header_case(),
        |wire, case| {
            let body = if case.valid_body {
                valid_body(case.operation, wire.client_id(), wire.pool_id()).to_string()
            } else {
                "{\"x\":".to_string()
            };
            Ok(Request {
                target: case.target.clone(),
                content_type: case.content_type.clone(),
                authorization: case.authorization.clone(),
                body: body.into_bytes(),
            })
        },
        |_, case, answer| {
            let exact = format!("{PREFIX}{}", case.operation);
            let signed = case.authorization.as_ref().is_some_and(|a| a.starts_with(b"AWS4-HMAC-SHA256 "));
            // The pool also takes a bare operation name.
            let known = [exact.as_bytes(), case.operation.as_bytes()];
            if !case.target.as_deref().is_some_and(|t| known.contains(&t)) {
                error_of(answer, "UnknownOperationException")
            } else if is_admin(case.operation) && !signed {
                error_of(answer, "MissingAuthenticationTokenException")
            } else if !case.valid_body {
                error_of(answer, "SerializationException")
            } else {
                answered(answer).map(|_| ())
            }
        },
    );
    wire.reached(&["UnknownOperationException", "MissingAuthenticationTokenException", "SerializationException"]);
}

// ---------------------------------------------------------------------------------------------------
// Bodies of several MB

/// A body of several MB.
#[derive(Debug, Clone, Copy)]
enum Giant {
    /// InitiateAuth with a USERNAME of `mb` MB.
    LongUsername { mb: usize },
    /// A valid InitiateAuth padded with `mb` MB of spaces.
    Padded { mb: usize },
    /// `mb` MB of garbage bytes.
    Garbage { mb: usize },
    /// `mb` MB of opening brackets.
    Nested { mb: usize },
    /// A ChallengeResponses map of `mb` MB of members.
    ManyMembers { mb: usize },
}

const MB: usize = 1 << 20;

fn giant_body(wire: &Wire, giant: Giant) -> Vec<u8> {
    let initiate = |username: &str| {
        json!({ "AuthFlow": "CUSTOM_AUTH", "ClientId": wire.client_id(), "AuthParameters": { "USERNAME": username } })
            .to_string()
    };
    match giant {
        Giant::LongUsername { mb } => initiate(&"a".repeat(mb * MB)).into_bytes(),
        Giant::Padded { mb } => format!("{}{}", " ".repeat(mb * MB), initiate(FUZZ_USER)).into_bytes(),
        Giant::Garbage { mb } => (0..mb * MB).map(|i| (i * 7919 % 251) as u8).collect(),
        Giant::Nested { mb } => "[".repeat(mb * MB).into_bytes(),
        Giant::ManyMembers { mb } => {
            let members: Vec<String> = (0..mb * MB / 24).map(|i| format!("\"k{i:08}\":\"{SECRET_CODE}\"")).collect();
            format!(
                "{{\"ClientId\":\"{}\",\"ChallengeName\":\"EMAIL_OTP\",\"Session\":\"{SECRET}\",\"ChallengeResponses\":{{{}}}}}",
                wire.client_id(),
                members.join(",")
            )
            .into_bytes()
        }
    }
}

#[test]
fn bodies_of_several_megabytes_are_refused_in_cognitos_shape() {
    let wire = Wire::start();
    let giants = [
        Giant::LongUsername { mb: 3 },
        Giant::Padded { mb: 8 },
        Giant::Garbage { mb: 5 },
        Giant::Nested { mb: 4 },
        Giant::ManyMembers { mb: 3 },
        Giant::LongUsername { mb: 16 },
    ];
    for (n, giant) in giants.into_iter().enumerate() {
        let operation =
            if matches!(giant, Giant::ManyMembers { .. }) { "RespondToAuthChallenge" } else { "InitiateAuth" };
        let request = Request::to(operation, giant_body(&wire, giant));
        let started = Instant::now();
        let answer = if n % 2 == 0 {
            wire.send(&request, GIANT_LIMIT)
        } else {
            wire.send_chunked(&request, 64 * 1024, GIANT_LIMIT)
        }
        .unwrap_or_else(|e| panic!("{giant:?}: {e}"));
        let kind =
            cognito_error(&answer).unwrap_or_else(|e| panic!("{giant:?}: {e}: {} {}", answer.status, answer.text()));
        plain(&answer).unwrap_or_else(|e| panic!("{giant:?}: {e}"));
        no_echo(&answer, &[SECRET, SECRET_CODE]).unwrap_or_else(|e| panic!("{giant:?}: {e}"));
        assert!(answer.body.len() < 4096, "{giant:?}: a {} byte error", answer.body.len());
        eprintln!("{giant:?}: {} {kind} in {:?}", answer.status, started.elapsed());
        wire.probe().unwrap_or_else(|e| panic!("after {giant:?}: {e}"));
    }
    // Just under the limit: read and judged (an unknown user's normal-looking challenge), not refused.
    let under = "a".repeat(otp_harness::pool::wire::MAX_REQUEST_BODY - 200);
    let body =
        json!({ "AuthFlow": "CUSTOM_AUTH", "ClientId": wire.client_id(), "AuthParameters": { "USERNAME": under } });
    let answer = wire.send(&Request::to("InitiateAuth", body.to_string()), GIANT_LIMIT).expect("an answer");
    assert_eq!(answered(&answer), Ok(None), "{} {}", answer.status, &answer.text()[..answer.text().len().min(300)]);
    plain(&answer).expect("plain");
    wire.sign_in();
}

// ---------------------------------------------------------------------------------------------------
// The checks bite

#[test]
fn the_shape_check_refuses_answers_cognito_would_not_send() {
    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(reqwest::header::HeaderName::from_static(name), HeaderValue::from_str(value).expect("value"));
        }
        Answer { status, headers: map, body: body.as_bytes().to_vec() }
    }
    let good_headers =
        [("content-type", AMZ_JSON), ("x-amzn-errortype", "NotAuthorizedException:"), ("x-amzn-requestid", "r")];
    let good =
        answer(400, &good_headers, r#"{"__type":"NotAuthorizedException","message":"Invalid session for the user."}"#);
    assert_eq!(cognito_error(&good).as_deref(), Ok("NotAuthorizedException"));
    assert!(plain(&good).is_ok());
    let refused = [
        answer(500, &good_headers, r#"{"__type":"NotAuthorizedException","message":"m"}"#),
        answer(200, &good_headers, r#"{"__type":"NotAuthorizedException","message":"m"}"#),
        answer(413, &[("content-type", "text/plain")], "Failed to buffer the request body: length limit exceeded"),
        answer(400, &good_headers, r#"{"message":"Not Found"}"#),
        answer(400, &good_headers, r#"{"__type":"NotAuthorizedException"}"#),
        answer(400, &good_headers, r#"{"__type":"NotAuthorizedException","message":"m","debug":"x"}"#),
        answer(
            400,
            &[("content-type", AMZ_JSON), ("x-amzn-requestid", "r")],
            r#"{"__type":"NotAuthorizedException","message":"m"}"#,
        ),
        answer(
            400,
            &[("content-type", AMZ_JSON), ("x-amzn-errortype", "SerializationException:"), ("x-amzn-requestid", "r")],
            r#"{"__type":"NotAuthorizedException","message":"m"}"#,
        ),
        answer(400, &good_headers, "thread 'tokio-runtime-worker' panicked at src/pool/wire.rs:1:1"),
    ];
    for bad in &refused {
        assert!(cognito_error(bad).is_err(), "accepted {bad:?}");
    }
    let panic_text = answer(
        400,
        &good_headers,
        r#"{"__type":"InternalErrorException","message":"thread 'x' panicked at src/a.rs:1"}"#,
    );
    assert!(plain(&panic_text).is_err());
    let dump =
        answer(400, &good_headers, r#"{"__type":"InternalErrorException","message":"CognitoError { kind: X }"}"#);
    assert!(plain(&dump).is_err());
    let echo =
        answer(400, &good_headers, &format!(r#"{{"__type":"CodeMismatchException","message":"{SECRET_CODE}"}}"#));
    assert!(no_echo(&echo, &[SECRET_CODE]).is_err());
}

/// The panic hook sees a panic on a thread of a watched name (the pool's threads are watched the same
/// way, under `POOL_THREAD`).
#[test]
fn the_panic_hook_counts_panics_on_watched_threads() {
    watch_pool_panics();
    let before = SELF_TEST_PANICS.load(Ordering::SeqCst);
    let thread = std::thread::Builder::new()
        .name(format!("{SELF_TEST_THREAD}-1"))
        .spawn(|| panic!("a deliberate panic"))
        .expect("spawn");
    assert!(thread.join().is_err());
    assert_eq!(SELF_TEST_PANICS.load(Ordering::SeqCst), before + 1);
}

/// The property machinery fails on a real answer that is not Cognito's: the pool's own 404 for an
/// unknown path (`{"message":"Not Found"}`, no `__type`).
#[test]
#[should_panic(expected = "not application/x-amz-json-1.1")]
fn a_property_fails_on_an_answer_not_in_cognitos_shape() {
    let wire = Wire::start();
    check(4, Just(()), |()| {
        let url = format!("{}/not-cognito", wire.pool.endpoint());
        let answer = wire.client_rt.block_on(async {
            let response = wire.http.post(url).body("{}").send().await.expect("answer");
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            Answer { status, headers, body: response.bytes().await.expect("body").to_vec() }
        });
        cognito_error(&answer).map(|_| ()).map_err(TestCaseError::fail)
    });
}

/// Sends raw HTTP/1.1 bytes and reads until the pool closes or goes quiet.
fn send_raw(wire: &Wire, raw: &[u8]) -> Result<Answer, String> {
    let address = wire.pool.endpoint().trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&address).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(LIMIT)).map_err(|e| e.to_string())?;
    stream.write_all(raw).map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..n]);
        if let Some(answer) = parse_http_answer(&out) {
            return Ok(answer);
        }
    }
    parse_http_answer(&out).ok_or_else(|| format!("no complete HTTP answer: {:?}", String::from_utf8_lossy(&out)))
}

/// The rejections that come before the operation reads its input: a body whose chunked framing breaks
/// off, and methods other than POST, are answered in Cognito's shape; a request whose framing HTTP
/// itself refuses (two Content-Lengths) gets hyper's bare 400, as a front end would, and the pool
/// serves on.
#[test]
fn rejections_before_the_operation_come_out_in_cognitos_shape() {
    let wire = Wire::start();
    let address = wire.pool.endpoint().trim_start_matches("http://").to_string();
    let head =
        |method: &str| format!("{method} / HTTP/1.1\r\nHost: {address}\r\nx-amz-target: {PREFIX}InitiateAuth\r\n");
    let broken_chunks = format!("{}Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"a\":\r\nzz\r\n", head("POST"));
    let answer = send_raw(&wire, broken_chunks.as_bytes()).expect("an answer");
    error_of(&answer, "SerializationException").unwrap_or_else(|e| panic!("broken chunks: {e}: {}", answer.text()));
    plain(&answer).expect("plain");
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let answer =
            send_raw(&wire, format!("{}Content-Length: 2\r\n\r\n{{}}", head(method)).as_bytes()).expect("an answer");
        error_of(&answer, "UnknownOperationException").unwrap_or_else(|e| panic!("{method}: {e}: {}", answer.text()));
    }
    let two_lengths = format!("{}Content-Length: 5\r\nContent-Length: 7\r\n\r\n{{}}", head("POST"));
    let answer = send_raw(&wire, two_lengths.as_bytes()).expect("an answer");
    assert_eq!((answer.status, answer.body.len()), (400, 0), "hyper's own refusal");
    wire.probe().expect("the pool serves on");
    wire.sign_in();
}
