//! Token issuing: RS256 ID and access tokens with Cognito's claim sets, signed by two key pairs (one
//! kid each, as Cognito does), the JWKS that verifies them, and access-token checks for GetUser.
//!
//! Signing keeps the parsed aws-lc key pairs: parsing a key per signature would cost as much as the
//! signature itself on the hot path. Verification (GetUser) goes through `jsonwebtoken`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::config::TokenDefect;
use super::error::{CognitoError, ErrorKind};
use super::users::User;

/// The scope Cognito puts in access tokens from InitiateAuth / RespondToAuthChallenge.
pub const ACCESS_SCOPE: &str = "aws.cognito.signin.user.admin";

/// One RSA signing key with its kid and its precomputed JWS header.
struct SigningKey {
    kid: String,
    pair: KeyPair,
    /// base64url of `{"kid":…,"alg":"RS256"}`, ready to prefix.
    encoded_header: String,
    /// base64url n and e for the JWKS.
    n: String,
    e: String,
    decoding: jsonwebtoken::DecodingKey,
}

impl SigningKey {
    fn generate() -> anyhow::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?;
        let kid = STANDARD.encode(rand::random::<[u8; 32]>());
        let header = serde_json::json!({ "kid": kid, "alg": "RS256" });
        let encoded_header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&components.n, &components.e);
        Ok(Self {
            kid,
            pair,
            encoded_header,
            n: URL_SAFE_NO_PAD.encode(&components.n),
            e: URL_SAFE_NO_PAD.encode(&components.e),
            decoding,
        })
    }

    /// `header.claims.signature` for the given claims.
    fn sign<T: Serialize>(&self, claims: &T, rng: &SystemRandom) -> anyhow::Result<String> {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let mut token = String::with_capacity(self.encoded_header.len() + payload.len() + 350);
        token.push_str(&self.encoded_header);
        token.push('.');
        token.push_str(&payload);
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, rng, token.as_bytes(), &mut signature)
            .map_err(|_| anyhow::anyhow!("RS256 signing failed"))?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(&signature));
        Ok(token)
    }
}

/// Claims of a Cognito ID token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub sub: String,
    pub email_verified: bool,
    pub iss: String,
    #[serde(rename = "cognito:username")]
    pub cognito_username: String,
    pub origin_jti: String,
    pub aud: String,
    pub event_id: String,
    pub token_use: String,
    pub auth_time: u64,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub email: String,
}

/// Claims of a Cognito access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub iss: String,
    pub client_id: String,
    pub origin_jti: String,
    pub event_id: String,
    pub token_use: String,
    pub scope: String,
    pub auth_time: u64,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub username: String,
}

/// What a successful sign-in returns (`AuthenticationResult`).
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Signs tokens for one pool and serves its JWKS.
pub struct TokenIssuer {
    issuer: String,
    validity: Duration,
    id_key: SigningKey,
    access_key: SigningKey,
    /// A key outside the JWKS, made only for the token defects that need one.
    rogue_key: Option<SigningKey>,
    defect: TokenDefect,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// New keys for `issuer` (the `iss` claim; the JWKS lives at `{issuer}/.well-known/jwks.json`).
    /// `defect` makes every token wrong in one way (`TokenDefect::None` for correct tokens).
    pub fn new(issuer: String, validity: Duration, defect: TokenDefect) -> anyhow::Result<Self> {
        let id_key = SigningKey::generate()?;
        let rogue_key = match defect {
            TokenDefect::UnknownKid => Some(SigningKey::generate()?),
            TokenDefect::BadSignature => {
                let mut rogue = SigningKey::generate()?;
                rogue.encoded_header = id_key.encoded_header.clone();
                Some(rogue)
            }
            _ => None,
        };
        Ok(Self {
            issuer,
            validity,
            id_key,
            access_key: SigningKey::generate()?,
            rogue_key,
            defect,
            rng: SystemRandom::new(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs an ID and an access token for `user` signing in through `client_id`.
    pub fn issue(&self, user: &User, client_id: &str) -> anyhow::Result<IssuedTokens> {
        let defect = self.defect;
        let validity = self.validity.as_secs();
        let (now, exp) = match defect {
            TokenDefect::Expired => (epoch_seconds() - validity - 60, epoch_seconds() - 60),
            TokenDefect::LifetimeMismatch => (epoch_seconds(), epoch_seconds() + validity + 600),
            _ => (epoch_seconds(), epoch_seconds() + validity),
        };
        let origin_jti = uuid::Uuid::new_v4().to_string();
        let event_id = uuid::Uuid::new_v4().to_string();
        let jti = || match defect {
            TokenDefect::RepeatedJti => "00000000-0000-4000-8000-000000000000".to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        let mut id = IdClaims {
            sub: user.sub.clone(),
            email_verified: user.email_verified,
            iss: self.issuer.clone(),
            cognito_username: user.username.clone(),
            origin_jti: origin_jti.clone(),
            aud: client_id.to_string(),
            event_id: event_id.clone(),
            token_use: "id".into(),
            auth_time: now,
            exp,
            iat: now,
            jti: jti(),
            email: user.email.clone(),
        };
        let mut access = AccessClaims {
            sub: user.sub.clone(),
            iss: self.issuer.clone(),
            client_id: client_id.to_string(),
            origin_jti,
            event_id,
            token_use: "access".into(),
            scope: ACCESS_SCOPE.into(),
            auth_time: now,
            exp,
            iat: now,
            jti: jti(),
            username: user.username.clone(),
        };
        match defect {
            TokenDefect::WrongIssuer => {
                id.iss = format!("{}-elsewhere", self.issuer);
                access.iss = id.iss.clone();
            }
            TokenDefect::WrongAudience => id.aud = "someotherclient000000000000".into(),
            TokenDefect::WrongTokenUse => id.token_use = "access".into(),
            TokenDefect::OriginJtiMismatch => access.origin_jti = uuid::Uuid::new_v4().to_string(),
            TokenDefect::WrongSub => id.sub = uuid::Uuid::new_v4().to_string(),
            _ => {}
        }
        let id_signer = self.rogue_key.as_ref().unwrap_or(&self.id_key);
        Ok(IssuedTokens {
            id_token: id_signer.sign(&id, &self.rng)?,
            access_token: self.access_key.sign(&access, &self.rng)?,
            refresh_token: opaque_refresh_token(),
            expires_in: self.validity.as_secs(),
        })
    }

    /// The JSON Web Key Set with both public keys.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = [&self.id_key, &self.access_key]
            .iter()
            .map(
                |k| serde_json::json!({ "alg": "RS256", "e": k.e, "kid": k.kid, "kty": "RSA", "n": k.n, "use": "sig" }),
            )
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Checks an access token as GetUser does: signature by kid, issuer, expiry, token_use.
    pub fn verify_access_token(&self, token: &str) -> Result<AccessClaims, CognitoError> {
        let invalid = || CognitoError::new(ErrorKind::NotAuthorized, "Invalid Access Token");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let kid = header.kid.as_deref().ok_or_else(invalid)?;
        let key = [&self.id_key, &self.access_key].into_iter().find(|k| k.kid == kid).ok_or_else(invalid)?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(|e| {
            if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) {
                CognitoError::new(ErrorKind::NotAuthorized, "Access Token has expired")
            } else {
                invalid()
            }
        })?;
        if data.claims.token_use != "access" {
            return Err(invalid());
        }
        Ok(data.claims)
    }
}

/// An opaque refresh token shaped like Cognito's (a five-part JWE compact string).
fn opaque_refresh_token() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"cty":"JWT","enc":"A256GCM","alg":"RSA-OAEP"}"#);
    let part = |n: usize| URL_SAFE_NO_PAD.encode((0..n).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());
    format!("{header}.{}.{}.{}.{}", part(256), part(12), part(600), part(16))
}

fn epoch_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            username: "6f1c1d0e-0000-4000-8000-000000000001".into(),
            sub: "6f1c1d0e-0000-4000-8000-000000000001".into(),
            email: "u+1@mail.test".into(),
            email_verified: true,
            extra_attributes: Default::default(),
            created: 0.0,
            enabled: true,
        }
    }

    #[test]
    fn access_tokens_verify_and_id_tokens_do_not_pass_as_access_tokens() {
        let issuer =
            TokenIssuer::new("http://127.0.0.1:1/us-east-1_X".into(), Duration::from_secs(3600), TokenDefect::None)
                .expect("keys");
        let tokens = issuer.issue(&user(), "client").expect("issued");
        let claims = issuer.verify_access_token(&tokens.access_token).expect("valid access token");
        assert_eq!(claims.username, user().username);
        assert_eq!(claims.client_id, "client");
        assert!(issuer.verify_access_token(&tokens.id_token).is_err());
        let mut tampered = tokens.access_token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(issuer.verify_access_token(&tampered).is_err());
    }

    #[test]
    fn jwks_has_two_distinct_kids() {
        let issuer = TokenIssuer::new("http://x/p".into(), Duration::from_secs(3600), TokenDefect::None).expect("keys");
        let jwks = issuer.jwks();
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0]["kid"], keys[1]["kid"]);
    }
}
