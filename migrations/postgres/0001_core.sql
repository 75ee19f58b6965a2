-- Core schema. Every row carries tenant_id: the id of the root organization it belongs to.
-- Ids are UUIDv7 generated in Rust (time-ordered, so id order is a stable paging order).
-- Timestamps are timestamptz here and RFC 3339 UTC text on SQLite; both sort in time order.

CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    parent_id   uuid REFERENCES orgs (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL DEFAULT 1,
    -- A root org is its own tenant; a sub-org never is.
    CHECK ((parent_id IS NULL AND tenant_id = id) OR (parent_id IS NOT NULL AND tenant_id <> id))
);
CREATE INDEX orgs_tenant ON orgs (tenant_id, id);
CREATE INDEX orgs_parent ON orgs (parent_id);

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES orgs (id),
    user_name       text NOT NULL,
    -- Lower-cased in Rust (Unicode-aware); SQL lower() is ASCII-only on SQLite.
    user_name_norm  text NOT NULL,
    email           text,
    email_norm      text,
    external_id     text,
    display_name    text,
    active          boolean NOT NULL DEFAULT TRUE,
    source          text NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    attributes      jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    version         bigint NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, user_name_norm)
);
CREATE INDEX users_tenant_id ON users (tenant_id, id);
CREATE INDEX users_email ON users (tenant_id, email_norm);
CREATE INDEX users_external_id ON users (tenant_id, external_id);

CREATE TABLE identities (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer         text NOT NULL,
    subject        text NOT NULL,
    created_at     timestamptz NOT NULL,
    last_login_at  timestamptz,
    -- Identities are linked by (issuer, subject), never by e-mail.
    UNIQUE (tenant_id, issuer, subject)
);
CREATE INDEX identities_user ON identities (user_id);

CREATE TABLE memberships (
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL means "inherit from the parent org".
    role        text CHECK (role IN ('owner', 'member')),
    source      text NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (tenant_id, user_id);

CREATE TABLE groups (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES orgs (id),
    display_name       text NOT NULL,
    display_name_norm  text NOT NULL,
    external_id        text,
    source             text NOT NULL CHECK (source IN ('manual', 'scim', 'oidc')),
    attributes         jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint NOT NULL DEFAULT 1
);
CREATE INDEX groups_tenant_id ON groups (tenant_id, id);
CREATE INDEX groups_display_name ON groups (tenant_id, display_name_norm);
CREATE INDEX groups_external_id ON groups (tenant_id, external_id);

CREATE TABLE group_members (
    tenant_id    uuid NOT NULL REFERENCES orgs (id),
    group_id     uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    -- A user id or, for nested groups, a group id (member_kind says which).
    member_id    uuid NOT NULL,
    member_kind  text NOT NULL CHECK (member_kind IN ('user', 'group')),
    created_at   timestamptz NOT NULL,
    -- Unique so that concurrent adds are ON CONFLICT DO NOTHING, never a lost or doubled member.
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

CREATE TABLE grants (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject_kind   text NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject_id     uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('permission_group', 'role', 'module_role')),
    product_id     uuid,
    -- permission group id, role name or module name, by kind
    target         text NOT NULL,
    -- module level (read/write/none); NULL for the other kinds
    level          text,
    source         text NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    -- kind:org:product:target, built in Rust; NULL-free so the uniqueness below holds
    grant_key      text NOT NULL,
    created_at     timestamptz NOT NULL,
    UNIQUE (tenant_id, subject_kind, subject_id, grant_key, source)
);
CREATE INDEX grants_subject ON grants (tenant_id, subject_id);
CREATE INDEX grants_product ON grants (tenant_id, product_id);

CREATE TABLE audit_events (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    org_id       uuid,
    product_id   uuid,
    actor_kind   text NOT NULL,
    actor_id     text,
    actor_name   text,
    action       text NOT NULL,
    target_kind  text NOT NULL,
    target_id    text,
    before       jsonb,
    after        jsonb,
    warning      text,
    request_id   text,
    created_at   timestamptz NOT NULL
);
-- Newest first by id (UUIDv7 is time-ordered), per tenant and per product.
CREATE INDEX audit_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_product ON audit_events (tenant_id, product_id, id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE api_tokens (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES orgs (id),
    org_id        uuid NOT NULL REFERENCES orgs (id),
    kind          text NOT NULL CHECK (kind IN ('scim', 'admin')),
    name          text NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    secret_hash   bytea NOT NULL UNIQUE,
    -- The first characters of the secret, so an admin can tell tokens apart.
    secret_hint   text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_org ON api_tokens (tenant_id, org_id);

-- Cache invalidations: every write appends one row in its own transaction. The epoch comes
-- from the bigserial's sequence, so tenants' writes never queue on one shared counter row.
CREATE TABLE invalidations (
    epoch       bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL,
    -- NULL: every user of the tenant
    user_id     uuid,
    created_at  timestamptz NOT NULL
);
