//! SCIM Users and Groups in the store. A SCIM User is a row of `users` that the token's org
//! provisions (`scim_org_id`), and a member of that org; a SCIM Group is a row of `groups` with
//! that `org_id`. Every query is scoped by tenant *and* org, so one org's token never reads or
//! changes another org's resources: they are simply not found.
//!
//! Writes go through the one write door (audit and invalidation in the same transaction) and
//! are idempotent where SCIM clients retry: a create that finds its userName or externalId taken
//! changes nothing and says which, a change that changes nothing writes nothing.
//!
//! `users` and `groups` each hold one capability; `members` applies changes to a group's
//! members; `filter_sql` turns filters and sort orders into SQL. What Users and Groups share
//! (paging, version checks, conflicts, forgetting a deleted resource) is here.

mod filter_sql;
mod groups;
mod members;
mod users;

pub use groups::{MemberRef, MembershipChange, NamedGroupMember, ScimGroupStore, ScimGroupWrite};
pub use users::ScimUserStore;
pub(in crate::store) use users::{deactivate_for_forced_removal, scim_hold};

use uuid::Uuid;

use super::db::{CountRow, Pool, Record, SqlBuilder, WriteTx, sql};
use super::{SqlStore, StoreError};
use crate::domain::group::MemberKind;
use crate::domain::now;
use crate::domain::provisioning::ScimScope;
use crate::scim_proto::filter::{ResolvedAttr, ResolvedFilter};
use crate::scim_proto::schema::{ResourceType, Schemas};
use filter_sql::{Dialect, Translator};

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

/// Most ids bound in one statement; well under SQLite's parameter limit.
const ID_CHUNK: usize = 500;

/// Where a resource type's rows are, for [`SqlStore::scim_page`].
struct Listing {
    resource_type: ResourceType,
    select: &'static str,
    /// `FROM … WHERE <alias>.tenant_id = `, completed with the tenant.
    from: &'static str,
    /// `AND <alias>.<org column> = `, completed with the org.
    in_org: &'static str,
}

/// Names the uniqueness rule a database refusal broke, for the SCIM `uniqueness` error.
fn name_conflict(e: StoreError) -> StoreError {
    match e {
        StoreError::Conflict { constraint } => {
            let named = if constraint.contains("external_id") {
                "externalId"
            } else if constraint.contains("display_name") {
                "displayName"
            } else if constraint.contains("user_name") {
                "userName"
            } else {
                return StoreError::Conflict { constraint };
            };
            StoreError::Conflict {
                constraint: named.to_owned(),
            }
        }
        other => other,
    }
}

fn lock_clause(dialect: Dialect) -> &'static str {
    match dialect {
        // SQLite writers are already one at a time (the in-process queue and BEGIN IMMEDIATE).
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE",
    }
}

fn check_version(expected: Option<i64>, actual: i64) -> Result<(), StoreError> {
    match expected {
        Some(v) if v != actual => Err(StoreError::Precondition),
        _ => Ok(()),
    }
}

/// Before a User or Group is deleted: it leaves every group that lists it (whose versions,
/// and so ETags, move), and the grants it held go. Returns how many grants went.
async fn forget_everywhere(
    tx: &mut WriteTx,
    tenant_id: Uuid,
    kind: MemberKind,
    id: Uuid,
) -> Result<u64, StoreError> {
    sql(
        "UPDATE groups SET version = version + 1, updated_at = $1 WHERE tenant_id = $2 AND id IN \
         (SELECT group_id FROM group_members WHERE tenant_id = $2 AND member_id = $3)",
    )
    .bind(now())
    .bind(tenant_id)
    .bind(id)
    .execute(tx.conn())
    .await?;
    sql("DELETE FROM group_members WHERE tenant_id = $1 AND member_id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(tx.conn())
        .await?;
    sql("DELETE FROM grants WHERE tenant_id = $1 AND subject_kind = $2 AND subject_id = $3")
        .bind(tenant_id)
        .bind(kind.as_str())
        .bind(id)
        .execute(tx.conn())
        .await
}

impl SqlStore {
    fn dialect(&self) -> Dialect {
        match self.db.pool {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(_) => Dialect::Postgres,
        }
    }

    /// One page of a resource type's rows in the scope, and how many match in all.
    async fn scim_page<R: Record>(
        &self,
        listing: &Listing,
        scope: ScimScope,
        q: &ScimListQuery<'_>,
    ) -> Result<(u64, Vec<R>), StoreError> {
        let dialect = self.dialect();
        let where_clause = |b: &mut SqlBuilder| -> Result<(), StoreError> {
            b.push(listing.from)
                .push_bind(scope.tenant_id)
                .push(listing.in_org)
                .push_bind(scope.org_id);
            if let Some(filter) = q.filter {
                b.push(" AND ");
                Translator::new(b, dialect, q.schemas, listing.resource_type)
                    .filter(filter)
                    .map_err(|u| StoreError::InvalidQuery(u.0))?;
            }
            Ok(())
        };
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n");
        where_clause(&mut count)?;
        let mut page = SqlBuilder::new(listing.select);
        where_clause(&mut page)?;
        Translator::new(&mut page, dialect, q.schemas, listing.resource_type)
            .order_by(q.sort)
            .map_err(|u| StoreError::InvalidQuery(u.0))?;
        page.push(" LIMIT ")
            .push_bind(i64::try_from(q.count).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let mut h = if q
            .filter
            .is_some_and(|f| filter_sql::names_one_user(listing.resource_type, f))
        {
            self.db.read_planned_once().await?
        } else {
            self.db.read().await?
        };
        let rows = if q.count == 0 {
            Vec::new()
        } else {
            page.build().fetch_all::<R>(h.conn()).await?
        };
        let len = rows.len() as u64;
        // A short page that starts inside the results ends them: it already says how many
        // there are (Okta's and Entra's lookups by userName or externalId are all like that).
        let total = if q.count > 0 && len < q.count && (len > 0 || q.offset == 0) {
            q.offset + len
        } else {
            u64::try_from(count.build().fetch_one::<CountRow>(h.conn()).await?.n).unwrap_or(0)
        };
        Ok((total, rows))
    }
}
