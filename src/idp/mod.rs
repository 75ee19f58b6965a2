//! The OpenID Provider seen from rolegate, the relying party: discovery, the JWKS (cached,
//! refetched on an unknown `kid` at most once per [`JWKS_REFETCH_EVERY`]), the token and
//! userinfo endpoints, and an ID token's signature. What the claims must say is the domain's
//! (`domain::oidc::check_id_token`).
//!
//! Written on reqwest and jsonwebtoken rather than `openidconnect`'s client: that client fetches
//! the JWKS once and never again, allows no clock skew, checks neither `azp` nor `iat`, and its
//! typed claims hide the group claim and Entra's overage markers, all of which we need.

pub mod connections;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::domain::oidc::{ENTRA_TENANT_PLACEHOLDER, strings};

/// The key under which a stored discovery document keeps the URL it was fetched from.
pub const DISCOVERED_AT: &str = "rolegate_discovered_at";

/// An unknown `kid` refetches the JWKS at most this often per provider: a stream of tokens
/// with made-up key ids must not become a stream of requests to the provider.
pub const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum IdpError {
    #[error("cannot reach the provider at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("the provider answered {status} at {url}: {detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("the provider's answer at {url} is not what OpenID Connect expects: {detail}")]
    Malformed { url: String, detail: String },
}

/// Why an ID token's signature is refused; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the ID token is not a signed JWT")]
    NotAJwt,
    #[error("the ID token's alg {0:?} is not one the provider advertises (or is none/HMAC)")]
    AlgNotAllowed(String),
    #[error("no key of the provider has the ID token's kid, even after refetching its keys")]
    UnknownKey,
    #[error("the ID token's signature does not verify")]
    BadSignature,
    #[error("the provider's keys could not be fetched: {0}")]
    Jwks(String),
}

impl SignatureError {
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::NotAJwt => "id_token_malformed",
            SignatureError::AlgNotAllowed(_) => "id_token_alg_not_allowed",
            SignatureError::UnknownKey => "id_token_unknown_kid",
            SignatureError::BadSignature => "id_token_bad_signature",
            SignatureError::Jwks(_) => "provider_keys_unavailable",
        }
    }
}

/// How rolegate authenticates at the token endpoint.
pub enum ClientCredentials<'a> {
    Basic {
        client_id: &'a str,
        secret: &'a str,
    },
    Post {
        client_id: &'a str,
        secret: &'a str,
    },
    /// An ES256 key (PKCS#8 DER) and its `kid` (RFC 7523 client assertion).
    PrivateKeyJwt {
        client_id: &'a str,
        pkcs8: &'a [u8],
        kid: &'a str,
    },
}

/// What the token endpoint gave.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<String>,
}

struct CachedKeys {
    set: JwkSet,
    refetched_at: Option<Instant>,
}

/// The HTTP side of every provider, shared by the service.
pub struct Idp {
    http: reqwest::Client,
    keys: Mutex<HashMap<String, CachedKeys>>,
}

impl Default for Idp {
    fn default() -> Self {
        Self::new()
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> IdpError {
    IdpError::Unreachable {
        url: url.to_owned(),
        detail: e.to_string(),
    }
}

fn malformed(url: &str, detail: impl Into<String>) -> IdpError {
    IdpError::Malformed {
        url: url.to_owned(),
        detail: detail.into(),
    }
}

/// The discovery URL of an issuer (OpenID Connect Discovery 1.0 §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The signing algorithms an ID token may use: the provider's list (RS256 when it gives
/// none, the spec's default), never `none`, never HMAC (a client secret is not a signing key
/// we accept for identity).
pub fn allowed_algs(metadata: &Value) -> Vec<String> {
    let listed = strings(metadata, "id_token_signing_alg_values_supported")
        .unwrap_or_else(|| vec!["RS256".to_owned()]);
    listed
        .into_iter()
        .filter(|a| a != "none" && !a.starts_with("HS"))
        .collect()
}

fn endpoint<'m>(metadata: &'m Value, name: &str) -> Option<&'m str> {
    metadata.get(name).and_then(Value::as_str)
}

impl Idp {
    pub fn new() -> Self {
        // The builder fails only when the TLS backend cannot start; a client without our
        // settings still works, so the service does not refuse to start over it.
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Idp {
            http,
            keys: Mutex::new(HashMap::new()),
        }
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Value, IdpError> {
        let mut request = self.http.get(url).header("accept", "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| unreachable(url, &e))?;
        if !status.is_success() {
            return Err(IdpError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                detail: body.chars().take(200).collect(),
            });
        }
        serde_json::from_str(&body).map_err(|e| malformed(url, format!("not JSON: {e}")))
    }

    /// Fetches and checks an issuer's discovery document: the `issuer` it names must be the
    /// one asked for (Discovery §4.3) — or, for Entra's multi-tenant endpoints, a template
    /// holding `{tenantid}` — and the endpoints the code flow needs must be there. The issuer
    /// to store (the template, for Entra) and the document.
    pub async fn discover(&self, issuer: &str) -> Result<(String, Value), IdpError> {
        self.discover_at(issuer, &discovery_url(issuer)).await
    }

    /// [`Idp::discover`], from a discovery URL fetched before (kept in the stored document as
    /// [`DISCOVERED_AT`]: Entra's template issuer is no URL to fetch).
    pub async fn discover_at(&self, issuer: &str, url: &str) -> Result<(String, Value), IdpError> {
        let mut metadata = self.get_json(url, None).await?;
        let named = endpoint(&metadata, "issuer")
            .ok_or_else(|| malformed(url, "no issuer"))?
            .to_owned();
        let same = named.trim_end_matches('/') == issuer.trim_end_matches('/');
        if !same && !named.contains(ENTRA_TENANT_PLACEHOLDER) {
            return Err(malformed(
                url,
                format!("it names the issuer {named:?}, not {issuer:?}"),
            ));
        }
        for required in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
            if endpoint(&metadata, required).is_none() {
                return Err(malformed(url, format!("no {required}")));
            }
        }
        if allowed_algs(&metadata).is_empty() {
            return Err(malformed(
                url,
                "it signs ID tokens only with none or HMAC algorithms",
            ));
        }
        metadata[DISCOVERED_AT] = Value::String(url.to_owned());
        Ok((named, metadata))
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        metadata: &Value,
        credentials: &ClientCredentials<'_>,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Tokens, IdpError> {
        let url = endpoint(metadata, "token_endpoint")
            .ok_or_else(|| malformed("discovery", "no token_endpoint"))?;
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.into()),
            ("redirect_uri", redirect_uri.into()),
            ("code_verifier", verifier.into()),
        ];
        let mut request = self.http.post(url);
        match credentials {
            ClientCredentials::Basic { client_id, secret } => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before the Basic encoding.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(enc(client_id), Some(enc(secret)));
            }
            ClientCredentials::Post { client_id, secret } => {
                form.push(("client_id", (*client_id).into()));
                form.push(("client_secret", (*secret).into()));
            }
            ClientCredentials::PrivateKeyJwt {
                client_id,
                pkcs8,
                kid,
            } => {
                let assertion = client_assertion(client_id, url, pkcs8, kid).map_err(|e| {
                    malformed(url, format!("cannot sign the client assertion: {e}"))
                })?;
                form.push(("client_id", (*client_id).into()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
            }
        }
        let body = serde_urlencoded::to_string(&form).map_err(|e| malformed(url, e.to_string()))?;
        let response = request
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(url, &e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| unreachable(url, &e))?;
        if !status.is_success() {
            // RFC 6749 §5.2: the error code is safe to show; the description may echo input.
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            return Err(IdpError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                detail: code,
            });
        }
        let value: Value =
            serde_json::from_str(&text).map_err(|e| malformed(url, format!("not JSON: {e}")))?;
        let id_token = value
            .get("id_token")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(url, "no id_token in the token response"))?
            .to_owned();
        Ok(Tokens {
            id_token,
            access_token: value
                .get("access_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// The userinfo response (JSON only; a signed userinfo is not asked for).
    pub async fn userinfo(
        &self,
        metadata: &Value,
        access_token: &str,
    ) -> Result<Option<Value>, IdpError> {
        let Some(url) = endpoint(metadata, "userinfo_endpoint") else {
            return Ok(None);
        };
        self.get_json(url, Some(access_token)).await.map(Some)
    }

    async fn fetch_keys(&self, jwks_uri: &str) -> Result<JwkSet, SignatureError> {
        let value = self
            .get_json(jwks_uri, None)
            .await
            .map_err(|e| SignatureError::Jwks(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| SignatureError::Jwks(e.to_string()))
    }

    /// The key with `kid` (or the only key, for a token without one), refetching the set once
    /// when it is unknown and the last refetch is old enough.
    async fn key(
        &self,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<jsonwebtoken::jwk::Jwk, SignatureError> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let cached = {
            let keys = self.keys.lock().map_err(|_| SignatureError::UnknownKey)?;
            keys.get(jwks_uri).map(|c| (pick(&c.set), c.refetched_at))
        };
        let refetched_at = match cached {
            Some((Some(key), _)) => return Ok(key),
            Some((None, at)) => at,
            None => {
                let set = self.fetch_keys(jwks_uri).await?;
                let found = pick(&set);
                self.store_keys(jwks_uri, set, None);
                if let Some(key) = found {
                    return Ok(key);
                }
                None
            }
        };
        if refetched_at.is_some_and(|at| at.elapsed() < JWKS_REFETCH_EVERY) {
            return Err(SignatureError::UnknownKey);
        }
        let set = self.fetch_keys(jwks_uri).await?;
        let found = pick(&set);
        self.store_keys(jwks_uri, set, Some(Instant::now()));
        found.ok_or(SignatureError::UnknownKey)
    }

    fn store_keys(&self, jwks_uri: &str, set: JwkSet, refetched_at: Option<Instant>) {
        if let Ok(mut keys) = self.keys.lock() {
            let refetched_at =
                refetched_at.or_else(|| keys.get(jwks_uri).and_then(|c| c.refetched_at));
            keys.insert(jwks_uri.to_owned(), CachedKeys { set, refetched_at });
        }
    }

    /// Verifies a JWT's signature with the provider's keys and an algorithm it advertises; its
    /// claims and `alg`. Claims are not judged here.
    pub async fn verify_signature(
        &self,
        metadata: &Value,
        token: &str,
    ) -> Result<(Value, String), SignatureError> {
        let header = jwt_header(token)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(SignatureError::NotAJwt)?
            .to_owned();
        if !allowed_algs(metadata).contains(&alg) {
            return Err(SignatureError::AlgNotAllowed(alg));
        }
        let algorithm: Algorithm = alg
            .parse()
            .map_err(|_| SignatureError::AlgNotAllowed(alg.clone()))?;
        let jwks_uri = endpoint(metadata, "jwks_uri")
            .ok_or_else(|| SignatureError::Jwks("no jwks_uri".into()))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let jwk = self.key(jwks_uri, kid).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| SignatureError::BadSignature)?;
        let mut validation = Validation::new(algorithm);
        // Claims are the domain's to judge, with its leeway and Entra's issuers.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|_| SignatureError::BadSignature)?;
        Ok((data.claims, alg))
    }
}

/// The JOSE header of a compact JWS, read without trusting it.
pub fn jwt_header(token: &str) -> Result<Value, SignatureError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SignatureError::NotAJwt);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| SignatureError::NotAJwt)?;
    serde_json::from_slice(&bytes).map_err(|_| SignatureError::NotAJwt)
}

/// An RFC 7523 client assertion, ES256, valid one minute.
fn client_assertion(
    client_id: &str,
    audience: &str,
    pkcs8: &[u8],
    kid: &str,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = chrono::Utc::now().timestamp();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": client_id, "sub": client_id, "aud": audience,
        "jti": uuid::Uuid::new_v4().to_string(), "iat": now, "exp": now + 60,
    });
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(pkcs8))
}

/// A new ES256 key for `private_key_jwt`: its PKCS#8 DER (to seal) and its public JWK (to show).
pub fn generate_signing_key() -> Result<(Vec<u8>, Value), String> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "cannot generate a key".to_owned())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "cannot read the generated key".to_owned())?;
    // An uncompressed point: 0x04 || x || y, 32 bytes each.
    let point = pair.public_key().as_ref();
    if point.len() != 65 {
        return Err("unexpected public key form".into());
    }
    let (x, y) = (&point[1..33], &point[33..]);
    let kid = {
        use sha2::Digest;
        URL_SAFE_NO_PAD.encode(&sha2::Sha256::digest(point)[..12])
    };
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    });
    Ok((pkcs8.as_ref().to_vec(), jwk))
}
