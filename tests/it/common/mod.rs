//! Test harness: a fresh database per test on each backend, and a `TestApp` that drives the
//! real router.

pub mod db;
pub mod http;
pub mod oidc;
pub mod smtp;

pub use db::{Backend, TestDb};
pub use http::TestApp;

/// Defines `sqlite::NAME` and `postgres::NAME` tests from `async fn NAME(backend: Backend)`.
/// The PostgreSQL variants run when `DATABASE_URL` is set (the test script sets it).
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::db::postgres_enabled() {
                        super::$name($crate::common::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}
