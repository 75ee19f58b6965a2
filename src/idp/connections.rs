//! Adding and changing OIDC connections, for the command line and the admin API alike: the
//! input checked, the provider's discovery document fetched at once, the secret sealed.

use serde_json::Value;
use url::Url;
use uuid::Uuid;

use super::{DISCOVERED_AT, Idp, IdpError, generate_signing_key};
use crate::domain::oidc::{
    ClientAuth, Connection, ENTRA_TENANT_PLACEHOLDER, Provisioning, normalize_domain,
    normalize_scopes,
};
use crate::domain::secret::{Keyring, SecretError};
use crate::store::{ConnectionUpdate, Ctx, NewConnection, NewSealed, Store, StoreError};

pub const DEFAULT_SCOPES: &str = "openid email profile";
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("discovery failed: {0}")]
    Discovery(#[from] IdpError),
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ConnectionError {
    ConnectionError::Invalid {
        field,
        message: message.into(),
    }
}

/// The settings a request may give; `None` keeps the default (add) or the stored value
/// (update).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub client_secret: Option<String>,
    pub groups_claim: Option<String>,
    pub scopes: Option<String>,
    pub provisioning: Option<Provisioning>,
    pub domains: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
    pub client_auth: Option<ClientAuth>,
    pub allowed_tenants: Option<Vec<String>>,
}

/// The redirect URI to register at the provider.
pub fn redirect_uri(public_url: &Url, connection_id: Uuid) -> String {
    format!(
        "{}/auth/oidc/{connection_id}/callback",
        public_url.as_str().trim_end_matches('/')
    )
}

/// The post-logout redirect URI to register at the provider (RP-initiated logout): where the
/// provider sends the browser once it has signed the user out.
pub fn post_logout_redirect_uri(public_url: &Url) -> String {
    format!(
        "{}{}",
        public_url.as_str().trim_end_matches('/'),
        crate::domain::oidc::SIGNED_OUT_PATH
    )
}

/// An issuer must be https, except on a loopback address (a provider under test).
fn check_issuer(issuer: &Url) -> Result<(), ConnectionError> {
    let loopback = match issuer.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if issuer.scheme() == "https" || (issuer.scheme() == "http" && loopback) {
        Ok(())
    } else {
        Err(invalid(
            "issuer",
            "must be an https URL (http only on a loopback address)",
        ))
    }
}

fn check_settings(s: &Settings) -> Result<(Option<Vec<String>>, Option<String>), ConnectionError> {
    if let Some(claim) = &s.groups_claim
        && (claim.trim().is_empty() || claim.len() > 100)
    {
        return Err(invalid("groups_claim", "must be 1 to 100 characters"));
    }
    if let Some(secret) = &s.client_secret
        && secret.trim().is_empty()
    {
        return Err(invalid("client_secret", "must not be empty"));
    }
    let domains = s
        .domains
        .as_ref()
        .map(|ds| {
            let mut out: Vec<String> = Vec::new();
            for d in ds.iter().filter(|d| !d.trim().is_empty()) {
                let d =
                    normalize_domain(d).map_err(|m| invalid("domains", format!("{d:?}: {m}")))?;
                if !out.contains(&d) {
                    out.push(d);
                }
            }
            Ok::<_, ConnectionError>(out)
        })
        .transpose()?;
    Ok((
        domains,
        s.groups_claim.as_ref().map(|c| c.trim().to_owned()),
    ))
}

/// The sealed secret for a new row, its id chosen first (the sealing is bound to it).
fn sealed(keyring: &Keyring, plain: &[u8]) -> Result<NewSealed, ConnectionError> {
    if keyring.is_empty() {
        return Err(invalid(
            "client_secret",
            "secrets are stored encrypted: set ROLEGATE_SECRET_KEY (or \
             ROLEGATE_SECRET_KEY_FILE) first",
        ));
    }
    let id = Uuid::now_v7();
    Ok(NewSealed {
        id,
        sealed: crate::secrets::seal(keyring, id, plain)?,
    })
}

fn signing_key(keyring: &Keyring) -> Result<(NewSealed, Value), ConnectionError> {
    let (pkcs8, jwk) = generate_signing_key().map_err(|m| invalid("client_auth", m))?;
    Ok((sealed(keyring, &pkcs8)?, jwk))
}

fn allowed_tenants(
    issuer: &str,
    tenants: Option<Vec<String>>,
) -> Result<Vec<String>, ConnectionError> {
    let tenants: Vec<String> = tenants
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if !tenants.is_empty() && !issuer.contains(ENTRA_TENANT_PLACEHOLDER) {
        return Err(invalid(
            "allowed_tenants",
            "only for a multi-tenant issuer (one whose discovery names {tenantid})",
        ));
    }
    Ok(tenants)
}

/// A change to a connection: a new client id and the settings given.
pub struct Change {
    pub client_id: Option<String>,
    pub settings: Settings,
}

pub struct NewInput {
    pub org_id: Uuid,
    pub issuer: Url,
    pub client_id: String,
    pub settings: Settings,
}

/// Adds a connection after fetching the provider's discovery document.
pub async fn add(
    store: &dyn Store,
    idp: &Idp,
    keyring: &Keyring,
    ctx: &Ctx,
    tenant_id: Uuid,
    input: NewInput,
) -> Result<Connection, ConnectionError> {
    check_issuer(&input.issuer)?;
    let client_id = input.client_id.trim().to_owned();
    if client_id.is_empty() || client_id.len() > 255 {
        return Err(invalid("client_id", "must be 1 to 255 characters"));
    }
    let s = input.settings;
    let (domains, groups_claim) = check_settings(&s)?;
    let client_auth = s.client_auth.unwrap_or(ClientAuth::ClientSecretBasic);
    let client_secret = match (client_auth, &s.client_secret) {
        (ClientAuth::PrivateKeyJwt, _) => None,
        (_, Some(secret)) => Some(sealed(keyring, secret.as_bytes())?),
        (_, None) => {
            return Err(invalid(
                "client_secret",
                "required for client_secret_basic and client_secret_post",
            ));
        }
    };
    let (signing_key, public_jwk) = if client_auth == ClientAuth::PrivateKeyJwt {
        let (key, jwk) = signing_key(keyring)?;
        (Some(key), Some(jwk))
    } else {
        (None, None)
    };
    let (issuer, metadata) = idp.discover(input.issuer.as_str()).await?;
    let allowed_tenants = allowed_tenants(&issuer, s.allowed_tenants)?;
    let new = NewConnection {
        org_id: input.org_id,
        issuer,
        client_id,
        client_auth,
        client_secret,
        signing_key,
        public_jwk,
        groups_claim: groups_claim.unwrap_or_else(|| DEFAULT_GROUPS_CLAIM.to_owned()),
        scopes: normalize_scopes(s.scopes.as_deref().unwrap_or(DEFAULT_SCOPES)),
        provisioning: s.provisioning.unwrap_or(Provisioning::Hybrid),
        require_mfa: s.require_mfa.unwrap_or(false),
        domains: domains.unwrap_or_default(),
        allowed_tenants,
        metadata,
    };
    Ok(store.create_oidc_connection(ctx, tenant_id, new).await?)
}

/// Changes a connection; the discovery document is fetched anew (keys and endpoints move).
pub async fn update(
    store: &dyn Store,
    idp: &Idp,
    keyring: &Keyring,
    ctx: &Ctx,
    tenant_id: Uuid,
    id: Uuid,
    change: Change,
) -> Result<Connection, ConnectionError> {
    let Change {
        client_id,
        settings: s,
    } = change;
    let material = store.find_oidc_connection(id).await?;
    if material.connection.tenant_id != tenant_id {
        return Err(StoreError::NotFound.into());
    }
    let current = material.connection;
    let (domains, groups_claim) = check_settings(&s)?;
    if let Some(c) = &client_id
        && (c.trim().is_empty() || c.len() > 255)
    {
        return Err(invalid("client_id", "must be 1 to 255 characters"));
    }
    let auth = s.client_auth.unwrap_or(current.client_auth);
    let client_secret = s
        .client_secret
        .as_deref()
        .map(|secret| sealed(keyring, secret.as_bytes()))
        .transpose()?;
    if auth != ClientAuth::PrivateKeyJwt && client_secret.is_none() && !current.has_client_secret {
        return Err(invalid(
            "client_secret",
            "required for client_secret_basic and client_secret_post",
        ));
    }
    let signing_key = if auth == ClientAuth::PrivateKeyJwt && current.public_jwk.is_none() {
        Some(signing_key(keyring)?)
    } else {
        None
    };
    let (_, metadata) = match material.metadata.get(DISCOVERED_AT).and_then(Value::as_str) {
        Some(url) => idp.discover_at(&current.issuer, url).await?,
        None => idp.discover(&current.issuer).await?,
    };
    let allowed = s
        .allowed_tenants
        .map(|t| allowed_tenants(&current.issuer, Some(t)))
        .transpose()?;
    let update = ConnectionUpdate {
        client_id: client_id.map(|c| c.trim().to_owned()),
        client_auth: s.client_auth,
        client_secret,
        signing_key,
        groups_claim,
        scopes: s.scopes.as_deref().map(normalize_scopes),
        provisioning: s.provisioning,
        require_mfa: s.require_mfa,
        domains,
        allowed_tenants: allowed,
        metadata: Some(metadata),
    };
    Ok(store
        .update_oidc_connection(ctx, tenant_id, id, update)
        .await?)
}
