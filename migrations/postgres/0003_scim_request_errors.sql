-- The last failed SCIM requests of each token, so an admin can see why Okta or Entra reports
-- a provisioning error. Never the request body: it may carry a password.
CREATE TABLE scim_request_errors (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    token_id    uuid NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    method      text NOT NULL,
    -- path and query (filters name the users looked for), truncated
    target      text NOT NULL,
    status      bigint NOT NULL,
    scim_type   text,
    detail      text NOT NULL,
    request_id  text,
    created_at  timestamptz NOT NULL
);
CREATE INDEX scim_request_errors_token ON scim_request_errors (token_id, id);
