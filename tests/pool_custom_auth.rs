//! The local pool driven by the AWS SDK for Rust: custom-auth sign-in, lockout, sessions, unknown
//! users, tokens verified against the JWKS, and the admin operations.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_cognitoidentityprovider as cip;
use otp_harness::pool::PoolConfig;
use otp_harness::pool::config::PreventUserExistenceErrors;
use serde_json::Value;
use support::*;

#[tokio::test]
async fn right_code_signs_in_and_tokens_verify_against_the_jwks() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    assert_eq!(started.challenge_name(), Some(&cip::types::ChallengeNameType::CustomChallenge));
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    assert_ne!(username, USER, "USERNAME is the internal username, not the email alias");
    let codes = codes_for(&pool, USER).await;
    assert_eq!(codes.len(), 1);
    assert_eq!(codes[0].len(), 6);

    let done = respond(&client, &pool, &session, &username, &codes[0]).await.expect("right code accepted");
    let result = done.authentication_result().expect("tokens");
    assert_eq!(result.expires_in(), 3600);
    assert_eq!(result.token_type(), Some("Bearer"));
    assert!(result.refresh_token().is_some_and(|t| !t.is_empty()));

    let user = client
        .admin_get_user()
        .user_pool_id(&pool.info().user_pool_id)
        .username(USER)
        .send()
        .await
        .expect("admin get user");
    let sub = user
        .user_attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .expect("sub attribute")
        .to_string();

    let jwks: Value = reqwest::get(&pool.info().jwks_uri).await.expect("jwks").json().await.expect("jwks json");
    let id_token = result.id_token().expect("id token");
    let access_token = result.access_token().expect("access token");
    let id = verify(&jwks, id_token, &pool.info().issuer, Some(&pool.info().client_id));
    let access = verify(&jwks, access_token, &pool.info().issuer, None);

    assert_eq!(id["token_use"], "id");
    assert_eq!(id["aud"], pool.info().client_id.as_str());
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["email"], USER);
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["cognito:username"], username.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["client_id"], pool.info().client_id.as_str());
    assert!(access.get("aud").is_none(), "access tokens carry client_id, not aud");
    assert_eq!(access["scope"], "aws.cognito.signin.user.admin");
    assert_eq!(access["username"], username.as_str());
    assert_eq!(access["sub"], sub.as_str());
    for claims in [&id, &access] {
        let (iat, exp) = (claims["iat"].as_u64().expect("iat"), claims["exp"].as_u64().expect("exp"));
        assert_eq!(exp - iat, 3600, "exp - iat = ExpiresIn");
        assert_eq!(claims["auth_time"], claims["iat"]);
    }
    assert_eq!(id["origin_jti"], access["origin_jti"]);
    assert_ne!(id["jti"], access["jti"]);
    let id_kid = jsonwebtoken::decode_header(id_token).expect("header").kid;
    let access_kid = jsonwebtoken::decode_header(access_token).expect("header").kid;
    assert_ne!(id_kid, access_kid, "ID and access tokens use different keys");

    let me = client.get_user().access_token(access_token).send().await.expect("GetUser accepts the access token");
    assert_eq!(me.username(), username);
    assert!(me.user_attributes().iter().any(|a| a.name() == "email" && a.value() == Some(USER)));
    let (kind, message) = service_error(client.get_user().access_token(id_token).send().await.unwrap_err());
    assert_eq!((kind.as_str(), message.as_str()), ("NotAuthorizedException", "Invalid Access Token"));
}

/// Verifies as aws-jwt-verify does: RS256 by kid from the JWKS, issuer, expiry, audience for ID tokens.
fn verify(jwks: &Value, token: &str, issuer: &str, audience: Option<&str>) -> Value {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).expect("JWKS parses");
    let header = jsonwebtoken::decode_header(token).expect("JWT header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let jwk = set.find(header.kid.as_deref().expect("kid")).expect("kid in JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("RSA key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token verifies").claims
}

#[tokio::test]
async fn two_wrong_codes_then_the_right_one_signs_in_with_a_new_code_each_round() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (mut session, username) = challenge_of(started.session(), started.challenge_parameters());
    for round in 1..=2 {
        let code = latest_code(&pool, USER).await;
        let next =
            respond(&client, &pool, &session, &username, &wrong_code(&code)).await.expect("wrong code: new challenge");
        assert!(next.authentication_result().is_none(), "round {round}: no tokens for a wrong code");
        let (new_session, _) = challenge_of(next.session(), next.challenge_parameters());
        assert_ne!(new_session, session, "a new Session every round");
        session = new_session;
    }
    let codes = codes_for(&pool, USER).await;
    assert_eq!(codes.len(), 3, "a mail per round");
    assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 3, "a new code per round");
    let done = respond(&client, &pool, &session, &username, &codes[2]).await.expect("right code");
    assert!(done.authentication_result().and_then(|r| r.id_token()).is_some());
}

#[tokio::test]
async fn the_third_wrong_code_locks_the_sign_in_and_the_real_code_is_refused_after() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (mut session, username) = challenge_of(started.session(), started.challenge_parameters());
    for _ in 0..2 {
        let code = latest_code(&pool, USER).await;
        let next = respond(&client, &pool, &session, &username, &wrong_code(&code)).await.expect("challenge");
        session = challenge_of(next.session(), next.challenge_parameters()).0;
    }
    let real = latest_code(&pool, USER).await;
    let err = respond(&client, &pool, &session, &username, &wrong_code(&real)).await.unwrap_err();
    assert_eq!(
        service_error(err),
        ("NotAuthorizedException".to_string(), "Incorrect username or password.".to_string())
    );
    let err = respond(&client, &pool, &session, &username, &real).await.unwrap_err();
    assert_eq!(service_error(err), ("NotAuthorizedException".to_string(), "Invalid session for the user.".to_string()));
}

#[tokio::test]
async fn a_used_session_is_refused() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let code = latest_code(&pool, USER).await;
    respond(&client, &pool, &session, &username, &wrong_code(&code)).await.expect("challenge");
    let err = respond(&client, &pool, &session, &username, &code).await.unwrap_err();
    assert_eq!(service_error(err), ("NotAuthorizedException".to_string(), "Invalid session for the user.".to_string()));
    let err = respond(&client, &pool, "made-up-session", &username, &code).await.unwrap_err();
    assert_eq!(service_error(err).1, "Invalid session for the user.");
}

#[tokio::test]
async fn a_session_expires_after_auth_session_validity() {
    let config = PoolConfig { auth_session_validity: Duration::from_millis(400), ..PoolConfig::default() };
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, USER).await.expect("initiate");
    let (session, username) = challenge_of(started.session(), started.challenge_parameters());
    let code = latest_code(&pool, USER).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = respond(&client, &pool, &session, &username, &code).await.unwrap_err();
    assert_eq!(
        service_error(err),
        ("NotAuthorizedException".to_string(), "Invalid session for the user, session is expired.".to_string())
    );
}

#[tokio::test]
async fn unknown_users_get_user_not_found_in_legacy_mode() {
    let config =
        PoolConfig { prevent_user_existence_errors: PreventUserExistenceErrors::Legacy, ..PoolConfig::default() };
    let pool = start_pool(config).await;
    let client = sdk(&pool);
    let err = initiate(&client, &pool, "nobody@mail.test").await.unwrap_err();
    assert_eq!(service_error(err), ("UserNotFoundException".to_string(), "User does not exist.".to_string()));
}

#[tokio::test]
async fn unknown_users_get_a_normal_looking_challenge_when_existence_errors_are_prevented() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let started = initiate(&client, &pool, "nobody@mail.test").await.expect("a challenge, as for a known user");
    let (mut session, username) = challenge_of(started.session(), started.challenge_parameters());
    assert_ne!(username, "nobody@mail.test");
    assert!(started.challenge_parameters().is_some_and(|p| p.len() == 1), "USERNAME only");
    for _ in 0..2 {
        let next = respond(&client, &pool, &session, &username, "123456").await.expect("challenge");
        session = challenge_of(next.session(), next.challenge_parameters()).0;
    }
    let err = respond(&client, &pool, &session, &username, "123456").await.unwrap_err();
    assert_eq!(service_error(err).1, "Incorrect username or password.");
    assert!(codes_for(&pool, "nobody@mail.test").await.is_empty(), "nothing is mailed to unknown users");
}

#[tokio::test]
async fn bad_requests_get_cognitos_errors() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let err = client
        .initiate_auth()
        .auth_flow(cip::types::AuthFlowType::CustomAuth)
        .client_id("nosuchclient")
        .auth_parameters("USERNAME", USER)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        service_error(err),
        ("ResourceNotFoundException".to_string(), "User pool client nosuchclient does not exist.".to_string())
    );
    let err = client
        .initiate_auth()
        .auth_flow(cip::types::AuthFlowType::CustomAuth)
        .client_id(&pool.info().client_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        service_error(err),
        ("InvalidParameterException".to_string(), "Missing required parameter USERNAME".to_string())
    );
    let err = client
        .initiate_auth()
        .auth_flow(cip::types::AuthFlowType::UserPasswordAuth)
        .client_id(&pool.info().client_id)
        .auth_parameters("USERNAME", USER)
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(err).0, "InvalidParameterException");
}

#[tokio::test]
async fn errors_carry_cognitos_headers_and_unknown_operations_are_refused() {
    let pool = start_pool(PoolConfig::default()).await;
    let http = reqwest::Client::new();
    let call = |target: &str, body: &str| {
        http.post(pool.endpoint())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{target}"))
            .body(body.to_string())
            .send()
    };
    let response = call(
        "RespondToAuthChallenge",
        &format!(
            r#"{{"ClientId":"{}","ChallengeName":"CUSTOM_CHALLENGE","Session":"nope","ChallengeResponses":{{"USERNAME":"x","ANSWER":"1"}}}}"#,
            pool.info().client_id
        ),
    )
    .await
    .expect("answer");
    assert_eq!(response.status(), 400);
    let headers = response.headers().clone();
    assert_eq!(headers["x-amzn-errortype"], "NotAuthorizedException:");
    assert_eq!(headers["x-amzn-errormessage"], "Invalid session for the user.");
    assert!(headers.contains_key("x-amzn-requestid"));
    assert_eq!(headers["content-type"], "application/x-amz-json-1.1");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "NotAuthorizedException");
    assert_eq!(body["message"], "Invalid session for the user.");

    let response = call("SignUp", "{}").await.expect("answer");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "UnknownOperationException");

    let response = call("ListUsers", r#"{"UserPoolId":"x"}"#).await.expect("answer");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "MissingAuthenticationTokenException", "admin operations must be signed");

    let response = call("InitiateAuth", "{not json").await.expect("answer");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["__type"], "SerializationException");
}

/// Regression (fuzz_pool_wire): a body over the limit got axum's own answer, `413 text/plain`
/// "Failed to buffer the request body: length limit exceeded", instead of Cognito's error shape.
#[tokio::test]
async fn a_body_over_the_limit_is_refused_in_cognitos_shape() {
    let pool = start_pool(PoolConfig::default()).await;
    let http = reqwest::Client::new();
    let body = format!(
        r#"{{"AuthFlow":"CUSTOM_AUTH","ClientId":"{}","AuthParameters":{{"USERNAME":"{}"}}}}"#,
        pool.info().client_id,
        "a".repeat(otp_harness::pool::wire::MAX_REQUEST_BODY + 1)
    );
    for _ in 0..2 {
        let response = http
            .post(pool.endpoint())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSCognitoIdentityProviderService.InitiateAuth")
            .body(body.clone())
            .send()
            .await
            .expect("an answer, not a reset connection");
        assert_eq!(response.status(), 413);
        assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.1");
        assert_eq!(response.headers()["x-amzn-errortype"], "RequestEntityTooLargeException:");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["__type"], "RequestEntityTooLargeException");
        assert_eq!(answer["message"], "Request payload size exceeds the limit");
    }
    initiate(&sdk(&pool), &pool, USER).await.expect("the pool serves on");
}

/// Regression (fuzz_pool_wire): a member of the wrong type came back in the SerializationException's
/// message (serde's "invalid type: integer `90817263`, expected a string"), echoing a Session, code
/// or token sent as a number or in place of a map.
#[tokio::test]
async fn a_member_of_the_wrong_type_is_not_echoed_in_the_serialization_error() {
    let pool = start_pool(PoolConfig::default()).await;
    let http = reqwest::Client::new();
    let client_id = &pool.info().client_id;
    for body in [
        format!(r#"{{"ClientId":"{client_id}","ChallengeName":"EMAIL_OTP","Session":90817263}}"#),
        format!(r#"{{"ClientId":"{client_id}","ChallengeName":"EMAIL_OTP","ChallengeResponses":"90817263"}}"#),
        format!(
            r#"{{"ClientId":"{client_id}","ChallengeName":"EMAIL_OTP","ChallengeResponses":{{"EMAIL_OTP_CODE":90817263}}}}"#
        ),
    ] {
        let response = http
            .post(pool.endpoint())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", "AWSCognitoIdentityProviderService.RespondToAuthChallenge")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 400);
        let echoed = format!("{:?}", response.headers());
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["__type"], "SerializationException");
        let message = answer["message"].as_str().expect("message");
        assert!(message.starts_with("Malformed request body: a member has the wrong type at line 1"), "{message}");
        assert!(!message.contains("90817263") && !echoed.contains("90817263"), "{message}");
    }
}

/// Regression (fuzz_pool_wire): bytes that are not UTF-8 in a member the pool does not model (here
/// ClientMetadata) were skipped and the request answered 200; JSON is UTF-8.
#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_serialization_error() {
    let pool = start_pool(PoolConfig::default()).await;
    let mut body = br#"{"ClientMetadata":{"k":""#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0x80]);
    body.extend_from_slice(
        format!(
            r#""}},"AuthFlow":"CUSTOM_AUTH","ClientId":"{}","AuthParameters":{{"USERNAME":"{USER}"}}}}"#,
            pool.info().client_id
        )
        .as_bytes(),
    );
    let response = reqwest::Client::new()
        .post(pool.endpoint())
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AWSCognitoIdentityProviderService.InitiateAuth")
        .body(body)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["__type"], "SerializationException");
    assert_eq!(answer["message"], "Malformed request body: not UTF-8 at byte 24");
}

/// Regression (fuzz_pool_wire): a method other than POST on `/` got axum's own answer, an empty 405,
/// instead of Cognito's error shape.
#[tokio::test]
async fn other_methods_on_the_endpoint_get_cognitos_error_shape() {
    let pool = start_pool(PoolConfig::default()).await;
    let http = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let response = http
            .request(method.clone(), pool.endpoint())
            .header("x-amz-target", "AWSCognitoIdentityProviderService.InitiateAuth")
            .body("{}")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 400, "{method}");
        assert_eq!(response.headers()["x-amzn-errortype"], "UnknownOperationException:");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(answer["__type"], "UnknownOperationException");
        assert_eq!(answer["message"], format!("{method} / is not an operation: use POST /"));
    }
}

#[tokio::test]
async fn admin_operations_create_find_list_and_delete_users() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let pool_id = pool.info().user_pool_id.clone();
    let created = client
        .admin_create_user()
        .user_pool_id(&pool_id)
        .username("new.user@mail.test")
        .user_attributes(
            cip::types::AttributeType::builder().name("email").value("new.user@mail.test").build().expect("attr"),
        )
        .user_attributes(
            cip::types::AttributeType::builder().name("email_verified").value("true").build().expect("attr"),
        )
        .message_action(cip::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("created");
    let user = created.user().expect("user");
    let username = user.username().expect("username").to_string();
    assert!(uuid::Uuid::parse_str(&username).is_ok(), "internal usernames are UUIDs");
    assert_eq!(user.user_status(), Some(&cip::types::UserStatusType::ForceChangePassword));
    assert!(user.user_create_date().is_some());

    let err =
        client.admin_create_user().user_pool_id(&pool_id).username("NEW.user@mail.test").send().await.unwrap_err();
    assert_eq!(service_error(err).0, "UsernameExistsException");

    let found = client.admin_get_user().user_pool_id(&pool_id).username(&username).send().await.expect("by username");
    assert!(found.user_attributes().iter().any(|a| a.name() == "email_verified" && a.value() == Some("true")));

    let listed =
        client.list_users().user_pool_id(&pool_id).filter("email = \"new.user@mail.test\"").send().await.expect("list");
    assert_eq!(listed.users().len(), 1);
    assert_eq!(listed.users()[0].username(), Some(username.as_str()));
    let all = client.list_users().user_pool_id(&pool_id).limit(2).send().await.expect("page");
    assert_eq!(all.users().len(), 2);
    assert!(all.pagination_token().is_some(), "4 users in pages of 2");

    client.admin_delete_user().user_pool_id(&pool_id).username("new.user@mail.test").send().await.expect("deleted");
    let err = client.admin_get_user().user_pool_id(&pool_id).username(&username).send().await.unwrap_err();
    assert_eq!(service_error(err), ("UserNotFoundException".to_string(), "User does not exist.".to_string()));
    let err = client.describe_user_pool().user_pool_id("us-east-1_Nope").send().await.unwrap_err();
    assert_eq!(service_error(err).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn describe_operations_report_the_pool_and_its_client() {
    let pool = start_pool(PoolConfig::default()).await;
    let client = sdk(&pool);
    let described = client.describe_user_pool().user_pool_id(&pool.info().user_pool_id).send().await.expect("pool");
    let user_pool = described.user_pool().expect("user pool");
    assert_eq!(user_pool.id(), Some(pool.info().user_pool_id.as_str()));
    let lambdas = user_pool.lambda_config().expect("lambda config");
    assert!(lambdas.define_auth_challenge().is_some() && lambdas.create_auth_challenge().is_some());
    assert_eq!(user_pool.estimated_number_of_users(), 3);

    let described = client
        .describe_user_pool_client()
        .user_pool_id(&pool.info().user_pool_id)
        .client_id(&pool.info().client_id)
        .send()
        .await
        .expect("client");
    let app = described.user_pool_client().expect("client");
    assert!(app.explicit_auth_flows().contains(&cip::types::ExplicitAuthFlowsType::AllowCustomAuth));
    assert_eq!(app.prevent_user_existence_errors(), Some(&cip::types::PreventUserExistenceErrorTypes::Enabled));
    assert_eq!(app.auth_session_validity(), Some(3));
}
