-- Sessions and sign-in (issue 12).
--
-- A session is found by the SHA-256 of the random id its cookie carries; the id itself is
-- never stored. `id` is the public handle (listed to the user, ended by it). OIDC sessions keep
-- the connection, issuer, subject and `sid`, so an OpenID Back-Channel Logout can find them.
CREATE TABLE sessions (
    id                  BLOB PRIMARY KEY,
    tenant_id           BLOB NOT NULL REFERENCES orgs (id),
    user_id             BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret_hash         BLOB NOT NULL UNIQUE,
    method              TEXT NOT NULL
                        CHECK (method IN ('oidc', 'email_link', 'login_link', 'invitation')),
    oidc_connection_id  BLOB,
    oidc_issuer         TEXT,
    oidc_subject        TEXT,
    oidc_sid            TEXT,
    user_agent          TEXT,
    client_addr         TEXT,
    created_at          TEXT NOT NULL,
    last_seen_at        TEXT NOT NULL,
    idle_expires_at     TEXT NOT NULL,
    expires_at          TEXT NOT NULL,
    ended_at            TEXT,
    end_reason          TEXT
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_oidc_subject ON sessions (oidc_issuer, oidc_subject);
CREATE INDEX sessions_oidc_sid ON sessions (oidc_issuer, oidc_sid);

-- One-time sign-in links: e-mailed (`email`) or printed by `rolegate console login-link`
-- (`login_link`). Stored as the SHA-256 of the secret, used once.
CREATE TABLE sign_in_links (
    id           BLOB PRIMARY KEY,
    tenant_id    BLOB NOT NULL REFERENCES orgs (id),
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id       BLOB NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL CHECK (purpose IN ('email', 'login_link')),
    secret_hash  BLOB NOT NULL UNIQUE,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    used_at      TEXT
);
CREATE INDEX sign_in_links_user ON sign_in_links (tenant_id, user_id);

-- An org that requires SSO refuses e-mail sign-in to its members (Owners keep the login link).
ALTER TABLE orgs ADD COLUMN require_sso INTEGER NOT NULL DEFAULT 0;

-- The signed-in user who minted an admin token (through the API), so the token can be revoked
-- when that user loses the right to mint it.
ALTER TABLE api_tokens ADD COLUMN created_by_user_id BLOB REFERENCES users (id) ON DELETE SET NULL;
