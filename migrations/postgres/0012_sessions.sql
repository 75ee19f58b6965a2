-- Sessions and sign-in (issue 12).
--
-- A session is found by the SHA-256 of the random id its cookie carries; the id itself is
-- never stored. `id` is the public handle (listed to the user, ended by it). OIDC sessions keep
-- the connection, issuer, subject and `sid`, so an OpenID Back-Channel Logout can find them.
CREATE TABLE sessions (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES orgs (id),
    user_id             uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash         bytea NOT NULL UNIQUE,
    method              text NOT NULL
                        CHECK (method IN ('oidc', 'email_link', 'login_link', 'invitation')),
    oidc_connection_id  uuid,
    oidc_issuer         text,
    oidc_subject        text,
    oidc_sid            text,
    user_agent          text,
    client_addr         text,
    created_at          timestamptz NOT NULL,
    last_seen_at        timestamptz NOT NULL,
    idle_expires_at     timestamptz NOT NULL,
    expires_at          timestamptz NOT NULL,
    ended_at            timestamptz,
    end_reason          text
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_oidc_subject ON sessions (oidc_issuer, oidc_subject);
CREATE INDEX sessions_oidc_sid ON sessions (oidc_issuer, oidc_sid);

-- One-time sign-in links: e-mailed (`email`) or printed by `rolegate console login-link`
-- (`login_link`). Stored as the SHA-256 of the secret, used once.
CREATE TABLE sign_in_links (
    id           uuid PRIMARY KEY,
    tenant_id    uuid NOT NULL REFERENCES orgs (id),
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    purpose      text NOT NULL CHECK (purpose IN ('email', 'login_link')),
    secret_hash  bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX sign_in_links_user ON sign_in_links (tenant_id, user_id);

-- An org that requires SSO refuses e-mail sign-in to its members (Owners keep the login link).
ALTER TABLE orgs ADD COLUMN require_sso boolean NOT NULL DEFAULT FALSE;

-- The signed-in user who minted an admin token (through the API), so the token can be revoked
-- when that user loses the right to mint it.
ALTER TABLE api_tokens ADD COLUMN created_by_user_id uuid REFERENCES users (id) ON DELETE SET NULL;
