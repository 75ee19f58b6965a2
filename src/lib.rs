//! rolegate: connects enterprise identity providers (SCIM 2.0, OIDC) to a feature-flag
//! product's team management.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::await_holding_lock
    )
)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod authz;
pub mod background;
pub mod cli;
pub mod config;
pub mod console;
pub mod domain;
pub mod error;
pub mod idp;
#[cfg(test)]
mod import_rules;
pub mod mail;
pub mod oidc;
pub mod ops;
pub mod rate_limit;
pub mod request;
pub mod scim;
pub mod scim_proto;
pub mod secrets;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;

/// Installs the process's one rustls crypto provider (ring). Several dependencies link rustls;
/// choosing explicitly keeps it from panicking over an ambiguous default at the first TLS use.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
