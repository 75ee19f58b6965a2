//! The SCIM 2.0 protocol core (RFC 7643/7644), pure: attribute schemas, the filter and PATCH
//! path parser with its resolved AST, the reference evaluator, the PATCH engine, resource
//! validation and rendering, and configured schema extensions. No I/O and no HTTP: the store
//! translates its filters to SQL, and the `scim` edge glues it to axum. Imports point down
//! only (to `domain`), so both can use it.

pub mod eval;
pub mod extension;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;
