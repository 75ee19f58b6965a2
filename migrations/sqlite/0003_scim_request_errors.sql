-- The last failed SCIM requests of each token, so an admin can see why Okta or Entra reports
-- a provisioning error. Never the request body: it may carry a password.
CREATE TABLE scim_request_errors (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES orgs (id),
    token_id    BLOB NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    method      TEXT NOT NULL,
    -- path and query (filters name the users looked for), truncated
    target      TEXT NOT NULL,
    status      INTEGER NOT NULL,
    scim_type   TEXT,
    detail      TEXT NOT NULL,
    request_id  TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX scim_request_errors_token ON scim_request_errors (token_id, id);
