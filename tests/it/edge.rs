//! The HTTP edge: client addresses behind trusted proxies (rate limits and the audit log),
//! security headers, request ids, keep-alive, and the `/metrics` token.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use rolegate::config::ServeArgs;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::http::{Reply, Served, request, unlimited};
use crate::common::{Backend, TestApp};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// A request from `from` with extra headers (forwarding headers, a request id, …).
fn from_with(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    from: SocketAddr,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut req = request(method, path, token, body, Some(from));
    for (k, v) in headers {
        req.headers_mut().append(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    req
}

/// The newest audit event with `action`.
async fn newest(app: &TestApp, action: &str) -> Value {
    let reply = app
        .get(&format!("/api/v1/audit?action={action}"), &app.admin_token)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["events"][0].clone()
}

fn proxied_config() -> ServeArgs {
    let mut config = unlimited();
    config.trusted_proxies = "10.0.0.0/8, fd00::/8".parse().expect("proxies");
    config
}

async fn audited_changes_record_the_forwarded_client_behind_a_trusted_proxy(backend: Backend) {
    let app = TestApp::with_config(backend, proxied_config()).await;
    let org = app.org_id;
    // The command line has no client address.
    assert_eq!(newest(&app, "org.create").await["client_addr"], Value::Null);

    // Admin API through a trusted proxy: the client is the first untrusted hop from the right;
    // what the client itself wrote further left is not believed.
    let created = app
        .send(from_with(
            Method::POST,
            "/api/v1/orgs",
            Some(&app.admin_token),
            Some(json!({ "name": "Payments", "parent_id": org })),
            addr("10.1.2.3:40000"),
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.23, 10.9.9.9")],
        ))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let event = newest(&app, "org.create").await;
    assert_eq!(event["target_id"], created.body["id"]);
    assert_eq!(event["client_addr"], "198.51.100.23");

    // The same headers from a peer that is no trusted proxy: the peer is the client.
    let spoofed = app
        .send(from_with(
            Method::POST,
            "/api/v1/orgs",
            Some(&app.admin_token),
            Some(json!({ "name": "Spoofed", "parent_id": org })),
            addr("203.0.113.50:40000"),
            &[
                ("x-forwarded-for", "198.51.100.23"),
                ("forwarded", "for=198.51.100.23"),
            ],
        ))
        .await;
    assert_eq!(spoofed.status, StatusCode::CREATED, "{}", spoofed.text);
    assert_eq!(
        newest(&app, "org.create").await["client_addr"],
        "203.0.113.50"
    );

    // SCIM through an IPv6 proxy speaking RFC 7239.
    let user = app
        .send(from_with(
            Method::POST,
            "/scim/v2/Users",
            Some(&app.scim_token),
            Some(json!({ "userName": "ada@acme.test" })),
            addr("[fd00::1]:443"),
            &[("forwarded", "for=\"[2001:db8::7]:51000\";proto=https")],
        ))
        .await;
    assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
    assert_eq!(
        newest(&app, "scim.user.create").await["client_addr"],
        "2001:db8::7"
    );

    // An invitee accepting their link.
    let secret = app.invitation_link(org, "bob@example.com").await;
    let accepted = app
        .send(from_with(
            Method::POST,
            &format!("/api/v1/invitations/accept?token={secret}"),
            None,
            None,
            addr("10.0.0.7:1234"),
            &[("x-forwarded-for", "192.0.2.44")],
        ))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert_eq!(
        newest(&app, "invitation.accept").await["client_addr"],
        "192.0.2.44"
    );
}

async fn failure_limits_key_on_the_forwarded_client(backend: Backend) {
    let mut config = proxied_config();
    config.auth_failures_per_minute = 3;
    let app = TestApp::with_config(backend, config).await;
    let proxy = addr("10.0.0.1:40000");
    let via = |client: &'static str, token: &str| {
        from_with(
            Method::GET,
            "/scim/v2/ServiceProviderConfig",
            Some(token),
            None,
            proxy,
            &[("x-forwarded-for", client)],
        )
    };
    for _ in 0..3 {
        assert_eq!(
            app.send(via("198.51.100.1", "rg_scim_guess")).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.send(via("198.51.100.1", "rg_scim_guess")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.send(via("198.51.100.2", "rg_scim_guess")).await.status,
        StatusCode::UNAUTHORIZED,
        "another client behind the same proxy is not limited"
    );
    assert_eq!(
        app.send(via("198.51.100.1", &app.scim_token)).await.status,
        StatusCode::OK,
        "and a valid token passes even from the limited one"
    );
}

fn nosniff(reply: &Reply, what: &str) {
    assert_eq!(
        reply
            .headers
            .get("x-content-type-options")
            .map(|v| v.as_bytes()),
        Some(&b"nosniff"[..]),
        "{what}: {:?}",
        reply.headers
    );
}

async fn every_response_says_nosniff(backend: Backend) {
    let app = TestApp::new(backend).await;
    for (method, path, token) in [
        (Method::GET, "/healthz", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/no-such-path", None),
        (Method::POST, "/api/v1/no/such/thing", None),
        (Method::GET, "/api/v1/openapi.json", None),
        (
            Method::GET,
            "/api/v1/tokens",
            Some(app.admin_token.as_str()),
        ),
        (Method::GET, "/api/v1/tokens", None),
        (Method::GET, "/scim/v2/Users", Some(app.scim_token.as_str())),
        (Method::GET, "/scim/v2/Nope", Some(app.scim_token.as_str())),
        (Method::GET, "/scim/v2/Users", Some("rg_scim_wrong")),
        (Method::DELETE, "/healthz", None),
    ] {
        let what = format!("{method} {path}");
        let reply = app.call(method, path, token, None).await;
        nosniff(&reply, &what);
    }
}

async fn responses_carrying_secrets_are_not_stored(backend: Backend) {
    let app = TestApp::new(backend).await;
    let no_store = |reply: &Reply| {
        reply
            .headers
            .get("cache-control")
            .is_some_and(|v| v == "no-store")
    };
    let token = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim" })),
        )
        .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.text);
    assert!(no_store(&token), "{:?}", token.headers);
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/orgs/{}/invitations", app.org_id),
            Some(&app.admin_token),
            Some(json!({ "emails": "erin@example.com" })),
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.text);
    assert!(no_store(&invited), "{:?}", invited.headers);
    let id = invited.body["results"][0]["invitation"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let resent = app
        .call(
            Method::POST,
            &format!("/api/v1/invitations/{id}/resend"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(resent.status, StatusCode::OK, "{}", resent.text);
    assert!(no_store(&resent), "{:?}", resent.headers);
}

async fn only_short_printable_request_ids_are_accepted(backend: Backend) {
    let app = TestApp::new(backend).await;
    let with_id = |method: Method, path: &str, token: &str, body: Option<Value>, id: &str| {
        from_with(
            method,
            path,
            Some(token),
            body,
            addr("127.0.0.1:1"),
            &[("x-request-id", id)],
        )
    };
    let kept = "trace-abc_123:x/y";
    let reply = app
        .send(with_id(Method::GET, "/healthz", "-", None, kept))
        .await;
    assert_eq!(reply.headers["x-request-id"], kept);

    let too_long = "a".repeat(129);
    for bad in [too_long.as_str(), "two words", "tab\there", "café"] {
        let reply = app
            .send(with_id(
                Method::POST,
                "/api/v1/tokens",
                &app.admin_token,
                Some(json!({ "kind": "scim" })),
                bad,
            ))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        let echoed = reply.headers["x-request-id"].to_str().expect("ascii");
        assert_ne!(echoed, bad);
        assert!(
            uuid::Uuid::parse_str(echoed).is_ok(),
            "a fresh id: {echoed}"
        );
        let event = newest(&app, "token.create").await;
        assert_eq!(
            event["request_id"], echoed,
            "the audit log has the fresh id"
        );

        let failed = app
            .send(with_id(
                Method::GET,
                "/scim/v2/Nope",
                &app.scim_token,
                None,
                bad,
            ))
            .await;
        assert_eq!(failed.status, StatusCode::NOT_FOUND);
        let token_id = app.scim_token_id().await;
        let log = app
            .get(
                &format!("/api/v1/tokens/{token_id}/errors"),
                &app.admin_token,
            )
            .await;
        assert_eq!(
            log.body["errors"][0]["request_id"],
            failed.headers["x-request-id"].to_str().expect("ascii"),
            "the SCIM error log has the fresh id"
        );
    }
}

/// A body over the limit is answered (413, in the route's format) without being read to its
/// end, and the response says the connection closes, since the rest is still on the wire.
async fn bodies_over_the_limit_get_413_and_close_the_connection(backend: Backend) {
    let mut config = ServeArgs::for_tests();
    config.body_limit = 1024;
    let app = TestApp::with_config(backend, config).await;
    let announced = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim", "name": "x".repeat(4096) })),
        )
        .await;
    assert_eq!(
        announced.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        announced.text
    );
    assert_eq!(announced.body["error"]["code"], "payload_too_large");
    assert_eq!(announced.headers["connection"], "close");
    // Streamed without a length: read up to the limit, then refused the same way.
    let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 256])));
    let streamed = app
        .send(
            Request::post("/scim/v2/Users")
                .header("authorization", format!("Bearer {}", app.scim_token))
                .header("content-type", "application/scim+json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .expect("request"),
        )
        .await;
    assert_eq!(
        streamed.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        streamed.text
    );
    assert_eq!(streamed.body["scimType"], "tooMany");
    assert_eq!(streamed.headers["connection"], "close");
    // Within the limit: read whole, answered, and the connection kept.
    let small = app
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&app.admin_token),
            Some(json!({ "kind": "scim" })),
        )
        .await;
    assert_eq!(small.status, StatusCode::CREATED);
    assert!(small.headers.get("connection").is_none());
}

/// Unknown admin paths and wrong methods answer in the admin API's one error shape; SCIM keeps
/// its own, and paths outside both stay bare.
async fn unknown_routes_and_methods_answer_in_the_error_shape(backend: Backend) {
    let app = TestApp::new(backend).await;
    let token = Some(app.admin_token.as_str());
    for path in ["/api/v1/nope", "/api/v1", "/api/v1/orgs/x/y/z"] {
        let reply = app.call(Method::GET, path, token, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.body["error"]["code"], "not_found",
            "{path}: {}",
            reply.text
        );
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("openapi.json")),
            "{path}: {}",
            reply.text
        );
    }
    let wrong = app.call(Method::PATCH, "/api/v1/orgs", token, None).await;
    assert_eq!(
        wrong.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        wrong.text
    );
    assert_eq!(
        wrong.body["error"]["code"], "method_not_allowed",
        "{}",
        wrong.text
    );
    let allow = wrong.headers.get("allow").map(|v| v.to_str().unwrap_or(""));
    assert!(allow.is_some_and(|a| a.contains("GET")), "{allow:?}");

    let scim = app.scim(Method::GET, "/Nope", None).await;
    assert_eq!(scim.status, StatusCode::NOT_FOUND);
    assert_eq!(
        scim.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    let elsewhere = app.call(Method::GET, "/api/v10", None, None).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert!(elsewhere.text.is_empty(), "{}", elsewhere.text);
}

crate::on_both_backends!(
    unknown_routes_and_methods_answer_in_the_error_shape,
    bodies_over_the_limit_get_413_and_close_the_connection,
    audited_changes_record_the_forwarded_client_behind_a_trusted_proxy,
    failure_limits_key_on_the_forwarded_client,
    every_response_says_nosniff,
    responses_carrying_secrets_are_not_stored,
    only_short_printable_request_ids_are_accepted,
);

/// With `ROLEGATE_METRICS_TOKEN`, `/metrics` wants that bearer token (and nothing else opens
/// it); without, it is open (see `ops::health_readiness_and_metrics_answer`).
#[tokio::test]
async fn the_metrics_token_guards_metrics() {
    let mut config = ServeArgs::for_tests();
    config.metrics_token = Some("scrape-me-0123456789".parse().expect("token"));
    let app = TestApp::with_config(Backend::Sqlite, config).await;
    for token in [
        None,
        Some("scrape-me"),
        Some("scrape-me-01234567890"),
        Some(app.admin_token.as_str()),
    ] {
        let refused = app.call(Method::GET, "/metrics", token, None).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(refused.headers["www-authenticate"], "Bearer");
        assert!(!refused.text.contains("rolegate_"), "no metrics leak");
        nosniff(&refused, "refused /metrics");
    }
    let scraped = app
        .call(Method::GET, "/metrics", Some("scrape-me-0123456789"), None)
        .await;
    assert_eq!(scraped.status, StatusCode::OK);
    assert!(scraped.text.contains("rolegate_"), "{}", scraped.text);
    assert_eq!(
        app.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK,
        "only /metrics is guarded"
    );
}

/// One HTTP/1.1 response read off a raw connection: status and body length. `None` when the
/// server closed the connection instead of answering.
async fn read_response(conn: &mut BufReader<TcpStream>) -> Option<(u16, usize)> {
    let mut status_line = String::new();
    if conn.read_line(&mut status_line).await.ok()? == 0 {
        return None;
    }
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.ok()?;
    Some((status, length))
}

/// Reported with a plain HTTP client: a POST with a body to an unknown path, repeated on one
/// keep-alive connection, was after a few hundred requests answered by a closed connection.
/// Every request on one connection must get its response. The head and the body are written
/// separately, as most clients do; the body then often arrives after the answer was decided,
/// which is what used to end the connection (see `app::read_body_first`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_on_a_keep_alive_connection_gets_a_response() {
    let app = TestApp::with_config(Backend::Sqlite, unlimited()).await;
    let server = Served::start(app.state.clone()).await;
    let server_addr = server.addr;
    let body = serde_json::json!({ "userName": "x".repeat(300) }).to_string();
    // Unknown paths of each part of the router, and a refused token: answers decided without
    // reading the body.
    let targets = [
        ("/api/v1/no/such/thing", None, &[404][..]),
        (
            "/scim/v2/NoSuchResource",
            Some(app.scim_token.as_str()),
            &[404],
        ),
        ("/no-such-path", None, &[404]),
        ("/scim/v2/Users", Some("rg_scim_wrong"), &[401, 429]),
    ];
    for (path, token, expected) in targets {
        let stream = TcpStream::connect(server_addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut conn = BufReader::new(stream);
        let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
        for i in 0..1000 {
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {server_addr}\r\n{auth}Content-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            if let Err(e) = conn.get_mut().write_all(head.as_bytes()).await {
                panic!("request {i} to {path}: head: {e}");
            }
            if let Err(e) = conn.get_mut().write_all(body.as_bytes()).await {
                panic!("request {i} to {path}: body: {e}");
            }
            let answer = tokio::time::timeout(Duration::from_secs(10), read_response(&mut conn))
                .await
                .expect("answered in time");
            let (status, _) = answer.unwrap_or_else(|| {
                panic!("request {i} to {path}: connection closed without a response")
            });
            assert!(
                expected.contains(&status),
                "request {i} to {path}: {status}"
            );
        }
    }
    server.stopped().await;
}
