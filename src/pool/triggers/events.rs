//! The events Cognito sends the custom-auth triggers, and what it makes of their answers — pure
//! functions, tested without a runtime.
//!
//! Events follow the shapes real pools send (shared/triggers.md §2): `version` "1", `callerContext`
//! with `awsSdkVersion` "aws-sdk-unknown-unknown", `response` members present and `null`,
//! `clientMetadata` only when RespondToAuthChallenge carried one, `userNotFound` only when the client
//! hides unknown users (PreventUserExistenceErrors ENABLED).
//!
//! Output rules: the function must hand back the event (a JSON object with a `response` object), or
//! the call fails with `InvalidLambdaResponseException: Unrecognizable lambda output`. Booleans may be
//! `null` (read as false). Challenge parameters are string maps: a number or boolean value is turned
//! into its JSON text, with a warning naming the trigger and key (or refused with `strict_parameters`);
//! a nested object, array or null value is refused. Cognito's handling of a number is not documented
//! (shared/triggers.md §2): the pool coerces because both alternatives make a local run disagree
//! with AWS less than passing the number through would.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::pool::config::Trigger;
use crate::pool::error::{CognitoError, ErrorKind};

/// `awsSdkVersion` as real events carry it.
pub const AWS_SDK_VERSION: &str = "aws-sdk-unknown-unknown";

/// Who the sign-in is for, as every event names them.
pub struct EventUser<'a> {
    pub region: &'a str,
    pub user_pool_id: &'a str,
    pub client_id: &'a str,
    /// `userName`: the internal username, or the name given for an unknown user.
    pub user_name: &'a str,
    /// `request.userAttributes` (empty for an unknown user).
    pub attributes: Map<String, Value>,
    /// `request.userNotFound`, sent only with PreventUserExistenceErrors ENABLED.
    pub user_not_found: Option<bool>,
    /// `request.clientMetadata`: RespondToAuthChallenge's ClientMetadata (InitiateAuth's never reaches
    /// these triggers).
    pub client_metadata: Option<&'a HashMap<String, String>>,
}

/// One earlier round of the sign-in (`request.session[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    pub challenge_name: String,
    pub challenge_result: bool,
    pub challenge_metadata: Option<String>,
}

/// What a Define trigger decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefineDecision {
    IssueTokens,
    FailAuthentication,
    /// Another round of this challenge (only CUSTOM_CHALLENGE is served).
    Challenge(String),
}

/// What a Create trigger returned (no Debug: the private parameters hold the answer).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CreatedChallenge {
    pub public: Vec<(String, String)>,
    pub private: BTreeMap<String, String>,
    pub metadata: Option<String>,
}

/// A value the pool turned into a string (for the log and the counters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coercion {
    /// e.g. `privateChallengeParameters.secretLoginCode`.
    pub key: String,
    /// `number` or `boolean`.
    pub kind: &'static str,
}

/// `triggerSource` of each trigger.
pub fn trigger_source(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Define => "DefineAuthChallenge_Authentication",
        Trigger::Create => "CreateAuthChallenge_Authentication",
        Trigger::Verify => "VerifyAuthChallengeResponse_Authentication",
    }
}

fn envelope(trigger: Trigger, user: &EventUser<'_>, mut request: Map<String, Value>, response: Value) -> Value {
    request.insert("userAttributes".into(), Value::Object(user.attributes.clone()));
    if let Some(metadata) = user.client_metadata {
        request.insert("clientMetadata".into(), json!(metadata));
    }
    if let Some(not_found) = user.user_not_found {
        request.insert("userNotFound".into(), Value::Bool(not_found));
    }
    json!({
        "version": "1",
        "triggerSource": trigger_source(trigger),
        "region": user.region,
        "userPoolId": user.user_pool_id,
        "userName": user.user_name,
        "callerContext": { "awsSdkVersion": AWS_SDK_VERSION, "clientId": user.client_id },
        "request": request,
        "response": response,
    })
}

fn session_json(session: &[ChallengeRecord]) -> Value {
    Value::Array(
        session
            .iter()
            .map(|r| {
                json!({
                    "challengeName": r.challenge_name,
                    "challengeResult": r.challenge_result,
                    "challengeMetadata": r.challenge_metadata,
                })
            })
            .collect(),
    )
}

/// The DefineAuthChallenge event.
pub fn define_event(user: &EventUser<'_>, session: &[ChallengeRecord]) -> Value {
    let mut request = Map::new();
    request.insert("session".into(), session_json(session));
    envelope(
        Trigger::Define,
        user,
        request,
        json!({ "challengeName": null, "issueTokens": null, "failAuthentication": null }),
    )
}

/// The CreateAuthChallenge event.
pub fn create_event(user: &EventUser<'_>, challenge_name: &str, session: &[ChallengeRecord]) -> Value {
    let mut request = Map::new();
    request.insert("challengeName".into(), Value::String(challenge_name.into()));
    request.insert("session".into(), session_json(session));
    envelope(
        Trigger::Create,
        user,
        request,
        json!({ "publicChallengeParameters": null, "privateChallengeParameters": null, "challengeMetadata": null }),
    )
}

/// The VerifyAuthChallengeResponse event (`challengeAnswer` is a plain string).
pub fn verify_event(user: &EventUser<'_>, private: &BTreeMap<String, String>, answer: &str) -> Value {
    let mut request = Map::new();
    request.insert("privateChallengeParameters".into(), json!(private));
    request.insert("challengeAnswer".into(), Value::String(answer.into()));
    envelope(Trigger::Verify, user, request, json!({ "answerCorrect": null }))
}

fn unrecognizable() -> CognitoError {
    CognitoError::new(ErrorKind::InvalidLambdaResponse, "Unrecognizable lambda output")
}

/// The `response` object of a returned event.
fn response_of(output: &Value) -> Result<&Map<String, Value>, CognitoError> {
    output.as_object().and_then(|event| event.get("response")).and_then(Value::as_object).ok_or_else(unrecognizable)
}

/// A boolean member: absent or null is false, anything but a boolean is unrecognizable.
fn flag(response: &Map<String, Value>, key: &str) -> Result<bool, CognitoError> {
    match response.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(unrecognizable()),
    }
}

/// Challenge names a Define trigger may return (ChallengeNameType values Cognito knows for it).
const KNOWN_CHALLENGES: [&str; 7] = [
    "CUSTOM_CHALLENGE",
    "SRP_A",
    "PASSWORD_VERIFIER",
    "SMS_MFA",
    "DEVICE_SRP_AUTH",
    "DEVICE_PASSWORD_VERIFIER",
    "ADMIN_NO_SRP_AUTH",
];

/// Reads a Define answer: failAuthentication wins, then issueTokens, then a challenge name.
pub fn read_define(output: &Value) -> Result<DefineDecision, CognitoError> {
    let response = response_of(output)?;
    let fail = flag(response, "failAuthentication")?;
    let issue = flag(response, "issueTokens")?;
    let name = match response.get("challengeName") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(unrecognizable()),
    };
    if fail {
        return Ok(DefineDecision::FailAuthentication);
    }
    if issue {
        return Ok(DefineDecision::IssueTokens);
    }
    match name {
        Some(name) if name == "CUSTOM_CHALLENGE" => Ok(DefineDecision::Challenge(name)),
        Some(name) if KNOWN_CHALLENGES.contains(&name.as_str()) => Err(CognitoError::invalid_parameter(format!(
            "DefineAuthChallenge asked for a {name} round: the local pool serves CUSTOM_CHALLENGE rounds only"
        ))),
        _ => Err(unrecognizable()),
    }
}

/// A challenge-parameter map: absent or null is empty; strings pass; numbers and booleans are
/// coerced (recorded in `coerced`) unless `strict`; anything else is unrecognizable.
fn string_map(
    response: &Map<String, Value>,
    key: &str,
    strict: bool,
    coerced: &mut Vec<Coercion>,
) -> Result<Vec<(String, String)>, CognitoError> {
    let map = match response.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(unrecognizable()),
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) if !strict => {
                coerced.push(Coercion {
                    key: format!("{key}.{name}"),
                    kind: if value.is_number() { "number" } else { "boolean" },
                });
                value.to_string()
            }
            _ => return Err(unrecognizable()),
        };
        out.push((name.clone(), text));
    }
    Ok(out)
}

/// Reads a Create answer; `coerced` receives the values turned into strings.
pub fn read_create(
    output: &Value,
    strict: bool,
    coerced: &mut Vec<Coercion>,
) -> Result<CreatedChallenge, CognitoError> {
    let response = response_of(output)?;
    let public = string_map(response, "publicChallengeParameters", strict, coerced)?;
    let private = string_map(response, "privateChallengeParameters", strict, coerced)?.into_iter().collect();
    let metadata = match response.get("challengeMetadata") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(unrecognizable()),
    };
    Ok(CreatedChallenge { public, private, metadata })
}

/// Reads a Verify answer (`answerCorrect`; null is false).
pub fn read_verify(output: &Value) -> Result<bool, CognitoError> {
    flag(response_of(output)?, "answerCorrect")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(metadata: Option<&HashMap<String, String>>) -> EventUser<'_> {
        let mut attributes = Map::new();
        attributes.insert("sub".into(), json!("u-1"));
        attributes.insert("email".into(), json!("a@mail.test"));
        EventUser {
            region: "us-east-1",
            user_pool_id: "us-east-1_X",
            client_id: "client",
            user_name: "u-1",
            attributes,
            user_not_found: Some(false),
            client_metadata: metadata,
        }
    }

    #[test]
    fn events_have_cognitos_shape() {
        let session = [ChallengeRecord {
            challenge_name: "CUSTOM_CHALLENGE".into(),
            challenge_result: false,
            challenge_metadata: None,
        }];
        let define = define_event(&user(None), &session);
        assert_eq!(define["version"], "1");
        assert_eq!(define["triggerSource"], "DefineAuthChallenge_Authentication");
        assert_eq!(define["callerContext"], json!({ "awsSdkVersion": AWS_SDK_VERSION, "clientId": "client" }));
        assert_eq!(define["request"]["session"][0]["challengeMetadata"], Value::Null);
        assert_eq!(define["request"]["userNotFound"], false);
        assert!(define["request"].get("clientMetadata").is_none(), "no ClientMetadata, no key");
        assert_eq!(
            define["response"],
            json!({ "challengeName": null, "issueTokens": null, "failAuthentication": null })
        );
        let metadata = HashMap::from([("k".to_string(), "v".to_string())]);
        let verify = verify_event(&user(Some(&metadata)), &BTreeMap::from([("a".into(), "1".into())]), "012345");
        assert_eq!(verify["request"]["challengeAnswer"], "012345");
        assert_eq!(verify["request"]["clientMetadata"], json!({ "k": "v" }));
        assert_eq!(verify["response"], json!({ "answerCorrect": null }));
        let create = create_event(&user(None), "CUSTOM_CHALLENGE", &[]);
        assert_eq!(create["request"]["challengeName"], "CUSTOM_CHALLENGE");
        assert_eq!(create["response"]["challengeMetadata"], Value::Null);
    }

    #[test]
    fn outputs_are_read_as_cognito_reads_them() {
        let define = |response: Value| read_define(&json!({ "response": response }));
        assert_eq!(define(json!({ "issueTokens": true, "failAuthentication": null })), Ok(DefineDecision::IssueTokens));
        assert_eq!(
            define(json!({ "challengeName": "CUSTOM_CHALLENGE", "issueTokens": false })),
            Ok(DefineDecision::Challenge("CUSTOM_CHALLENGE".into()))
        );
        assert_eq!(
            define(json!({ "failAuthentication": true, "issueTokens": true })),
            Ok(DefineDecision::FailAuthentication)
        );
        for bad in [json!({ "issueTokens": "true" }), json!({}), json!({ "challengeName": "NOPE" })] {
            assert_eq!(define(bad).unwrap_err().kind, ErrorKind::InvalidLambdaResponse);
        }
        assert_eq!(read_define(&Value::Null).unwrap_err().message, "Unrecognizable lambda output");
        assert_eq!(read_verify(&json!({ "response": { "answerCorrect": null } })), Ok(false));
        assert!(read_verify(&json!({ "answerCorrect": true })).is_err(), "the whole event must come back");
    }

    #[test]
    fn numbers_in_challenge_parameters_are_coerced_or_refused() {
        let output = json!({ "response": {
            "publicChallengeParameters": { "email": "a@mail.test" },
            "privateChallengeParameters": { "secretLoginCode": 12345, "trigger": true },
            "challengeMetadata": "CODE",
        }});
        let mut coerced = Vec::new();
        let created = read_create(&output, false, &mut coerced).expect("coerced");
        assert_eq!(created.private.get("secretLoginCode").map(String::as_str), Some("12345"));
        assert_eq!(created.private.get("trigger").map(String::as_str), Some("true"));
        assert_eq!(created.metadata.as_deref(), Some("CODE"));
        assert_eq!(
            coerced.iter().map(|c| (c.key.as_str(), c.kind)).collect::<Vec<_>>(),
            [
                ("privateChallengeParameters.secretLoginCode", "number"),
                ("privateChallengeParameters.trigger", "boolean")
            ]
        );
        assert_eq!(
            read_create(&output, true, &mut Vec::new()).err().map(|e| e.kind),
            Some(ErrorKind::InvalidLambdaResponse)
        );
        let nested = json!({ "response": { "privateChallengeParameters": { "a": { "b": "c" } } } });
        assert!(read_create(&nested, false, &mut Vec::new()).is_err());
    }
}
