-- OIDC single sign-on (issue 12): connections to OpenID Providers, the secrets they need sealed
-- at rest, login transactions, group claims, and replayed back-channel logout tokens.

-- Secrets sealed under ROLEGATE_SECRET_KEY (AES-256-GCM): `key_id` names the key that sealed
-- each one, so a rotation finds what is still under an old key and a start without the key
-- can say that sealed material exists. `sealed` is nonce || ciphertext || tag; the row's id
-- is the associated data, so a ciphertext moved to another row does not open.
CREATE TABLE sealed_secrets (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES orgs (id),
    key_id      text NOT NULL,
    sealed      bytea NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX sealed_secrets_key ON sealed_secrets (key_id);

CREATE TABLE oidc_connections (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES orgs (id),
    org_id              uuid NOT NULL REFERENCES orgs (id),
    issuer              text NOT NULL,
    client_id           text NOT NULL,
    client_auth         text NOT NULL
        CHECK (client_auth IN ('client_secret_basic', 'client_secret_post', 'private_key_jwt')),
    client_secret_id    uuid REFERENCES sealed_secrets (id),
    -- private_key_jwt: the private key sealed, its public JWK shown to register at the IdP.
    signing_key_id      uuid REFERENCES sealed_secrets (id),
    signing_public_jwk  text,
    groups_claim        text NOT NULL,
    scopes              text NOT NULL,
    provisioning        text NOT NULL CHECK (provisioning IN ('hybrid', 'jit', 'scim_only')),
    require_mfa         boolean NOT NULL DEFAULT FALSE,
    -- Entra multi-tenant issuers (`{tenantid}` in the issuer): the tenant ids let in, JSON.
    allowed_tenants     jsonb NOT NULL DEFAULT '[]',
    -- The provider's discovery document as last fetched.
    metadata            jsonb NOT NULL,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX oidc_connections_org ON oidc_connections (tenant_id, org_id);

-- Home-realm discovery: an e-mail domain routes to one connection, of one tenant only.
CREATE TABLE oidc_domains (
    domain         text PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    connection_id  uuid NOT NULL REFERENCES oidc_connections (id) ON DELETE CASCADE
);
CREATE INDEX oidc_domains_connection ON oidc_domains (connection_id);

-- A login in flight: found by the hash of its `state`, used once, 10 minutes at most.
CREATE TABLE oidc_logins (
    state_hash     bytea PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    connection_id  uuid NOT NULL REFERENCES oidc_connections (id) ON DELETE CASCADE,
    nonce          text NOT NULL,
    pkce_verifier  text NOT NULL,
    return_to      text NOT NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);

-- The group claims of a user's last login through a connection: what `oidc:<id>` mapping rules
-- match. Never rows of `groups` (SCIM's).
CREATE TABLE oidc_group_claims (
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    connection_id  uuid NOT NULL REFERENCES oidc_connections (id) ON DELETE CASCADE,
    value          text NOT NULL,
    PRIMARY KEY (user_id, connection_id, value)
);
CREATE INDEX oidc_group_claims_tenant ON oidc_group_claims (tenant_id, user_id);

-- The identity a login linked came through this connection (identities has issuer + subject).
ALTER TABLE identities ADD COLUMN connection_id uuid REFERENCES oidc_connections (id) ON DELETE SET NULL;

-- Back-channel logout tokens seen, so a replayed `jti` is refused until it would have expired.
CREATE TABLE oidc_logout_jtis (
    issuer      text NOT NULL,
    jti         text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (issuer, jti)
);
