//! Storage: the `Store` contract, its errors and the two backends (SQLite, PostgreSQL).
//!
//! The contract is split by capability, one trait per module, each declared once and
//! implemented once on `SqlStore` (the same SQL for both backends): `ops` (the store
//! itself), `team` (orgs, members, products, access), `tokens`, `invitations`, `audit`,
//! `scim` (Users, Groups) and `sessions`. [`Store`] is their sum, so callers hold one `Arc<dyn Store>`; a
//! trait object (like a `T: Store` bound) offers its supertraits' methods without importing
//! them, so callers import nothing more.
//!
//! Every change goes through one door (`db::Db::begin_write` / `WriteTx::commit`), which writes
//! the change, its audit events and a cache invalidation in one transaction.

mod audit;
mod db;
mod invitations;
mod oidc;
mod ops;
mod postgres;
mod scim;
mod sessions;
mod sqlite;
mod team;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

pub use audit::{AuditQuery, AuditStore};
pub use db::Ctx;
pub use db::InvalidationSink;
pub use invitations::{
    AcceptOutcome, InvitationStore, InvitationTarget, InviteOutcome, NewInvitation, OutboxMail,
    OutboxQuery,
};
pub use oidc::{
    ClientMaterial, ConnectionUpdate, LinkedBy, NewConnection, NewSealed, OidcSignIn, OidcStore,
    PendingLogin, SignInOutcome, SignInRefusal, StoredSealed,
};
pub use ops::{Backend, FeedEvent, Invalidation, InvalidationFeed, OpsStore, PoolStats};
pub use postgres::GENERIC_PLANS_APPLICATION_NAME;
pub use scim::{
    MemberRef, MembershipChange, NamedGroupMember, ScimGroupStore, ScimGroupWrite, ScimListQuery,
    ScimPage, ScimUserStore,
};
pub use sessions::{NewSessionRow, SessionStore, SignInCandidate, SignInLink, StartRefused};
pub use team::{
    AccessStore, AuthzStore, GrantedGroup, MappingStore, MemberQuery, MemberStore, NewEnvironment,
    OrgMember, OrgStore, OwnerRule, ProductAccess, ProductMember, ProductStore, ScimHeld,
    StoredMappings, TenantUser, UserMembership, UserProductAccess, UserQuery,
};
pub use tokens::{NewToken, TokenMatch, TokenStore};

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

/// Declares [`Store`] as the sum of the capability traits named once, here.
macro_rules! store_of_capabilities {
    ($(#[$doc:meta])* $($capability:ident),+ $(,)?) => {
        $(#[$doc])*
        pub trait Store: $($capability +)+ Send + Sync + 'static {}

        impl<T> Store for T where T: $($capability +)+ Send + Sync + 'static {}
    };
}

store_of_capabilities! {
    /// The storage contract: every capability of the store. Every read takes the tenant and
    /// never returns another tenant's rows; every write takes a [`Ctx`] and is audited.
    ///
    /// A new capability is a module with its trait and the one `impl` of it for `SqlStore`,
    /// and its trait's name in this list.
    OpsStore,
    OrgStore,
    MemberStore,
    ProductStore,
    AccessStore,
    TokenStore,
    InvitationStore,
    AuditStore,
    ScimUserStore,
    ScimGroupStore,
    MappingStore,
    AuthzStore,
    SessionStore,
    OidcStore,
}

/// The store over either backend's pool: every capability trait is implemented on it, each in
/// its own module.
struct SqlStore {
    db: db::Db,
    max_connections: u32,
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
    /// PostgreSQL: the connections that plan the hot statements once (`db::GenericPlans`).
    generic_plans: Option<sqlx::PgPool>,
    applied: Vec<(i64, String)>,
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`), running migrations unless
/// told not to.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let opened = open(url, options).await?;
    Ok(Arc::new(SqlStore {
        db: db::Db::new(opened.pool, opened.generic_plans),
        max_connections: options.max_connections,
    }))
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
    if let Some(generic) = &opened.generic_plans {
        generic.close().await;
    }
    opened.pool.close().await;
    Ok(opened.applied)
}

/// The versions a database has applied, before a migration run.
const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// What a run applied: the migrator's migrations the database had not, oldest first.
fn newly_applied(migrator: &sqlx::migrate::Migrator, before: &[i64]) -> Vec<(i64, String)> {
    migrator
        .iter()
        .filter(|m| !before.contains(&m.version))
        .map(|m| (m.version, m.description.to_string()))
        .collect()
}

fn migration_failed(e: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::Other(format!("migration failed: {e}"))
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
