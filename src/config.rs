//! Command line and environment. Every setting is a flag with an environment variable, and
//! nothing here prints a secret: `Debug` and `--help` hide them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use url::Url;
use uuid::Uuid;

use crate::domain::outbox::OutboxFilter;
use crate::domain::token::TokenKind;
use crate::mail::SmtpUrl;
use crate::request::TrustedProxies;

#[derive(Debug, Parser)]
#[command(
    name = "rolegate",
    version,
    about = "Identity-provider bridge (SCIM 2.0, OIDC) for feature-flag team management"
)]
pub struct Cli {
    /// Database: sqlite://FILE (created on first start) or postgres://USER:PASS@HOST/DB
    #[arg(
        long,
        env = "ROLEGATE_DATABASE_URL",
        default_value = "sqlite://rolegate.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,

    /// Log format: pretty for people, json for log pipelines
    #[arg(
        long,
        env = "ROLEGATE_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub keys: KeyArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The keys that seal OIDC client secrets and signing keys at rest (AES-256-GCM).
#[derive(Debug, Clone, Default, Args)]
pub struct KeyArgs {
    /// Base64 of 32 random bytes (`openssl rand -base64 32`): seals new secrets, opens old ones
    #[arg(
        long,
        env = "ROLEGATE_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secret_key: Option<Secret>,

    /// A file holding the key (instead of ROLEGATE_SECRET_KEY)
    #[arg(long, env = "ROLEGATE_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<std::path::PathBuf>,

    /// Earlier keys, comma-separated: still open what they sealed, during a rotation
    /// (`rolegate keys rotate` reseals everything under ROLEGATE_SECRET_KEY)
    #[arg(
        long,
        env = "ROLEGATE_SECRET_KEY_OLD",
        global = true,
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secret_key_old: Vec<Secret>,
}

// Parsed once at start-up: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (SCIM, admin API, health and metrics)
    Serve(ServeArgs),
    /// Apply pending database migrations and exit
    Migrate,
    /// Manage organizations
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API tokens (SCIM and admin)
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage what SCIM provisioning holds
    #[command(subcommand)]
    Scim(ScimCommand),
    /// Read the mail outbox (invitation e-mails and how each went)
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Export and import an org's group mapping document (IdP groups → roles and permissions)
    #[command(subcommand)]
    Mappings(MappingsCommand),
    /// Manage an org's OIDC connections (single sign-on through an OpenID Provider)
    #[command(subcommand)]
    Oidc(OidcCommand),
    /// Manage the keys that seal secrets at rest
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Reseal every stored secret under ROLEGATE_SECRET_KEY, opening those sealed under an
    /// older key with ROLEGATE_SECRET_KEY_OLD; prints JSON with how many were resealed
    Rotate,
}

/// What `oidc add` and `oidc update` may set.
#[derive(Debug, Clone, Args)]
pub struct OidcSettings {
    /// The client secret (or --client-secret-file); required for client_secret_basic/post
    #[arg(long, hide_env_values = true)]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret
    #[arg(long, conflicts_with = "client_secret")]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// The claim that carries group names or ids (default: groups)
    #[arg(long)]
    pub groups_claim: Option<String>,
    /// Scopes to ask for, space-separated (default: "openid email profile"; openid is always
    /// asked for)
    #[arg(long)]
    pub scopes: Option<String>,
    /// Who a first login may become (default: hybrid)
    #[arg(long, value_enum)]
    pub provisioning: Option<ProvisioningArg>,
    /// E-mail domains routed here by GET /auth/oidc/discover, comma-separated; a domain is
    /// claimed by one connection only
    #[arg(long, value_delimiter = ',')]
    pub domains: Option<Vec<String>>,
    /// Require a second factor: the ID token's amr must name one (`--require-mfa false` turns
    /// it off again)
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub require_mfa: Option<bool>,
    /// How rolegate authenticates to the token endpoint (default: client_secret_basic)
    #[arg(long, value_enum)]
    pub client_auth: Option<ClientAuthArg>,
    /// Entra ID multi-tenant issuers ({tenantid}): the tenant ids let in, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub allowed_tenants: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Add a connection: fetches the provider's discovery document at once (exit 1 with the
    /// reason if it fails); prints JSON with connection_id and the redirect_uri to register
    Add {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        #[arg(long)]
        issuer: Url,
        #[arg(long)]
        client_id: String,
        #[command(flatten)]
        settings: OidcSettings,
        /// This service's external base URL, for the redirect URI
        #[arg(long, env = "ROLEGATE_PUBLIC_URL")]
        public_url: Option<Url>,
    },
    /// List an org's connections (never their secrets); prints a JSON array
    List {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
    },
    /// Change a connection; --client-secret rotates the secret; the discovery document is
    /// fetched anew
    Update {
        #[arg(long, value_parser = connection_id)]
        id: Uuid,
        #[arg(long)]
        client_id: Option<String>,
        #[command(flatten)]
        settings: OidcSettings,
    },
    /// Remove a connection (refused while mapping rules use it)
    Remove {
        #[arg(long, value_parser = connection_id)]
        id: Uuid,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProvisioningArg {
    Hybrid,
    Jit,
    ScimOnly,
}

impl From<ProvisioningArg> for crate::domain::oidc::Provisioning {
    fn from(p: ProvisioningArg) -> Self {
        match p {
            ProvisioningArg::Hybrid => Self::Hybrid,
            ProvisioningArg::Jit => Self::Jit,
            ProvisioningArg::ScimOnly => Self::ScimOnly,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[allow(clippy::enum_variant_names)]
pub enum ClientAuthArg {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl From<ClientAuthArg> for crate::domain::oidc::ClientAuth {
    fn from(a: ClientAuthArg) -> Self {
        match a {
            ClientAuthArg::ClientSecretBasic => Self::ClientSecretBasic,
            ClientAuthArg::ClientSecretPost => Self::ClientSecretPost,
            ClientAuthArg::PrivateKeyJwt => Self::PrivateKeyJwt,
        }
    }
}

fn connection_id(raw: &str) -> Result<Uuid, String> {
    parse_id(
        raw,
        "a connection id",
        "`rolegate oidc add` or `rolegate oidc list`",
    )
}

#[derive(Debug, Subcommand)]
pub enum MappingsCommand {
    /// Print the org's mapping document: pretty JSON, or YAML; `import` reads either back
    Export {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        #[arg(long, value_enum, default_value = "json")]
        format: DocumentFormat,
    },
    /// Replace the org's whole mapping document with a file's (JSON, or YAML when it ends in
    /// .yaml or .yml): every error is printed on stderr as a JSON array of {"path", "message"}
    /// (exit 1) and nothing is applied; otherwise it is applied in one transaction and a JSON
    /// summary is printed
    Import {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        /// The document
        #[arg(long)]
        file: std::path::PathBuf,
        /// Apply nothing: print what applying would change (the preview, every affected user)
        /// and exit 1 if it would leave an org without an active Owner
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DocumentFormat {
    Json,
    Yaml,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List the mail of an org and the orgs below it, newest first, links redacted; prints a
    /// JSON array. Retry a mail with POST /api/v1/outbox/{id}/retry
    List {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        /// undelivered: failed and logged mail nothing newer superseded (what still needs doing)
        #[arg(long, value_enum, default_value = "undelivered")]
        status: OutboxStatusArg,
        /// At most this many (the newest)
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutboxStatusArg {
    Undelivered,
    Failed,
    Logged,
    Sent,
    All,
}

impl From<OutboxStatusArg> for OutboxFilter {
    fn from(s: OutboxStatusArg) -> Self {
        match s {
            OutboxStatusArg::Undelivered => OutboxFilter::Undelivered,
            OutboxStatusArg::Failed => OutboxFilter::Failed,
            OutboxStatusArg::Logged => OutboxFilter::Logged,
            OutboxStatusArg::Sent => OutboxFilter::Sent,
            OutboxStatusArg::All => OutboxFilter::All,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ScimCommand {
    /// Hand a person provisioned by one org's SCIM token over, so another org's SCIM token can
    /// link them (audited); prints JSON with what it did
    Release {
        /// The user's id
        #[arg(long, value_parser = user_id)]
        user: Uuid,
        /// Make the person a member of this org (inheriting their role) so its SCIM token, or
        /// one of an org above it, can link them
        #[arg(long, value_parser = org_id)]
        to_org: Option<Uuid>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create a root organization with its first Owner; prints JSON with org_id
    Create {
        #[arg(long)]
        name: String,
        /// E-mail of the first Owner
        #[arg(long)]
        owner: String,
        /// Create it even if a root organization already has this name (compared
        /// case-insensitively); without it such a create is refused, as it is usually a
        /// second run of the same command
        #[arg(long)]
        allow_duplicate_name: bool,
    },
    /// List the root organizations (tenants) of the database; prints a JSON array
    List,
    /// Make a user an Owner of an organization (break-glass; creates the user if needed)
    AddOwner {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints JSON with id and token (the secret is shown only here, once)
    Create {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
        #[arg(long)]
        kind: TokenKindArg,
        #[arg(long)]
        name: Option<String>,
        /// Days until the token stops working (default: never)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in: Option<u32>,
    },
    /// List an organization's tokens (never their secrets)
    List {
        #[arg(long, value_parser = org_id)]
        org: Uuid,
    },
    /// Revoke a token at once
    Revoke {
        #[arg(long, value_parser = token_id)]
        id: Uuid,
    },
}

/// Ids on the command line are UUIDs; saying which kind of id was expected, and where one comes
/// from, beats the parser's "invalid character: found `n` at 1".
fn parse_id(raw: &str, what: &str, printed_by: &str) -> Result<Uuid, String> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        format!("expected {what} (a UUID such as 0190d3c2-7b1e-7c2a-9f1e-3a5b2c4d6e7f, as printed by {printed_by})")
    })
}

fn org_id(raw: &str) -> Result<Uuid, String> {
    parse_id(
        raw,
        "an org id",
        "`rolegate org create` or GET /api/v1/orgs",
    )
}

fn user_id(raw: &str) -> Result<Uuid, String> {
    parse_id(raw, "a user id", "the admin API's member list or SCIM")
}

fn token_id(raw: &str) -> Result<Uuid, String> {
    parse_id(
        raw,
        "a token id",
        "`rolegate token create` or `rolegate token list`",
    )
}

/// The listen address is an IP and a port: a host name would have to be resolved to one of
/// possibly several addresses, and which one is the operator's choice.
fn bind_address(raw: &str) -> Result<SocketAddr, String> {
    raw.trim().parse().map_err(|_| {
        let hint = if raw.starts_with("localhost") {
            " (for localhost write 127.0.0.1 or [::1])"
        } else {
            ""
        };
        format!(
            "expected IP:PORT such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080{hint}; host names \
             are not accepted"
        )
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TokenKindArg {
    Scim,
    Admin,
    /// Read-only: `POST /api/v1/authz/check` and `GET /api/v1/authz/explain` only
    Service,
}

impl From<TokenKindArg> for TokenKind {
    fn from(k: TokenKindArg) -> Self {
        match k {
            TokenKindArg::Scim => TokenKind::Scim,
            TokenKindArg::Admin => TokenKind::Admin,
            TokenKindArg::Service => TokenKind::Service,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "ROLEGATE_BIND", default_value = "127.0.0.1:8080", value_parser = bind_address)]
    pub bind: SocketAddr,

    /// External base URL (SCIM meta.location, invitation links, OIDC redirects); defaults to
    /// http://BIND
    #[arg(long, env = "ROLEGATE_PUBLIC_URL")]
    pub public_url: Option<Url>,

    /// Do not run database migrations at start
    #[arg(long)]
    pub no_migrate: bool,

    /// Largest request body accepted, in bytes
    #[arg(long, env = "ROLEGATE_BODY_LIMIT", default_value_t = 2 * 1024 * 1024)]
    pub body_limit: usize,

    /// Seconds a request may take before it is answered 408
    #[arg(long, env = "ROLEGATE_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,

    /// Seconds between /readyz turning 503 and the start of draining, so load balancers stop
    /// sending traffic first
    #[arg(long, env = "ROLEGATE_SHUTDOWN_DELAY", default_value_t = 2)]
    pub shutdown_delay: u64,

    /// Database connections in the pool
    #[arg(long, env = "ROLEGATE_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Failed bearer-token attempts allowed per client address per minute; then 429
    #[arg(long, env = "ROLEGATE_AUTH_FAILURES_PER_MINUTE", default_value_t = 20)]
    pub auth_failures_per_minute: u32,

    /// Seconds a cached permission answer may live without any invalidation: a safety net —
    /// every write invalidates what it changed at once, on every instance
    #[arg(long, env = "ROLEGATE_AUTHZ_CACHE_TTL", default_value_t = 300)]
    pub authz_cache_ttl: u64,

    /// Seconds a session may go unused before it ends (sign in again)
    #[arg(long, env = "ROLEGATE_SESSION_IDLE_TIMEOUT", default_value_t = 8 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_idle_timeout: u64,

    /// Seconds a session lasts at most after sign-in, however much it is used
    #[arg(long, env = "ROLEGATE_SESSION_MAX_AGE", default_value_t = 7 * 24 * 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_max_age: u64,

    /// SCIM requests per second allowed per token (bursts up to twice that), per instance; 0
    /// disables the limit. Over it: 429 with Retry-After
    #[arg(long, env = "ROLEGATE_SCIM_RATE_LIMIT", default_value_t = 100)]
    pub scim_rate_limit: u32,

    /// SMTP relay for invitation e-mails: smtp://[user:pass@]host[:port] (STARTTLS required),
    /// smtps://… (implicit TLS) or smtp://host:port?tls=none (loopback sink). Unset: e-mails
    /// are logged and kept in the outbox table instead of sent
    #[arg(long, env = "ROLEGATE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SmtpUrl>,

    /// Sender of invitation e-mails
    #[arg(long, env = "ROLEGATE_SMTP_FROM", default_value = crate::mail::DEFAULT_FROM)]
    pub smtp_from: String,

    /// Days an invitation link stays valid
    #[arg(long, env = "ROLEGATE_INVITATION_TTL_DAYS", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=90))]
    pub invitation_ttl_days: u32,

    /// Invitation e-mails (new invitations and resends) an organization may send per hour,
    /// counted in the database so the cap holds across instances; over it: 429 with
    /// Retry-After, and nothing is sent. 0 disables the cap
    #[arg(long, env = "ROLEGATE_INVITATIONS_PER_HOUR", default_value_t = 500)]
    pub invitations_per_hour: u32,

    /// JSON file of extra SCIM schema extensions (RFC 7643 §7 schemas, each for User or Group)
    /// whose attributes are stored, returned and filterable
    #[arg(long, env = "ROLEGATE_SCIM_SCHEMA_EXTENSIONS")]
    pub scim_schema_extensions: Option<std::path::PathBuf>,

    /// Reverse proxies whose X-Forwarded-For / Forwarded headers are believed for the client
    /// address (rate limits, audit log, request logs): comma-separated CIDRs or addresses, IPv4
    /// and IPv6, e.g. 10.0.0.0/8,fd00::/8. Default: none, the TCP peer is the client
    #[arg(
        long,
        env = "ROLEGATE_TRUSTED_PROXIES",
        default_value = "",
        hide_default_value = true
    )]
    pub trusted_proxies: TrustedProxies,

    /// Bearer token /metrics requires (Authorization: Bearer TOKEN). Unset: /metrics is open
    #[arg(long, env = "ROLEGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<Secret>,

    /// Most group members on one page of a SCIM list or search: a page takes no further group
    /// once the next would take it over (it always holds at least one); itemsPerPage says how
    /// many came
    #[arg(long, env = "ROLEGATE_SCIM_MEMBER_BUDGET", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub scim_member_budget: u64,

    /// Group members read per database query when a response streams a group's members
    #[arg(long, env = "ROLEGATE_SCIM_MEMBER_CHUNK", default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub scim_member_chunk: u32,
}

impl ServeArgs {
    /// Settings for tests and embedding: defaults, with `bind` on an ephemeral port.
    pub fn for_tests() -> Self {
        ServeArgs {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            no_migrate: false,
            body_limit: 2 * 1024 * 1024,
            request_timeout: 30,
            shutdown_delay: 0,
            db_max_connections: 10,
            auth_failures_per_minute: 20,
            scim_rate_limit: 100,
            authz_cache_ttl: 300,
            session_idle_timeout: 8 * 3600,
            session_max_age: 7 * 24 * 3600,
            smtp_url: None,
            smtp_from: crate::mail::DEFAULT_FROM.to_owned(),
            invitation_ttl_days: 7,
            invitations_per_hour: 500,
            scim_schema_extensions: None,
            trusted_proxies: TrustedProxies::default(),
            metrics_token: None,
            scim_member_budget: 100_000,
            scim_member_chunk: 5_000,
        }
    }

    pub fn public_url(&self) -> Url {
        self.public_url
            .clone()
            .unwrap_or_else(|| bind_url(self.bind))
    }

    /// How long sessions live (`--session-idle-timeout`, `--session-max-age`).
    pub fn session_policy(&self) -> crate::domain::session::SessionPolicy {
        let secs = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        crate::domain::session::SessionPolicy {
            idle: secs(self.session_idle_timeout.max(1)),
            absolute: secs(self.session_max_age.max(1)),
        }
    }

    /// What the session cookie is called and whether it is `Secure`, from the public URL.
    pub fn cookie_mode(&self) -> crate::domain::session::CookieMode {
        let url = self.public_url();
        crate::domain::session::CookieMode::for_public_url(url.scheme(), url.host_str())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout.max(1))
    }
}

/// The public URL a command assumes when `ROLEGATE_PUBLIC_URL` is not set: the default bind.
pub fn default_public_url() -> Url {
    bind_url(SocketAddr::from(([127, 0, 0, 1], 8080)))
}

/// `http://BIND/`, the public URL when none is configured.
// A `SocketAddr` always formats as a valid URL authority (IPv6 in brackets), whatever the
// configuration, so this parse cannot fail and no input reaches it; `url` has no infallible
// constructor to use instead.
#[allow(clippy::expect_used)]
fn bind_url(bind: SocketAddr) -> Url {
    Url::parse(&format!("http://{bind}/")).expect("a socket address is a valid URL authority")
}

/// A secret setting (e.g. the metrics token): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one comparison that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Secret(s.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A database URL whose password never reaches a log, `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The real URL, for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// For messages: the redacted URL, with a SQLite file's path made absolute, so the operator
    /// sees which directory a relative path meant.
    pub fn located(&self) -> String {
        let Some(rest) = self.0.strip_prefix("sqlite:") else {
            return self.redacted();
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest
            .split_once('?')
            .map_or((rest, None), |(p, q)| (p, Some(q)));
        let absolute =
            std::path::absolute(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string());
        match query {
            Some(q) => format!("sqlite://{absolute}?{q}"),
            None => format!("sqlite://{absolute}"),
        }
    }

    pub fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            Ok(_) => self.0.clone(),
            // Unparseable: it may still hold a password, so show only the scheme.
            Err(_) => format!("{}://***", self.0.split(':').next().unwrap_or("?")),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("sqlite:") || s.starts_with("postgres:") || s.starts_with("postgresql:") {
            Ok(DatabaseUrl(s.to_owned()))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn database_password_is_hidden_from_debug_and_display() {
        let url: DatabaseUrl = "postgres://app:s3cr3t-pw@db.internal:5432/rolegate"
            .parse()
            .unwrap();
        assert!(!format!("{url:?}").contains("s3cr3t-pw"));
        assert!(!url.to_string().contains("s3cr3t-pw"));
        assert!(url.to_string().contains("db.internal"));
        assert_eq!(
            url.expose(),
            "postgres://app:s3cr3t-pw@db.internal:5432/rolegate"
        );
    }

    #[test]
    fn unsupported_database_schemes_are_refused() {
        assert!("mysql://x".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn trusted_proxies_default_to_none_and_a_bad_list_stops_the_start() {
        let parse = |args: &[&str]| {
            let mut all = vec!["rolegate", "serve"];
            all.extend_from_slice(args);
            Cli::try_parse_from(all).map(|cli| match cli.command {
                Command::Serve(serve) => serve,
                _ => unreachable!(),
            })
        };
        assert!(parse(&[]).unwrap().trusted_proxies.is_empty());
        let serve = parse(&["--trusted-proxies", "10.0.0.0/8, ::1"]).unwrap();
        assert_eq!(serve.trusted_proxies.to_string(), "10.0.0.0/8,::1/128");
        let error = parse(&["--trusted-proxies", "10.0.0.0/8,10.0.0.300"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("10.0.0.300") && error.contains("not an IP address or CIDR"),
            "{error}"
        );
    }

    #[test]
    fn the_metrics_token_is_hidden_from_debug() {
        let cli =
            Cli::try_parse_from(["rolegate", "serve", "--metrics-token", "s3cr3t-scrape"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("s3cr3t-scrape"), "{shown}");
        assert!(Cli::try_parse_from(["rolegate", "serve", "--metrics-token", " "]).is_err());
    }

    #[test]
    fn public_url_defaults_to_the_bind_address() {
        let mut args = ServeArgs::for_tests();
        args.bind = "127.0.0.1:9999".parse().unwrap();
        assert_eq!(args.public_url().as_str(), "http://127.0.0.1:9999/");
        args.bind = "[::1]:9999".parse().unwrap();
        assert_eq!(args.public_url().as_str(), "http://[::1]:9999/");
    }
}
