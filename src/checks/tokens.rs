//! Token checks, made independently of the local pool's code: as aws-jwt-verify does (RS256 by kid from
//! the pool's JWKS — fetched once and cached —, iss, exp, token_use, aud for ID tokens, client_id for
//! access tokens), plus Cognito's invariants over the pair: exp − iat = ExpiresIn, sub and email match
//! the user, origin_jti equal, jti unique across the run. Problems are described without the tokens.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::Value;

use crate::cognito::Tokens;

/// Verifies the tokens of one pool and app client.
pub struct TokenChecker {
    issuer: String,
    client_id: String,
    jwks: JwkSet,
    seen_jti: Mutex<HashSet<String>>,
}

impl TokenChecker {
    /// Fetches the JWKS at `{issuer}/.well-known/jwks.json`.
    pub async fn fetch(issuer: &str, client_id: &str) -> Result<Self, String> {
        let url = format!("{issuer}/.well-known/jwks.json");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        let response = client.get(&url).send().await.map_err(|e| format!("JWKS at {url} unreachable: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS at {url} answered {}", response.status()));
        }
        let jwks: JwkSet = response.json().await.map_err(|e| format!("JWKS at {url} is not a JWK set: {e}"))?;
        Ok(Self::with_jwks(issuer, client_id, jwks))
    }

    pub fn with_jwks(issuer: &str, client_id: &str, jwks: JwkSet) -> Self {
        Self {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            jwks,
            seen_jti: Mutex::new(HashSet::new()),
        }
    }

    /// Every problem with a token pair issued to `email`; empty when they are right.
    /// Returns the ID token's `sub` and `cognito:username` too, for the GetUser comparison.
    pub fn check(&self, tokens: &Tokens, email: &str) -> (Vec<String>, Option<(String, String)>) {
        let mut problems = Vec::new();
        if tokens.token_type.as_deref() != Some("Bearer") {
            problems.push(format!("TokenType is {:?}, not \"Bearer\"", tokens.token_type));
        }
        if !tokens.has_refresh_token {
            problems.push("no RefreshToken".into());
        }
        let id = self.verify("ID", &tokens.id_token, Some(&self.client_id), &mut problems);
        let access = self.verify("access", &tokens.access_token, None, &mut problems);
        let (Some(id), Some(access)) = (id, access) else {
            return (problems, None);
        };
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let number = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64);
        for (which, claims, token_use) in [("ID", &id, "id"), ("access", &access, "access")] {
            if text(claims, "token_use").as_deref() != Some(token_use) {
                problems
                    .push(format!("{which} token: token_use is {:?}, not {token_use:?}", text(claims, "token_use")));
            }
            match (number(claims, "iat"), number(claims, "exp")) {
                (Some(iat), Some(exp)) if exp - iat != tokens.expires_in => problems.push(format!(
                    "{which} token: exp - iat = {}s but ExpiresIn = {}s",
                    exp - iat,
                    tokens.expires_in
                )),
                (None, _) => problems.push(format!("{which} token: no iat")),
                _ => {}
            }
            match text(claims, "jti") {
                Some(jti) => {
                    if !self.seen_jti.lock().insert(jti) {
                        problems.push(format!("{which} token: jti was already used by another token"));
                    }
                }
                None => problems.push(format!("{which} token: no jti")),
            }
        }
        if text(&access, "client_id").as_deref() != Some(self.client_id.as_str()) {
            problems.push("access token: client_id is not the app client's".into());
        }
        let sub = text(&id, "sub");
        if sub.is_none() || sub != text(&access, "sub") {
            problems.push("ID and access tokens name different subs".into());
        }
        if text(&id, "email").is_none_or(|e| !e.eq_ignore_ascii_case(email)) {
            problems.push("ID token: email is not the user's address".into());
        }
        let username = text(&id, "cognito:username");
        if username.is_none() || username != text(&access, "username") {
            problems.push("ID token cognito:username and access token username differ".into());
        }
        if text(&id, "origin_jti").is_none() || text(&id, "origin_jti") != text(&access, "origin_jti") {
            problems.push("ID and access tokens carry different origin_jti".into());
        }
        (problems, sub.zip(username))
    }

    /// Signature by kid, algorithm, issuer, expiry and (ID tokens) audience.
    fn verify(&self, which: &str, token: &str, audience: Option<&str>, problems: &mut Vec<String>) -> Option<Value> {
        let header = match jsonwebtoken::decode_header(token) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("{which} token is not a JWT ({e})"));
                return None;
            }
        };
        if header.alg != Algorithm::RS256 {
            problems.push(format!("{which} token: alg is {:?}, not RS256", header.alg));
            return None;
        }
        let Some(kid) = header.kid else {
            problems.push(format!("{which} token has no kid"));
            return None;
        };
        let Some(jwk) = self.jwks.find(&kid) else {
            problems.push(format!("{which} token: kid {kid} is not in the pool's JWKS"));
            return None;
        };
        let key = match DecodingKey::from_jwk(jwk) {
            Ok(k) => k,
            Err(e) => {
                problems.push(format!("JWKS key {kid} is unusable ({e})"));
                return None;
            }
        };
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 5;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(data) => Some(data.claims),
            Err(e) => {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => "the signature does not verify".to_string(),
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "it has expired".to_string(),
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => format!("iss is not {}", self.issuer),
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => "aud is not the app client id".to_string(),
                    other => format!("{other:?}"),
                };
                problems.push(format!("{which} token rejected: {why}"));
                None
            }
        }
    }
}
