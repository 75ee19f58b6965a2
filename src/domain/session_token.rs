//! Session tokens: short-lived signed JWTs that other services of the product verify offline
//! against `/.well-known/jwks.json`. They say who is signed in (user, tenant, session), never
//! what that person may do — services ask `authz/check` for that, so a permission change needs
//! no new token.
//!
//! The signing keys are not stored: each is derived from a `ROLEGATE_SECRET_KEY` (an Ed25519
//! seed under a label of its own), so every instance signs with the same key without any key
//! material at rest, and rotating `ROLEGATE_SECRET_KEY` rotates the signing key — tokens signed
//! with an old key verify while it is given as `ROLEGATE_SECRET_KEY_OLD`.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::secret::{Keyring, SecretKey};

/// How long a session token lives (at most five minutes, as the issue asks).
pub const LIFETIME_SECS: i64 = 300;
/// Who session tokens are for: the product's services.
pub const AUDIENCE: &str = "rolegate";
/// Clock skew tolerated between instances and the services that verify.
const LEEWAY_SECS: u64 = 30;
/// The label the Ed25519 seed is derived under; a new label is a new key.
const SEED_LABEL: &[u8] = b"rolegate session token signing key v1";
/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): this prefix, then the 32 bytes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Whether a bearer credential is shaped like a session token (a compact JWS) rather than one
/// of the service's own `rg_…` tokens.
pub fn looks_like_one(bearer: &str) -> bool {
    !bearer.starts_with("rg_") && bearer.split('.').count() == 3
}

/// What a session token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    /// The session (its public id): ending the session is what revokes the person; a token
    /// outliving it by minutes is why tokens are short.
    pub sid: Uuid,
    /// The tenant (root org) the user belongs to.
    pub tid: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: Uuid,
}

impl SessionClaims {
    pub fn new(issuer: &str, user: Uuid, session: Uuid, tenant: Uuid, now: i64) -> Self {
        SessionClaims {
            iss: issuer.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: user,
            sid: session,
            tid: tenant,
            iat: now,
            nbf: now,
            exp: now + LIFETIME_SECS,
            jti: Uuid::now_v7(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("session tokens need ROLEGATE_SECRET_KEY (their signing key is derived from it)")]
    NoKey,
    #[error("the token is not signed by a key of this service")]
    UnknownKey,
    #[error("invalid session token: {0}")]
    Invalid(String),
}

/// One signing key: derived, with its public half as a JWK.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl SigningKey {
    pub fn derive(key: &SecretKey) -> Result<Self, TokenError> {
        let seed = key.derive(SEED_LABEL);
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let encoding = EncodingKey::from_ed_der(&der);
        let kid = format!("rg-{}", key.id());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA)
            .map_err(|e| TokenError::Invalid(format!("cannot derive the public key: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk)
            .map_err(|e| TokenError::Invalid(format!("cannot derive the public key: {e}")))?;
        Ok(SigningKey {
            kid,
            encoding,
            decoding,
            jwk,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The signing keys of a keyring: the current key's first (it signs), then the old ones'
/// (they still verify during a rotation).
pub struct SigningKeys(Vec<SigningKey>);

impl SigningKeys {
    /// No keys: no token is minted, none verifies.
    pub fn none() -> Self {
        SigningKeys(Vec::new())
    }

    pub fn from_keyring(keyring: &Keyring) -> Result<Self, TokenError> {
        keyring
            .keys()
            .map(SigningKey::derive)
            .collect::<Result<Vec<_>, _>>()
            .map(SigningKeys)
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.0.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// Signs `claims` with the current key.
    pub fn mint(&self, claims: &SessionClaims) -> Result<String, TokenError> {
        let key = self.0.first().ok_or(TokenError::NoKey)?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The claims of a token this service signed for `issuer`, still within its lifetime.
    pub fn verify(&self, token: &str, issuer: &str) -> Result<SessionClaims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid(format!("alg {:?}", header.alg)));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .0
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(current: u8, old: &[u8]) -> Keyring {
        Keyring::new(
            Some(SecretKey::from_bytes([current; 32])),
            old.iter()
                .map(|b| SecretKey::from_bytes([*b; 32]))
                .collect(),
        )
    }

    fn claims(now: i64) -> SessionClaims {
        SessionClaims::new(
            "https://rolegate.test",
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            now,
        )
    }

    fn now() -> i64 {
        crate::domain::now().timestamp()
    }

    #[test]
    fn a_minted_token_verifies_with_the_published_key_alone() {
        let keys = SigningKeys::from_keyring(&keyring(1, &[])).expect("keys");
        let c = claims(now());
        let token = keys.mint(&c).expect("minted");
        // What another service does: only the JWKS, no secret.
        let jwks = serde_json::to_value(keys.jwks()).expect("jwks");
        let jwk: Jwk = serde_json::from_value(jwks["keys"][0].clone()).expect("jwk");
        assert_eq!(jwks["keys"][0]["kty"], "OKP");
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        let decoded = jsonwebtoken::decode::<SessionClaims>(
            &token,
            &DecodingKey::from_jwk(&jwk).expect("key"),
            &validation,
        )
        .expect("verifies offline");
        assert_eq!(decoded.claims, c);
        assert_eq!(decoded.header.kid.as_deref(), Some(keys.0[0].kid()));
        assert!(c.exp - c.iat <= 300);
    }

    #[test]
    fn the_same_secret_key_derives_the_same_signing_key_on_every_instance() {
        let a = SigningKeys::from_keyring(&keyring(1, &[])).expect("keys");
        let b = SigningKeys::from_keyring(&keyring(1, &[])).expect("keys");
        let token = a.mint(&claims(now())).expect("minted");
        assert!(b.verify(&token, "https://rolegate.test").is_ok());
        let other = SigningKeys::from_keyring(&keyring(2, &[])).expect("keys");
        assert_eq!(
            other.verify(&token, "https://rolegate.test"),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn after_a_rotation_old_tokens_verify_while_the_old_key_is_given_and_new_ones_use_the_new_key()
    {
        let before = SigningKeys::from_keyring(&keyring(1, &[])).expect("keys");
        let old_token = before.mint(&claims(now())).expect("minted");
        let during = SigningKeys::from_keyring(&keyring(2, &[1])).expect("keys");
        assert!(during.verify(&old_token, "https://rolegate.test").is_ok());
        assert_eq!(during.jwks().keys.len(), 2);
        let new_token = during.mint(&claims(now())).expect("minted");
        let kid = jsonwebtoken::decode_header(&new_token).expect("header").kid;
        assert_eq!(kid.as_deref(), Some(during.0[0].kid()));
        assert_ne!(during.0[0].kid(), before.0[0].kid());
        let after = SigningKeys::from_keyring(&keyring(2, &[])).expect("keys");
        assert_eq!(
            after.verify(&old_token, "https://rolegate.test"),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn expired_foreign_issuer_wrong_audience_and_tampered_tokens_are_refused() {
        let keys = SigningKeys::from_keyring(&keyring(1, &[])).expect("keys");
        let expired = keys.mint(&claims(now() - 1_000)).expect("minted");
        assert!(matches!(
            keys.verify(&expired, "https://rolegate.test"),
            Err(TokenError::Invalid(_))
        ));
        let fresh = keys.mint(&claims(now())).expect("minted");
        assert!(matches!(
            keys.verify(&fresh, "https://elsewhere.test"),
            Err(TokenError::Invalid(_))
        ));
        let mut foreign = claims(now());
        foreign.aud = "someone-else".into();
        let foreign = keys.mint(&foreign).expect("minted");
        assert!(keys.verify(&foreign, "https://rolegate.test").is_err());
        // A changed payload no longer matches the signature.
        let mut parts: Vec<String> = fresh.split('.').map(str::to_owned).collect();
        let mut other = claims(now());
        other.sub = Uuid::now_v7();
        parts[1] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            serde_json::to_vec(&other).expect("json"),
        );
        assert!(
            keys.verify(&parts.join("."), "https://rolegate.test")
                .is_err()
        );
        // `alg: none` is never taken.
        let none = format!(
            "{}.{}.",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"none","kid":"x"}"#
            ),
            parts[1]
        );
        assert!(keys.verify(&none, "https://rolegate.test").is_err());
    }

    #[test]
    fn no_key_no_tokens() {
        let keys = SigningKeys::from_keyring(&Keyring::default()).expect("keys");
        assert_eq!(keys.mint(&claims(now())), Err(TokenError::NoKey));
        assert!(keys.jwks().keys.is_empty());
    }
}
