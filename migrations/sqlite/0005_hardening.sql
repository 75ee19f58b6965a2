-- Hardening (security review): who minted a token, and from which client address a change came.
--
-- A token minted through the admin API records the token that minted it, so its expiry can be
-- capped at the minter's and an admin can trace a chain of tokens. NULL: minted by the operator
-- (`rolegate token create`). Later, a console user will be recorded beside it.
ALTER TABLE api_tokens ADD COLUMN created_by_token_id BLOB REFERENCES api_tokens (id);

-- The client address of the request behind an audited change (behind a trusted proxy, the
-- forwarded-for address). NULL for the command line.
ALTER TABLE audit_events ADD COLUMN client_addr TEXT;
