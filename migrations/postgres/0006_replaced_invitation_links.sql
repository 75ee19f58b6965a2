-- A resend gives an invitation a new link and kills the old one. The old link's hash is kept,
-- so someone following it from an older e-mail is told "replaced by a newer invitation"
-- instead of "not found". Only hashes: the secret itself is never stored.
CREATE TABLE replaced_invitation_links (
    token_hash     bytea PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES orgs (id),
    invitation_id  uuid NOT NULL REFERENCES invitations (id) ON DELETE CASCADE,
    replaced_at    timestamptz NOT NULL
);
CREATE INDEX replaced_invitation_links_invitation ON replaced_invitation_links (invitation_id);
