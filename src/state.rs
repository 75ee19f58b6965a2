//! Shared application state, in its own module so handlers and the router never import each
//! other. Its parts come from modules that know nothing of it (a test in `import_rules` keeps
//! it so); edges take the whole state, or a part through `FromRef`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRef;

use crate::auth::TokenAuth;
use crate::authz::Resolver;
use crate::authz::sessions::Sessions;
use crate::background::Background;
use crate::config::ServeArgs;
use crate::domain::secret::Keyring;
use crate::idp::Idp;
use crate::mail::{MailError, Mailer};
use crate::rate_limit::{ScimRateLimiter, SignInMailLimiter};
use crate::scim_proto::schema::Schemas;
use crate::store::Store;
use crate::telemetry::Metrics;

/// How long invalidation records are kept: every instance has read them long before.
const INVALIDATIONS_KEPT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// E-mail sign-in links one address may be sent per ten minutes (per instance).
const SIGN_IN_MAILS_PER_WINDOW: u32 = 5;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServeArgs>,
    pub auth: Arc<TokenAuth>,
    pub metrics: Metrics,
    pub lifecycle: Lifecycle,
    pub mailer: Arc<Mailer>,
    pub scim_rate: Arc<ScimRateLimiter>,
    /// E-mail sign-in links per address (`POST /auth/email`).
    pub sign_in_mail: Arc<SignInMailLimiter>,
    /// The SCIM schemas this service serves: built-in plus configured extensions.
    pub scim_schemas: Arc<Schemas>,
    /// Every permission answer, cached and invalidated on every instance.
    pub resolver: Arc<Resolver>,
    /// Every session check, cached and invalidated with the resolver.
    pub sessions: Arc<Sessions>,
    /// What runs beside the server while it serves (`app::serve` starts and stops it).
    pub background: Background,
    /// The OpenID Providers' side of SSO: discovery, keys, token and userinfo endpoints.
    pub idp: Arc<Idp>,
    /// The keys that open OIDC secrets sealed at rest (none until `with_keyring`).
    pub keyring: Arc<Keyring>,
    /// The session-token keys derived from `keyring`, once, not on every request.
    pub signing_keys: Arc<crate::domain::session_token::SigningKeys>,
}

/// Why the service cannot start with this configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("{0}")]
    SchemaExtensions(String),
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServeArgs) -> Result<Self, StartupError> {
        let scim_schemas = match &config.scim_schema_extensions {
            None => Schemas::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    StartupError::SchemaExtensions(format!(
                        "cannot read SCIM schema extensions from {}: {e}",
                        path.display()
                    ))
                })?;
                let extensions = crate::scim_proto::extension::parse(&text)
                    .map_err(|e| StartupError::SchemaExtensions(e.to_string()))?;
                Schemas::with_extensions(extensions)
                    .map_err(|e| StartupError::SchemaExtensions(e.to_string()))?
            }
        };
        let auth = Arc::new(TokenAuth::new(config.auth_failures_per_minute));
        let mailer = Arc::new(Mailer::new(config.smtp_url.clone(), &config.smtp_from)?);
        let scim_rate = Arc::new(ScimRateLimiter::new(config.scim_rate_limit));
        let metrics = Metrics::global();
        let mut background = Background::default();
        let upkept = metrics.clone();
        background.register("metrics upkeep", move |stop| upkept.clone().upkeep(stop));
        // Once, at start: a relay that cannot work is reported now, not at the first invitation,
        // and a slow one does not hold the start up.
        let checked = mailer.clone();
        background.register("smtp relay check", move |mut stop| {
            let mailer = checked.clone();
            async move {
                tokio::select! {
                    () = stop.requested() => {}
                    () = mailer.report_relay() => {}
                }
            }
        });
        let resolver = Resolver::new(
            store.clone(),
            std::time::Duration::from_secs(config.authz_cache_ttl.max(1)),
        );
        let sessions = Arc::new(Sessions::new(
            store.clone(),
            resolver.clone(),
            config.session_policy(),
        ));
        let listening = resolver.clone();
        background.register("authz invalidation listener", move |stop| {
            listening.clone().run_listener(stop)
        });
        let pruned = store.clone();
        background.register("invalidation pruning", move |mut stop| {
            let store = pruned.clone();
            async move {
                loop {
                    match store.prune_invalidations(INVALIDATIONS_KEPT).await {
                        Ok(0) => {}
                        Ok(n) => tracing::debug!(deleted = n, "old invalidation records pruned"),
                        Err(error) => tracing::warn!(%error, "pruning invalidation records"),
                    }
                    tokio::select! {
                        () = stop.requested() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
                    }
                }
            }
        });
        Ok(AppState {
            resolver,
            sessions,
            store,
            config: Arc::new(config),
            auth,
            metrics,
            lifecycle: Lifecycle::default(),
            mailer,
            scim_rate,
            sign_in_mail: Arc::new(SignInMailLimiter::new(
                SIGN_IN_MAILS_PER_WINDOW,
                std::time::Duration::from_secs(600),
            )),
            scim_schemas: Arc::new(scim_schemas),
            background,
            idp: Arc::new(Idp::new()),
            keyring: Arc::new(Keyring::default()),
            signing_keys: Arc::new(crate::domain::session_token::SigningKeys::none()),
        })
    }

    /// The keys that seal and open secrets at rest (`secrets::keyring` reads them from the
    /// configuration; `secrets::check_store` has checked they open what the store holds).
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.signing_keys = Arc::new(
            crate::domain::session_token::SigningKeys::from_keyring(&keyring).unwrap_or_else(
                |error| {
                    tracing::error!(%error, "no session token keys");
                    crate::domain::session_token::SigningKeys::none()
                },
            ),
        );
        self.keyring = Arc::new(keyring);
        self
    }
}

/// Whether the service is shutting down: `/readyz` answers 503 from the moment this is set,
/// before in-flight requests are drained.
#[derive(Clone, Default)]
pub struct Lifecycle {
    shutting_down: Arc<AtomicBool>,
}

impl Lifecycle {
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}
