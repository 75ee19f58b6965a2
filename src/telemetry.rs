//! Logging set-up, and the Prometheus recorder behind the `metrics` facade. Logs: filter with
//! `RUST_LOG` (default: info, quieter for dependencies).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::background::Stop;
use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        // Colours only for a terminal: escape codes make a log file hard to read and grep.
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// Handle on the process-wide Prometheus recorder (the `metrics` facade has one per process).
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `# HELP` line of every metric, so a scrape explains itself.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "rolegate_http_requests_total",
        "HTTP requests answered, by matched route template, method and status"
    );
    describe_histogram!(
        "rolegate_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by matched route template and method"
    );
    describe_counter!(
        "rolegate_auth_failures_total",
        "Refused credentials (tokens, invitation links, the metrics token), by reason"
    );
    describe_gauge!(
        "rolegate_db_pool_connections",
        "Database pool connections, by state (in_use, idle)"
    );
    describe_gauge!(
        "rolegate_db_pool_max_connections",
        "Largest size of the database pool (ROLEGATE_DB_MAX_CONNECTIONS)"
    );
    describe_gauge!(
        "rolegate_db_pool_saturation",
        "Database connections in use divided by the pool's maximum"
    );
    describe_counter!(
        "rolegate_owner_rule_warnings_total",
        "Changes that left an organization without an active Owner (SCIM offboarding goes through)"
    );
    describe_counter!(
        "rolegate_scim_requests_total",
        "SCIM requests, by operation (method and route), status and scimType"
    );
    describe_counter!(
        "rolegate_scim_operations_total",
        "SCIM requests by resource and by what the IdP sees: created, updated, deleted, read, \
         conflict, not_found, rejected, throttled (retried), failed (retried)"
    );
    describe_counter!(
        "rolegate_scim_rate_limited_total",
        "SCIM requests refused with 429 by a token's rate limit (ROLEGATE_SCIM_RATE_LIMIT)"
    );
    describe_counter!(
        "rolegate_mail_total",
        "E-mails by outcome: sent (accepted by the relay), failed, logged (no relay configured)"
    );
}

impl Metrics {
    pub fn global() -> Self {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        let handle = HANDLE.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| b.install_recorder());
            match recorder {
                Ok(handle) => {
                    describe();
                    handle
                }
                Err(error) => {
                    // Another recorder was installed first (only possible when embedded):
                    // keep serving, with a private recorder that is simply not fed.
                    tracing::warn!(%error, "metrics recorder not installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        });
        Metrics {
            handle: handle.clone(),
        }
    }

    /// Everything recorded, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains recorded histogram samples into their buckets every few seconds, until `stop`.
    /// The exporter keeps raw samples until this runs (or `/metrics` is scraped), so an instance
    /// nobody scrapes would otherwise grow with its traffic.
    pub async fn upkeep(self, mut stop: Stop) {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = every.tick() => self.handle.run_upkeep(),
                () = stop.requested() => return,
            }
        }
    }
}
