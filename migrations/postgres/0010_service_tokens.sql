-- Service tokens (issue 11): a third token kind, read-only, that may only ask permission
-- questions (`POST /api/v1/authz/check`, `GET /api/v1/authz/explain`). Its secrets start with
-- `rg_service_`. (`api_tokens_kind_check` is the name PostgreSQL gave 0001's column check.)
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_kind_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_kind_check
    CHECK (kind IN ('scim', 'admin', 'service'));
