-- Core schema. Every row carries tenant_id: the id of the root organization it belongs to.
-- Ids are UUIDv7 generated in Rust, stored as 16-byte blobs (time-ordered, so id order is a
-- stable paging order). Timestamps are RFC 3339 UTC text, which sorts in time order.

CREATE TABLE orgs (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL,
    parent_id   BLOB REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    -- A root org is its own tenant; a sub-org never is.
    CHECK ((parent_id IS NULL AND tenant_id = id) OR (parent_id IS NOT NULL AND tenant_id <> id))
);
CREATE INDEX orgs_tenant ON orgs (tenant_id, id);
CREATE INDEX orgs_parent ON orgs (parent_id);

CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    tenant_id       BLOB NOT NULL REFERENCES orgs (id),
    user_name       TEXT NOT NULL,
    -- Lower-cased in Rust (Unicode-aware); SQLite's lower() is ASCII-only.
    user_name_norm  TEXT NOT NULL,
    email           TEXT,
    email_norm      TEXT,
    external_id     TEXT,
    display_name    TEXT,
    active          INTEGER NOT NULL DEFAULT 1,
    source          TEXT NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    attributes      TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, user_name_norm)
);
CREATE INDEX users_tenant_id ON users (tenant_id, id);
CREATE INDEX users_email ON users (tenant_id, email_norm);
CREATE INDEX users_external_id ON users (tenant_id, external_id);

CREATE TABLE identities (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES orgs (id),
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer         TEXT NOT NULL,
    subject        TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_login_at  TEXT,
    -- Identities are linked by (issuer, subject), never by e-mail.
    UNIQUE (tenant_id, issuer, subject)
);
CREATE INDEX identities_user ON identities (user_id);

CREATE TABLE memberships (
    tenant_id   BLOB NOT NULL REFERENCES orgs (id),
    org_id      BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL means "inherit from the parent org".
    role        TEXT CHECK (role IN ('owner', 'member')),
    source      TEXT NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (tenant_id, user_id);

CREATE TABLE groups (
    id                 BLOB PRIMARY KEY,
    tenant_id          BLOB NOT NULL REFERENCES orgs (id),
    display_name       TEXT NOT NULL,
    display_name_norm  TEXT NOT NULL,
    external_id        TEXT,
    source             TEXT NOT NULL CHECK (source IN ('manual', 'scim', 'oidc')),
    attributes         TEXT NOT NULL DEFAULT '{}',
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    version            INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX groups_tenant_id ON groups (tenant_id, id);
CREATE INDEX groups_display_name ON groups (tenant_id, display_name_norm);
CREATE INDEX groups_external_id ON groups (tenant_id, external_id);

CREATE TABLE group_members (
    tenant_id    BLOB NOT NULL REFERENCES orgs (id),
    group_id     BLOB NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    -- A user id or, for nested groups, a group id (member_kind says which).
    member_id    BLOB NOT NULL,
    member_kind  TEXT NOT NULL CHECK (member_kind IN ('user', 'group')),
    created_at   TEXT NOT NULL,
    -- Unique so that concurrent adds are ON CONFLICT DO NOTHING, never a lost or doubled member.
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

CREATE TABLE grants (
    id             BLOB PRIMARY KEY,
    tenant_id      BLOB NOT NULL REFERENCES orgs (id),
    org_id         BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    subject_kind   TEXT NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject_id     BLOB NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('permission_group', 'role', 'module_role')),
    product_id     BLOB,
    -- permission group id, role name or module name, by kind
    target         TEXT NOT NULL,
    -- module level (read/write/none); NULL for the other kinds
    level          TEXT,
    source         TEXT NOT NULL CHECK (source IN ('manual', 'invite', 'scim', 'oidc')),
    -- kind:org:product:target, built in Rust; NULL-free so the uniqueness below holds
    grant_key      TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (tenant_id, subject_kind, subject_id, grant_key, source)
);
CREATE INDEX grants_subject ON grants (tenant_id, subject_id);
CREATE INDEX grants_product ON grants (tenant_id, product_id);

CREATE TABLE audit_events (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL,
    org_id       BLOB,
    product_id   BLOB,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    actor_name   TEXT,
    action       TEXT NOT NULL,
    target_kind  TEXT NOT NULL,
    target_id    TEXT,
    before       TEXT,
    after        TEXT,
    warning      TEXT,
    request_id   TEXT,
    created_at   TEXT NOT NULL
);
-- Newest first by id (UUIDv7 is time-ordered), per tenant and per product.
CREATE INDEX audit_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_product ON audit_events (tenant_id, product_id, id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TABLE api_tokens (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES orgs (id),
    org_id        BLOB NOT NULL REFERENCES orgs (id),
    kind          TEXT NOT NULL CHECK (kind IN ('scim', 'admin')),
    name          TEXT NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    secret_hash   BLOB NOT NULL UNIQUE,
    -- The first characters of the secret, so an admin can tell tokens apart.
    secret_hint   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_tokens_org ON api_tokens (tenant_id, org_id);

-- Cache invalidations: every write appends one row in its own transaction; AUTOINCREMENT
-- makes the epoch strictly increasing, never reused.
CREATE TABLE invalidations (
    epoch       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BLOB NOT NULL,
    -- NULL: every user of the tenant
    user_id     BLOB,
    created_at  TEXT NOT NULL
);
