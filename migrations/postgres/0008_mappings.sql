-- Group mapping (issue 11): an org's rules, each binding one IdP group to grants, and the org's
-- default for members no enabled rule of it matches. Mapped permissions are computed from these
-- at resolve time, never copied into `grants`: removing a rule removes exactly what it gave.
--
-- `grants` is the rule's list of grants as JSON, references by id (products, permission groups
-- and orgs deleted since give nothing). `mapping_sets` holds one row per org whose mappings were
-- ever written: its default (NULL: none) and the document version an `If-Match` is checked
-- against.
CREATE TABLE mapping_rules (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name        text NOT NULL,
    name_norm   text NOT NULL,
    idp_group   text NOT NULL,
    source      text NOT NULL,
    priority    integer NOT NULL,
    enabled     boolean NOT NULL,
    grants      jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, org_id, name_norm)
);
CREATE INDEX mapping_rules_tenant ON mapping_rules (tenant_id, org_id);

CREATE TABLE mapping_sets (
    org_id          uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES orgs (id),
    default_grants  jsonb,
    version         bigint NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX mapping_sets_tenant ON mapping_sets (tenant_id);
