//! Every rule of the asset routes (openapi.yaml), through the handlers over the in-memory store (the
//! store contract itself runs against both stores in acl_memory.rs and acl_dynamodb.rs).

use std::sync::Arc;

use access::handler::AccessState;
use admin::handler::{AdminAuth, AdminState};
use chatgate::acl::MemoryStore;
use chatgate::clock::FixedClock;
use chatgate::domain::ConversationNames;
use chatgate_tests::*;
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use sharing::handler::SharingState;

const NOW: u64 = 1_795_000_000;
const ADMIN_KEY: &str = "test-admin-key";

struct Api {
    access: AccessState<MemoryStore>,
    sharing: SharingState<MemoryStore>,
    admin: AdminState<MemoryStore>,
}

impl Api {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let settings = jwt_settings(&[]);
        let mut access = AccessState::from_settings(&settings, store.clone()).expect("access");
        let mut sharing = SharingState::from_settings(&settings, store.clone()).expect("sharing");
        let mut admin =
            AdminState::new(AdminAuth::DevKey(ADMIN_KEY.into()), store, no_twilio(), ConversationNames::development());
        let clock = Arc::new(FixedClock(NOW));
        access.clock = clock.clone();
        sharing.sharing = sharing.sharing.with_clock(clock.clone());
        admin.catalog = admin.catalog.with_clock(clock);
        Self { access, sharing, admin }
    }

    async fn call(&self, method: &str, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let mut builder = lambda_http::http::Request::builder().method(method).uri(format!("http://localhost{path}"));
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req: Request = builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_string()))).expect("request");
        let response: Response<Body> = if path.starts_with("/admin/") {
            admin::handler::handle(&self.admin, req).await
        } else if path.contains("/grants") {
            sharing::handler::handle(&self.sharing, req).await
        } else {
            access::handler::handle(&self.access, req).await
        };
        let status = response.status().as_u16();
        let body = if response.body().is_empty() { Value::Null } else { json_body(&response) };
        if status >= 400 {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json", "{path}");
        }
        (status, body)
    }

    async fn as_user(&self, method: &str, path: &str, user: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, &hs256_session(&claims(user)), body).await
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, ADMIN_KEY, body).await
    }

    async fn role(&self, user: &str, asset: &str) -> Value {
        let (status, body) = self.as_user("GET", &format!("/assets/{asset}/access"), user, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// a-1 owned by ana; designers = {bob}; cy has a direct reader grant.
    async fn scenario() -> Self {
        let api = Self::new();
        assert_eq!(
            api.admin("PUT", "/admin/assets/a-1", Some(json!({"owner": "ana", "type": "document", "name": "Plan"})))
                .await
                .0,
            201
        );
        assert_eq!(api.admin("PUT", "/admin/groups/designers/members/bob", None).await.0, 204);
        let grant = |role: &str| Some(json!({"role": role}));
        assert_eq!(api.as_user("PUT", "/assets/a-1/grants/group:designers", "ana", grant("writer")).await.0, 200);
        assert_eq!(api.as_user("PUT", "/assets/a-1/grants/user:cy", "ana", grant("reader")).await.0, 200);
        api
    }
}

#[tokio::test]
async fn access_answers_role_capabilities_and_path() {
    let api = Api::scenario().await;
    assert_eq!(
        api.role("bob", "a-1").await,
        json!({"asset_id": "a-1", "identity": "bob", "role": "writer", "can_read": true, "can_write": true, "can_share": false, "via": "group:designers"})
    );
    let ana = api.role("ana", "a-1").await;
    assert_eq!(
        (ana["role"].clone(), ana["via"].clone(), ana["can_share"].clone()),
        (json!("owner"), json!("owner"), json!(true))
    );
    let cy = api.role("cy", "a-1").await;
    assert_eq!(
        (cy["role"].clone(), cy["via"].clone(), cy["can_write"].clone()),
        (json!("reader"), json!("user"), json!(false))
    );
    let dan = api.role("dan", "a-1").await;
    assert_eq!(
        (dan["role"].clone(), dan["via"].clone(), dan["can_read"].clone()),
        (json!("none"), Value::Null, json!(false))
    );
}

#[tokio::test]
async fn a_missing_asset_is_role_none_never_404() {
    let api = Api::scenario().await;
    assert_eq!(api.role("ana", "no-such-asset").await["role"], "none");
}

#[tokio::test]
async fn the_identity_comes_from_the_session_only() {
    let api = Api::scenario().await;
    // IDOR attempts: the acting user in the path, query or body is ignored or refused.
    let (status, body) = api.as_user("GET", "/assets/a-1/access?identity=bob", "dan", None).await;
    assert_eq!((status, body["identity"].clone(), body["role"].clone()), (200, json!("dan"), json!("none")));
    let (status, _) =
        api.as_user("POST", "/access/check", "dan", Some(json!({"asset_ids": ["a-1"], "identity": "bob"}))).await;
    assert_eq!(status, 400, "unknown body fields are refused");
    let (status, _) = api.call("GET", "/assets/a-1/access", "not-a-session", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn batch_check_answers_in_request_order() {
    let api = Api::scenario().await;
    let (status, body) = api.as_user("POST", "/access/check", "bob", Some(json!({"asset_ids": ["nope", "a-1"]}))).await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!((results[0]["asset_id"].clone(), results[0]["role"].clone()), (json!("nope"), json!("none")));
    assert_eq!((results[1]["asset_id"].clone(), results[1]["role"].clone()), (json!("a-1"), json!("writer")));
}

#[tokio::test]
async fn batch_limits_and_bad_ids_are_400() {
    let api = Api::scenario().await;
    let ids = |n: usize| json!({"asset_ids": (0..n).map(|i| format!("x-{i}")).collect::<Vec<_>>()});
    assert_eq!(api.as_user("POST", "/access/check", "bob", Some(ids(100))).await.0, 200);
    for body in [
        ids(0),
        ids(101),
        json!({"asset_ids": ["a", "a"]}),
        json!({"asset_ids": [""]}),
        json!({"asset_ids": ["x".repeat(257)]}),
        json!({"asset_ids": "a-1"}),
        json!({}),
    ] {
        let (status, problem) = api.as_user("POST", "/access/check", "bob", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["code"], "bad_request");
    }
    let (status, _) = api.as_user("POST", "/access/check", "bob", None).await;
    assert_eq!(status, 400, "the body is required");
    let (status, _) = api.as_user("GET", "/assets/%00/access", "bob", None).await;
    assert_eq!(status, 400);
    let (status, _) = api.as_user("GET", &format!("/assets/{}/access", "y".repeat(257)), "bob", None).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn awkward_asset_ids_round_trip_through_the_path() {
    let api = Api::new();
    let id = "doc#1/ü:x";
    let encoded = "doc%231%2F%C3%BC%3Ax";
    assert_eq!(
        api.admin("PUT", &format!("/admin/assets/{encoded}"), Some(json!({"owner": "ana", "type": "image"}))).await.0,
        201
    );
    let body = api.role("ana", encoded).await;
    assert_eq!((body["asset_id"].clone(), body["role"].clone()), (json!(id), json!("owner")));
    assert_eq!(api.role("ana", "doc%231").await["role"], "none", "a prefix of the id is another asset");
}

#[tokio::test]
async fn only_the_owner_shares() {
    let api = Api::scenario().await;
    let body = Some(json!({"role": "reader"}));
    for user in ["bob", "cy", "dan"] {
        let (status, problem) = api.as_user("PUT", "/assets/a-1/grants/user:eve", user, body.clone()).await;
        assert_eq!((status, problem["detail"].clone()), (403, json!("only the owner can share this asset")), "{user}");
        assert_eq!(api.as_user("DELETE", "/assets/a-1/grants/user:cy", user, None).await.0, 403, "{user}");
    }
    assert_eq!(api.role("eve", "a-1").await["role"], "none");
    assert_eq!(api.role("cy", "a-1").await["role"], "reader", "refused revocations changed nothing");
    // Unknown assets look exactly like someone else's: 403, no oracle.
    assert_eq!(api.as_user("PUT", "/assets/missing/grants/user:eve", "ana", body).await.0, 403);
}

#[tokio::test]
async fn granting_to_the_owner_is_400() {
    let api = Api::scenario().await;
    let (status, problem) =
        api.as_user("PUT", "/assets/a-1/grants/user:ana", "ana", Some(json!({"role": "reader"}))).await;
    assert_eq!((status, problem["code"].clone()), (400, json!("bad_request")));
}

#[tokio::test]
async fn grant_bodies_and_principals_are_checked() {
    let api = Api::scenario().await;
    for (principal, body) in [
        ("user:eve", json!({"role": "owner"})),
        ("user:eve", json!({"role": "admin"})),
        ("user:eve", json!({"role": "reader", "expires_at": "tomorrow"})),
        ("user:eve", json!({"role": "reader", "expires_at": "2020-01-01T00:00:00Z"})),
        ("user:eve", json!({"role": "reader", "extra": 1})),
        ("eve", json!({"role": "reader"})),
        ("team:eve", json!({"role": "reader"})),
        ("user:", json!({"role": "reader"})),
    ] {
        let (status, problem) =
            api.as_user("PUT", &format!("/assets/a-1/grants/{principal}"), "ana", Some(body.clone())).await;
        assert_eq!(status, 400, "{principal} {body}: {problem}");
    }
    let (status, _) = api.as_user("POST", "/assets/a-1/grants/user:eve", "ana", Some(json!({"role": "reader"}))).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn grants_expire_and_are_listed_with_their_expiry() {
    let api = Api::scenario().await;
    let (status, body) = api
        .as_user(
            "PUT",
            "/assets/a-1/grants/user:eve",
            "ana",
            Some(json!({"role": "writer", "expires_at": "2026-11-18T12:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"asset_id": "a-1", "principal": "user:eve", "role": "writer", "expires_at": "2026-11-18T12:00:00Z"})
    );
    assert_eq!(api.role("eve", "a-1").await["role"], "writer");

    let (status, listing) = api.as_user("GET", "/assets/a-1/grants", "bob", None).await;
    assert_eq!(status, 200, "writers may list");
    assert_eq!(listing["owner"], "ana");
    assert_eq!(
        listing["grants"],
        json!([
            {"principal": "group:designers", "role": "writer", "expires_at": null},
            {"principal": "user:cy", "role": "reader", "expires_at": null},
            {"principal": "user:eve", "role": "writer", "expires_at": "2026-11-18T12:00:00Z"},
        ])
    );
    assert_eq!(api.as_user("GET", "/assets/a-1/grants", "cy", None).await.0, 403, "readers may not list");
    assert_eq!(api.as_user("GET", "/assets/missing/grants", "ana", None).await.0, 403);

    // Past its expiry the grant counts as absent everywhere.
    let mut later = AccessState::from_settings(&jwt_settings(&[]), api.access.store.clone()).expect("access");
    later.clock = Arc::new(FixedClock(1_795_003_600));
    let req = lambda_http::http::Request::builder()
        .uri("http://localhost/assets/a-1/access")
        .header(header::AUTHORIZATION, format!("Bearer {}", hs256_session(&claims("eve"))))
        .body(Body::Empty)
        .expect("request");
    let facts_after = access::handler::handle(&later, req).await;
    assert_eq!(json_body(&facts_after)["role"], "none");
}

#[tokio::test]
async fn revocation_is_effective_on_the_next_request() {
    let api = Api::scenario().await;
    assert_eq!(api.role("cy", "a-1").await["role"], "reader");
    assert_eq!(api.as_user("DELETE", "/assets/a-1/grants/user:cy", "ana", None).await.0, 204);
    assert_eq!(api.role("cy", "a-1").await["role"], "none");
    assert_eq!(
        api.as_user("DELETE", "/assets/a-1/grants/user:cy", "ana", None).await.0,
        204,
        "also when there was no grant"
    );
    assert_eq!(api.admin("DELETE", "/admin/groups/designers/members/bob", None).await.0, 204);
    assert_eq!(api.role("bob", "a-1").await["role"], "none");
}

#[tokio::test]
async fn admin_routes_manage_assets_and_groups() {
    let api = Api::scenario().await;
    let (status, body) =
        api.admin("PUT", "/admin/assets/a-1", Some(json!({"owner": "bob", "type": "video", "name": "Cut"}))).await;
    assert_eq!((status, body), (200, json!({"asset_id": "a-1", "owner": "bob", "type": "video", "name": "Cut"})));
    assert_eq!(api.role("bob", "a-1").await["role"], "owner");
    assert_eq!(api.role("cy", "a-1").await["role"], "reader", "changing the owner keeps grants");
    assert_eq!(api.role("ana", "a-1").await["role"], "none");

    let (status, members) = api.admin("GET", "/admin/groups/designers/members", None).await;
    assert_eq!((status, members), (200, json!({"group_id": "designers", "members": ["bob"]})));

    assert_eq!(api.admin("DELETE", "/admin/assets/a-1", None).await.0, 204);
    assert_eq!(api.role("cy", "a-1").await["role"], "none");
    assert_eq!(api.admin("PUT", "/admin/assets/a-1", Some(json!({"owner": "ana", "type": "document"}))).await.0, 201);
    assert_eq!(api.role("cy", "a-1").await["role"], "none", "a recreated asset does not inherit old grants");
}

#[tokio::test]
async fn admin_bodies_and_keys_are_checked() {
    let api = Api::new();
    for body in [
        json!({"owner": "ana", "type": "pdf"}),
        json!({"owner": "", "type": "document"}),
        json!({"owner": format!("US{}", "0a".repeat(16)), "type": "document"}),
        json!({"owner": "ana", "type": "document", "name": "x".repeat(1025)}),
        json!({"owner": "ana", "type": "document", "colour": "red"}),
        json!({"type": "document"}),
    ] {
        assert_eq!(api.admin("PUT", "/admin/assets/a-9", Some(body.clone())).await.0, 400, "{body}");
    }
    assert_eq!(api.admin("PUT", "/admin/groups/g/members/US0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a", None).await.0, 400);
    assert_eq!(api.call("PUT", "/admin/groups/g/members/u", "wrong-key", None).await.0, 401);
    assert_eq!(api.as_user("PUT", "/admin/groups/g/members/u", "ana", None).await.0, 401);
    assert_eq!(api.admin("GET", "/admin/nothing", None).await.0, 404);
}

#[tokio::test]
async fn in_aws_the_admin_routes_require_an_iam_signed_request() {
    let store = Arc::new(MemoryStore::new());
    let admin = AdminState::new(AdminAuth::Iam, store, no_twilio(), ConversationNames::development());
    let req = apigw_request(Some(json!({"sub": "u-1"})), None);
    let response = admin::handler::handle(&admin, req).await;
    assert_eq!(response.status(), 403, "a JWT-authorised request is not an IAM-signed one");
}
