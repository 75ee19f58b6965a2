//! The operator's commands (everything but `serve`): each prints one JSON value on stdout.

use serde_json::{Value, json};

use crate::auth::{IssueError, Minter, TokenRequest, issue_token};
use crate::config::{
    ConsoleCommand, DatabaseUrl, DocumentFormat, KeysCommand, MappingsCommand, OidcCommand,
    OidcSettings, OrgCommand, OutboxCommand, ScimCommand, TokenCommand,
};
use crate::domain::audit::Actor;
use crate::domain::mapping_document::{self, DocumentError};
use crate::domain::outbox::redact_links;
use crate::domain::secret::Keyring;
use crate::domain::{org, user};
use crate::idp::Idp;
use crate::idp::connections::{self, ConnectionError, Settings};
use crate::store::{Ctx, OutboxQuery, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(
        "a root organization named {name:?} already exists (org_id {org_id}); pass \
         --allow-duplicate-name to create another, or `rolegate org list` to see them"
    )]
    DuplicateName { name: String, org_id: uuid::Uuid },
    #[error("cannot read {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("cannot write the document: {0}")]
    Output(String),
    #[error("refused: {0}")]
    Refused(&'static str),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Connection(String),
}

impl From<ConnectionError> for CliError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Store(StoreError::NotFound) => CliError::NotFound("connection"),
            ConnectionError::Store(e) => CliError::Store(e),
            other => CliError::Connection(other.to_string()),
        }
    }
}

/// The message for a failed command. "Not found" names the database it looked in: the usual
/// cause is a command pointed at another database than the service's.
pub fn explain(error: CliError, database: &DatabaseUrl) -> String {
    match error {
        CliError::NotFound(what) => {
            format!("{what} not found in the database {}", database.located())
        }
        other => other.to_string(),
    }
}

/// What `rolegate migrate` prints: each migration it applied, or that there was none to apply.
pub fn migrated(database: &DatabaseUrl, applied: &[(i64, String)]) -> Value {
    let applied: Vec<Value> = applied
        .iter()
        .map(|(version, description)| json!({ "version": version, "description": description }))
        .collect();
    let status = if applied.is_empty() {
        "up to date"
    } else {
        "migrated"
    };
    json!({ "database": database.located(), "status": status, "applied": applied })
}

fn ctx() -> Ctx {
    Ctx::new(Actor::Cli)
}

fn not_found(what: &'static str) -> impl FnOnce(StoreError) -> CliError {
    move |e| match e {
        StoreError::NotFound => CliError::NotFound(what),
        other => CliError::Store(other),
    }
}

pub async fn org(store: &dyn Store, command: OrgCommand) -> Result<Value, CliError> {
    match command {
        OrgCommand::Create {
            name,
            owner,
            allow_duplicate_name,
        } => {
            let name = org::NAME
                .validate(&name)
                .map_err(|message| CliError::Invalid {
                    field: "name",
                    message,
                })?;
            let owner = user::validate_email(&owner).map_err(|message| CliError::Invalid {
                field: "owner",
                message,
            })?;
            if !allow_duplicate_name {
                let roots = store.list_root_orgs().await?;
                let key = crate::domain::normalize(&name);
                if let Some(same) = roots
                    .iter()
                    .find(|o| crate::domain::normalize(&o.name) == key)
                {
                    return Err(CliError::DuplicateName {
                        name: same.name.clone(),
                        org_id: same.id,
                    });
                }
            }
            let (org, owner) = store.create_org(&ctx(), &name, &owner).await?;
            Ok(
                json!({ "org_id": org.id, "name": org.name, "owner_user_id": owner.id, "owner_email": owner.email }),
            )
        }
        OrgCommand::List => {
            let roots = store.list_root_orgs().await?;
            Ok(Value::Array(
                roots
                    .iter()
                    .map(|o| json!({ "org_id": o.id, "name": o.name, "created_at": o.created_at }))
                    .collect(),
            ))
        }
        OrgCommand::AddOwner { org, email } => {
            let email = user::validate_email(&email).map_err(|message| CliError::Invalid {
                field: "email",
                message,
            })?;
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let user = store
                .add_owner(&ctx(), found.tenant_id, found.id, &email)
                .await?;
            Ok(
                json!({ "org_id": found.id, "user_id": user.id, "email": user.email, "role": "owner" }),
            )
        }
    }
}

pub async fn console(store: &dyn Store, command: ConsoleCommand) -> Result<Value, CliError> {
    match command {
        ConsoleCommand::LoginLink {
            org,
            email,
            public_url,
        } => {
            let email = user::validate_email(&email).map_err(|message| CliError::Invalid {
                field: "email",
                message,
            })?;
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let user = store
                .find_user_by_email(found.tenant_id, &email)
                .await
                .map_err(not_found("user"))?
                .ok_or(CliError::NotFound("user"))?;
            let facts = store.tenant_facts(found.tenant_id).await?;
            let owner = store
                .user_snapshots_with(found.tenant_id, &[user.id], &facts)
                .await?
                .first()
                .is_some_and(|snapshot| {
                    crate::domain::resolve::resolve_org(snapshot, found.id).standing
                        == crate::domain::resolve::Standing::Owner
                });
            if !owner {
                return Err(CliError::Refused(
                    "a login link is only for an active Owner of the organization",
                ));
            }
            let (url, link) = crate::session::routes::mint_link(
                store,
                &public_url,
                &ctx(),
                found.tenant_id,
                user.id,
                found.id,
                "login_link",
            )
            .await
            .map_err(|e| CliError::Store(StoreError::Other(e.to_string())))?;
            Ok(json!({ "url": url.as_str(), "expires_at": link.expires_at }))
        }
    }
}

pub async fn token(store: &dyn Store, command: TokenCommand) -> Result<Value, CliError> {
    match command {
        TokenCommand::Create {
            org,
            kind,
            name,
            expires_in,
        } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let (token, secret) = issue_token(
                store,
                &ctx(),
                found.tenant_id,
                TokenRequest {
                    org_id: found.id,
                    kind: kind.into(),
                    name: name.as_deref(),
                    expires_in_days: expires_in,
                },
                Minter::Operator,
            )
            .await
            .map_err(|e| match e {
                IssueError::InvalidName(message) => CliError::Invalid {
                    field: "name",
                    message,
                },
                IssueError::Store(e) => CliError::Store(e),
            })?;
            let mut out = json!(token);
            out["token"] = json!(secret);
            Ok(out)
        }
        TokenCommand::List { org } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            Ok(json!(
                store.list_tokens(found.tenant_id, Some(found.id)).await?
            ))
        }
        TokenCommand::Revoke { id } => {
            let token = store.find_token(id).await.map_err(not_found("token"))?;
            Ok(json!(
                store.revoke_token(&ctx(), token.tenant_id, id).await?
            ))
        }
    }
}

pub async fn scim(store: &dyn Store, command: ScimCommand) -> Result<Value, CliError> {
    match command {
        ScimCommand::Release { user, to_org } => {
            let (tenant, holder) = store.scim_holder(user).await.map_err(not_found("user"))?;
            let Some(from) = holder else {
                return Err(CliError::Store(StoreError::Rule(
                    "not_held: no SCIM token provisions this user; there is nothing to release"
                        .into(),
                )));
            };
            if let Some(to) = to_org {
                let found = store.find_org(to).await.map_err(not_found("org"))?;
                if found.tenant_id != tenant {
                    return Err(CliError::NotFound("org (in the user's tenant)"));
                }
            }
            Ok(json!(
                store
                    .scim_release_user(&ctx(), tenant, user, from, to_org)
                    .await?
            ))
        }
    }
}

pub async fn outbox(store: &dyn Store, command: OutboxCommand) -> Result<Value, CliError> {
    match command {
        OutboxCommand::List { org, status, limit } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let query = OutboxQuery {
                org_id: found.id,
                filter: status.into(),
                before: None,
                limit,
            };
            let mails = store.list_outbox(found.tenant_id, &query).await?;
            // Redacted as the admin API shows them: a listing is easily pasted on; the link of
            // a logged mail is in the service's log line for that mail.
            Ok(Value::Array(
                mails
                    .into_iter()
                    .map(|m| {
                        json!({
                            "id": m.id,
                            "org_id": m.org_id,
                            "invitation_id": m.invitation_id,
                            "recipient": m.recipient,
                            "subject": m.subject,
                            "body": redact_links(&m.body),
                            "status": m.status,
                            "error": m.error,
                            "created_at": m.created_at,
                            "retried_by": m.retried_by,
                            "retried_at": m.retried_at,
                        })
                    })
                    .collect(),
            ))
        }
    }
}

/// What a command prints when that is more than one JSON value on stdout: a document, or a
/// refusal whose detail is itself output (a document's errors, a preview that breaks a rule).
#[derive(Debug)]
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
    /// The exit status: 0, or 1.
    pub success: bool,
}

impl Printed {
    fn ok(stdout: String) -> Self {
        Printed {
            stdout,
            stderr: String::new(),
            success: true,
        }
    }

    /// A document's errors: a JSON array of `{"path", "message"}` on stderr, exit 1.
    fn invalid(errors: &[DocumentError]) -> Self {
        Printed {
            stdout: String::new(),
            stderr: format!("{}\n", json!(errors)),
            success: false,
        }
    }
}

/// Pretty JSON with a trailing newline: a document meant to be kept in a file and diffed.
fn pretty(value: &impl serde::Serialize) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|e| CliError::Output(e.to_string()))
}

pub async fn mappings(store: &dyn Store, command: MappingsCommand) -> Result<Printed, CliError> {
    match command {
        MappingsCommand::Export { org, format } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let stored = store.get_mappings(found.tenant_id, found.id).await?;
            let catalog = store.mapping_catalog(found.tenant_id, found.id).await?;
            let document = mapping_document::export(&stored.mappings, &catalog);
            let text = match format {
                DocumentFormat::Json => {
                    mapping_document::to_json(&document).map_err(CliError::Output)?
                }
                DocumentFormat::Yaml => {
                    mapping_document::to_yaml(&document).map_err(CliError::Output)?
                }
            };
            Ok(Printed::ok(text))
        }
        MappingsCommand::Import { org, file, dry_run } => {
            let text = std::fs::read(&file).map_err(|error| CliError::File {
                path: file.display().to_string(),
                error,
            })?;
            // The extension decides, as the stable interface says: a YAML file read as JSON
            // would fail at its first character with a message about JSON.
            let yaml = file
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
            let parsed = if yaml {
                mapping_document::parse_yaml(&text)
            } else {
                mapping_document::parse_json(&text)
            };
            let document = match parsed {
                Ok(document) => document,
                Err(errors) => return Ok(Printed::invalid(&errors)),
            };
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let catalog = store.mapping_catalog(found.tenant_id, found.id).await?;
            let mappings = match mapping_document::validate(&document, &catalog) {
                Ok(mappings) => mappings,
                Err(errors) => return Ok(Printed::invalid(&errors)),
            };
            if dry_run {
                // Every affected user on one page: an operator reads the whole change before
                // applying it, and the domain computes all of it either way.
                let preview = store
                    .preview_mappings(found.tenant_id, found.id, &mappings, None, u32::MAX)
                    .await?;
                let success = preview.owner_rule_violations.is_empty();
                return Ok(Printed {
                    stdout: pretty(&preview)?,
                    stderr: if success {
                        String::new()
                    } else {
                        "error: owner_rule: applying this document would leave the orgs in \
                         `owner_rule_violations` without an active Owner\n"
                            .to_owned()
                    },
                    success,
                });
            }
            let stored = store
                .replace_mappings(&ctx(), found.tenant_id, found.id, &mappings, None)
                .await?;
            Ok(Printed::ok(format!(
                "{}\n",
                json!({
                    "org_id": stored.org_id,
                    "version": stored.version,
                    "rules": stored.mappings.rules.len(),
                    "default_grants": stored.mappings.default.as_ref().map(Vec::len),
                })
            )))
        }
    }
}

/// The settings of `oidc add|update`, the secret read from its file if given so.
fn oidc_settings(s: OidcSettings) -> Result<Settings, CliError> {
    let client_secret = match (s.client_secret, s.client_secret_file) {
        (Some(secret), _) => Some(secret.expose().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(&path)
                .map_err(|error| CliError::File {
                    path: path.display().to_string(),
                    error,
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    Ok(Settings {
        client_secret,
        groups_claim: s.groups_claim,
        scopes: s.scopes,
        provisioning: s.provisioning.map(Into::into),
        domains: s.domains,
        require_mfa: s.require_mfa,
        client_auth: s.client_auth.map(Into::into),
        allowed_tenants: s.allowed_tenants,
    })
}

pub async fn oidc(
    store: &dyn Store,
    keyring: &Keyring,
    command: OidcCommand,
) -> Result<Value, CliError> {
    let idp = Idp::new();
    match command {
        OidcCommand::Add {
            org,
            issuer,
            client_id,
            settings,
            public_url,
        } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            let connection = connections::add(
                store,
                &idp,
                keyring,
                &ctx(),
                found.tenant_id,
                connections::NewInput {
                    org_id: found.id,
                    issuer,
                    client_id,
                    settings: oidc_settings(settings)?,
                },
            )
            .await?;
            let public = public_url.unwrap_or_else(crate::config::default_public_url);
            let mut out = json!(connection);
            out["connection_id"] = json!(connection.id);
            out["redirect_uri"] = json!(connections::redirect_uri(&public, connection.id));
            out["post_logout_redirect_uri"] = json!(connections::post_logout_redirect_uri(&public));
            Ok(out)
        }
        OidcCommand::List { org } => {
            let found = store.find_org(org).await.map_err(not_found("org"))?;
            Ok(json!(
                store
                    .list_oidc_connections(found.tenant_id, Some(&[found.id]))
                    .await?
            ))
        }
        OidcCommand::Update {
            id,
            client_id,
            settings,
        } => {
            let found = store
                .find_oidc_connection(id)
                .await
                .map_err(not_found("connection"))?;
            let tenant = found.connection.tenant_id;
            Ok(json!(
                connections::update(
                    store,
                    &idp,
                    keyring,
                    &ctx(),
                    tenant,
                    id,
                    connections::Change {
                        client_id,
                        settings: oidc_settings(settings)?
                    }
                )
                .await?
            ))
        }
        OidcCommand::Remove { id } => {
            let found = store
                .find_oidc_connection(id)
                .await
                .map_err(not_found("connection"))?;
            Ok(json!(
                store
                    .delete_oidc_connection(&ctx(), found.connection.tenant_id, id)
                    .await?
            ))
        }
    }
}

pub async fn keys(
    store: &dyn Store,
    keyring: &Keyring,
    command: KeysCommand,
) -> Result<Value, CliError> {
    match command {
        KeysCommand::Rotate => crate::secrets::rotate(store, keyring, &ctx())
            .await
            .map_err(CliError::Connection),
    }
}
