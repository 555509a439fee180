//! The Cognito JSON 1.1 wire protocol over HTTP: `POST /` with `X-Amz-Target`, request and response
//! shapes, errors with body and headers as Cognito sends them, plus the JWKS, the outbox and the pool's
//! own info and stats routes. Knows nothing of sessions: it calls the models and encodes their answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use serde_json::{Value, json};

use super::PoolState;
use super::auth::AuthStep;
use super::error::{CognitoError, ErrorKind};
use super::faults::QuotaCategory;
use super::outbox::OutboxQuery;
use super::users::{User, UserFilter};

/// The operations the local pool serves.
pub const OPERATIONS: [&str; 9] = [
    "InitiateAuth",
    "RespondToAuthChallenge",
    "GetUser",
    "AdminCreateUser",
    "AdminGetUser",
    "AdminDeleteUser",
    "ListUsers",
    "DescribeUserPool",
    "DescribeUserPoolClient",
];

const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// The largest request body the pool takes (Cognito's requests are a few kB).
pub const MAX_REQUEST_BODY: usize = 2 * 1024 * 1024;
/// How much of a larger body is read and dropped before the answer, so that a client still sending
/// gets the answer rather than a reset connection.
const MAX_DRAINED_BODY: usize = 64 * 1024 * 1024;

/// The HTTP routes of a pool.
pub fn router(state: Arc<PoolState>) -> Router {
    Router::new()
        .route("/", axum::routing::post(cognito).fallback(not_post))
        .route("/{pool_id}/.well-known/jwks.json", get(jwks))
        .route("/_aws/ses", get(outbox_list).delete(outbox_clear))
        .route("/_pool/info", get(info))
        .route("/_pool/stats", get(stats))
        .merge(super::ses::v2::routes())
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "Not Found" }))) })
        .with_state(state)
}

/// Every Cognito operation enters here, and SES v1 (a form body with an `Action` and no `X-Amz-Target`,
/// handed to `ses::v1`).
async fn cognito(State(pool): State<Arc<PoolState>>, headers: HeaderMap, body: Body) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target);
    let body = read_body(body).await;
    if let Ok(bytes) = &body
        && super::ses::v1::is_query_request(&headers, bytes)
    {
        return super::ses::v1::handle(&pool, bytes).await;
    }
    let result = match (body, OPERATIONS.iter().position(|op| *op == operation)) {
        (Err(error), _) => Err(error),
        (Ok(body), Some(index)) => {
            pool.stats.count_request(index);
            handle(&pool, operation, &headers, &body).await
        }
        (Ok(_), None) => Err(CognitoError::new(ErrorKind::UnknownOperation, format!("Unknown operation {operation}"))),
    };
    match result {
        Ok(value) => {
            let mut response = (StatusCode::OK, value.to_string()).into_response();
            set_common_headers(response.headers_mut(), &request_id);
            response
        }
        Err(error) => {
            pool.stats.count_error(error.kind);
            error_response(&error, &request_id)
        }
    }
}

/// Any other method on `/`: Cognito's error shape rather than axum's empty 405 (every operation is a
/// POST).
async fn not_post(State(pool): State<Arc<PoolState>>, method: axum::http::Method) -> Response {
    let error = CognitoError::new(ErrorKind::UnknownOperation, format!("{method} / is not an operation: use POST /"));
    pool.stats.count_error(error.kind);
    error_response(&error, &uuid::Uuid::new_v4().to_string())
}

async fn handle(pool: &PoolState, operation: &str, headers: &HeaderMap, body: &[u8]) -> Result<Value, CognitoError> {
    let (category, signed) = match operation {
        "InitiateAuth" => (QuotaCategory::UserAuthentication, false),
        "RespondToAuthChallenge" => (QuotaCategory::RespondToAuthChallenge, false),
        "GetUser" => (QuotaCategory::UserRead, false),
        "AdminCreateUser" => (QuotaCategory::UserCreation, true),
        "AdminGetUser" => (QuotaCategory::UserRead, true),
        "AdminDeleteUser" => (QuotaCategory::UserUpdate, true),
        "ListUsers" => (QuotaCategory::UserList, true),
        _ => (QuotaCategory::UserPoolRead, true),
    };
    if signed && !is_sigv4_signed(headers) {
        return Err(CognitoError::new(ErrorKind::MissingAuthenticationToken, "Missing Authentication Token"));
    }
    if let Some(latency) = pool.faults.latency(operation) {
        tokio::time::sleep(latency).await;
    }
    if signed {
        pool.faults.deny("cognito-idp", operation, &pool.user_pool_arn())?;
    }
    pool.faults.admit(category)?;
    match operation {
        "InitiateAuth" => initiate_auth(pool, parse(body)?).await,
        "RespondToAuthChallenge" => respond_to_auth_challenge(pool, parse(body)?).await,
        "GetUser" => get_user(pool, parse(body)?),
        "AdminCreateUser" => admin_create_user(pool, parse(body)?),
        "AdminGetUser" => admin_get_user(pool, parse(body)?),
        "AdminDeleteUser" => admin_delete_user(pool, parse(body)?),
        "ListUsers" => list_users(pool, parse(body)?),
        "DescribeUserPool" => describe_user_pool(pool, parse(body)?),
        _ => describe_user_pool_client(pool, parse(body)?),
    }
}

/// The request body, up to `MAX_REQUEST_BODY`; a larger one is read on (up to `MAX_DRAINED_BODY`) and
/// refused in Cognito's shape. (Axum's own body limit would answer in plain text.)
pub(super) async fn read_body(body: Body) -> Result<Bytes, CognitoError> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| CognitoError::new(ErrorKind::Serialization, "Could not read the request body"))?;
        total = total.saturating_add(chunk.len());
        if total <= MAX_REQUEST_BODY {
            kept.extend_from_slice(&chunk);
        } else if total > MAX_DRAINED_BODY {
            break;
        }
    }
    if total > MAX_REQUEST_BODY {
        return Err(CognitoError::new(ErrorKind::RequestEntityTooLarge, "Request payload size exceeds the limit"));
    }
    Ok(Bytes::from(kept))
}

/// Any SigV4 `Authorization` header passes (dummy credentials work), as with other local emulators.
fn is_sigv4_signed(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "))
}

/// The body as an operation's input, or a SerializationException that says what is wrong and where,
/// never the value (a Session, a code or a token sent with the wrong type must not come back).
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, CognitoError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    // JSON is UTF-8; serde_json checks only the strings it reads, not those of members it skips.
    let body = std::str::from_utf8(body).map_err(|e| {
        CognitoError::new(
            ErrorKind::Serialization,
            format!("Malformed request body: not UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    serde_json::from_str(body).map_err(|e| {
        let text = e.to_string();
        let what = match e.classify() {
            // serde's own words name only the pool's members; "invalid type: string \"…\"" names the value.
            Category::Data if text.starts_with("missing field") || text.starts_with("duplicate field") => {
                text.split(" at line ").next().unwrap_or("").to_string()
            }
            Category::Data => "a member has the wrong type".to_string(),
            Category::Syntax if text.starts_with("recursion limit exceeded") => "nested too deeply".to_string(),
            Category::Syntax | Category::Eof | Category::Io => "not valid JSON".to_string(),
        };
        CognitoError::new(
            ErrorKind::Serialization,
            format!("Malformed request body: {what} at line {} column {}", e.line(), e.column()),
        )
    })
}

/// A required member, or Cognito's validation error for it.
fn required<T>(value: Option<T>, member: &str) -> Result<T, CognitoError> {
    value.ok_or_else(|| {
        CognitoError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn error_response(error: &CognitoError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(error.kind.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let body = json!({ "__type": error.kind.type_name(), "message": error.message });
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    set_common_headers(headers, request_id);
    if let Ok(v) = HeaderValue::from_str(&format!("{}:", error.kind.type_name())) {
        headers.insert("x-amzn-errortype", v);
    }
    if let Ok(v) = HeaderValue::from_str(&error.message) {
        headers.insert("x-amzn-errormessage", v);
    }
    response
}

fn set_common_headers(headers: &mut HeaderMap, request_id: &str) {
    headers.insert("content-type", HeaderValue::from_static(AMZ_JSON));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateAuthInput {
    auth_flow: Option<String>,
    client_id: Option<String>,
    #[serde(default)]
    auth_parameters: HashMap<String, String>,
}

async fn initiate_auth(pool: &PoolState, input: InitiateAuthInput) -> Result<Value, CognitoError> {
    let auth_flow = required(input.auth_flow, "authFlow")?;
    let client_id = required(input.client_id, "clientId")?;
    let step = pool.auth.initiate(&client_id, &auth_flow, &input.auth_parameters).await?;
    Ok(auth_step_json(step, true))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RespondInput {
    client_id: Option<String>,
    challenge_name: Option<String>,
    session: Option<String>,
    #[serde(default)]
    challenge_responses: HashMap<String, String>,
    /// Passed to the custom-auth triggers this answer runs (`request.clientMetadata`).
    client_metadata: Option<HashMap<String, String>>,
}

async fn respond_to_auth_challenge(pool: &PoolState, input: RespondInput) -> Result<Value, CognitoError> {
    let client_id = required(input.client_id, "clientId")?;
    let challenge = required(input.challenge_name, "challengeName")?;
    let step = pool
        .auth
        .respond(
            &client_id,
            &challenge,
            input.session.as_deref(),
            &input.challenge_responses,
            input.client_metadata.as_ref(),
        )
        .await?;
    Ok(auth_step_json(step, false))
}

/// An InitiateAuth (`initiate`: with AvailableChallenges, which only InitiateAuth's output has) or
/// RespondToAuthChallenge answer.
fn auth_step_json(step: AuthStep, initiate: bool) -> Value {
    match step {
        AuthStep::Challenge(challenge) => {
            let parameters: serde_json::Map<String, Value> =
                challenge.parameters.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let mut out = json!({
                "ChallengeName": challenge.name,
                "Session": challenge.session,
                "ChallengeParameters": parameters,
            });
            if initiate && !challenge.available_challenges.is_empty() {
                out["AvailableChallenges"] = json!(challenge.available_challenges);
            }
            out
        }
        AuthStep::Tokens(t) => json!({
            "AuthenticationResult": {
                "AccessToken": t.access_token,
                "ExpiresIn": t.expires_in,
                "IdToken": t.id_token,
                "RefreshToken": t.refresh_token,
                "TokenType": "Bearer",
            },
            "ChallengeParameters": {},
        }),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetUserInput {
    access_token: Option<String>,
}

fn get_user(pool: &PoolState, input: GetUserInput) -> Result<Value, CognitoError> {
    let token = required(input.access_token, "accessToken")?;
    let claims = pool.tokens.verify_access_token(&token)?;
    let user = pool.users.read().find(&claims.username).ok_or_else(CognitoError::user_not_found)?;
    Ok(json!({ "Username": user.username, "UserAttributes": attributes_json(&user) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeInput {
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminCreateUserInput {
    user_pool_id: Option<String>,
    username: Option<String>,
    #[serde(default)]
    user_attributes: Vec<AttributeInput>,
    message_action: Option<String>,
}

fn admin_create_user(pool: &PoolState, input: AdminCreateUserInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let username = required(input.username, "username")?;
    if let Some(action) = input.message_action.as_deref().filter(|a| *a != "SUPPRESS" && *a != "RESEND") {
        return Err(CognitoError::invalid_parameter(format!("Invalid MessageAction {action}")));
    }
    let mut email_verified = false;
    let mut extra = std::collections::BTreeMap::new();
    let email_is_username = pool.config.email_is_username_attribute();
    for attribute in input.user_attributes {
        match attribute.name.as_str() {
            "email" if !email_is_username => {
                extra.insert(attribute.name, attribute.value);
            }
            "email" if !attribute.value.eq_ignore_ascii_case(&username) => {
                return Err(CognitoError::invalid_parameter("The email attribute must match the username."));
            }
            "email" => {}
            "email_verified" => email_verified = attribute.value == "true",
            "sub" => return Err(CognitoError::invalid_parameter("Cannot modify the non-mutable attribute sub")),
            name if name.starts_with("custom:")
                && !pool.config.custom_attributes.iter().any(|declared| name[7..] == *declared) =>
            {
                return Err(CognitoError::invalid_parameter(format!(
                    "Attributes did not conform to the schema: Type for attribute {{{name}}} could not be determined"
                )));
            }
            _ => {
                extra.insert(attribute.name, attribute.value);
            }
        }
    }
    let user = pool.users.write().create(&username, email_verified, extra)?;
    Ok(json!({ "User": user_type_json(&user, "Attributes") }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AdminUserInput {
    user_pool_id: Option<String>,
    username: Option<String>,
}

fn admin_get_user(pool: &PoolState, input: AdminUserInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let username = required(input.username, "username")?;
    let user = pool.users.read().find(&username).ok_or_else(CognitoError::user_not_found)?;
    Ok(user_type_json(&user, "UserAttributes"))
}

fn admin_delete_user(pool: &PoolState, input: AdminUserInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let username = required(input.username, "username")?;
    pool.users.write().delete(&username)?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUsersInput {
    user_pool_id: Option<String>,
    filter: Option<String>,
    limit: Option<i64>,
    pagination_token: Option<String>,
}

fn list_users(pool: &PoolState, input: ListUsersInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let limit = input.limit.unwrap_or(60);
    if !(0..=60).contains(&limit) {
        return Err(CognitoError::invalid_parameter(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: \
             Member must have value less than or equal to 60"
        )));
    }
    let filter = match input.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        Some(f) => Some(UserFilter::parse(f)?),
        None => None,
    };
    let after = input.pagination_token.as_deref().filter(|t| !t.is_empty());
    let (users, next) = pool.users.read().list(filter.as_ref(), after, limit.max(1) as usize);
    let users: Vec<Value> = users.iter().map(|u| user_type_json(u, "Attributes")).collect();
    let mut out = json!({ "Users": users });
    if let Some(next) = next {
        out["PaginationToken"] = Value::String(next);
    }
    Ok(out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeUserPoolInput {
    user_pool_id: Option<String>,
}

fn describe_user_pool(pool: &PoolState, input: DescribeUserPoolInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let c = &pool.config;
    let mut lambda_config = serde_json::Map::new();
    for (trigger, key, name) in [
        ("define", "DefineAuthChallenge", "define-auth-challenge"),
        ("create", "CreateAuthChallenge", "create-auth-challenge"),
        ("verify", "VerifyAuthChallengeResponse", "verify-auth-challenge-response"),
    ] {
        if c.lambda_triggers.iter().any(|t| t == trigger) {
            let arn = format!("arn:aws:lambda:{}:000000000000:function:otp-harness-{name}", c.region);
            lambda_config.insert(key.into(), Value::String(arn));
        }
    }
    let mut schema = vec![
        json!({ "Name": "sub", "AttributeDataType": "String", "Mutable": false, "Required": true }),
        json!({ "Name": "email", "AttributeDataType": "String", "Mutable": true, "Required": true }),
        json!({ "Name": "email_verified", "AttributeDataType": "Boolean", "Mutable": true, "Required": false }),
    ];
    schema.extend(c.custom_attributes.iter().map(|name| {
        json!({ "Name": format!("custom:{name}"), "AttributeDataType": "String", "Mutable": true, "Required": false,
                "StringAttributeConstraints": { "MinLength": "0", "MaxLength": "256" } })
    }));
    Ok(json!({ "UserPool": {
        "Id": c.user_pool_id,
        "Name": c.pool_name,
        "Arn": pool.user_pool_arn(),
        "Policies": {
            "PasswordPolicy": {
                "MinimumLength": 8, "RequireUppercase": true, "RequireLowercase": true,
                "RequireNumbers": true, "RequireSymbols": true, "TemporaryPasswordValidityDays": 7
            },
            "SignInPolicy": { "AllowedFirstAuthFactors": c.allowed_first_auth_factors },
        },
        "DeletionProtection": "INACTIVE",
        "LambdaConfig": lambda_config,
        "LastModifiedDate": pool.created,
        "CreationDate": pool.created,
        "AutoVerifiedAttributes": ["email"],
        "UsernameAttributes": c.username_attributes,
        "MfaConfiguration": "OFF",
        "EstimatedNumberOfUsers": pool.users.read().len(),
        "SchemaAttributes": schema,
        "EmailConfiguration": email_configuration(c),
        "AdminCreateUserConfig": { "AllowAdminCreateUserOnly": true },
        "UserPoolAddOns": { "AdvancedSecurityMode": c.threat_protection },
        "UserPoolTier": c.tier,
    }}))
}

/// `EmailConfiguration` as Cognito reports it: with DEVELOPER, the SES identity and sender; with
/// COGNITO_DEFAULT, nothing but the account kind.
fn email_configuration(c: &super::PoolConfig) -> Value {
    if c.email_sending_account == "COGNITO_DEFAULT" {
        return json!({ "EmailSendingAccount": "COGNITO_DEFAULT" });
    }
    let domain = c.mail.from.rsplit_once('@').map_or(c.mail.from.as_str(), |(_, d)| d);
    json!({
        "EmailSendingAccount": "DEVELOPER",
        "From": c.mail.from,
        "SourceArn": format!("arn:aws:ses:{}:000000000000:identity/{domain}", c.region),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeClientInput {
    user_pool_id: Option<String>,
    client_id: Option<String>,
}

fn describe_user_pool_client(pool: &PoolState, input: DescribeClientInput) -> Result<Value, CognitoError> {
    pool.check_pool(&required(input.user_pool_id, "userPoolId")?)?;
    let client_id = required(input.client_id, "clientId")?;
    let c = &pool.config;
    if client_id != c.client_id {
        return Err(CognitoError::client_not_found(&client_id));
    }
    let minutes = c.token_validity.as_secs() / 60;
    let mut client = json!({ "UserPoolClient": {
        "UserPoolId": c.user_pool_id,
        "ClientName": c.client_name,
        "ClientId": c.client_id,
        "LastModifiedDate": pool.created,
        "CreationDate": pool.created,
        "RefreshTokenValidity": 30,
        "AccessTokenValidity": minutes,
        "IdTokenValidity": minutes,
        "TokenValidityUnits": { "AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days" },
        "ExplicitAuthFlows": c.explicit_auth_flows,
        "PreventUserExistenceErrors": c.prevent_user_existence_errors.as_str(),
        "EnableTokenRevocation": true,
        "EnablePropagateAdditionalUserContextData": false,
        "AuthSessionValidity": c.auth_session_validity.as_secs().div_ceil(60),
    }});
    if c.client_secret {
        // A fixed stand-in: the local pool never checks a SECRET_HASH's value.
        client["UserPoolClient"]["ClientSecret"] = Value::String("local-pool-client-secret-not-checked".into());
    }
    Ok(client)
}

fn attributes_json(user: &User) -> Vec<Value> {
    user.attributes().into_iter().map(|(name, value)| json!({ "Name": name, "Value": value })).collect()
}

/// Cognito's UserType (`Attributes`) or AdminGetUser's shape (`UserAttributes`).
fn user_type_json(user: &User, attributes_key: &str) -> Value {
    let mut out = json!({
        "Username": user.username,
        "UserCreateDate": user.created,
        "UserLastModifiedDate": user.created,
        "Enabled": user.enabled,
        "UserStatus": user.status(),
    });
    out[attributes_key] = Value::Array(attributes_json(user));
    out
}

async fn jwks(State(pool): State<Arc<PoolState>>, Path(pool_id): Path<String>) -> Response {
    if pool_id != pool.config.user_pool_id {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "Not Found" }))).into_response();
    }
    axum::Json(pool.tokens.jwks()).into_response()
}

#[derive(Deserialize)]
struct OutboxParams {
    id: Option<String>,
    email: Option<String>,
    to: Option<String>,
    after: Option<String>,
    /// Hold the read open until a matching message exists (`500ms`, `2s`, or milliseconds).
    wait: Option<String>,
}

impl From<OutboxParams> for OutboxQuery {
    fn from(p: OutboxParams) -> Self {
        OutboxQuery { id: p.id, source: p.email, to: p.to, after: p.after }
    }
}

/// The header a `wait` read is answered with: how a reader tells this outbox from one that ignores
/// `wait` (LocalStack's), which it must poll.
pub const OUTBOX_WAIT_HEADER: &str = "x-otp-harness-outbox-wait";

async fn outbox_list(State(pool): State<Arc<PoolState>>, Query(mut params): Query<OutboxParams>) -> Response {
    let Some(outbox) = pool.mail.outbox() else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "the outbox sink is off" }))).into_response();
    };
    let Some(wait) = params.wait.take() else {
        return axum::Json(json!({ "messages": outbox.list_entries(&params.into()) })).into_response();
    };
    let wait = match wait.trim().parse::<u64>() {
        Ok(ms) => std::time::Duration::from_millis(ms),
        Err(_) => match humantime::parse_duration(wait.trim()) {
            Ok(d) => d,
            Err(_) => {
                let message = "wait must be a duration (500ms, 2s) or a number of milliseconds";
                return (StatusCode::BAD_REQUEST, axum::Json(json!({ "message": message }))).into_response();
            }
        },
    };
    let messages = outbox.wait_entries(&params.into(), wait).await;
    let mut response = axum::Json(json!({ "messages": messages })).into_response();
    response.headers_mut().insert(OUTBOX_WAIT_HEADER, HeaderValue::from_static("1"));
    response
}

async fn outbox_clear(State(pool): State<Arc<PoolState>>, Query(params): Query<OutboxParams>) -> Response {
    match pool.mail.outbox() {
        Some(outbox) => {
            outbox.remove(&params.into());
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::NOT_FOUND, axum::Json(json!({ "message": "the outbox sink is off" }))).into_response(),
    }
}

async fn info(State(pool): State<Arc<PoolState>>) -> Response {
    axum::Json(&pool.info).into_response()
}

async fn stats(State(pool): State<Arc<PoolState>>) -> Response {
    axum::Json(pool.stats_snapshot()).into_response()
}
