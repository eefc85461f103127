//! A tenant deployment (docs/tenancy.md): two organisations, `acme` and `globex`, whose users,
//! assets, groups and rooms have the same ids, and nothing of one ever reaches the other through
//! the routes or the guard. Each tenant's sessions carry its organisation in `org_id`.

use std::sync::Arc;

use access::handler::AccessState;
use admin::handler::{AdminAuth, AdminState};
use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{
    AclReader, BudgetLimits, CatalogWriter, ConversationsStore, DynamoStore, GrantWriter, KeyLayout, MemoryStore,
};
use chatgate::clock::ManualClock;
use chatgate::config::TwilioSecrets;
use chatgate::domain::{AssetType, ConversationNames, Grant, Principal, Role, Tenant, TenantId};
use chatgate::guard::{Event, MessageGuard};
use chatgate::reconcile::{Reconciler, local};
use chatgate_tests::acl_contract::NOW;
use chatgate_tests::dynamo::{dynamo_local, sdk_config, test_store_in, unique_table_name};
use chatgate_tests::*;
use conversations::handler::ConversationsState;
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use sharing::handler::SharingState;
use twilio_standin::{StandIn, StandInConfig};

const TENANTS: [&str; 2] = ["acme", "globex"];

fn tenant(name: &str) -> Tenant {
    Tenant::Of(TenantId::try_from(name).expect("tenant"))
}

/// What the scenarios need of a store: every route's, the guard's and the seeding's.
trait TenantStore: ConversationsStore + AclReader + GrantWriter + CatalogWriter + 'static {}

impl<S: ConversationsStore + AclReader + GrantWriter + CatalogWriter + 'static> TenantStore for S {}

/// The in-memory store.
fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

/// A fresh table in DynamoDB Local, with a tenant deployment's key layout.
async fn dynamodb() -> Arc<DynamoStore> {
    let store =
        Arc::new(test_store_in(&dynamo_local().endpoint, &unique_table_name("tenants"), KeyLayout::Tenants).await);
    store.create_table().await.expect("table");
    store
}

/// Each scenario, on the in-memory store and on DynamoDB Local.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_memory() {
                super::$scenario(super::World::over(super::memory()).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_dynamodb() {
                super::$scenario(super::World::over(super::dynamodb().await).await).await;
            }
        }
    )*};
}

on_both_stores!(
    the_same_ids_in_two_tenants_are_two_people_and_two_conversations,
    an_asset_is_only_its_own_tenants_to_check_share_and_talk_about,
    a_room_is_its_own_tenants,
    the_guard_reads_every_reference_in_its_authors_tenant,
    a_tenant_deployments_ids_fit_twilio_and_the_table_whatever_the_tenant,
    the_admin_routes_are_each_tenants_own,
    one_tenant_cannot_spend_anothers_new_conversations,
);

struct World<S> {
    standin: StandIn,
    store: Arc<S>,
    conversations: ConversationsState<S>,
    access: AccessState<S>,
    sharing: SharingState<S>,
    guard: MessageGuard<S>,
}

impl<S: TenantStore> World<S> {
    /// Both tenants have a user `ana` who owns an asset `a-1`, a user `bob`, a group `eng`
    /// with `bob` in it, and a room `support`.
    async fn over(store: Arc<S>) -> Self {
        let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
        let role_sid = standin.role_by_name("service user").expect("default role").sid;
        let settings = jwt_settings(&[("TWILIO_API_BASE", &standin.base_url), ("TWILIO_USER_ROLE_SID", &role_sid)]);
        let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
        let clock = Arc::new(ManualClock::at(NOW));
        let mut conversations =
            ConversationsState::from_settings(&settings, &secrets, store.clone()).expect("conversations");
        conversations.sessions = tenant_sessions();
        conversations.conversations = conversations.conversations.with_clock(clock.clone());
        let mut access = AccessState::from_settings(&settings, store.clone()).expect("access");
        access.sessions = tenant_sessions();
        access.clock = clock.clone();
        let mut sharing = SharingState::from_settings(&settings, store.clone()).expect("sharing");
        sharing.sessions = tenant_sessions();
        sharing.sharing = sharing.sharing.with_clock(clock.clone());
        let guard = MessageGuard::new(store.clone(), twilio_client(&standin.base_url), clock).with_tenants(true);
        for name in TENANTS {
            let t = tenant(name);
            let a1 = t.asset("a-1").expect("asset");
            store.put_asset(&a1, &t.user("ana").expect("ana"), AssetType::Document, name, NOW).await.expect("asset");
            let (eng, bob) = (t.group("eng").expect("group"), t.user("bob").expect("bob"));
            store.add_member(&eng, &bob).await.expect("member");
            let room = t.room("support").expect("room");
            standin
                .create_conversation(Some(&room.unique_name()), Some("Support"), Some(r#"{"type":"room"}"#))
                .expect("room");
        }
        Self { standin, store, conversations, access, sharing, guard }
    }

    async fn call<F, Fut>(
        &self,
        handle: F,
        tenant: &str,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value)
    where
        F: FnOnce(Request) -> Fut,
        Fut: std::future::Future<Output = Response<Body>>,
    {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", hs256_session(&tenant_claims(tenant, user))));
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req = builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_string()))).expect("request");
        let response = handle(req).await;
        (response.status().as_u16(), json_body(&response))
    }

    async fn conversation(&self, tenant: &str, user: &str, body: Value) -> (u16, Value) {
        self.call(
            |r| conversations::handler::handle(&self.conversations, r),
            tenant,
            user,
            "POST",
            "/conversations",
            Some(body),
        )
        .await
    }

    async fn listing(&self, tenant: &str, user: &str) -> Value {
        let (status, listing) = self
            .call(
                |r| conversations::handler::handle(&self.conversations, r),
                tenant,
                user,
                "GET",
                "/conversations",
                None,
            )
            .await;
        assert_eq!(status, 200, "{listing}");
        listing
    }

    async fn access(&self, tenant: &str, user: &str, asset: &str) -> Value {
        let path = format!("/assets/{asset}/access");
        let (status, answer) =
            self.call(|r| access::handler::handle(&self.access, r), tenant, user, "GET", &path, None).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn sharing(&self, tenant: &str, user: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(|r| sharing::handler::handle(&self.sharing, r), tenant, user, method, path, body).await
    }

    fn twilio_identities(&self, sid: &str) -> Vec<String> {
        sorted_identities(&self.standin, sid)
    }
}

/// Who is in a conversation of the stand-in, sorted.
fn sorted_identities(standin: &StandIn, conversation: &str) -> Vec<String> {
    let mut ids: Vec<String> =
        standin.conversation(conversation).expect("conversation").identities().into_iter().map(str::to_owned).collect();
    ids.sort();
    ids
}

fn event(pairs: &[(&str, &str)]) -> Event {
    Event(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

async fn the_same_ids_in_two_tenants_are_two_people_and_two_conversations<S: TenantStore>(w: World<S>) {
    let mut sids = Vec::new();
    for t in TENANTS {
        let (status, direct) = w.conversation(t, "ana", json!({"type": "direct", "participant": "bob"})).await;
        assert_eq!(status, 201, "{t}: a new conversation in each tenant: {direct}");
        let sid = direct["sid"].as_str().expect("sid").to_owned();
        // Twilio knows them by their qualified identity; the answer names them as the tenant does.
        assert_eq!(w.twilio_identities(&sid), [format!("{t}~ana"), format!("{t}~bob")]);
        let shown: Vec<&str> = direct["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .map(|p| p["identity"].as_str().expect("id"))
            .collect();
        assert_eq!(shown, ["ana", "bob"]);
        assert_eq!(direct["friendly_name"], "ana & bob");
        sids.push(sid);
    }
    assert_ne!(sids[0], sids[1]);
    // Each tenant's listing holds its own conversation only, its participants relative.
    for (t, sid) in TENANTS.iter().zip(&sids) {
        let listing = w.listing(t, "bob").await;
        let listed = listing["conversations"].as_array().expect("conversations");
        assert_eq!(listed.len(), 1, "{t}: {listing}");
        assert_eq!(listed[0]["sid"].as_str(), Some(sid.as_str()));
        assert_eq!(listed[0]["participants"], json!(["ana", "bob"]));
    }
}

async fn an_asset_is_only_its_own_tenants_to_check_share_and_talk_about<S: TenantStore>(w: World<S>) {
    // acme's ana shares acme's a-1 with acme's group eng.
    let (status, put) =
        w.sharing("acme", "ana", "PUT", "/assets/a-1/grants/group:eng", Some(json!({"role": "reader"}))).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!((put["asset_id"].clone(), put["principal"].clone()), (json!("a-1"), json!("group:eng")));
    // acme's bob reads it through acme's eng; globex's bob, in globex's eng, does not.
    let acme = w.access("acme", "bob", "a-1").await;
    assert_eq!(
        (acme["can_read"].clone(), acme["via"].clone(), acme["asset_id"].clone()),
        (json!(true), json!("group:eng"), json!("a-1"))
    );
    assert_eq!(acme["identity"], "bob");
    let globex = w.access("globex", "bob", "a-1").await;
    assert_eq!((globex["can_read"].clone(), globex["role"].clone()), (json!(false), json!("none")));
    // Each owner sees their own asset's grants only.
    let (_, grants) = w.sharing("acme", "ana", "GET", "/assets/a-1/grants", None).await;
    assert_eq!((grants["owner"].clone(), grants["grants"][0]["principal"].clone()), (json!("ana"), json!("group:eng")));
    let (status, theirs) = w.sharing("globex", "ana", "GET", "/assets/a-1/grants", None).await;
    assert_eq!((status, theirs["grants"].clone()), (200, json!([])), "globex's a-1 has no grant");
    // A principal is always the caller's tenant's: writing another tenant's id only names a user
    // of one's own tenant with that odd name, never globex's bob.
    let (status, _) =
        w.sharing("acme", "ana", "PUT", "/assets/a-1/grants/user:globex~bob", Some(json!({"role": "reader"}))).await;
    assert_eq!(status, 200);
    assert_eq!(w.access("globex", "bob", "a-1").await["can_read"], false);
    // The asset's conversation: acme's bob joins acme's; globex's bob cannot join globex's a-1.
    let (status, joined) = w.conversation("acme", "bob", json!({"type": "asset", "asset_id": "a-1"})).await;
    assert_eq!(status, 201, "{joined}");
    assert_eq!(joined["asset_id"], "a-1");
    let sid = joined["sid"].as_str().expect("sid");
    assert_eq!(w.twilio_identities(sid), ["acme~bob"]);
    let (status, refused) = w.conversation("globex", "bob", json!({"type": "asset", "asset_id": "a-1"})).await;
    assert_eq!(status, 403, "{refused}");
    // acme's ana cannot bring globex's users in either: a participant is named in her tenant, so
    // `globex~bob` is the acme user of that name she shared with above, never globex's bob.
    let (status, added) = w
        .conversation("acme", "ana", json!({"type": "asset", "asset_id": "a-1", "participants": ["globex~bob"]}))
        .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(w.twilio_identities(sid), ["acme~ana", "acme~bob", "acme~globex~bob"]);
    let (status, _) = w
        .conversation("acme", "ana", json!({"type": "asset", "asset_id": "a-1", "participants": ["globex~ana"]}))
        .await;
    assert_eq!(status, 403, "acme~globex~ana cannot read acme's a-1");
}

async fn a_room_is_its_own_tenants<S: TenantStore>(w: World<S>) {
    for t in TENANTS {
        let (status, joined) = w.conversation(t, "bob", json!({"type": "room", "name": "support"})).await;
        assert_eq!(status, 200, "{t}: {joined}");
        let sid = joined["sid"].as_str().expect("sid");
        assert_eq!(w.twilio_identities(sid), [format!("{t}~bob")]);
    }
    // Naming another tenant's room is refused as a name, before any Twilio call.
    let (status, _) = w.conversation("acme", "bob", json!({"type": "room", "name": "globex~support"})).await;
    assert_eq!(status, 400);
}

async fn the_guard_reads_every_reference_in_its_authors_tenant<S: TenantStore>(w: World<S>) {
    let reader = Grant {
        principal: Principal::User(tenant("acme").user("bob").expect("bob")),
        role: Role::Reader,
        expires_at: None,
        generation: w
            .store
            .asset_record(&tenant("acme").asset("a-1").expect("a-1"))
            .await
            .expect("read")
            .expect("asset")
            .generation,
    };
    let record = w.store.asset_record(&tenant("acme").asset("a-1").expect("a-1")).await.expect("read").expect("asset");
    w.store.put_grant(&record, &reader, NOW).await.expect("grant");
    let (_, direct) = w.conversation("acme", "ana", json!({"type": "direct", "participant": "bob"})).await;
    let sid = direct["sid"].as_str().expect("sid");
    let reference = r#"{"assetRef":"a-1","assetType":"document","permissions":"inherited"}"#;
    let message = |author: &str| {
        event(&[
            ("EventType", "onMessageAdd"),
            ("ClientIdentity", author),
            ("ConversationSid", sid),
            ("Attributes", reference),
        ])
    };
    // acme's bob may reference acme's a-1; globex's bob, whose a-1 he cannot read either, may not.
    assert!(w.guard.judge(&message("acme~bob")).await.expect("decides").is_ok());
    let refused = w.guard.judge(&message("globex~bob")).await.expect("decides").expect_err("globex's a-1");
    assert_eq!(refused.asset.map(|a| a.to_string()), Some("globex~a-1".into()));
    // An identity of no tenant (nothing chatgate minted) cannot reference an asset. A plain message
    // by an author of no tenant (the REST API's `system`, an SMS number) references nothing and
    // has no offboarding to check: it stands, as it does in a single-tenant deployment.
    assert!(w.guard.judge(&message("bob")).await.expect("decides").is_err());
    let plain = event(&[("EventType", "onMessageAdd"), ("Author", "system"), ("ConversationSid", sid)]);
    assert!(w.guard.judge(&plain).await.expect("decides").is_ok());

    // Joining another tenant's asset conversation or room is refused, whatever the role allows.
    let (_, about) = w.conversation("acme", "bob", json!({"type": "asset", "asset_id": "a-1"})).await;
    let join = |conversation: &str, who: &str| {
        event(&[
            ("EventType", "onParticipantAdd"),
            ("ClientIdentity", who),
            ("Identity", who),
            ("ConversationSid", conversation),
        ])
    };
    let asset_conversation = about["sid"].as_str().expect("sid");
    assert!(w.guard.judge(&join(asset_conversation, "acme~bob")).await.expect("decides").is_ok());
    assert!(w.guard.judge(&join(asset_conversation, "globex~bob")).await.expect("decides").is_err());
    let room = w.standin.conversation("room:acme~support").expect("room").sid;
    assert!(w.guard.judge(&join(&room, "acme~bob")).await.expect("decides").is_ok());
    assert!(w.guard.judge(&join(&room, "globex~bob")).await.expect("decides").is_err());
}

async fn a_tenant_deployments_ids_fit_twilio_and_the_table_whatever_the_tenant<S: TenantStore>(w: World<S>) {
    let long = "u".repeat(chatgate::domain::MAX_TENANT_USER_CHARS + 1);
    let (status, problem) = w.conversation("acme", "ana", json!({"type": "direct", "participant": long})).await;
    assert_eq!(status, 400, "{problem}");
    let fits = "u".repeat(chatgate::domain::MAX_TENANT_USER_CHARS);
    let (status, created) = w.conversation("acme", "ana", json!({"type": "direct", "participant": fits})).await;
    assert_eq!(status, 201, "{created}");
    // Asset ids too: whatever the tenant, at most 191 bytes, so every key fits the table.
    let long = "a".repeat(chatgate::domain::MAX_TENANT_ID_BYTES + 1);
    let (status, problem) = w.conversation("acme", "ana", json!({"type": "asset", "asset_id": long})).await;
    assert_eq!(status, 400, "{problem}");
    let fits = "a".repeat(chatgate::domain::MAX_TENANT_ID_BYTES);
    assert_eq!(w.access("acme", "ana", &fits).await["role"], "none");
}

const ADMIN_KEY: &str = "tenants-admin-key";

async fn admin_call<S: TenantStore>(
    admin: &AdminState<S>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"));
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    let req = builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_string()))).expect("request");
    let response = admin::handler::handle(admin, req).await;
    let status = response.status().as_u16();
    (status, if status == 204 { Value::Null } else { json_body(&response) })
}

async fn the_admin_routes_are_each_tenants_own<S: TenantStore>(w: World<S>) {
    let admin = AdminState::new(
        AdminAuth::DevKey(ADMIN_KEY.into()),
        w.store.clone(),
        no_twilio(),
        ConversationNames::development(),
    )
    .with_tenants(true);
    // acme's back end puts acme's a-2, owned by acme's ana; the answer names them as acme does.
    let body = json!({"owner": "ana", "type": "document", "name": "Budget"});
    let (status, put) = admin_call(&admin, "PUT", "/admin/tenants/acme/assets/a-2", Some(body.clone())).await;
    assert_eq!(status, 201, "{put}");
    assert_eq!((put["asset_id"].clone(), put["owner"].clone()), (json!("a-2"), json!("ana")));
    assert_eq!(w.access("acme", "ana", "a-2").await["role"], "owner");
    assert_eq!(w.access("globex", "ana", "a-2").await["role"], "none", "globex's ana owns nothing called a-2");
    // Memberships: globex's eng is globex's bob alone; adding acme's cy there is adding globex's.
    let (status, members) = admin_call(&admin, "GET", "/admin/tenants/globex/groups/eng/members", None).await;
    assert_eq!((status, members), (200, json!({"group_id": "eng", "members": ["bob"]})));
    assert_eq!(admin_call(&admin, "PUT", "/admin/tenants/globex/groups/eng/members/cy", None).await.0, 204);
    let (_, acme) = admin_call(&admin, "GET", "/admin/tenants/acme/groups/eng/members", None).await;
    assert_eq!(acme["members"], json!(["bob"]), "acme's eng did not change");
    // The un-prefixed routes are gone in a tenant deployment, and a tenant id is checked.
    assert_eq!(admin_call(&admin, "PUT", "/admin/assets/a-2", Some(body.clone())).await.0, 404);
    assert_eq!(admin_call(&admin, "GET", "/admin/tenants/acme/groups/eng", None).await.0, 404);
    assert_eq!(admin_call(&admin, "PUT", "/admin/tenants/ac~me/assets/a-2", Some(body)).await.0, 400);
    // A single-tenant deployment keeps its routes and has no prefixed ones.
    let single = AdminState::new(
        AdminAuth::DevKey(ADMIN_KEY.into()),
        w.store.clone(),
        no_twilio(),
        ConversationNames::development(),
    );
    assert_eq!(admin_call(&single, "GET", "/admin/groups/eng/members", None).await.0, 200);
    assert_eq!(admin_call(&single, "GET", "/admin/tenants/acme/groups/eng/members", None).await.0, 404);
}

async fn one_tenant_cannot_spend_anothers_new_conversations<S: TenantStore>(mut w: World<S>) {
    let limits = BudgetLimits { per_minute: 20, per_day: 200, tenant_per_minute: 3 };
    w.conversations.conversations = w.conversations.conversations.with_budgets(limits);
    let group = |name: &str| json!({"type": "group", "friendly_name": name});
    // acme's users together make three groups this minute; the fourth, by a user who made none, waits.
    for (user, name) in [("ana", "one"), ("bob", "two"), ("cy", "three")] {
        assert_eq!(w.conversation("acme", user, group(name)).await.0, 201);
    }
    let (status, problem) = w.conversation("acme", "dan", group("four")).await;
    assert_eq!(status, 429, "{problem}");
    assert!(problem["detail"].as_str().expect("detail").contains("tenant-minute"), "{problem}");
    // globex's users are untouched by acme's burst.
    assert_eq!(w.conversation("globex", "dan", group("four")).await.0, 201);
}

/// Both tenants' `a-1` is shared with their `bob`, and each has its conversation with ana and
/// bob in it; acme's ana revokes acme's bob. The rule, following the store's changes, removes
/// acme's bob from acme's conversation and touches nothing of globex's.
async fn a_revocation_stays_in_its_tenant<S: AclReader + GrantWriter + CatalogWriter>(store: &S, standin: &StandIn) {
    let names = ConversationNames::development();
    for name in TENANTS {
        let t = tenant(name);
        let (a1, ana, bob) = (t.asset("a-1").expect("a-1"), t.user("ana").expect("ana"), t.user("bob").expect("bob"));
        store.put_asset(&a1, &ana, AssetType::Document, "Plan", now()).await.expect("asset");
        let doc = store.asset_record(&a1).await.expect("read").expect("asset");
        let reader = Principal::User(bob.clone());
        let grant =
            Grant { principal: reader, role: Role::Reader, expires_at: None, generation: doc.generation.clone() };
        store.put_grant(&doc, &grant, now()).await.expect("grant");
        let attributes = json!({"type": "asset", "asset_id": a1.as_str()}).to_string();
        standin.create_conversation(Some(&names.asset(&a1)), Some("Plan"), Some(&attributes)).expect("conversation");
        for who in [&ana, &bob] {
            standin.add_participant(&names.asset(&a1), who.as_str()).expect("participant");
        }
    }
    let members = |name: &str| sorted_identities(standin, &names.asset(&tenant(name).asset("a-1").expect("a-1")));
    let acme_a1 = tenant("acme").asset("a-1").expect("a-1");
    let doc = store.asset_record(&acme_a1).await.expect("read").expect("asset");
    store.delete_grant(&doc, &Principal::User(tenant("acme").user("bob").expect("bob"))).await.expect("revoke");
    let started = std::time::Instant::now();
    while members("acme") != ["acme~ana"] {
        assert!(started.elapsed() < std::time::Duration::from_secs(15), "acme: {:?}", members("acme"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Given the rule the time it took, and as long again: globex's conversation is as it was.
    tokio::time::sleep(started.elapsed()).await;
    assert_eq!(members("globex"), ["globex~ana", "globex~bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_one_tenant_removes_nobody_of_another_on_the_memory_feed() {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let store = Arc::new(MemoryStore::new());
    let clock = Arc::new(chatgate::clock::SystemClock);
    let rule =
        Reconciler::new(store.clone(), twilio_client(&standin.base_url), ConversationNames::development(), clock);
    let feed = tokio::spawn(local::follow_memory(Arc::new(rule.with_tenants(true)), store.changes()));
    a_revocation_stays_in_its_tenant(store.as_ref(), &standin).await;
    feed.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_in_one_tenant_removes_nobody_of_another_on_the_table_stream() {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let dynamo = dynamo_local();
    let store = Arc::new(test_store_in(&dynamo.endpoint, &unique_table_name("tenants"), KeyLayout::Tenants).await);
    store.create_table().await.expect("table");
    let follower = StreamFollower::from_now(&sdk_config(&dynamo.endpoint).await, &store).await.expect("stream");
    let clock = Arc::new(chatgate::clock::SystemClock);
    let rule =
        Reconciler::new(store.clone(), twilio_client(&standin.base_url), ConversationNames::development(), clock);
    let feed = tokio::spawn(local::follow_table(Arc::new(rule.with_tenants(true)), follower));
    a_revocation_stays_in_its_tenant(store.as_ref(), &standin).await;
    feed.abort();
}

/// A tenant whose id is as long as WorkOS's organisation ids.
const LONG_TENANT: &str = "org_01HZXK4Q5N8M2R7T3V9W1Y6B0C";

/// One asset with a user and a group grant, and a membership, in `tenant`: the items an access
/// check reads.
async fn seed_hot_items(store: &DynamoStore, tenant: &Tenant) {
    let (doc, alice) = (tenant.asset("doc-1").expect("asset"), tenant.user("alice").expect("user"));
    store.put_asset(&doc, &alice, AssetType::Document, "Plan", NOW).await.expect("asset");
    let record = store.asset_facts(&doc).await.expect("read").asset.expect("asset");
    let group = tenant.group("ops").expect("group");
    for principal in [Principal::User(tenant.user("bob").expect("user")), Principal::Group(group.clone())] {
        let grant = Grant { principal, role: Role::Reader, expires_at: None, generation: String::new() };
        store.put_grant(&record, &grant, NOW).await.expect("grant");
    }
    store.add_member(&group, &tenant.user("carol").expect("user")).await.expect("member");
}

/// Every item of the store's table, in key order, as (pk, sk, every attribute's string value,
/// sorted).
async fn table_items(store: &DynamoStore) -> Vec<(String, String, Vec<String>)> {
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&dynamo_local().endpoint).await);
    let out = client.scan().table_name(store.table()).send().await.expect("scan");
    let s = |v: &aws_sdk_dynamodb::types::AttributeValue| v.as_s().cloned().unwrap_or_default();
    let mut items: Vec<_> = out
        .items()
        .iter()
        .map(|item| {
            let mut values: Vec<String> = item.values().map(s).collect();
            values.sort();
            (s(&item["pk"]), s(&item["sk"]), values)
        })
        .collect();
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_an_access_check_reads_is_the_same_size_whatever_the_tenants_id() {
    let store = dynamodb().await;
    let (short, long) = (tenant("acme"), tenant(LONG_TENANT));
    for t in [&short, &long] {
        seed_hot_items(&store, t).await;
    }

    let items = table_items(&store).await;
    // What a check reads: the asset's partition, and the `M#` items of the user's (not the grant
    // mirrors `R#` beside them, which only offboarding reads).
    let hot = |t: &Tenant| -> Vec<(String, String, Vec<String>)> {
        let handle = t.id().expect("tenant").handle();
        let mut hot: Vec<_> = items
            .iter()
            .filter(|(pk, sk, _)| {
                pk.starts_with(&format!("A#{handle}~"))
                    || pk.starts_with(&format!("U#{handle}~")) && sk.starts_with("M#")
            })
            .cloned()
            .collect();
        hot.sort();
        hot
    };
    let (short_hot, long_hot) = (hot(&short), hot(&long));
    // The asset record, two grants, carol's membership.
    assert_eq!(short_hot.len(), 4, "{short_hot:?}");
    let keys = |hot: &[(String, String, Vec<String>)]| -> Vec<(usize, String)> {
        hot.iter().map(|(pk, sk, _)| (pk.len(), sk.clone())).collect()
    };
    assert_eq!(keys(&short_hot), keys(&long_hot), "the same keys but for the handle, of the same length");
    // None of it names a tenant but by its handle, in its keys or its values (the record's owner is
    // relative to the asset's tenant, as its grants are).
    for (pk, sk, values) in short_hot.iter().chain(&long_hot) {
        assert!(values.iter().all(|v| !v.contains("acme") && !v.contains(LONG_TENANT)), "{pk} {sk}: {values:?}");
    }
    // Each tenant's record says which tenant its handle is.
    for t in [&short, &long] {
        let id = t.id().expect("tenant");
        let record = items.iter().find(|(pk, ..)| *pk == format!("T#{}", id.handle())).expect("tenant record");
        assert!(record.2.contains(&id.to_string()), "{record:?}");
    }
    // And both still read back whole, each in its own tenant.
    for t in [&short, &long] {
        let facts = store.check_facts(&t.user("carol").expect("user"), &[t.asset("doc-1").expect("asset")]).await;
        let facts = facts.expect("check");
        assert_eq!(facts.groups.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>(), [t.qualify("ops")]);
        let mut principals: Vec<String> = facts.assets[0].grants.iter().map(|g| g.principal.to_string()).collect();
        principals.sort();
        assert_eq!(principals, [format!("group:{}", t.qualify("ops")), format!("user:{}", t.qualify("bob"))]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_whose_handle_another_tenant_holds_is_refused_not_merged() {
    let store = dynamodb().await;
    // No second tenant has acme's handle (96 bits); play one by writing its record by hand.
    let acme = tenant("acme");
    let handle = acme.id().expect("tenant").handle();
    let client = aws_sdk_dynamodb::Client::new(&sdk_config(&dynamo_local().endpoint).await);
    let s = |v: &str| aws_sdk_dynamodb::types::AttributeValue::S(v.to_owned());
    client
        .put_item()
        .table_name(store.table())
        .item("pk", s(&format!("T#{handle}")))
        .item("sk", s("#TENANT"))
        .item("id", s("globex"))
        .send()
        .await
        .expect("put");

    let doc = acme.asset("doc-1").expect("asset");
    let written = store.put_asset(&doc, &acme.user("alice").expect("user"), AssetType::Document, "Plan", NOW).await;
    assert!(written.is_err(), "{written:?}");
    let joined = store.add_member(&acme.group("ops").expect("group"), &acme.user("bob").expect("user")).await;
    assert!(joined.is_err(), "{joined:?}");
    let items = table_items(&store).await;
    assert_eq!(items.len(), 1, "nothing of acme was written: {items:?}");
    // A tenant with its own handle is unaffected.
    let other = tenant("initech");
    let doc = other.asset("doc-1").expect("asset");
    store.put_asset(&doc, &other.user("alice").expect("user"), AssetType::Document, "Plan", NOW).await.expect("asset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_of_another_tenant_or_of_none_is_never_keyed_into_a_tenants_partitions() {
    let store = dynamodb().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    seed_hot_items(&store, &acme).await;
    let before = table_items(&store).await;

    // The edges qualify every id with the caller's tenant; were one to slip through, the store
    // refuses it rather than key `globex~bob` as acme's user `globex~bob`.
    let doc = acme.asset("doc-1").expect("asset");
    let record = store.asset_record(&doc).await.expect("read").expect("asset");
    let foreign = Grant {
        principal: Principal::User(globex.user("bob").expect("user")),
        role: Role::Writer,
        expires_at: None,
        generation: String::new(),
    };
    assert!(store.put_grant(&record, &foreign, NOW).await.is_err());
    assert!(store.add_member(&globex.group("ops").expect("group"), &acme.user("carol").expect("user")).await.is_err());
    let owned_by_globex =
        store.put_asset(&doc, &globex.user("ana").expect("user"), AssetType::Document, "x", NOW).await;
    assert!(owned_by_globex.is_err());
    // A tenant no write has claimed yet is not claimed by a refused one either.
    let initech = tenant("initech");
    let (initech_doc, globex_ana) = (initech.asset("doc-1").expect("asset"), globex.user("ana").expect("user"));
    assert!(store.put_asset(&initech_doc, &globex_ana, AssetType::Document, "x", NOW).await.is_err());
    assert!(
        store.add_member(&globex.group("ops").expect("group"), &initech.user("carol").expect("user")).await.is_err()
    );
    // An id of no tenant (a Twilio participant nobody qualified) is never written, and reads as
    // nothing, so the reconciler removes it rather than fail on it.
    let bare = chatgate::domain::Identity::try_from("bob").expect("identity");
    assert!(store.set_offboarded(&bare, true, NOW).await.is_err());
    let facts = store.check_facts(&bare, std::slice::from_ref(&doc)).await.expect("reads as nothing");
    assert!(facts.groups.is_empty() && !facts.offboarded);
    assert_eq!(store.offboarded(std::slice::from_ref(&bare)).await.expect("read"), [false]);
    assert_eq!(facts.decision(&bare, NOW).role, Role::None);
    let bare_asset = chatgate::domain::AssetId::try_from("doc-1").expect("asset");
    let facts = store.check_facts(&acme.user("bob").expect("user"), &[bare_asset]).await.expect("check");
    assert!(facts.assets[0].asset.is_none() && facts.assets[0].grants.is_empty());
    assert_eq!(table_items(&store).await, before, "nothing was written");
    // acme's own ids are as they were.
    let facts = store.check_facts(&acme.user("bob").expect("user"), std::slice::from_ref(&doc)).await.expect("check");
    assert_eq!(facts.assets[0].grants.len(), 2);
}
