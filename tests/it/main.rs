//! The one integration-test binary. Storage and HTTP tests run on SQLite always and on
//! PostgreSQL when `DATABASE_URL` is set.

mod authz_api;
mod cache;
mod cli;
mod common;
mod concurrency;
mod crash;
mod edge;
mod fuzz;
mod hardening_store;
mod http_auth;
mod invitations;
mod mail;
mod mappings;
mod migrations;
mod oidc;
mod openapi;
mod ops;
mod outbox;
mod reach;
mod reads;
mod rejections;
mod role_matrix;
mod scim_concurrency;
mod scim_edge;
mod scim_entra;
mod scim_extensions;
mod scim_filter_diff;
mod scim_large;
mod scim_managed;
mod scim_okta;
mod scim_resources;
mod session;
mod store;
mod takeover;
mod team;
