//! Token checks, made independently of the local pool's code: as aws-jwt-verify does (RS256 by kid from
//! the pool's JWKS — fetched once and cached —, iss, exp, token_use, aud for ID tokens, client_id for
//! access tokens), plus Cognito's invariants over the pair: exp − iat = ExpiresIn, sub and email match
//! the user, origin_jti equal, jti unique among the last `JTI_WINDOW` tokens (a fixed window, so the
//! memory of an hour-long run is that of a short one; at the highest rates measured here it spans
//! about a minute, and a whole ordinary run). Problems are described without the tokens.
//!
//! Every sign-in verifies two tokens, so the JWKS's RSA keys are parsed once (aws-lc keeps each key's
//! Montgomery form) and a right token takes a fast path: the signature checked with the parsed key,
//! the claims parsed once and held to the same rules as jsonwebtoken's `Validation`. Anything the fast
//! path does not accept goes through jsonwebtoken as before, which then names the problem — so the
//! verdicts and their wording are jsonwebtoken's, and only right tokens are cheaper.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::Value;

use crate::cognito::Tokens;

/// Seconds of clock skew allowed on `exp`, as aws-jwt-verify allows.
const LEEWAY: u64 = 5;

/// Verifies the tokens of one pool and app client.
pub struct TokenChecker {
    issuer: String,
    client_id: String,
    jwks: JwkSet,
    /// The JWKS's RSA keys by kid, parsed once (the first key of a kid, as `JwkSet::find` takes it).
    parsed: HashMap<String, ParsedPublicKey>,
    /// jsonwebtoken's rules for ID tokens (with aud) and access tokens, built once.
    id_rules: Validation,
    access_rules: Validation,
    seen_jti: Mutex<RecentSet>,
}

/// Tokens whose `jti` is remembered: a repeat among them is a defect.
pub const JTI_WINDOW: usize = 262_144;

/// The last `capacity` values seen, as 64-bit keyed hashes (a collision among a window's worth is
/// about one in 2^27 runs of that size).
struct RecentSet {
    hasher: std::collections::hash_map::RandomState,
    members: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl RecentSet {
    /// Sized up front for twice the window, so removals never make the set grow (its memory is
    /// taken at the start of a run, not as the run goes).
    fn new(capacity: usize) -> Self {
        Self {
            hasher: Default::default(),
            members: HashSet::with_capacity(capacity.saturating_mul(2)),
            order: VecDeque::with_capacity(capacity.saturating_add(1)),
            capacity,
        }
    }

    /// False if `value` is among the last `capacity` values; remembers it.
    fn insert(&mut self, value: &str) -> bool {
        let hash = self.hasher.hash_one(value);
        if !self.members.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.members.remove(&oldest);
        }
        true
    }
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
        let mut parsed = HashMap::new();
        for jwk in &jwks.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            if parsed.contains_key(&kid) || jwks.find(&kid).is_some_and(|first| !std::ptr::eq(first, jwk)) {
                continue;
            }
            if let Some(key) = parse_rsa(&jwk.algorithm) {
                parsed.insert(kid, key);
            }
        }
        Self {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            parsed,
            id_rules: rules(issuer, Some(client_id)),
            access_rules: rules(issuer, None),
            jwks,
            seen_jti: Mutex::new(RecentSet::new(JTI_WINDOW)),
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
                    if !self.seen_jti.lock().insert(&jti) {
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
        if let Some(claims) = self.verify_fast(token, audience) {
            return Some(claims);
        }
        self.verify_slow(which, token, audience, problems)
    }

    /// The claims of a token that is right on every count `verify_slow` checks; None for anything
    /// else (including a token it cannot judge: an audience list, a key it did not parse), which then
    /// goes the slow way.
    fn verify_fast(&self, token: &str, audience: Option<&str>) -> Option<Value> {
        let (message, signature) = token.rsplit_once('.')?;
        let (header, payload) = message.split_once('.')?;
        if payload.contains('.') {
            return None;
        }
        #[derive(serde::Deserialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: Option<std::borrow::Cow<'a, str>>,
        }
        let header_json = URL_SAFE_NO_PAD.decode(header).ok()?;
        let header: Header<'_> = serde_json::from_slice(&header_json).ok()?;
        if header.alg != "RS256" {
            return None;
        }
        let key = self.parsed.get(header.kid.as_deref()?)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        key.verify_sig(message.as_bytes(), &signature).ok()?;
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        let exp = claims.get("exp")?.as_u64()?;
        let right = exp >= now.saturating_sub(LEEWAY)
            && claims.get("sub").is_some_and(Value::is_string)
            && claims.get("iss").and_then(Value::as_str) == Some(self.issuer.as_str())
            && match audience {
                Some(aud) => claims.get("aud").and_then(Value::as_str) == Some(aud),
                None => true,
            };
        right.then_some(claims)
    }

    /// jsonwebtoken's verdict, and the problem in words when there is one.
    fn verify_slow(
        &self,
        which: &str,
        token: &str,
        audience: Option<&str>,
        problems: &mut Vec<String>,
    ) -> Option<Value> {
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
        let validation = match audience {
            Some(aud) if aud == self.client_id => &self.id_rules,
            Some(aud) => &rules(&self.issuer, Some(aud)),
            None => &self.access_rules,
        };
        match jsonwebtoken::decode::<Value>(token, &key, validation) {
            Ok(data) => Some(data.claims),
            Err(e) => {
                let why = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => "the signature does not verify".to_string(),
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "it has expired".to_string(),
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => format!("iss is not {}", self.issuer),
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => "aud is not the app client id".to_string(),
                    jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(claim) => format!("it has no {claim} claim"),
                    other => format!("{other:?}"),
                };
                problems.push(format!("{which} token rejected: {why}"));
                None
            }
        }
    }
}

/// jsonwebtoken's rules for a token of this issuer: RS256, `LEEWAY` on exp; with an audience, an ID
/// token's rules (aud required and equal), without, an access token's (no aud).
fn rules(issuer: &str, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = LEEWAY;
    validation.set_issuer(&[issuer]);
    match audience {
        Some(aud) => {
            // aws-jwt-verify refuses an ID token without aud; jsonwebtoken only checks one that is there.
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            validation.set_audience(&[aud]);
        }
        None => {
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            validation.validate_aud = false;
        }
    }
    validation
}

/// An RSA JWK's public key, parsed for RS256 (None for other keys, or an RSA key that will not parse:
/// such keys take the slow path, which names the problem).
fn parse_rsa(params: &AlgorithmParameters) -> Option<ParsedPublicKey> {
    let AlgorithmParameters::RSA(rsa) = params else { return None };
    let n = URL_SAFE_NO_PAD.decode(&rsa.n).ok()?;
    let e = URL_SAFE_NO_PAD.decode(&rsa.e).ok()?;
    let der = aws_lc_rs::rsa::PublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.as_der().ok()?;
    ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_ref()).ok()
}

#[cfg(test)]
mod tests {
    //! Hand-signed tokens, each wrong in one way, against a JWKS made here: every sub-check of
    //! `TokenChecker` fails once with its own reason, and a right pair passes.

    use std::sync::LazyLock;
    use std::time::{SystemTime, UNIX_EPOCH};

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TokTest01";
    const CLIENT: &str = "tokentestclient00000000001";
    const EMAIL: &str = "User+1@Mail.Test";
    const SUB: &str = "0c5a4f9e-1111-4000-8000-000000000001";
    const USERNAME: &str = "0c5a4f9e-1111-4000-8000-000000000001";

    /// The key in the JWKS (kid "k1") and one outside it.
    static KEYS: LazyLock<(KeyPair, KeyPair)> = LazyLock::new(|| {
        (KeyPair::generate(KeySize::Rsa2048).expect("key"), KeyPair::generate(KeySize::Rsa2048).expect("other key"))
    });

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
    }

    fn rsa_jwk(pair: &KeyPair, kid: &str) -> Value {
        let c = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        json!({ "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e) })
    }

    /// k1 (the signing key), "broken" (an RSA key whose modulus is not base64url) and "hmac" (a
    /// symmetric key: an RS256 token must not verify against it).
    fn checker() -> TokenChecker {
        let jwks = json!({ "keys": [
            rsa_jwk(&KEYS.0, "k1"),
            { "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "broken", "n": "%%%", "e": "AQAB" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk" },
        ]});
        TokenChecker::with_jwks(ISSUER, CLIENT, serde_json::from_value(jwks).expect("JWK set"))
    }

    fn sign_with(header: &Value, claims: &Value, key: &KeyPair) -> String {
        let mut token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("header")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims"))
        );
        let mut signature = vec![0u8; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), token.as_bytes(), &mut signature).expect("signs");
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        token
    }

    fn sign(claims: &Value) -> String {
        sign_with(&json!({ "kid": "k1", "alg": "RS256" }), claims, &KEYS.0)
    }

    /// Claims of a right ID and access token pair, as Cognito issues them (the access token has no aud).
    fn claims() -> (Value, Value) {
        let (iat, origin) = (now(), uuid::Uuid::new_v4().to_string());
        let id = json!({ "sub": SUB, "email_verified": true, "iss": ISSUER, "cognito:username": USERNAME,
            "origin_jti": origin, "aud": CLIENT, "event_id": "e1", "token_use": "id", "auth_time": iat,
            "exp": iat + 3600, "iat": iat, "jti": uuid::Uuid::new_v4().to_string(), "email": "user+1@mail.test" });
        let access = json!({ "sub": SUB, "iss": ISSUER, "client_id": CLIENT, "origin_jti": origin, "event_id": "e1",
            "token_use": "access", "scope": "aws.cognito.signin.user.admin", "auth_time": iat,
            "exp": iat + 3600, "iat": iat, "jti": uuid::Uuid::new_v4().to_string(), "username": USERNAME });
        (id, access)
    }

    fn tokens(id_token: String, access_token: String) -> Tokens {
        Tokens { id_token, access_token, has_refresh_token: true, expires_in: 3600, token_type: Some("Bearer".into()) }
    }

    /// The problems with a right pair after `edit` changed its claims.
    fn problems_after(edit: impl FnOnce(&mut Value, &mut Value)) -> Vec<String> {
        let (mut id, mut access) = claims();
        edit(&mut id, &mut access);
        checker().check(&tokens(sign(&id), sign(&access)), EMAIL).0
    }

    fn remove(v: &mut Value, key: &str) {
        v.as_object_mut().expect("object").remove(key);
    }

    #[test]
    fn a_right_pair_passes_and_names_the_user() {
        let (id, access) = claims();
        let (problems, identity) = checker().check(&tokens(sign(&id), sign(&access)), EMAIL);
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(identity, Some((SUB.to_string(), USERNAME.to_string())));
        // exp within the 5 s leeway still passes.
        let p = problems_after(|id, _| {
            id["exp"] = json!(now() - 2);
            id["iat"] = json!(now() - 2 - 3600);
        });
        assert_eq!(p, Vec::<String>::new(), "leeway");
    }

    #[test]
    fn token_type_and_refresh_token() {
        let (id, access) = claims();
        let mut t = tokens(sign(&id), sign(&access));
        t.token_type = Some("Mac".into());
        t.has_refresh_token = false;
        assert_eq!(checker().check(&t, EMAIL).0, ["TokenType is Some(\"Mac\"), not \"Bearer\"", "no RefreshToken"]);
    }

    /// `id_token` in place of a right ID token (the access token stays right).
    fn id_problems(id_token: String) -> Vec<String> {
        let (_, access) = claims();
        checker().check(&tokens(id_token, sign(&access)), EMAIL).0
    }

    #[test]
    fn not_a_jwt() {
        let p = id_problems("not-a-jwt".into());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("ID token is not a JWT ("), "{p:?}");
    }

    #[test]
    fn alg_other_than_rs256() {
        let (id, _) = claims();
        let p = id_problems(sign_with(&json!({ "kid": "k1", "alg": "HS256" }), &id, &KEYS.0));
        assert_eq!(p, ["ID token: alg is HS256, not RS256"]);
    }

    #[test]
    fn no_kid() {
        let (id, _) = claims();
        assert_eq!(id_problems(sign_with(&json!({ "alg": "RS256" }), &id, &KEYS.0)), ["ID token has no kid"]);
    }

    #[test]
    fn kid_not_in_the_jwks() {
        let (id, _) = claims();
        let p = id_problems(sign_with(&json!({ "kid": "nope", "alg": "RS256" }), &id, &KEYS.1));
        assert_eq!(p, ["ID token: kid nope is not in the pool's JWKS"]);
    }

    #[test]
    fn an_unusable_jwks_key() {
        let (id, _) = claims();
        let p = id_problems(sign_with(&json!({ "kid": "broken", "alg": "RS256" }), &id, &KEYS.0));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("JWKS key broken is unusable ("), "{p:?}");
    }

    #[test]
    fn a_kid_naming_a_symmetric_key() {
        let (id, _) = claims();
        let p = id_problems(sign_with(&json!({ "kid": "hmac", "alg": "RS256" }), &id, &KEYS.0));
        assert_eq!(p, ["ID token rejected: InvalidKeyFormat"]);
    }

    #[test]
    fn a_signature_by_another_key() {
        let (id, _) = claims();
        let p = id_problems(sign_with(&json!({ "kid": "k1", "alg": "RS256" }), &id, &KEYS.1));
        assert_eq!(p, ["ID token rejected: the signature does not verify"]);
        // A right token with its payload swapped for another's: the signature no longer covers it.
        let (other, _) = claims();
        let (right, forged) = (sign(&id), sign(&other));
        let parts: Vec<&str> = right.split('.').collect();
        let spliced = format!("{}.{}.{}", parts[0], forged.split('.').nth(1).expect("payload"), parts[2]);
        assert_eq!(id_problems(spliced), ["ID token rejected: the signature does not verify"]);
    }

    #[test]
    fn expired() {
        let p = problems_after(|_, access| {
            access["exp"] = json!(now() - 60);
            access["iat"] = json!(now() - 60 - 3600);
        });
        assert_eq!(p, ["access token rejected: it has expired"]);
    }

    #[test]
    fn another_issuer() {
        let p = problems_after(|id, _| id["iss"] = json!(format!("{ISSUER}-elsewhere")));
        assert_eq!(p, [format!("ID token rejected: iss is not {ISSUER}")]);
    }

    #[test]
    fn another_audience() {
        let p = problems_after(|id, _| id["aud"] = json!("someotherclient00000000001"));
        assert_eq!(p, ["ID token rejected: aud is not the app client id"]);
    }

    #[test]
    fn required_claims_missing() {
        assert_eq!(problems_after(|id, _| remove(id, "sub")), ["ID token rejected: it has no sub claim"]);
        assert_eq!(problems_after(|_, access| remove(access, "exp")), ["access token rejected: it has no exp claim"]);
        assert_eq!(problems_after(|id, _| remove(id, "iss")), ["ID token rejected: it has no iss claim"]);
    }

    /// aws-jwt-verify refuses an ID token without `aud`, and so does this checker.
    #[test]
    fn an_id_token_without_aud() {
        assert_eq!(problems_after(|id, _| remove(id, "aud")), ["ID token rejected: it has no aud claim"]);
    }

    #[test]
    fn token_use() {
        assert_eq!(
            problems_after(|id, _| id["token_use"] = json!("access")),
            ["ID token: token_use is Some(\"access\"), not \"id\""]
        );
        assert_eq!(
            problems_after(|_, access| remove(access, "token_use")),
            ["access token: token_use is None, not \"access\""]
        );
    }

    #[test]
    fn lifetime_and_expires_in() {
        assert_eq!(
            problems_after(|id, _| id["exp"] = json!(id["iat"].as_i64().expect("iat") + 4200)),
            ["ID token: exp - iat = 4200s but ExpiresIn = 3600s"]
        );
        assert_eq!(problems_after(|_, access| remove(access, "iat")), ["access token: no iat"]);
        let (id, access) = claims();
        let mut t = tokens(sign(&id), sign(&access));
        t.expires_in = 300;
        assert_eq!(
            checker().check(&t, EMAIL).0,
            [
                "ID token: exp - iat = 3600s but ExpiresIn = 300s",
                "access token: exp - iat = 3600s but ExpiresIn = 300s"
            ]
        );
    }

    #[test]
    fn jti_missing_or_used_twice() {
        assert_eq!(problems_after(|id, _| remove(id, "jti")), ["ID token: no jti"]);
        assert_eq!(
            problems_after(|id, access| access["jti"] = id["jti"].clone()),
            ["access token: jti was already used by another token"]
        );
        // Across sign-ins: the checker remembers every jti of the run.
        let checker = checker();
        let (id, access) = claims();
        assert!(checker.check(&tokens(sign(&id), sign(&access)), EMAIL).0.is_empty());
        let (mut id2, access2) = claims();
        id2["jti"] = id["jti"].clone();
        assert_eq!(
            checker.check(&tokens(sign(&id2), sign(&access2)), EMAIL).0,
            ["ID token: jti was already used by another token"]
        );
    }

    #[test]
    fn client_id() {
        assert_eq!(
            problems_after(|_, access| access["client_id"] = json!("someotherclient00000000001")),
            ["access token: client_id is not the app client's"]
        );
        assert_eq!(
            problems_after(|_, access| remove(access, "client_id")),
            ["access token: client_id is not the app client's"]
        );
    }

    #[test]
    fn sub() {
        assert_eq!(
            problems_after(|_, access| access["sub"] = json!("0c5a4f9e-2222-4000-8000-000000000002")),
            ["ID and access tokens name different subs"]
        );
    }

    #[test]
    fn email() {
        // Compared without regard to case: EMAIL is the user's address in other capitals.
        assert_eq!(
            problems_after(|id, _| id["email"] = json!("someone.else@mail.test")),
            ["ID token: email is not the user's address"]
        );
        assert_eq!(problems_after(|id, _| remove(id, "email")), ["ID token: email is not the user's address"]);
    }

    #[test]
    fn username() {
        assert_eq!(
            problems_after(|_, access| access["username"] = json!("another-user")),
            ["ID token cognito:username and access token username differ"]
        );
        assert_eq!(
            problems_after(|id, access| {
                remove(id, "cognito:username");
                remove(access, "username");
            }),
            ["ID token cognito:username and access token username differ"]
        );
    }

    #[test]
    fn origin_jti() {
        assert_eq!(
            problems_after(|_, access| access["origin_jti"] = json!(uuid::Uuid::new_v4().to_string())),
            ["ID and access tokens carry different origin_jti"]
        );
        assert_eq!(
            problems_after(|id, access| {
                remove(id, "origin_jti");
                remove(access, "origin_jti");
            }),
            ["ID and access tokens carry different origin_jti"]
        );
    }

    /// The fast path accepts exactly the right tokens: what it takes, jsonwebtoken takes; what it
    /// passes on, jsonwebtoken refuses (or accepts a shape it leaves to jsonwebtoken).
    #[test]
    fn the_fast_path_accepts_right_tokens_only_and_agrees_with_jsonwebtoken() {
        let checker = checker();
        assert!(checker.parsed.contains_key("k1") && !checker.parsed.contains_key("broken"));
        let (id, access) = claims();
        let right_id = sign(&id);
        assert!(checker.verify_fast(&right_id, Some(CLIENT)).is_some());
        assert!(checker.verify_fast(&sign(&access), None).is_some());
        let mut problems = Vec::new();
        assert!(checker.verify_slow("ID", &right_id, Some(CLIENT), &mut problems).is_some() && problems.is_empty());
        let wrong: Vec<(String, Option<&str>)> = vec![
            (sign_with(&json!({ "kid": "k1", "alg": "RS256" }), &id, &KEYS.1), Some(CLIENT)),
            (sign(&json!({ "exp": now() - 60, "iss": ISSUER, "sub": SUB, "aud": CLIENT })), Some(CLIENT)),
            (sign(&json!({ "exp": now() + 60, "iss": "elsewhere", "sub": SUB, "aud": CLIENT })), Some(CLIENT)),
            (sign(&json!({ "exp": now() + 60, "iss": ISSUER, "aud": CLIENT })), Some(CLIENT)),
            (sign(&json!({ "exp": now() + 60, "iss": ISSUER, "sub": SUB })), Some(CLIENT)),
            (sign(&json!({ "exp": now() + 60, "iss": ISSUER, "sub": SUB, "aud": "other" })), Some(CLIENT)),
            (sign(&json!({ "iss": ISSUER, "sub": SUB, "aud": CLIENT })), Some(CLIENT)),
            (sign_with(&json!({ "kid": "hmac", "alg": "RS256" }), &id, &KEYS.0), Some(CLIENT)),
            (format!("{right_id}.extra"), Some(CLIENT)),
            ("not-a-jwt".to_string(), None),
        ];
        for (token, audience) in wrong {
            assert!(checker.verify_fast(&token, audience).is_none(), "fast path took a wrong token");
            let mut problems = Vec::new();
            assert!(checker.verify_slow("ID", &token, audience, &mut problems).is_none());
            assert_eq!(problems.len(), 1, "{problems:?}");
        }
        // An audience list is jsonwebtoken's to judge.
        let listed = sign(&json!({ "exp": now() + 60, "iss": ISSUER, "sub": SUB, "aud": [CLIENT] }));
        assert!(checker.verify_fast(&listed, Some(CLIENT)).is_none());
    }

    #[test]
    fn the_jti_window_remembers_the_last_values_only() {
        let mut recent = super::RecentSet::new(3);
        for v in ["a", "b", "c"] {
            assert!(recent.insert(v), "{v} is new");
        }
        assert!(!recent.insert("a"), "a repeat within the window");
        assert!(recent.insert("d"), "d pushes a out");
        assert!(recent.insert("a"), "a is outside the window again");
        assert_eq!((recent.members.len(), recent.order.len()), (3, 3), "bounded");
    }
}
