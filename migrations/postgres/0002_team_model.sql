-- Team model: products with environments, permission groups, invitations, and the mail outbox.

CREATE TABLE products (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    org_id      uuid NOT NULL REFERENCES orgs (id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    version     bigint NOT NULL DEFAULT 1
);
CREATE INDEX products_org ON products (tenant_id, org_id, id);

CREATE TABLE environments (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name        text NOT NULL,
    name_norm   text NOT NULL,
    restricted  boolean NOT NULL DEFAULT FALSE,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (product_id, name_norm)
);

CREATE TABLE permission_groups (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES orgs (id),
    product_id         uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    name               text NOT NULL,
    name_norm          text NOT NULL,
    -- JSON array of capability names
    capabilities       jsonb NOT NULL DEFAULT '[]',
    default_access     text NOT NULL CHECK (default_access IN ('none', 'read_only', 'edit', 'full')),
    -- NULL: restricted environments get default_access too
    restricted_access  text CHECK (restricted_access IN ('none', 'read_only', 'edit', 'full')),
    -- Created from a seed example on product creation (still editable)
    preset             boolean NOT NULL DEFAULT FALSE,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    version            bigint NOT NULL DEFAULT 1,
    UNIQUE (product_id, name_norm)
);

-- Per-environment overrides; they go when either side goes.
CREATE TABLE permission_group_access (
    tenant_id            uuid NOT NULL REFERENCES orgs (id),
    permission_group_id  uuid NOT NULL REFERENCES permission_groups (id) ON DELETE CASCADE,
    environment_id       uuid NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    access               text NOT NULL CHECK (access IN ('none', 'read_only', 'edit', 'full')),
    PRIMARY KEY (permission_group_id, environment_id)
);
CREATE INDEX permission_group_access_env ON permission_group_access (environment_id);

CREATE TABLE invitations (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES orgs (id),
    org_id               uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    product_id           uuid REFERENCES products (id) ON DELETE CASCADE,
    permission_group_id  uuid REFERENCES permission_groups (id) ON DELETE SET NULL,
    -- or a built-in role (seed 002) instead of a group
    role                 text CHECK (role IN ('viewer', 'editor', 'publisher', 'project_owner', 'administrator')),
    email                text NOT NULL,
    email_norm           text NOT NULL,
    -- SHA-256 of the current token; a resend replaces it, so the old link dies.
    token_hash           bytea NOT NULL UNIQUE,
    status               text NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    expires_at           timestamptz NOT NULL,
    invited_by           text,
    sent_count           bigint NOT NULL DEFAULT 0,
    last_sent_at         timestamptz,
    accepted_at          timestamptz,
    accepted_user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
-- One pending invitation per address and org: inviting again resends instead.
CREATE UNIQUE INDEX invitations_one_pending ON invitations (org_id, email_norm) WHERE status = 'pending';
CREATE INDEX invitations_org ON invitations (tenant_id, org_id, id);

-- Mail that was (or, with no SMTP configured, could not be) sent.
CREATE TABLE outbox (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    status      text NOT NULL CHECK (status IN ('sent', 'logged', 'failed')),
    error       text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX outbox_tenant ON outbox (tenant_id, id);
