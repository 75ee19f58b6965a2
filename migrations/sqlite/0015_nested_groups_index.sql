-- The cached resolver reads a tenant's group nestings whole (a user's groups are completed
-- from them in memory): a lookup of the few 'group' rows, not a walk of every membership.
CREATE INDEX group_members_nested ON group_members (tenant_id) WHERE member_kind = 'group';
