-- Service tokens (issue 11): a third token kind, read-only, that may only ask permission
-- questions (`POST /api/v1/authz/check`, `GET /api/v1/authz/explain`). Its secrets start with
-- `rg_service_`.
--
-- SQLite cannot change a CHECK constraint, so `api_tokens` is rebuilt
-- (https://www.sqlite.org/lang_altertable.html#otheralter). Migrations run in a transaction with
-- foreign keys on, where `PRAGMA foreign_keys` cannot be turned off: dropping the old table
-- would cascade into `scim_request_errors` (ON DELETE CASCADE), so those rows are set aside and
-- put back. The new table's self-reference names itself; the rename rewrites it to
-- `api_tokens`, the name `scim_request_errors` already refers to.
CREATE TABLE api_tokens_0010 (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES orgs (id),
    org_id        BLOB NOT NULL REFERENCES orgs (id),
    kind          TEXT NOT NULL CHECK (kind IN ('scim', 'admin', 'service')),
    name          TEXT NOT NULL,
    -- SHA-256 of the whole secret; the secret itself is never stored.
    secret_hash   BLOB NOT NULL UNIQUE,
    -- The first characters of the secret, so an admin can tell tokens apart.
    secret_hint   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT,
    revoked_at    TEXT,
    created_by_token_id BLOB REFERENCES api_tokens_0010 (id)
);
INSERT INTO api_tokens_0010 (id, tenant_id, org_id, kind, name, secret_hash, secret_hint,
                             created_at, expires_at, last_used_at, revoked_at, created_by_token_id)
    SELECT id, tenant_id, org_id, kind, name, secret_hash, secret_hint,
           created_at, expires_at, last_used_at, revoked_at, created_by_token_id
    FROM api_tokens;
CREATE TABLE scim_request_errors_0010 AS SELECT * FROM scim_request_errors;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_0010 RENAME TO api_tokens;
INSERT INTO scim_request_errors SELECT * FROM scim_request_errors_0010;
DROP TABLE scim_request_errors_0010;
CREATE INDEX api_tokens_org ON api_tokens (tenant_id, org_id);
