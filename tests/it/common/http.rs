use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use rolegate::config::ServeArgs;
use rolegate::domain::audit::Actor;
use rolegate::domain::token::TokenKind;
use rolegate::state::AppState;
use rolegate::store::{Ctx, Store};
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use super::{Backend, TestDb};

/// The real router over a fresh database, with one org and a SCIM and an admin token.
pub struct TestApp {
    /// Held so the database lives as long as the app.
    _db: TestDb,
    /// The state's background tasks (the invalidation listener among them), as `serve` runs
    /// them; aborted when the app is dropped.
    _background: rolegate::background::Running,
    pub store: Arc<dyn Store>,
    pub state: AppState,
    pub router: Router,
    pub org_id: Uuid,
    pub scim_token: String,
    pub admin_token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestApp {
    pub async fn new(backend: Backend) -> TestApp {
        Self::with_config(backend, ServeArgs::for_tests()).await
    }

    pub async fn with_config(backend: Backend, config: ServeArgs) -> TestApp {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let state = AppState::new(store.clone(), config)
            .expect("state")
            .with_keyring(super::oidc::test_keyring());
        let router = rolegate::app::app(state.clone());
        let background = state.background.start();
        // Ready as a served instance is: listening for other instances' invalidations.
        let listening = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !state.resolver.listening() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(listening.is_ok(), "the invalidation listener did not start");
        let (org, _) = store
            .create_org(&Ctx::new(Actor::Cli), "Acme", "owner@acme.test")
            .await
            .expect("org");
        let mut app = TestApp {
            _db: db,
            _background: background,
            store,
            state,
            router,
            org_id: org.id,
            scim_token: String::new(),
            admin_token: String::new(),
        };
        app.scim_token = app.token(org.id, TokenKind::Scim).await;
        app.admin_token = app.token(org.id, TokenKind::Admin).await;
        app
    }

    /// Issues a token for `org_id` the way the CLI does, returning the secret.
    pub async fn token(&self, org_id: Uuid, kind: TokenKind) -> String {
        let org = self.store.find_org(org_id).await.expect("org");
        let (_, secret) = rolegate::auth::issue_token(
            self.store.as_ref(),
            &Ctx::new(Actor::Cli),
            org.tenant_id,
            rolegate::auth::TokenRequest {
                org_id,
                kind,
                name: Some("test"),
                expires_in_days: None,
            },
            rolegate::auth::Minter::Operator,
        )
        .await
        .expect("token");
        secret
    }

    /// The id of this app's SCIM token (its provisioning error log is read by id).
    pub async fn scim_token_id(&self) -> Uuid {
        self.store
            .token_by_hash(&rolegate::domain::token::hash_secret(&self.scim_token))
            .await
            .expect("lookup")
            .expect("token")
            .token
            .id
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        reply_of(response).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(request(method, path, token, body, None)).await
    }

    /// Moves every pending invitation's expiry into the past, as time would.
    pub async fn db_expire_invitations(&self) {
        self._db
            .raw_execute("UPDATE invitations SET expires_at = '2000-01-01T00:00:00+00:00' WHERE status = 'pending'")
            .await
            .expect("expire invitations");
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// A SCIM request with this app's SCIM token, the body sent as `application/scim+json`.
    pub async fn scim(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.scim_with(method, path, body, &[]).await
    }

    /// Like [`TestApp::scim`], with extra headers (`If-Match`, a content type, …).
    pub async fn scim_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.scim_as(&self.scim_token, method, path, body, headers)
            .await
    }

    /// A SCIM request with another token (another org's, a revoked one, …).
    pub async fn scim_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let path = if path.starts_with("/scim/v2") {
            path.to_owned()
        } else {
            format!("/scim/v2{path}")
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let has_content_type = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_content_type {
            builder = builder.header("content-type", "application/scim+json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let req = builder
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        self.send(req).await
    }

    /// Raw SQL against this app's database (to look behind the store, e.g. at stored columns).
    pub async fn raw_execute(&self, statement: &str) -> Result<u64, sqlx::Error> {
        self._db.raw_execute(statement).await
    }

    /// The database this app runs on (for the command line).
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    pub fn backend(&self) -> Backend {
        self._db.backend
    }
}

/// Another instance of the service on this app's database: its own store (pool), state,
/// cache and invalidation listener, as a second process would have.
pub struct Instance {
    pub state: AppState,
    pub router: Router,
    _background: rolegate::background::Running,
}

impl TestApp {
    pub async fn second_instance(&self) -> Instance {
        let store = self._db.store().await;
        let state = AppState::new(store, ServeArgs::for_tests())
            .expect("state")
            .with_keyring(super::oidc::test_keyring());
        let router = rolegate::app::app(state.clone());
        let background = state.background.start();
        let listening = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !state.resolver.listening() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            listening.is_ok(),
            "the second instance did not start listening"
        );
        Instance {
            state,
            router,
            _background: background,
        }
    }

    /// A request to `instance`, with this app's admin token when `token` is `None`.
    pub async fn call_on(
        &self,
        instance: &Instance,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> Reply {
        let request = request(
            method,
            &format!("/api/v1{path}"),
            Some(token.unwrap_or(&self.admin_token)),
            None,
            None,
        );
        reply_of(
            instance
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("infallible"),
        )
        .await
    }
}

/// The admin API as the org's admin token calls it, and the team model's usual fixtures.
impl TestApp {
    /// An admin API call (`path` below `/api/v1`) with this app's admin token.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call(
            method,
            &format!("/api/v1{path}"),
            Some(&self.admin_token),
            body,
        )
        .await
    }

    /// Like [`TestApp::admin`], asserting a 2xx answer; returns its body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let reply = self.admin(method.clone(), path, body).await;
        assert!(
            reply.status.is_success(),
            "{method} {path}: {} {}",
            reply.status,
            reply.text
        );
        reply.body
    }

    pub async fn sub_org(&self, parent: &str, name: &str) -> String {
        let org = self
            .ok(
                Method::POST,
                "/orgs",
                Some(json!({ "name": name, "parent_id": parent })),
            )
            .await;
        org["id"].as_str().expect("id").to_owned()
    }

    /// A user of the tenant, e.g. as SCIM or an accepted invitation would make one.
    pub async fn user(&self, email: &str) -> String {
        let user = self
            .store
            .ensure_user(
                &Ctx::new(Actor::Cli),
                self.org_id,
                email,
                rolegate::domain::Source::Manual,
            )
            .await
            .expect("user");
        user.id.to_string()
    }

    pub async fn product(&self, org: &str) -> Value {
        self.ok(
            Method::POST,
            &format!("/orgs/{org}/products"),
            Some(json!({ "name": "Checkout" })),
        )
        .await
    }
}

impl TestApp {
    /// Invites `email` into `org` through the store with a link secret minted here, and returns
    /// the secret: what the e-mail's link carries.
    pub async fn invitation_link(&self, org: Uuid, email: &str) -> String {
        let (secret, token_hash) = rolegate::domain::invitation::mint_secret(
            *Uuid::new_v4()
                .as_u128()
                .to_le_bytes()
                .repeat(2)
                .first_chunk()
                .expect("32 bytes"),
        );
        let tenant = self.store.find_org(org).await.expect("org").tenant_id;
        self.store
            .invite(
                &Ctx::new(Actor::Cli),
                tenant,
                &rolegate::store::InvitationTarget {
                    org_id: org,
                    product_id: None,
                    permission_group_id: None,
                    role: None,
                    expires_at: rolegate::domain::now() + chrono::Duration::days(1),
                },
                &[rolegate::store::NewInvitation {
                    email: email.to_owned(),
                    token_hash,
                }],
                None,
            )
            .await
            .expect("invite");
        secret
    }
}

/// Settings for SCIM tests that send many requests: no per-token rate limit.
pub fn unlimited() -> ServeArgs {
    let mut config = ServeArgs::for_tests();
    config.scim_rate_limit = 0;
    config
}

async fn reply_of(response: axum::response::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Builds a request; `from` sets the client address the way a real connection would.
pub fn request(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    from: Option<SocketAddr>,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    let mut req = match body {
        Some(b) => builder
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => builder.body(Body::empty()),
    }
    .expect("request");
    if let Some(addr) = from {
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}

/// `app::serve` over real TCP on an ephemeral port, until [`shutdown`](Self::shutdown).
pub struct Served {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Served {
    pub async fn start(state: AppState) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::start_on(listener, state)
    }

    /// Serves on a listener bound beforehand: when the configuration must name the port (a
    /// public URL that browsers' Origin headers are checked against).
    pub fn start_on(listener: tokio::net::TcpListener, state: AppState) -> Served {
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rolegate::app::serve(listener, state, async {
            let _ = stopped.await;
        }));
        Served {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resolves the shutdown future `serve` was given: it turns not-ready, then drains.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down (if not asked yet) and waits, bounded, for `serve` to return.
    pub async fn stopped(mut self) {
        self.shutdown();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .expect("task")
            .expect("serve");
    }
}
