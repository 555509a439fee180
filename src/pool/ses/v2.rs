//! SES v2 on the wire (rest-json, `/v2/email/…`): GetAccount, GetEmailIdentity, GetSuppressedDestination,
//! ListSuppressedDestinations and SendEmail, with errors as SES v2 sends them — the status, an
//! `x-amzn-ErrorType` header and a JSON `message`. Knows nothing of quotas or identities: it decodes,
//! calls the account (`super::SesAccount`) and encodes.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AccountView, IdentityStatus, SendContent, SendRequest, SesError, SesErrorKind, SuppressedView, SuppressionQuery,
    SuppressionReason, form_pairs, parse_timestamp,
};
use crate::pool::PoolState;

/// The SES v2 routes of a pool (merged into `wire::router`).
pub fn routes() -> Router<Arc<PoolState>> {
    Router::new()
        .route("/v2/email/account", get(get_account))
        .route("/v2/email/identities/{identity}", get(get_email_identity))
        .route("/v2/email/suppression/addresses", get(list_suppressed_destinations))
        .route("/v2/email/suppression/addresses/{address}", get(get_suppressed_destination))
        .route("/v2/email/outbound-emails", post(send_email))
}

/// The status and error type SES v2 sends for `kind`.
fn status_and_type(kind: SesErrorKind) -> (StatusCode, &'static str) {
    match kind {
        SesErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "BadRequestException"),
        SesErrorKind::NotFound => (StatusCode::NOT_FOUND, "NotFoundException"),
        SesErrorKind::InvalidNextToken => (StatusCode::BAD_REQUEST, "InvalidNextTokenException"),
        SesErrorKind::MessageRejected => (StatusCode::BAD_REQUEST, "MessageRejected"),
        SesErrorKind::SendingPaused => (StatusCode::BAD_REQUEST, "SendingPausedException"),
        SesErrorKind::AccountSuspended => (StatusCode::BAD_REQUEST, "AccountSuspendedException"),
        SesErrorKind::MaxSendRateExceeded => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException"),
        // [L] SES v2 has no documented error for a spent daily quota; LimitExceededException (400) is
        // the modelled SendEmail error that fits (v1 answers Throttling, ses-wire.md §4).
        SesErrorKind::DailyQuotaExceeded => (StatusCode::BAD_REQUEST, "LimitExceededException"),
        SesErrorKind::AccessDenied => (StatusCode::FORBIDDEN, "AccessDeniedException"),
    }
}

/// Counts the request, and the error if any, and encodes the answer.
fn answer(pool: &PoolState, operation: &'static str, result: Result<Value, SesError>) -> Response {
    pool.ses.count_request(operation);
    let request_id = uuid::Uuid::new_v4().to_string();
    let (status, body, error_type) = match result {
        Ok(value) => (StatusCode::OK, value, None),
        Err(error) => {
            let (status, error_type) = status_and_type(error.kind);
            pool.ses.count_error(error_type);
            (status, json!({ "message": error.message }), Some(error_type))
        }
    };
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    if let Some(error_type) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(error_type));
    }
    response
}

/// A path segment, percent-decoded (axum decodes it), or BadRequestException.
fn segment(path: Result<Path<String>, PathRejection>) -> Result<String, SesError> {
    path.map(|Path(p)| p).map_err(|_| SesError::bad_request("The request path is not valid."))
}

async fn get_account(State(pool): State<Arc<PoolState>>) -> Response {
    let result = pool.ses.deny("GetAccount", None).map(|()| account_json(&pool.ses.account()));
    answer(&pool, "v2:GetAccount", result)
}

fn account_json(a: &AccountView) -> Value {
    let mut out = json!({
        "DedicatedIpAutoWarmupEnabled": false,
        "EnforcementStatus": a.enforcement_status,
        "ProductionAccessEnabled": a.production_access,
        "SendQuota": {
            "Max24HourSend": a.max_24_hour_send,
            "MaxSendRate": a.max_send_rate,
            "SentLast24Hours": a.sent_last_24_hours,
        },
        "SendingEnabled": a.sending_enabled,
        "SuppressionAttributes": { "SuppressedReasons": ["BOUNCE", "COMPLAINT"] },
    });
    if a.production_access {
        // What an account shows after its production-access request was granted [M].
        out["Details"] = json!({
            "MailType": "TRANSACTIONAL",
            "WebsiteURL": "https://otp-harness.test",
            "ContactLanguage": "EN",
            "UseCaseDescription": "One-time sign-in codes (otp-harness local pool).",
            "AdditionalContactEmailAddresses": [],
            "ReviewDetails": { "Status": "GRANTED", "CaseId": "otp-harness-local" },
        });
    }
    out
}

async fn get_email_identity(
    State(pool): State<Arc<PoolState>>,
    identity: Result<Path<String>, PathRejection>,
) -> Response {
    let result = segment(identity).and_then(|identity| {
        pool.ses.deny("GetEmailIdentity", Some(&pool.ses.identity_arn(&identity)))?;
        let status = pool.ses.identity(&identity)?;
        Ok(identity_json(&identity, status, pool.ses.started()))
    });
    answer(&pool, "v2:GetEmailIdentity", result)
}

/// GetEmailIdentity's answer: a verified domain signs with Easy DKIM; an address or a pending
/// identity is as a fresh one reads (ses-wire.md §2).
fn identity_json(identity: &str, status: IdentityStatus, started: f64) -> Value {
    let domain = !identity.contains('@');
    let verified = status == IdentityStatus::Verified;
    let dkim = if domain && verified {
        // 32 hex digits per token, the same for the same domain (FNV-1a of the domain and the token's number).
        let token = |n: u64| {
            let fnv = |seed: u64| {
                identity
                    .to_ascii_lowercase()
                    .bytes()
                    .fold(seed ^ n, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
            };
            format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
        };
        json!({
            "SigningEnabled": true,
            "Status": "SUCCESS",
            "Tokens": [token(1), token(2), token(3)],
            "SigningAttributesOrigin": "AWS_SES",
            "NextSigningKeyLength": "RSA_2048_BIT",
            "CurrentSigningKeyLength": "RSA_2048_BIT",
            "LastKeyGenerationTimestamp": started,
        })
    } else {
        json!({
            "SigningEnabled": false,
            "Status": "NOT_STARTED",
            "SigningAttributesOrigin": "AWS_SES",
            "NextSigningKeyLength": "RSA_1024_BIT",
        })
    };
    let verification_info =
        if verified { json!({ "LastCheckedTimestamp": started, "LastSuccessTimestamp": started }) } else { json!({}) };
    json!({
        "IdentityType": if domain { "DOMAIN" } else { "EMAIL_ADDRESS" },
        "FeedbackForwardingStatus": true,
        "VerifiedForSendingStatus": verified,
        "DkimAttributes": dkim,
        "MailFromAttributes": { "BehaviorOnMxFailure": "USE_DEFAULT_VALUE" },
        "Policies": {},
        "Tags": [],
        "VerificationStatus": if verified { "SUCCESS" } else { "PENDING" },
        "VerificationInfo": verification_info,
    })
}

fn suppressed_json(s: &SuppressedView) -> Value {
    json!({ "EmailAddress": s.address, "Reason": s.reason.as_str(), "LastUpdateTime": s.last_update_time })
}

async fn get_suppressed_destination(
    State(pool): State<Arc<PoolState>>,
    address: Result<Path<String>, PathRejection>,
) -> Response {
    let result = segment(address).and_then(|address| {
        pool.ses.deny("GetSuppressedDestination", None)?;
        let found = pool.ses.suppressed(&address)?;
        Ok(json!({ "SuppressedDestination": suppressed_json(&found) }))
    });
    answer(&pool, "v2:GetSuppressedDestination", result)
}

async fn list_suppressed_destinations(State(pool): State<Arc<PoolState>>, RawQuery(query): RawQuery) -> Response {
    let result = (|| {
        pool.ses.deny("ListSuppressedDestinations", None)?;
        let mut q = SuppressionQuery::default();
        for (key, value) in form_pairs(query.unwrap_or_default().as_bytes()) {
            match key.as_str() {
                "Reason" => q.reasons.push(
                    SuppressionReason::parse(&value)
                        .ok_or_else(|| SesError::bad_request("Reason must be BOUNCE or COMPLAINT."))?,
                ),
                "StartDate" => q.start = Some(timestamp(&value, "StartDate")?),
                "EndDate" => q.end = Some(timestamp(&value, "EndDate")?),
                "PageSize" => {
                    q.page_size = Some(value.parse().map_err(|_| SesError::bad_request("PageSize must be a number."))?)
                }
                "NextToken" => q.next_token = Some(value),
                _ => {}
            }
        }
        let (page, next) = pool.ses.list_suppressed(&q)?;
        let mut out = json!({ "SuppressedDestinationSummaries": page.iter().map(suppressed_json).collect::<Vec<_>>() });
        if let Some(next) = next {
            out["NextToken"] = Value::String(next);
        }
        Ok(out)
    })();
    answer(&pool, "v2:ListSuppressedDestinations", result)
}

fn timestamp(value: &str, name: &str) -> Result<f64, SesError> {
    parse_timestamp(value).ok_or_else(|| SesError::bad_request(format!("{name} is not a valid date-time.")))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SendEmailInput {
    from_email_address: Option<String>,
    destination: DestinationInput,
    reply_to_addresses: Vec<String>,
    content: Option<ContentInput>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct DestinationInput {
    to_addresses: Vec<String>,
    cc_addresses: Vec<String>,
    bcc_addresses: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContentInput {
    simple: Option<SimpleInput>,
    raw: Option<RawInput>,
    template: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SimpleInput {
    subject: Option<ContentData>,
    body: Option<BodyInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ContentData {
    data: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct BodyInput {
    text: Option<ContentData>,
    html: Option<ContentData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInput {
    data: String,
}

async fn send_email(State(pool): State<Arc<PoolState>>, body: Body) -> Response {
    let result = match crate::pool::wire::read_body(body).await {
        Ok(body) => send_email_input(&body).and_then(|request| {
            let id = pool.ses.send("SendEmail", request)?;
            Ok(json!({ "MessageId": id }))
        }),
        Err(e) => Err(SesError::bad_request(e.message)),
    };
    answer(&pool, "v2:SendEmail", result)
}

/// The request, or BadRequestException saying what is wrong (never echoing a value: bodies hold codes).
fn send_email_input(body: &[u8]) -> Result<SendRequest, SesError> {
    let input: SendEmailInput = serde_json::from_slice(if body.is_empty() { b"{}" } else { body }).map_err(|e| {
        SesError::bad_request(format!("Malformed request body at line {} column {}.", e.line(), e.column()))
    })?;
    let content = input.content.ok_or_else(|| SesError::bad_request("Content is required."))?;
    let content = match (content.simple, content.raw, content.template) {
        (Some(simple), None, None) => {
            let subject = simple.subject.ok_or_else(|| SesError::bad_request("Content.Simple.Subject is required."))?;
            let body = simple.body.ok_or_else(|| SesError::bad_request("Content.Simple.Body is required."))?;
            SendContent::Simple {
                subject: subject.data,
                text: body.text.map(|t| t.data),
                html: body.html.map(|h| h.data),
            }
        }
        (None, Some(raw), None) => SendContent::Raw(
            base64::engine::general_purpose::STANDARD
                .decode(raw.data.trim())
                .map_err(|_| SesError::bad_request("Content.Raw.Data is not valid base64."))?,
        ),
        (None, None, Some(_)) => {
            return Err(SesError::bad_request("The local pool does not render templates: send Simple or Raw content."));
        }
        _ => return Err(SesError::bad_request("Content must have exactly one of Simple, Raw and Template.")),
    };
    Ok(SendRequest {
        from: input.from_email_address,
        to: input.destination.to_addresses,
        cc: input.destination.cc_addresses,
        bcc: input.destination.bcc_addresses,
        reply_to: input.reply_to_addresses,
        content,
    })
}
