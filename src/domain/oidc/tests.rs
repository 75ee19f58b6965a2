use chrono::TimeZone;
use serde_json::json;

use super::*;

fn at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0).single().unwrap()
}

fn expected<'a>(issuer: &'a str, tenants: &'a [String]) -> Expected<'a> {
    Expected {
        issuer,
        allowed_tenants: tenants,
        client_id: "rg",
        nonce: "n-1",
        now: at(),
        access_token: Some("at-1"),
        alg: "RS256",
        require_mfa: false,
        groups_claim: "groups",
    }
}

fn claims() -> Value {
    json!({
        "iss": "https://idp.example", "sub": "alice", "aud": "rg", "nonce": "n-1",
        "exp": 1_800_000_300, "iat": 1_800_000_000, "email": "a@example.com",
        "email_verified": true, "groups": ["eng", "eng", " ops "], "sid": "s-1",
    })
}

fn check(c: &Value) -> Result<Verified, TokenRefusal> {
    check_id_token(c, &expected("https://idp.example", &[]))
}

fn with(key: &str, value: Value) -> Value {
    let mut c = claims();
    c[key] = value;
    c
}

#[test]
fn a_good_token_gives_the_person_and_their_groups_once_each() {
    let v = check(&claims()).unwrap();
    assert_eq!(v.subject, "alice");
    assert!(v.email_verified);
    assert_eq!(v.sid.as_deref(), Some("s-1"));
    assert_eq!(v.groups, Groups::Values(vec!["eng".into(), "ops".into()]));
}

#[test]
fn each_claim_check_refuses_with_its_own_code() {
    let cases = [
        (
            with("iss", json!("https://evil.example")),
            "id_token_issuer_mismatch",
        ),
        (
            with("aud", json!("someone-else")),
            "id_token_audience_mismatch",
        ),
        (with("aud", json!(["rg", "other"])), "id_token_azp_mismatch"),
        (with("azp", json!("other")), "id_token_azp_mismatch"),
        (
            with("exp", json!(1_800_000_000 - LEEWAY_SECS - 1)),
            "id_token_expired",
        ),
        (
            with("iat", json!(1_800_000_000 + LEEWAY_SECS + 1)),
            "id_token_issued_in_future",
        ),
        (with("nonce", json!("n-2")), "id_token_nonce_mismatch"),
        (with("at_hash", json!("AAAA")), "id_token_at_hash_mismatch"),
        (with("sub", json!("")), "id_token_missing_claim"),
    ];
    for (c, code) in cases {
        assert_eq!(check(&c).unwrap_err().code(), code, "{c}");
    }
    let mut no_nonce = claims();
    no_nonce.as_object_mut().unwrap().remove("nonce");
    assert_eq!(check(&no_nonce).unwrap_err(), TokenRefusal::NonceMismatch);
    // Within the leeway, and with several audiences when azp is us.
    assert!(check(&with("exp", json!(1_800_000_000 - 60))).is_ok());
    let mut multi = with("aud", json!(["rg", "other"]));
    multi["azp"] = json!("rg");
    assert!(check(&multi).is_ok());
}

#[test]
fn at_hash_is_the_left_half_of_the_access_tokens_hash() {
    // OIDC Core's example (§A.3): access token and at_hash for RS256.
    assert_eq!(
        at_hash("RS256", "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y").as_deref(),
        Some("77QmUPtjPfzWtF2AnpK9RQ")
    );
    let good = at_hash("RS256", "at-1").unwrap();
    assert!(check(&with("at_hash", json!(good))).is_ok());
}

#[test]
fn require_mfa_wants_a_second_factor_in_amr() {
    let mut e = expected("https://idp.example", &[]);
    e.require_mfa = true;
    for (amr, ok) in [
        (json!(["pwd"]), false),
        (json!(["pwd", "kba"]), false),
        (json!(["pin"]), false),
        (json!(["pwd", "mfa"]), true),
        (json!(["pwd", "otp"]), true),
        (json!(["hwk"]), true),
        (json!(["pin", "swk"]), true),
    ] {
        let r = check_id_token(&with("amr", amr.clone()), &e);
        assert_eq!(r.is_ok(), ok, "{amr}");
        if !ok {
            assert!(r.unwrap_err().is_policy());
        }
    }
    assert!(check_id_token(&claims(), &e).is_err(), "no amr at all");
}

#[test]
fn entra_multi_tenant_issuers_need_an_allowed_tenant_and_emails_need_xms_edov() {
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let tenants = vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()];
    let e = expected(template, &tenants);
    let ok = with(
        "iss",
        json!("https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"),
    );
    let v = check_id_token(&ok, &e).unwrap();
    assert!(
        !v.email_verified,
        "Entra's email_verified alone is no proof"
    );
    let mut edov = ok.clone();
    edov["xms_edov"] = json!("True");
    assert!(check_id_token(&edov, &e).unwrap().email_verified);
    let other = with(
        "iss",
        json!("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001/v2.0"),
    );
    assert_eq!(
        check_id_token(&other, &e).unwrap_err(),
        TokenRefusal::TenantNotAllowed
    );
    let bent = with("iss", json!("https://login.microsoftonline.com/a/b/v2.0"));
    assert_eq!(
        check_id_token(&bent, &e).unwrap_err(),
        TokenRefusal::IssuerMismatch
    );
}

#[test]
fn entra_group_overage_is_detected() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("groups");
    c["_claim_names"] = json!({"groups": "src1"});
    c["_claim_sources"] = json!({"src1": {"endpoint": "https://graph.microsoft.com/x"}});
    assert_eq!(check(&c).unwrap().groups, Groups::Overage);
    assert_eq!(
        check(&with("hasgroups", json!(true))).unwrap().groups,
        Groups::Overage
    );
    let mut none = claims();
    none.as_object_mut().unwrap().remove("groups");
    assert_eq!(check(&none).unwrap().groups, Groups::Absent);
}

#[test]
fn userinfo_is_merged_only_when_its_sub_is_the_tokens() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("email");
    let mut v = check(&c).unwrap();
    assert!(!merge_userinfo(
        &mut v,
        &json!({"sub": "mallory", "email": "m@x.io"}),
        "groups"
    ));
    assert_eq!(v.email, None);
    assert!(merge_userinfo(
        &mut v,
        &json!({"sub": "alice", "email": "a@x.io", "email_verified": true}),
        "groups"
    ));
    assert_eq!(v.email.as_deref(), Some("a@x.io"));
}

#[test]
fn return_to_is_only_a_path_of_this_service() {
    assert_eq!(safe_return_to(None).unwrap(), "/console/");
    assert_eq!(
        safe_return_to(Some("/console/x?y=1")).unwrap(),
        "/console/x?y=1"
    );
    for bad in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:x",
        "console",
    ] {
        assert!(safe_return_to(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn domains_and_scopes_are_normalized() {
    assert_eq!(normalize_domain(" @Example.COM ").unwrap(), "example.com");
    for bad in ["localhost", "a..b", ".a.b", "a b.c", ""] {
        assert!(normalize_domain(bad).is_err(), "{bad}");
    }
    assert_eq!(
        normalize_scopes("email profile email"),
        ["openid", "email", "profile"]
    );
}

#[test]
fn the_end_session_url_carries_the_hint_the_client_and_where_to_return() {
    let url = end_session_url(
        "https://idp.example/oauth2/v1/logout?tenant=a",
        "client 1",
        Some("hdr.claims.sig"),
        "https://rolegate.example/auth/signed-out",
    )
    .expect("url");
    assert_eq!(
        url,
        "https://idp.example/oauth2/v1/logout?tenant=a&id_token_hint=hdr.claims.sig\
         &client_id=client+1&post_logout_redirect_uri=https%3A%2F%2Frolegate.example%2Fauth%2Fsigned-out"
    );
    let without_hint =
        end_session_url("https://idp.example/logout", "c", None, "https://r/x").expect("url");
    assert!(!without_hint.contains("id_token_hint"), "{without_hint}");
    assert_eq!(
        end_session_url("javascript:alert(1)", "c", None, "https://r/x"),
        None
    );
    assert_eq!(end_session_url("not a url", "c", None, "https://r/x"), None);
}

#[test]
fn a_connection_issues_its_issuer_or_its_allowed_entra_tenants() {
    let mut c = Connection {
        id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        org_id: uuid::Uuid::nil(),
        issuer: "https://login.microsoftonline.com/{tenantid}/v2.0".into(),
        client_id: "c".into(),
        client_auth: ClientAuth::ClientSecretBasic,
        has_client_secret: true,
        public_jwk: None,
        groups_claim: "groups".into(),
        scopes: vec!["openid".into()],
        provisioning: Provisioning::Hybrid,
        require_mfa: false,
        domains: Vec::new(),
        allowed_tenants: vec!["T1".into()],
        created_at: crate::domain::now(),
        updated_at: crate::domain::now(),
    };
    assert!(connection_issues(
        &c,
        "https://login.microsoftonline.com/t1/v2.0"
    ));
    assert!(!connection_issues(
        &c,
        "https://login.microsoftonline.com/t2/v2.0"
    ));
    assert!(!connection_issues(&c, "https://evil.example/t1/v2.0"));
    c.issuer = "https://idp.example".into();
    assert!(connection_issues(&c, "https://idp.example"));
    assert!(!connection_issues(&c, "https://idp.example/other"));
}
