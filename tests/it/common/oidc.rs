//! A real OpenID Provider for the OIDC tests: `tests/oidc-provider/provider.mjs` (the npm
//! package oidc-provider, pinned by its lockfile and installed by `scripts/oidc-provider-setup`),
//! one per test, on a free loopback port, killed when dropped. Its login is headless: the
//! `login_hint` names the account, and the browser's redirects go straight to the callback.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use rolegate::domain::secret::{Keyring, SecretKey};
use serde_json::{Value, json};

/// The key every test app seals with (one key, so two instances of one test open each other's
/// secrets).
pub const TEST_KEY: [u8; 32] = [42; 32];

pub fn test_keyring() -> Keyring {
    Keyring::new(Some(SecretKey::from_bytes(TEST_KEY)), Vec::new())
}

pub fn test_key_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(TEST_KEY)
}

/// The provider script, installed (or checked) once per process; the setup script holds a file
/// lock while it installs, so parallel test processes wait for one install.
fn provider_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/oidc-provider-setup"))
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/oidc-provider-setup");
        assert!(
            out.status.success(),
            "scripts/oidc-provider-setup failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
}

pub const CLIENT_ID: &str = "rolegate-test";
pub const CLIENT_SECRET: &str = "a-long-client-secret-for-the-test-provider";

/// A test account of the provider (its `sub` is also the `login_hint` that logs it in).
pub fn account(email: &str, verified: bool, groups: &[&str]) -> Value {
    json!({ "email": email, "email_verified": verified, "groups": groups })
}

/// The loopback provider.
pub struct Provider {
    child: Child,
    pub issuer: String,
    config: Value,
}

impl Provider {
    /// Starts a provider with one confidential client and these accounts (`{sub: account}`);
    /// `redirect_uris` are the client's.
    pub fn start(redirect_uris: &[String], accounts: Value) -> Provider {
        Self::start_with(json!({
            "clients": [{
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": "client_secret_basic",
            }],
            "accounts": accounts,
        }))
    }

    /// Starts a provider from its whole configuration (see provider.mjs). A provider that has
    /// not said where it listens within 30 s is stopped and started again (twice at most): in
    /// full suite runs a node process now and then never got as far as listening, while a
    /// second one started at once; what it printed on stderr is in the panic if all fail.
    pub fn start_with(config: Value) -> Provider {
        let mut stderr_seen = String::new();
        for _attempt in 0..3 {
            let log = tempfile::NamedTempFile::new().expect("provider log");
            let mut child = Command::new("node")
                .arg(provider_script())
                .env("OIDC_TEST_CONFIG", config.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::from(log.reopen().expect("log")))
                .spawn()
                .expect("node runs the provider");
            let stdout = child.stdout.take().expect("stdout");
            let (send, receive) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                if let Some(Ok(line)) = lines.next() {
                    let _ = send.send(line);
                }
                // Keep draining, so the provider never blocks on a full pipe.
                for _ in lines {}
            });
            match receive.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let issuer = line
                        .strip_prefix("listening ")
                        .expect("listening <issuer>")
                        .to_owned();
                    return Provider {
                        child,
                        issuer,
                        config,
                    };
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    stderr_seen = std::fs::read_to_string(log.path()).unwrap_or_default();
                    eprintln!("the provider did not start; again (stderr: {stderr_seen})");
                }
            }
        }
        panic!("the provider never said where it listens; its stderr:\n{stderr_seen}");
    }

    /// Stops it and starts it again on the same port (so with the same issuer) with these
    /// accounts and the redirect URIs added meanwhile: it signs with a new key from now on.
    pub fn restart_with(&mut self, accounts: Value) {
        let mut config = self.config.clone();
        config["accounts"] = accounts;
        self.restart_as(config);
    }

    /// Stops it and starts it again on the same port with `change` applied to its
    /// configuration (what a client registered meanwhile at a real provider, say).
    pub fn restart_changed(&mut self, change: impl FnOnce(&mut Value)) {
        let mut config = self.config.clone();
        change(&mut config);
        self.restart_as(config);
    }

    fn restart_as(&mut self, mut config: Value) {
        config["port"] = json!(self.port());
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Self::start_with(config);
    }

    fn port(&self) -> u16 {
        self.issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("issuer port")
    }

    /// Lets the test client redirect to `uri` (a connection's callback, known only once the
    /// connection exists).
    pub async fn allow_redirect_uri(&mut self, uri: &str) {
        let reply = reqwest::Client::new()
            .post(format!("{}/test/redirect-uri", self.issuer))
            .query(&[("client_id", CLIENT_ID), ("uri", uri)])
            .send()
            .await
            .expect("provider");
        assert!(reply.status().is_success(), "{}", reply.status());
        if let Some(clients) = self.config["clients"].as_array_mut() {
            for client in clients {
                if let Some(uris) = client["redirect_uris"].as_array_mut() {
                    uris.push(json!(uri));
                }
            }
        }
    }

    /// Makes the provider send a back-channel logout token for `sub` to every client that has a
    /// `backchannel_logout_uri`: `{"sent": [client ids reached], "body": the form sent}` (a
    /// client that did not answer 200 makes it fail).
    pub async fn backchannel_logout(&self, sub: &str) -> Value {
        let reply = reqwest::Client::new()
            .post(format!("{}/test/backchannel-logout?sub={sub}", self.issuer))
            .send()
            .await
            .expect("provider");
        let text = reply.text().await.expect("body");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser without JavaScript: follows the provider's redirects with its cookies, and stops
/// at the first redirect back to rolegate.
pub struct Browser {
    http: reqwest::Client,
    jar: std::collections::BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: Default::default(),
        }
    }
}

/// Where the provider sent the browser back: the callback's path and query, and the cookie
/// rolegate's login set (`name=value`).
#[derive(Debug, Clone)]
pub struct Returned {
    pub callback: String,
    pub binding_cookie: String,
}

/// The `name=value` part of each `Set-Cookie`.
pub fn set_cookies(headers: &axum::http::HeaderMap) -> Vec<String> {
    headers
        .get_all(axum::http::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .map(str::to_owned)
        .collect()
}

impl Browser {
    /// From rolegate's 303 to the provider (`location`) to the provider's redirect back to
    /// `public_url`: the callback path and query.
    pub async fn through_provider(&mut self, location: &str, public_url: &str) -> String {
        let mut url = location.to_owned();
        for _ in 0..10 {
            if let Some(path) = url.strip_prefix(public_url.trim_end_matches('/')) {
                return path.to_owned();
            }
            let response = self
                .http
                .get(&url)
                .header("cookie", self.cookie_header())
                .send()
                .await
                .expect("provider answers");
            self.keep_cookies(response.headers());
            let status = response.status();
            let next = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let Some(next) = next else {
                panic!(
                    "the provider stopped at {url}: {status} {}",
                    response.text().await.unwrap_or_default()
                );
            };
            url = if next.starts_with('/') {
                let base = url::Url::parse(&url).expect("url");
                base.join(&next).expect("join").to_string()
            } else {
                next
            };
        }
        panic!("too many redirects from {location}");
    }

    fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for set in headers.get_all("set-cookie") {
            if let Some((name, value)) = set
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .and_then(|p| p.split_once('='))
            {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        cookies.join("; ")
    }

    /// RP-initiated logout at the provider: opens its end-session URL, submits the confirm
    /// form it shows (as a person clicking "Yes, sign me out"), and gives where the provider
    /// sends the browser afterwards. Panics with the provider's page when it refuses.
    pub async fn sign_out_at_provider(&mut self, end_session_url: &str) -> String {
        let response = self
            .http
            .get(end_session_url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("provider answers");
        self.keep_cookies(response.headers());
        let status = response.status();
        let page = response.text().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::OK, "{page}");
        let action = between(&page, "action=\"", "\"").expect("a confirm form");
        let xsrf = between(&page, "name=\"xsrf\" value=\"", "\"").expect("its xsrf field");
        let base = url::Url::parse(end_session_url).expect("url");
        let confirm = base.join(action).expect("join");
        let response = self
            .http
            .post(confirm)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("xsrf={xsrf}&logout=yes"))
            .send()
            .await
            .expect("provider answers");
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match location {
            Some(location) if status.is_redirection() => location,
            _ => panic!(
                "the provider did not sign out: {status} {}",
                response.text().await.unwrap_or_default()
            ),
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}
