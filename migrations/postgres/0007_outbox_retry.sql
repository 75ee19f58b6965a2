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
ALTER TABLE outbox ADD COLUMN org_id uuid REFERENCES orgs (id) ON DELETE CASCADE;
UPDATE outbox SET org_id = tenant_id;
ALTER TABLE outbox ALTER COLUMN org_id SET NOT NULL;
ALTER TABLE outbox ADD COLUMN invitation_id uuid REFERENCES invitations (id) ON DELETE SET NULL;
ALTER TABLE outbox ADD COLUMN retried_at timestamptz;
ALTER TABLE outbox ADD COLUMN retried_by uuid REFERENCES outbox (id) ON DELETE SET NULL;
CREATE INDEX outbox_org ON outbox (tenant_id, org_id, id);
CREATE INDEX outbox_invitation ON outbox (invitation_id);
