use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Who made a change. Stored with every audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The `rolegate` command line (operator on the host, e.g. break-glass).
    Cli,
    AdminToken {
        id: Uuid,
        name: String,
    },
    ScimToken {
        id: Uuid,
        name: String,
    },
    User {
        id: Uuid,
        email: String,
    },
    /// Someone accepting an invitation link (before or as they become a user).
    Invitee {
        invitation_id: Uuid,
        email: String,
    },
    /// A sign-in through an OIDC connection (the login syncs the user and their group claims).
    OidcLogin {
        connection_id: Uuid,
        subject: String,
    },
    /// rolegate itself (e.g. expiry sweeps).
    System,
}

impl Actor {
    pub fn kind(&self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::AdminToken { .. } => "admin_token",
            Actor::ScimToken { .. } => "scim_token",
            Actor::User { .. } => "user",
            Actor::Invitee { .. } => "invitee",
            Actor::OidcLogin { .. } => "oidc_login",
            Actor::System => "system",
        }
    }

    pub fn id(&self) -> Option<String> {
        match self {
            Actor::AdminToken { id, .. } | Actor::ScimToken { id, .. } | Actor::User { id, .. } => {
                Some(id.to_string())
            }
            Actor::Invitee { invitation_id, .. } => Some(invitation_id.to_string()),
            Actor::OidcLogin { connection_id, .. } => Some(connection_id.to_string()),
            Actor::Cli | Actor::System => None,
        }
    }

    pub fn name(&self) -> Option<String> {
        match self {
            Actor::AdminToken { name, .. } | Actor::ScimToken { name, .. } => Some(name.clone()),
            Actor::User { email, .. } | Actor::Invitee { email, .. } => Some(email.clone()),
            Actor::OidcLogin { subject, .. } => Some(subject.clone()),
            Actor::Cli | Actor::System => None,
        }
    }
}

/// Every action the audit log records, the vocabulary of its `action` filter. A record of an
/// action not listed here fails in debug builds (every test), so the list cannot fall behind.
pub const ACTIONS: &[&str] = &[
    "environment.create",
    "environment.delete",
    "environment.update",
    "invitation.accept",
    "invitation.create",
    "invitation.resend",
    "invitation.revoke",
    "mail.retry",
    "mail.send",
    "mapping.replace",
    "member.set_module_roles",
    "member.set_product_access",
    "membership.remove",
    "membership.set_role",
    "oidc.connection.create",
    "oidc.connection.delete",
    "oidc.connection.update",
    "oidc.login",
    "oidc.login.refused",
    "org.create",
    "org.delete",
    "org.owner_rule_broken",
    "org.rename",
    "permission_group.create",
    "permission_group.delete",
    "permission_group.update",
    "product.create",
    "product.delete",
    "product.rename",
    "scim.group.create",
    "scim.group.delete",
    "scim.group.update",
    "scim.user.create",
    "scim.user.deactivate",
    "scim.user.delete",
    "scim.user.link",
    "scim.user.reactivate",
    "scim.user.release",
    "scim.user.replace",
    "secret.rotate",
    "session.end",
    "session.start",
    "token.create",
    "token.revoke",
    "user.create",
];

/// What one change records in the audit log; the write door adds actor, tenant, time and
/// request id.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub action: &'static str,
    pub target_kind: &'static str,
    pub target_id: Option<String>,
    pub org_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// Set when a change went through although it broke a soft rule (e.g. an IdP removed the
    /// last Owner): offboarding wins, and the log says so.
    pub warning: Option<String>,
}

impl AuditRecord {
    pub fn new(action: &'static str, target_kind: &'static str, target_id: impl ToString) -> Self {
        debug_assert!(
            ACTIONS.contains(&action),
            "audit action {action:?} is missing from audit::ACTIONS"
        );
        AuditRecord {
            action,
            target_kind,
            target_id: Some(target_id.to_string()),
            org_id: None,
            product_id: None,
            before: None,
            after: None,
            warning: None,
        }
    }

    pub fn org(mut self, org_id: Uuid) -> Self {
        self.org_id = Some(org_id);
        self
    }

    pub fn product(mut self, product_id: Uuid) -> Self {
        self.product_id = Some(product_id);
        self
    }

    pub fn product_opt(mut self, product_id: Option<Uuid>) -> Self {
        self.product_id = product_id;
        self
    }

    pub fn before(mut self, value: impl Serialize) -> Self {
        self.before = serde_json::to_value(value).ok();
        self
    }

    pub fn after(mut self, value: impl Serialize) -> Self {
        self.after = serde_json::to_value(value).ok();
        self
    }
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub org_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub warning: Option<String>,
    pub request_id: Option<String>,
    /// The client address of the request (behind a trusted proxy, the one it forwarded for);
    /// `null` for the command line.
    pub client_addr: Option<String>,
    pub created_at: DateTime<Utc>,
}
