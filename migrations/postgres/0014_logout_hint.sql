-- RP-initiated logout (issue 12): an OIDC session keeps the ID token it started with, sealed
-- under ROLEGATE_SECRET_KEY, to send as `id_token_hint` to the provider's end-session endpoint
-- (Okta requires it). Cleared when the session ends: an ended session keeps no token.
ALTER TABLE sessions ADD COLUMN oidc_id_token_key text;
ALTER TABLE sessions ADD COLUMN oidc_id_token bytea;
