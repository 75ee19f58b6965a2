-- Team model: products with environments, permission groups, invitations, and the mail outbox.

CREATE TABLE products (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES orgs (id),
    org_id      BLOB NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX products_org ON products (tenant_id, org_id, id);

CREATE TABLE environments (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES orgs (id),
    product_id  BLOB NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_norm   TEXT NOT NULL,
    restricted  INTEGER NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (product_id, name_norm)
);

CREATE TABLE permission_groups (
    id                 BLOB PRIMARY KEY,
    tenant_id          BLOB NOT NULL REFERENCES orgs (id),
    product_id         BLOB NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    name_norm          TEXT NOT NULL,
    -- JSON array of capability names
    capabilities       TEXT NOT NULL DEFAULT '[]',
    default_access     TEXT NOT NULL CHECK (default_access IN ('none', 'read_only', 'edit', 'full')),
    -- NULL: restricted environments get default_access too
    restricted_access  TEXT CHECK (restricted_access IN ('none', 'read_only', 'edit', 'full')),
    -- Created from a seed example on product creation (still editable)
    preset             INTEGER NOT NULL DEFAULT 0,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    version            INTEGER NOT NULL DEFAULT 1,
    UNIQUE (product_id, name_norm)
);

-- Per-environment overrides; they go when either side goes.
CREATE TABLE permission_group_access (
    tenant_id            BLOB NOT NULL REFERENCES orgs (id),
    permission_group_id  BLOB NOT NULL REFERENCES permission_groups (id) ON DELETE CASCADE,
    environment_id       BLOB NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    access               TEXT NOT NULL CHECK (access IN ('none', 'read_only', 'edit', 'full')),
    PRIMARY KEY (permission_group_id, environment_id)
);
CREATE INDEX permission_group_access_env ON permission_group_access (environment_id);

CREATE TABLE invitations (
    id                   BLOB PRIMARY KEY,
    tenant_id            BLOB NOT NULL REFERENCES orgs (id),
    org_id               BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    product_id           BLOB REFERENCES products (id) ON DELETE CASCADE,
    permission_group_id  BLOB REFERENCES permission_groups (id) ON DELETE SET NULL,
    -- or a built-in role (seed 002) instead of a group
    role                 TEXT CHECK (role IN ('viewer', 'editor', 'publisher', 'project_owner', 'administrator')),
    email                TEXT NOT NULL,
    email_norm           TEXT NOT NULL,
    -- SHA-256 of the current token; a resend replaces it, so the old link dies.
    token_hash           BLOB NOT NULL UNIQUE,
    status               TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    expires_at           TEXT NOT NULL,
    invited_by           TEXT,
    sent_count           INTEGER NOT NULL DEFAULT 0,
    last_sent_at         TEXT,
    accepted_at          TEXT,
    accepted_user_id     BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
-- One pending invitation per address and org: inviting again resends instead.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (org_id, email_norm) WHERE status = 'pending';
CREATE INDEX invitations_org ON invitations (tenant_id, org_id, id);

-- Mail that was (or, with no SMTP configured, could not be) sent.
CREATE TABLE outbox (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES orgs (id),
    recipient   TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('sent', 'logged', 'failed')),
    error       TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);
