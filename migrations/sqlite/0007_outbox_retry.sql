-- The outbox becomes something an admin reads and acts on (issue 10): each mail names the org
-- it was sent for, so a sub-org's token sees the mail of its own subtree only; the invitation it
-- carried, so an undelivered one can be retried (reissued and sent again); and, once retried,
-- the newer mail that superseded it.
--
-- Mail recorded before this migration was sent for some org of its tenant, which the row did
-- not say: it is counted as the tenant's (its root org's, whose id is the tenant's), so only a
-- token reaching the whole tenant sees it. Which invitation it carried is unknown (NULL): such
-- mail is listed but not retried; the invitation can still be resent.
--
-- `retried_at` is set when a retry starts (the row is claimed, so two retries of one mail
-- cannot both reissue the invitation); `retried_by` names the newer mail of the same invitation
-- that superseded it (its retry, or the mail of a resend), whose link killed this one's.
--
-- SQLite cannot add a NOT NULL column, nor one with a foreign key and a non-NULL default, to a
-- table, so the table is rebuilt (https://www.sqlite.org/lang_altertable.html#otheralter).
-- Nothing else references `outbox`, so dropping it is safe with foreign keys on.
CREATE TABLE outbox_0007 (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES orgs (id),
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    invitation_id  BLOB REFERENCES invitations (id) ON DELETE SET NULL,
    recipient      TEXT NOT NULL,
    subject        TEXT NOT NULL,
    body           TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('sent', 'logged', 'failed')),
    error          TEXT,
    created_at     TEXT NOT NULL,
    retried_at     TEXT,
    retried_by     BLOB REFERENCES outbox (id) ON DELETE SET NULL
);
INSERT INTO outbox_0007 (id, tenant_id, org_id, recipient, subject, body, status, error, created_at)
    SELECT id, tenant_id, tenant_id, recipient, subject, body, status, error, created_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_0007 RENAME TO outbox;
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);
CREATE INDEX outbox_org ON outbox (tenant_id, org_id, id);
CREATE INDEX outbox_invitation ON outbox (invitation_id);
