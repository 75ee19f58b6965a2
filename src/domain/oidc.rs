//! OIDC connections and the rules of a sign-in, without I/O: what a connection is, which
//! `return_to` is allowed, and every check of an ID token's claims once its signature is good
//! (OpenID Connect Core 1.0 §3.1.3.7), with the Entra ID quirks the research found.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;
use uuid::Uuid;

/// Clock skew allowed on `exp` and `iat` (`openidconnect` allows none; IdPs' clocks drift).
pub const LEEWAY_SECS: i64 = 120;
/// How long a login may take from the redirect to the callback.
pub const LOGIN_TTL_SECS: i64 = 600;

/// Who a first login may become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    /// Link by (issuer, sub), else by a verified e-mail within the connection's subtree, else
    /// create the user.
    Hybrid,
    /// Create the user at first login.
    Jit,
    /// Only people SCIM provisioned may sign in.
    ScimOnly,
}

impl Provisioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Provisioning::Hybrid => "hybrid",
            Provisioning::Jit => "jit",
            Provisioning::ScimOnly => "scim_only",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hybrid" => Provisioning::Hybrid,
            "jit" => Provisioning::Jit,
            "scim_only" => Provisioning::ScimOnly,
            _ => return None,
        })
    }
}

/// How rolegate authenticates to the token endpoint (RFC 6749 §2.3.1, OIDC Core §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    /// A key rolegate generates and keeps sealed; its public JWK is registered at the IdP.
    PrivateKeyJwt,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => ClientAuth::ClientSecretBasic,
            "client_secret_post" => ClientAuth::ClientSecretPost,
            "private_key_jwt" => ClientAuth::PrivateKeyJwt,
            _ => return None,
        })
    }
}

/// A connection of an org to an OpenID Provider. Its secret is never part of it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Connection {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub org_id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// Whether a client secret is stored (it is never shown).
    pub has_client_secret: bool,
    /// For `private_key_jwt`: the public key to register at the IdP.
    #[schema(value_type = Option<Object>)]
    pub public_jwk: Option<Value>,
    pub groups_claim: String,
    pub scopes: Vec<String>,
    pub provisioning: Provisioning,
    pub require_mfa: bool,
    /// E-mail domains routed here by home-realm discovery.
    pub domains: Vec<String>,
    /// For an Entra multi-tenant issuer (`…/{tenantid}/v2.0`): the tenant ids let in.
    pub allowed_tenants: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An e-mail domain as stored: lower-case, no leading `@`, at least one dot, DNS characters.
pub fn normalize_domain(raw: &str) -> Result<String, &'static str> {
    let d = raw.trim().trim_start_matches('@').to_ascii_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && !d.starts_with('.')
        && !d.ends_with('.')
        && !d.contains("..")
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(d)
    } else {
        Err("expected an e-mail domain such as example.com")
    }
}

/// The scopes to ask for: `openid` always, each once, in the order given.
pub fn normalize_scopes(raw: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut scopes = vec!["openid".to_owned()];
    seen.insert("openid".to_owned());
    for s in raw
        .split([' ', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if seen.insert(s.to_owned()) {
            scopes.push(s.to_owned());
        }
    }
    scopes
}

/// Entra ID's multi-tenant ("common"/"organizations") issuer template: the issuer in its
/// discovery document literally contains `{tenantid}`; each token carries the real tenant.
pub const ENTRA_TENANT_PLACEHOLDER: &str = "{tenantid}";

/// Where a provider sends the browser after an RP-initiated logout, and where a sign-out
/// lands: a page of this service saying so.
pub const SIGNED_OUT_PATH: &str = "/auth/signed-out";

/// The provider's end-session URL for an RP-initiated logout (OpenID Connect RP-Initiated
/// Logout 1.0 §2): `id_token_hint` when the session kept its ID token (Okta requires it),
/// `client_id` always (so a provider can check the redirect URI without the hint), and the
/// registered `post_logout_redirect_uri`. Parameters the endpoint already carries are kept.
pub fn end_session_url(
    endpoint: &str,
    client_id: &str,
    id_token_hint: Option<&str>,
    post_logout_redirect_uri: &str,
) -> Option<String> {
    let mut url = url::Url::parse(endpoint).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some(hint) = id_token_hint {
            query.append_pair("id_token_hint", hint);
        }
        query
            .append_pair("client_id", client_id)
            .append_pair("post_logout_redirect_uri", post_logout_redirect_uri);
    }
    Some(url.into())
}

/// Where to go after the login: only a path of this service (`/…`, not `//…`, no scheme, no
/// backslash that a browser would read as a slash). Default: the console.
pub fn safe_return_to(raw: Option<&str>) -> Result<String, &'static str> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok("/console/".to_owned());
    };
    let ok = raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.contains('\\')
        && !raw.chars().any(char::is_control);
    if ok {
        Ok(raw.to_owned())
    } else {
        Err("return_to must be a path of this service, such as /console/")
    }
}

/// Why an ID token (or the callback around it) is refused. Each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    IssuerMismatch,
    TenantNotAllowed,
    AudienceMismatch,
    AzpMismatch,
    Expired,
    IssuedInFuture,
    NonceMismatch,
    AtHashMismatch,
    MissingClaim(&'static str),
    MfaRequired,
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::IssuerMismatch => "id_token_issuer_mismatch",
            TokenRefusal::TenantNotAllowed => "tenant_not_allowed",
            TokenRefusal::AudienceMismatch => "id_token_audience_mismatch",
            TokenRefusal::AzpMismatch => "id_token_azp_mismatch",
            TokenRefusal::Expired => "id_token_expired",
            TokenRefusal::IssuedInFuture => "id_token_issued_in_future",
            TokenRefusal::NonceMismatch => "id_token_nonce_mismatch",
            TokenRefusal::AtHashMismatch => "id_token_at_hash_mismatch",
            TokenRefusal::MissingClaim(_) => "id_token_missing_claim",
            TokenRefusal::MfaRequired => "mfa_required",
        }
    }

    /// A policy refusal (403) rather than a protocol error (400).
    pub fn is_policy(&self) -> bool {
        matches!(
            self,
            TokenRefusal::TenantNotAllowed | TokenRefusal::MfaRequired
        )
    }

    pub fn message(&self) -> String {
        match self {
            TokenRefusal::IssuerMismatch => "the ID token's issuer is not the connection's".into(),
            TokenRefusal::TenantNotAllowed => {
                "the ID token's Entra tenant is not on this connection's allow-list".into()
            }
            TokenRefusal::AudienceMismatch => "the ID token is not meant for this client".into(),
            TokenRefusal::AzpMismatch => {
                "the ID token has several audiences and its azp is not this client".into()
            }
            TokenRefusal::Expired => "the ID token has expired".into(),
            TokenRefusal::IssuedInFuture => "the ID token is issued in the future".into(),
            TokenRefusal::NonceMismatch => "the ID token's nonce is not this login's".into(),
            TokenRefusal::AtHashMismatch => {
                "the ID token's at_hash does not match the access token".into()
            }
            TokenRefusal::MissingClaim(c) => format!("the ID token has no `{c}` claim"),
            TokenRefusal::MfaRequired => {
                "this connection requires multi-factor authentication, and the provider did not \
                 report a second factor (amr)"
                    .into()
            }
        }
    }
}

/// What an ID token must match.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    /// The connection's issuer (may hold `{tenantid}` for Entra multi-tenant).
    pub issuer: &'a str,
    pub allowed_tenants: &'a [String],
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: DateTime<Utc>,
    /// The access token and the hash the token's `alg` names, for `at_hash`.
    pub access_token: Option<&'a str>,
    pub alg: &'a str,
    pub require_mfa: bool,
    pub groups_claim: &'a str,
}

/// What a verified ID token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The token's `iss` (for Entra multi-tenant, the tenant's issuer).
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// Whether the e-mail is proof of a mailbox: `email_verified: true`, and for Entra ID only
    /// with `xms_edov` (Entra's `email` claim is not verified by default).
    pub email_verified: bool,
    pub name: Option<String>,
    pub sid: Option<String>,
    pub groups: Groups,
    pub amr: Vec<String>,
}

/// The group claim as the token gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    Values(Vec<String>),
    /// Entra's overage: too many groups to carry (`_claim_names`/`_claim_sources`, or
    /// `hasgroups`): the login proceeds without OIDC groups.
    Overage,
    /// No claim at all: the user is in no group of this connection.
    Absent,
}

fn is_entra_issuer(issuer: &str) -> bool {
    issuer.starts_with("https://login.microsoftonline.com/")
        || issuer.starts_with("https://sts.windows.net/")
}

/// The second factors `require_mfa` accepts in `amr` (RFC 8176): `mfa` itself, or a method that
/// is a factor beyond a password — one-time codes, hardware and software keys, biometrics,
/// SMS/phone confirmation, smart cards. `pwd` alone, or `kba`, is one factor.
pub const SECOND_FACTORS: &[&str] = &[
    "mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm", "sms", "tel", "pop",
    "pin",
];

fn amr_has_second_factor(amr: &[String]) -> bool {
    // `pin` is a factor only together with a key it unlocks; `mfa` or an OTP/key always is.
    amr.iter().any(|m| {
        let m = m.as_str();
        m != "pin" && SECOND_FACTORS.contains(&m)
    }) || (amr.iter().any(|m| m == "pin") && amr.iter().any(|m| m == "hwk" || m == "swk"))
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the access token's hash, by the hash of
/// the ID token's `alg`, base64url without padding.
pub fn at_hash(alg: &str, access_token: &str) -> Option<String> {
    use base64::Engine;
    let digest: Vec<u8> = match alg {
        "RS256" | "PS256" | "ES256" | "HS256" => sha2::Sha256::digest(access_token).to_vec(),
        "RS384" | "PS384" | "ES384" | "HS384" => sha2::Sha384::digest(access_token).to_vec(),
        "RS512" | "PS512" | "ES512" | "HS512" | "EdDSA" | "Ed25519" => {
            sha2::Sha512::digest(access_token).to_vec()
        }
        _ => return None,
    };
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2]))
}

/// A member that is a list, its strings (other items skipped); `None` when it is no list.
pub fn strings(object: &Value, name: &str) -> Option<Vec<String>> {
    object.get(name).and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

fn str_claim(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A boolean claim, also as Entra's strings (`"true"`).
fn bool_claim(claims: &Value, name: &str) -> bool {
    match claims.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn time_claim(claims: &Value, name: &'static str) -> Result<i64, TokenRefusal> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or(TokenRefusal::MissingClaim(name))
}

/// Checks a signature-verified ID token's claims (OIDC Core §3.1.3.7 steps 2–12, RFC 8176 for
/// `amr`); the person it names, or the first refusal.
pub fn check_id_token(claims: &Value, expected: &Expected<'_>) -> Result<Verified, TokenRefusal> {
    let issuer = str_claim(claims, "iss").ok_or(TokenRefusal::MissingClaim("iss"))?;
    check_issuer(&issuer, expected)?;
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => return Err(TokenRefusal::MissingClaim("aud")),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(TokenRefusal::AudienceMismatch);
    }
    // §3.1.3.7 steps 4–5: with several audiences, azp must be there and be us; when present
    // at all it must be us.
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != expected.client_id => return Err(TokenRefusal::AzpMismatch),
        None if audiences.len() > 1 => return Err(TokenRefusal::AzpMismatch),
        _ => {}
    }
    let now = expected.now.timestamp();
    if time_claim(claims, "exp")? + LEEWAY_SECS < now {
        return Err(TokenRefusal::Expired);
    }
    if time_claim(claims, "iat")? > now + LEEWAY_SECS {
        return Err(TokenRefusal::IssuedInFuture);
    }
    let nonce = str_claim(claims, "nonce").ok_or(TokenRefusal::NonceMismatch)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        nonce.as_bytes(),
        expected.nonce.as_bytes(),
    )) {
        return Err(TokenRefusal::NonceMismatch);
    }
    if let (Some(given), Some(token)) = (str_claim(claims, "at_hash"), expected.access_token)
        && at_hash(expected.alg, token).as_deref() != Some(given.as_str())
    {
        return Err(TokenRefusal::AtHashMismatch);
    }
    let subject = str_claim(claims, "sub")
        .filter(|s| !s.is_empty())
        .ok_or(TokenRefusal::MissingClaim("sub"))?;
    let amr = strings(claims, "amr").unwrap_or_default();
    if expected.require_mfa && !amr_has_second_factor(&amr) {
        return Err(TokenRefusal::MfaRequired);
    }
    let entra = is_entra_issuer(&issuer);
    let email_verified =
        bool_claim(claims, "email_verified") && (!entra || bool_claim(claims, "xms_edov"));
    Ok(Verified {
        subject,
        email: str_claim(claims, "email").filter(|e| !e.trim().is_empty()),
        email_verified,
        name: str_claim(claims, "name"),
        sid: str_claim(claims, "sid"),
        groups: groups(claims, expected.groups_claim),
        amr,
        issuer,
    })
}

/// Whether a token of `issuer` may come from this connection: its issuer, or — for an Entra
/// multi-tenant connection — its template filled with an allowed tenant.
pub fn connection_issues(connection: &Connection, issuer: &str) -> bool {
    let expected = Expected {
        issuer: &connection.issuer,
        allowed_tenants: &connection.allowed_tenants,
        client_id: &connection.client_id,
        nonce: "",
        now: crate::domain::now(),
        access_token: None,
        alg: "",
        require_mfa: false,
        groups_claim: "",
    };
    check_issuer(issuer, &expected).is_ok()
}

fn check_issuer(issuer: &str, expected: &Expected<'_>) -> Result<(), TokenRefusal> {
    let Some((before, after)) = expected.issuer.split_once(ENTRA_TENANT_PLACEHOLDER) else {
        return if issuer == expected.issuer {
            Ok(())
        } else {
            Err(TokenRefusal::IssuerMismatch)
        };
    };
    let tenant = issuer
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .ok_or(TokenRefusal::IssuerMismatch)?;
    if expected
        .allowed_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant))
    {
        Ok(())
    } else {
        Err(TokenRefusal::TenantNotAllowed)
    }
}

/// The group claim: a list of strings, or Entra's overage markers.
pub fn groups(claims: &Value, claim: &str) -> Groups {
    let overage = claims
        .get("_claim_names")
        .and_then(|n| n.get(claim))
        .is_some()
        || bool_claim(claims, "hasgroups");
    if overage {
        return Groups::Overage;
    }
    match claims.get(claim) {
        Some(Value::Array(values)) => {
            let mut seen = BTreeSet::new();
            Groups::Values(
                values
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::trim)
                    .filter(|v| !v.is_empty() && v.chars().count() <= 256)
                    .filter(|v| seen.insert((*v).to_owned()))
                    .map(str::to_owned)
                    .collect(),
            )
        }
        Some(Value::String(one)) if !one.trim().is_empty() => {
            Groups::Values(vec![one.trim().to_owned()])
        }
        _ => Groups::Absent,
    }
}

/// What a callback's userinfo response adds: merged only when its `sub` is the ID token's
/// (OIDC Core §5.3.2), and then only to fill what the ID token left out.
pub fn merge_userinfo(verified: &mut Verified, userinfo: &Value, groups_claim: &str) -> bool {
    if userinfo.get("sub").and_then(Value::as_str) != Some(verified.subject.as_str()) {
        return false;
    }
    if verified.email.is_none()
        && let Some(email) = str_claim(userinfo, "email")
    {
        verified.email = Some(email);
        verified.email_verified =
            bool_claim(userinfo, "email_verified") && !is_entra_issuer(&verified.issuer);
    }
    if verified.name.is_none() {
        verified.name = str_claim(userinfo, "name");
    }
    if verified.groups == Groups::Absent {
        verified.groups = groups(userinfo, groups_claim);
    }
    true
}

#[cfg(test)]
mod tests;
