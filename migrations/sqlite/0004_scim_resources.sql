-- SCIM resources. A SCIM User is a row of `users` that a SCIM token of `scim_org_id` provisions
-- (NULL: not a SCIM resource, e.g. an invited member not yet seen by the IdP); a SCIM Group is a
-- row of `groups` with the `org_id` whose tokens manage it. Each token sees only its org's.
--
-- `attributes` keeps the SCIM document as the client sent it (canonical attribute names, empty
-- values dropped, never the password); `attributes_cmp` is the same document with every value of
-- a caseExact=false attribute lower-cased in Rust, so filters compare the same way on both
-- backends (SQLite's lower() folds ASCII only).

ALTER TABLE users ADD COLUMN scim_org_id BLOB REFERENCES orgs (id);
ALTER TABLE users ADD COLUMN external_id_norm TEXT;
ALTER TABLE users ADD COLUMN attributes_cmp TEXT NOT NULL DEFAULT '{}';
-- externalId is unique per provisioning org, case-insensitively (a retried create is a 409).
CREATE UNIQUE INDEX users_scim_external_id ON users (scim_org_id, external_id_norm)
    WHERE scim_org_id IS NOT NULL AND external_id_norm IS NOT NULL;
CREATE INDEX users_scim_org ON users (scim_org_id, id);

ALTER TABLE groups ADD COLUMN org_id BLOB REFERENCES orgs (id);
ALTER TABLE groups ADD COLUMN external_id_norm TEXT;
CREATE UNIQUE INDEX groups_org_display_name ON groups (org_id, display_name_norm)
    WHERE org_id IS NOT NULL;
CREATE UNIQUE INDEX groups_org_external_id ON groups (org_id, external_id_norm)
    WHERE org_id IS NOT NULL AND external_id_norm IS NOT NULL;
CREATE INDEX groups_org ON groups (org_id, id);
