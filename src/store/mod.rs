//! Storage: the `Store` contract, its errors and the two backends (SQLite, PostgreSQL).
//!
//! Every change goes through one door (`db::Db::begin_write` / `WriteTx::commit`), which writes
//! the change, its audit events and a cache invalidation in one transaction.

mod db;
mod invitations;
mod postgres;
mod queries;
mod scim;
mod scim_sql;
mod sqlite;
mod team;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use db::Ctx;

use crate::authz::{ProductFacts, UserFacts};
use crate::domain::Source;
use crate::domain::audit::AuditEvent;
use crate::domain::group::GroupMember;
use crate::domain::group::MemberKind;
use crate::domain::invitation::Invitation;
use crate::domain::org::{EffectiveRole, Org, OrgRole};
use crate::domain::permission::{Module, ModuleLevel, PermissionSet, Role};
use crate::domain::product::{Environment, PermissionGroup, Product, ProductDetail};
use crate::domain::provisioning::{
    ScimGroup, ScimRelease, ScimRequestError, ScimScope, ScimUser, ScimUserGroup, ScimUserWrite,
};
use crate::domain::token::{Token, TokenKind};
use crate::domain::user::User;
use crate::scim_proto::filter::{ResolvedAttr, ResolvedFilter};
use crate::scim_proto::schema::Schemas;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or reference rule of the schema refused the change.
    #[error("conflict on {constraint}")]
    Conflict { constraint: String },
    /// Ids that should name rows of the tenant but do not.
    #[error("unknown ids: {0:?}")]
    UnknownIds(Vec<Uuid>),
    /// A rule of the team model refused the change; the message names the rule.
    #[error("{0}")]
    Rule(String),
    /// A conditional write (`If-Match`, or an optimistic retry) found another version.
    #[error("the resource has changed")]
    Precondition,
    /// A query that is well-formed but that the store cannot answer (e.g. a filter on an
    /// attribute it does not index); the message is safe to show the client.
    #[error("{0}")]
    InvalidQuery(String),
    /// The org has sent as many invitation e-mails this hour as it may; counted in the database,
    /// so the cap holds across instances. `retry_after_secs`: until the oldest counted send is
    /// an hour old.
    #[error("at most {limit} invitations per organization per hour")]
    InvitationQuota { limit: u32, retry_after_secs: u64 },
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// `Conflict` keys the store sets itself (the SCIM ones name the attribute, as RFC 7644's
/// `uniqueness` error wants). Anything else in `constraint` is the database's own wording.
pub const ENVIRONMENT_NAME_TAKEN: &str = "environment_name";
pub const PERMISSION_GROUP_NAME_TAKEN: &str = "permission_group_name";

/// What a client may be told about a conflict: a sentence we wrote for a key the store set, or
/// `None` for anything else. A database's own text (`UNIQUE constraint failed: users.…`,
/// `… violates foreign key constraint …`) names tables and columns and can quote values, so it
/// is logged, never shown; the edges answer a generic sentence instead.
pub fn conflict_message(constraint: &str) -> Option<&'static str> {
    Some(match constraint {
        ENVIRONMENT_NAME_TAKEN => "environment name already used in this product",
        PERMISSION_GROUP_NAME_TAKEN => "permission group name already used in this product",
        // userName is unique in the whole tenant: whose it is stays unsaid.
        "userName" => "userName is already in use",
        // The link rule refused: say what to do, never where the person is.
        "person" => {
            "a person with this userName or e-mail address already exists and this token may \
             not provision them (they belong to another organization or provisioning \
             connection); an administrator can add them to this organization or hand them over \
             with `rolegate scim release`"
        }
        "externalId" => "externalId is already used by another resource of this organization",
        "displayName" => "displayName is already used by another resource of this organization",
        _ => return None,
    })
}

/// A statement stopped at its deadline: PostgreSQL's `statement_timeout` (SQLSTATE 57014,
/// `query_canceled`) or our SQLite progress handler (`SQLITE_INTERRUPT`, 9).
fn ran_past_deadline(db: &dyn sqlx::error::DatabaseError) -> bool {
    match db.code().as_deref() {
        Some("57014") => true,
        Some("9") => db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some(),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => match db.kind() {
                // The constraint (or, where the driver names none, the message) is kept for the
                // logs; `conflict_message` decides what a client sees.
                sqlx::error::ErrorKind::UniqueViolation
                | sqlx::error::ErrorKind::ForeignKeyViolation
                | sqlx::error::ErrorKind::CheckViolation => StoreError::Conflict {
                    constraint: db
                        .constraint()
                        .map_or_else(|| db.message().to_owned(), str::to_owned),
                },
                _ if ran_past_deadline(db.as_ref()) => StoreError::Unavailable(format!(
                    "statement stopped at its deadline: {}",
                    db.message()
                )),
                _ => StoreError::Other(err.to_string()),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Other(err.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub max: u32,
    pub open: u32,
    pub idle: u32,
}

/// A cache invalidation recorded by a committed write. `users: None` means every user of
/// the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub epoch: i64,
    pub tenant_id: Uuid,
    pub users: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub org_id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub secret_hint: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The token whose caller minted this one (through the admin API); `None` for the operator.
    pub created_by_token_id: Option<Uuid>,
}

impl NewToken {
    /// The row for a freshly minted secret (whose hash and hint it keeps, never the secret).
    pub fn from_minted(
        org_id: Uuid,
        kind: TokenKind,
        name: String,
        minted: &crate::domain::token::MintedSecret,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        NewToken {
            org_id,
            kind,
            name,
            secret_hash: minted.hash,
            secret_hint: minted.hint.clone(),
            expires_at,
            created_by_token_id: None,
        }
    }

    /// Records the token whose caller minted this one.
    pub fn minted_by(mut self, token_id: Option<Uuid>) -> Self {
        self.created_by_token_id = token_id;
        self
    }
}

/// A token found by its secret's hash, with the stored hash for the final constant-time check.
#[derive(Debug, Clone)]
pub struct TokenMatch {
    pub token: Token,
    pub secret_hash: Vec<u8>,
}

/// What happens when a membership change would leave an org without an active Owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRule {
    /// Refuse the change (admin API).
    Enforce,
    /// Let it through with an audit warning and a metric (SCIM and login: offboarding wins).
    Warn,
}

/// Member search: substring of e-mail or userName (case-insensitive, Unicode-aware), keyset
/// paging by user id.
#[derive(Debug, Clone, Default)]
pub struct MemberQuery {
    pub search: Option<String>,
    pub after: Option<Uuid>,
    /// Only this user (to read one member back).
    pub user_id: Option<Uuid>,
    pub limit: u32,
}

/// A member of an org as the admin screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OrgMember {
    pub user: User,
    /// The role in this org after inheritance, and where it comes from.
    pub effective: EffectiveRole,
    /// The role set on this org's own membership row (`None`: inherit or not direct).
    pub membership_role: Option<OrgRole>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnvironment {
    pub name: String,
    pub restricted: bool,
}

/// A member's grants on one product from one source; setting them replaces that source's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductAccess {
    pub permission_groups: Vec<Uuid>,
    pub role: Option<Role>,
    pub source: Source,
}

/// Where invitations lead: an org, and optionally a product with a group or a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationTarget {
    pub org_id: Uuid,
    pub product_id: Option<Uuid>,
    pub permission_group_id: Option<Uuid>,
    pub role: Option<Role>,
    pub expires_at: DateTime<Utc>,
}

/// One address to invite, with the hash of its fresh link secret.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub token_hash: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteOutcome {
    Invited(Invitation),
    /// A pending invitation existed: it got the new token (the old link died).
    Resent(Invitation),
    /// Already a direct member of the org: nothing to send.
    AlreadyMember {
        user_id: Uuid,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted {
        invitation: Box<Invitation>,
        user_id: Uuid,
    },
    AlreadyAccepted,
    Revoked,
    Expired,
}

/// A copy of an e-mail for the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// sent | logged | failed
    pub status: &'static str,
    pub error: Option<String>,
}

/// A page of a SCIM list: filter, order, and `startIndex - 1`/`count` (RFC 7644 §3.4.2).
#[derive(Debug, Clone, Copy)]
pub struct ScimListQuery<'a> {
    /// The service's schemas (a filter on `schemas` matches the configured extensions' URNs).
    pub schemas: &'a Schemas,
    pub filter: Option<&'a ResolvedFilter>,
    /// The `sortBy` attribute and whether `sortOrder` is descending.
    pub sort: Option<(&'a ResolvedAttr, bool)>,
    pub offset: u64,
    pub count: u64,
    /// Users: whether the stored document is read (not when only columns are returned).
    pub with_document: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScimPage<T> {
    /// Every match, not only this page's (`totalResults`).
    pub total: u64,
    pub items: Vec<T>,
}

/// A SCIM Group's own attributes (its members change through [`MembershipChange`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimGroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
}

/// A member to add: its id and, when the client said, its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberRef {
    pub id: Uuid,
    pub kind: Option<MemberKind>,
}

/// One change to a group's members, applied in order in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Adds members; present ones are skipped.
    Add(Vec<MemberRef>),
    /// Removes members; absent ones are skipped.
    Remove(Vec<Uuid>),
    RemoveAll,
    /// Makes the members exactly these.
    Replace(Vec<MemberRef>),
}

/// Filters for the audit log; results come newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub org_id: Option<Uuid>,
    pub product_id: Option<Uuid>,
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Keyset cursor: only events older than this one.
    pub before_id: Option<Uuid>,
    pub limit: u32,
}

/// The storage contract. Every read takes the tenant and never returns another tenant's rows;
/// every write takes a [`Ctx`] and is audited.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    fn pool_stats(&self) -> PoolStats;
    /// Invalidations committed by this instance (the cross-instance bus builds on it).
    fn subscribe(&self) -> broadcast::Receiver<Invalidation>;
    async fn ping(&self) -> Result<(), StoreError>;
    async fn close(&self);
    async fn latest_epoch(&self) -> Result<i64, StoreError>;

    /// Creates a root org (a new tenant) with its first Owner.
    async fn create_org(
        &self,
        ctx: &Ctx,
        name: &str,
        owner_email: &str,
    ) -> Result<(Org, User), StoreError>;
    async fn get_org(&self, tenant_id: Uuid, org_id: Uuid) -> Result<Org, StoreError>;
    /// Finds an org by id in any tenant: for the operator's command line only.
    async fn find_org(&self, org_id: Uuid) -> Result<Org, StoreError>;
    /// Makes the user with this e-mail (created if need be) an Owner of the org. Break-glass.
    async fn add_owner(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        email: &str,
    ) -> Result<User, StoreError>;
    /// The tenant's user with this e-mail (as e-mail or userName, case-insensitively),
    /// created from `source` if there is none: one person, one user.
    async fn ensure_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        email: &str,
        source: Source,
    ) -> Result<User, StoreError>;
    async fn find_user_by_email(
        &self,
        tenant_id: Uuid,
        email: &str,
    ) -> Result<Option<User>, StoreError>;

    async fn create_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        token: NewToken,
    ) -> Result<Token, StoreError>;
    async fn list_tokens(
        &self,
        tenant_id: Uuid,
        org_id: Option<Uuid>,
    ) -> Result<Vec<Token>, StoreError>;
    /// Finds a token by id in any tenant: for the operator's command line only.
    async fn find_token(&self, token_id: Uuid) -> Result<Token, StoreError>;
    /// Revokes a token; revoking a revoked token returns it unchanged (idempotent).
    async fn revoke_token(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        token_id: Uuid,
    ) -> Result<Token, StoreError>;
    async fn token_by_hash(&self, secret_hash: &[u8; 32])
    -> Result<Option<TokenMatch>, StoreError>;
    /// Records use of a token. Not audited: it is bookkeeping, not a change anyone made.
    async fn touch_token(&self, token_id: Uuid, at: DateTime<Utc>) -> Result<(), StoreError>;

    async fn create_sub_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        parent_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError>;
    async fn rename_org(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
    ) -> Result<Org, StoreError>;
    async fn list_orgs(&self, tenant_id: Uuid) -> Result<Vec<Org>, StoreError>;
    /// Deletes an empty sub-org (no sub-orgs, products or members).
    async fn delete_org(&self, ctx: &Ctx, tenant_id: Uuid, org_id: Uuid) -> Result<(), StoreError>;

    /// Members of an org: direct ones and those inherited from its ancestors.
    async fn list_members(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
        query: &MemberQuery,
    ) -> Result<Vec<OrgMember>, StoreError>;
    /// Adds a user of the tenant to an org, or changes their role there (`None`: inherit).
    async fn set_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        role: Option<OrgRole>,
        rule: OwnerRule,
    ) -> Result<(), StoreError>;
    /// Removes a direct membership, with the grants given in that org.
    async fn remove_membership(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        rule: OwnerRule,
    ) -> Result<(), StoreError>;

    /// Creates a product with its environments and the seed presets.
    async fn create_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        name: &str,
        environments: &[NewEnvironment],
    ) -> Result<ProductDetail, StoreError>;
    async fn get_product(
        &self,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<ProductDetail, StoreError>;
    async fn list_products(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Product>, StoreError>;
    async fn rename_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        name: &str,
    ) -> Result<Product, StoreError>;
    async fn delete_product(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
    ) -> Result<(), StoreError>;

    async fn create_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        env: &NewEnvironment,
    ) -> Result<Environment, StoreError>;
    async fn update_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
        name: Option<&str>,
        restricted: Option<bool>,
    ) -> Result<Environment, StoreError>;
    /// Deletes an environment and every access setting that named it.
    async fn delete_environment(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<(), StoreError>;
    async fn environment_product(
        &self,
        tenant_id: Uuid,
        env_id: Uuid,
    ) -> Result<Product, StoreError>;

    /// Creates (`existing: None`) or replaces a permission group of a product.
    async fn save_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        existing: Option<Uuid>,
        name: &str,
        permissions: &PermissionSet,
    ) -> Result<PermissionGroup, StoreError>;
    /// Deletes a group; refused while grants use it unless they move to `reassign_to` in the
    /// same transaction. Returns how many grants moved.
    async fn delete_permission_group(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        group_id: Uuid,
        reassign_to: Option<Uuid>,
    ) -> Result<u64, StoreError>;
    /// The product of a stored permission group, or of a built-in role's id.
    async fn permission_group_product(
        &self,
        tenant_id: Uuid,
        group_id: Uuid,
    ) -> Result<Product, StoreError>;

    /// Replaces a member's grants on a product from `access.source`.
    async fn set_product_access(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        product_id: Uuid,
        user_id: Uuid,
        access: &ProductAccess,
    ) -> Result<(), StoreError>;
    /// Sets a member's module levels in an org (`none`: inherit).
    async fn set_module_roles(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        org_id: Uuid,
        user_id: Uuid,
        levels: &BTreeMap<Module, ModuleLevel>,
    ) -> Result<(), StoreError>;
    /// What the evaluator needs for a member on a product; `NotFound` for a non-member.
    async fn member_facts(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        product_id: Uuid,
    ) -> Result<(UserFacts, ProductFacts), StoreError>;
    /// The same for every product of an org, in a fixed number of queries.
    async fn member_facts_in_org(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<(UserFacts, ProductFacts)>, StoreError>;

    /// Invites each address (or re-sends a pending invitation with the new token). With
    /// `hourly_cap`, refuses the whole request (`InvitationQuota`) if its e-mails would take the
    /// org past that many sent (new and resent) in the last hour.
    async fn invite(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        target: &InvitationTarget,
        entries: &[NewInvitation],
        hourly_cap: Option<u32>,
    ) -> Result<Vec<(String, InviteOutcome)>, StoreError>;
    async fn list_invitations(
        &self,
        tenant_id: Uuid,
        org_id: Uuid,
    ) -> Result<Vec<Invitation>, StoreError>;
    async fn get_invitation(&self, tenant_id: Uuid, id: Uuid) -> Result<Invitation, StoreError>;
    /// A new token for a pending (or expired) invitation; the old link dies. `hourly_cap` as
    /// for [`Store::invite`].
    async fn reissue_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
        token_hash: &[u8; 32],
        expires_at: DateTime<Utc>,
        hourly_cap: Option<u32>,
    ) -> Result<Invitation, StoreError>;
    /// Revokes a pending invitation; revoking a revoked one changes nothing.
    async fn revoke_invitation(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Invitation, StoreError>;
    /// Finds an invitation by its link's secret hash, in any tenant: the link is the credential.
    async fn invitation_by_token(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<Invitation>, StoreError>;
    /// Accepts once: makes (or joins) the user, the membership and the invited group.
    /// `request_id` and `client_addr` are the request's, for the audit log.
    async fn accept_invitation(
        &self,
        token_hash: &[u8; 32],
        request_id: Option<String>,
        client_addr: Option<String>,
    ) -> Result<AcceptOutcome, StoreError>;
    /// Keeps a copy of an e-mail in the outbox (audited as sent, logged or failed).
    async fn record_mail(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        mail: &OutboxMail,
    ) -> Result<(), StoreError>;

    /// Keeps a failed SCIM request in the token's provisioning error log (bookkeeping, like a
    /// token's last use: not an audited change). Only the newest entries per token are kept.
    async fn record_scim_error(
        &self,
        tenant_id: Uuid,
        error: &ScimRequestError,
    ) -> Result<(), StoreError>;
    /// The token's failed SCIM requests, newest first.
    async fn list_scim_errors(
        &self,
        tenant_id: Uuid,
        token_id: Uuid,
        limit: u32,
    ) -> Result<Vec<ScimRequestError>, StoreError>;

    async fn list_audit(
        &self,
        tenant_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Creates a SCIM User in the scope's org, or makes the tenant's not-yet-provisioned user
    /// with that userName or e-mail this SCIM User (one person, one user). A taken userName or
    /// externalId is `Conflict` naming the attribute, and changes nothing.
    async fn scim_create_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError>;
    async fn scim_get_user(
        &self,
        scope: ScimScope,
        id: Uuid,
        with_document: bool,
    ) -> Result<ScimUser, StoreError>;
    async fn scim_list_users(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimUser>, StoreError>;
    /// Replaces a User (`Precondition` when `expected_version` is not the stored one). A
    /// replace that changes nothing writes nothing.
    async fn scim_replace_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        user: &ScimUserWrite,
    ) -> Result<ScimUser, StoreError>;
    /// Deletes a User for good, with its memberships, group memberships and grants.
    async fn scim_delete_user(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError>;
    /// The tenant of a user, and the org whose SCIM token holds them (if any). Looks in every
    /// tenant: the admin API checks the tenant itself, the command line has none.
    async fn scim_holder(&self, user_id: Uuid) -> Result<(Uuid, Option<Uuid>), StoreError>;
    /// Hands a person held by `from`'s SCIM over, on purpose: the hold and its externalId go,
    /// the person leaves `from`'s SCIM groups and the membership that SCIM made (with the
    /// grants given in `from`), and becomes a member of `to` (inheriting) when it is named.
    /// `Precondition` when `from` no longer holds the person; `Rule` when nobody does.
    async fn scim_release_user(
        &self,
        ctx: &Ctx,
        tenant_id: Uuid,
        user_id: Uuid,
        from: Uuid,
        to: Option<Uuid>,
    ) -> Result<ScimRelease, StoreError>;
    /// `(user id, group)` for every group of the scope's org each user is in, directly or not.
    async fn scim_user_groups(
        &self,
        scope: ScimScope,
        user_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, ScimUserGroup)>, StoreError>;

    async fn scim_create_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        group: &ScimGroupWrite,
        members: &[MemberRef],
    ) -> Result<ScimGroup, StoreError>;
    async fn scim_get_group(&self, scope: ScimScope, id: Uuid) -> Result<ScimGroup, StoreError>;
    async fn scim_list_groups(
        &self,
        scope: ScimScope,
        query: &ScimListQuery<'_>,
    ) -> Result<ScimPage<ScimGroup>, StoreError>;
    /// `(group id, member)` for a page of groups, in one query.
    async fn scim_group_members(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, GroupMember)>, StoreError>;
    /// How many members each group has, for a page of groups in one query (groups without
    /// members are left out).
    async fn scim_group_member_counts(
        &self,
        scope: ScimScope,
        group_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, u64)>, StoreError>;
    /// Up to `limit` members of a group in member id order, those after `after`: a keyset
    /// cursor on the primary key, so a large group is read in short queries, each on a
    /// connection of its own.
    async fn scim_group_members_after(
        &self,
        scope: ScimScope,
        group_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<GroupMember>, StoreError>;
    /// Changes a Group's attributes and members in one transaction. Unknown members are
    /// `UnknownIds`, a nested group that would make a cycle is `Rule`.
    async fn scim_update_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
        attributes: Option<&ScimGroupWrite>,
        changes: &[MembershipChange],
    ) -> Result<ScimGroup, StoreError>;
    async fn scim_delete_group(
        &self,
        ctx: &Ctx,
        scope: ScimScope,
        id: Uuid,
        expected_version: Option<i64>,
    ) -> Result<(), StoreError>;
}

/// Connection settings of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub migrate: bool,
    /// How long one statement may run before the database stops it (`None`: no limit). The
    /// service sets its request timeout here, so a request already answered `408` does not
    /// keep a connection busy with a query nobody waits for. PostgreSQL: `statement_timeout`
    /// on every pooled connection. SQLite: a progress handler that interrupts statements once
    /// the connection has been out of the pool this long (one checkout serves one request).
    /// Migrations always run without it.
    pub statement_timeout: Option<Duration>,
    /// Whether a database that is not there yet may be made: a SQLite file created, an empty
    /// database given its schema. The service, `migrate` and `org create` may; the other
    /// commands refuse, so a command run from the wrong directory says so instead of answering
    /// "not found" from a fresh empty database it just made.
    pub create: bool,
}

impl Default for StoreOptions {
    /// For tests and the service's defaults: no statement deadline (an operator's command may
    /// legitimately take long), and a missing database is created.
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            migrate: true,
            statement_timeout: None,
            create: true,
        }
    }
}

/// A backend's open pool, and the migrations opening it applied.
pub(crate) struct Opened {
    pool: db::Pool,
    applied: Vec<(i64, String)>,
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`), running migrations unless
/// told not to.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let opened = open(url, options).await?;
    Ok(Arc::new(queries::SqlStore::new(
        opened.pool,
        options.max_connections,
    )))
}

async fn open(url: &str, options: &StoreOptions) -> Result<Opened, StoreError> {
    if url.starts_with("sqlite:") {
        sqlite::connect(url, options).await
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        postgres::connect(url, options).await
    } else {
        Err(StoreError::Other(
            "database URL must start with sqlite:// or postgres://".into(),
        ))
    }
}

/// Applies pending migrations to the store at `url` (creating a SQLite file if needed) and
/// names each migration it applied, oldest first; none when the database was up to date.
pub async fn migrate(url: &str) -> Result<Vec<(i64, String)>, StoreError> {
    let options = StoreOptions {
        max_connections: 2,
        ..StoreOptions::default()
    };
    let opened = open(url, &options).await?;
    opened.pool.close().await;
    Ok(opened.applied)
}

/// Migration versions and names of each backend, for the lockstep check.
pub fn migration_list(backend: Backend) -> Vec<(i64, String)> {
    let migrator = match backend {
        Backend::Sqlite => &sqlite::MIGRATOR,
        Backend::Postgres => &postgres::MIGRATOR,
    };
    migrator
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}
