//! The operator's commands (everything but `serve`): each prints one JSON value on stdout.

use serde_json::{Value, json};

use crate::auth::{IssueError, Minter, TokenRequest, issue_token};
use crate::config::{DatabaseUrl, OrgCommand, OutboxCommand, ScimCommand, TokenCommand};
use crate::domain::audit::Actor;
use crate::domain::outbox::redact_links;
use crate::domain::{org, user};
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
    #[error("{0}")]
    Store(#[from] StoreError),
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
