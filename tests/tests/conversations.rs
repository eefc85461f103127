//! `POST` and `GET /conversations` against the stateful Twilio stand-in: create-or-join is
//! idempotent and safe under concurrency, asset conversations need read access, Twilio's 429s are
//! retried, its outages are problem+json, and an existing conversation costs one call.

use std::sync::Arc;

use chatgate::acl::{CatalogWriter, GrantWriter, IDEMPOTENCY_WINDOW_SECONDS, MemoryStore, RegisteredConversations};
use chatgate::clock::ManualClock;
use chatgate::config::TwilioSecrets;
use chatgate::domain::{AssetType, Grant, Principal, Role};
use chatgate_tests::acl_contract::{NOW, asset, record, user};
use chatgate_tests::*;
use conversations::handler::{ConversationsState, handle};
use lambda_http::http::header;
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use twilio_standin::{Fault, StandIn, StandInConfig};

struct World {
    standin: StandIn,
    store: Arc<MemoryStore>,
    state: ConversationsState<MemoryStore>,
    role_sid: String,
}

impl World {
    async fn new() -> Self {
        Self::with(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await
    }

    async fn with(config: StandInConfig) -> Self {
        let standin = StandIn::start(config).await;
        let role_sid = standin.role_by_name("service user").expect("default role").sid;
        let settings = jwt_settings(&[("TWILIO_API_BASE", &standin.base_url), ("TWILIO_USER_ROLE_SID", &role_sid)]);
        let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
        let store = Arc::new(MemoryStore::new());
        let state = ConversationsState::from_settings(&settings, &secrets, store.clone()).expect("state");
        Self { standin, store, state, role_sid }
    }

    async fn post(&self, caller: &str, body: Value) -> (u16, Value) {
        self.call(caller, "POST", "/conversations", Some(body)).await
    }

    async fn post_with_key(&self, caller: &str, key: &str, body: Value) -> (u16, Value) {
        self.send(caller, "POST", "/conversations", Some(body), Some(key)).await
    }

    async fn call(&self, caller: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.send(caller, method, path, body, None).await
    }

    async fn send(
        &self,
        caller: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> (u16, Value) {
        let mut builder = lambda_http::http::Request::builder().method(method).uri(format!("http://localhost{path}"));
        if let Some(key) = idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {}", hs256_session(&claims(caller))));
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        let req: Request = builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_string()))).expect("request");
        let response = handle(&self.state, req).await;
        let status = response.status().as_u16();
        if status >= 400 {
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        }
        (status, json_body(&response))
    }

    /// a-1 owned by ana, shared with bob (reader); cy has nothing.
    async fn with_asset(self) -> Self {
        self.store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Roadmap", NOW).await.expect("asset");
        let doc = record(self.store.as_ref(), "a-1").await;
        let grant = Grant {
            principal: Principal::User(user("bob")),
            role: Role::Reader,
            expires_at: None,
            generation: doc.generation.clone(),
        };
        self.store.put_grant(&doc, &grant, NOW).await.expect("grant");
        self
    }

    fn identities(&self, conversation: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .standin
            .conversation(conversation)
            .expect("conversation")
            .participants
            .into_iter()
            .map(|p| p.identity)
            .collect();
        ids.sort();
        ids
    }
}

fn participants(body: &Value) -> Vec<(String, bool)> {
    body["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| (p["identity"].as_str().expect("identity").to_owned(), p["added"].as_bool().expect("added")))
        .collect()
}

#[tokio::test]
async fn both_sides_of_a_direct_chat_get_one_conversation() {
    let w = World::new().await;
    let (status, first) = w.post("ana", json!({"type": "direct", "participant": "bob"})).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["created"], true);
    assert_eq!(first["type"], "direct");
    assert_eq!(participants(&first), [("ana".into(), true), ("bob".into(), true)]);
    let (status, second) = w.post("bob", json!({"type": "direct", "participant": "ana"})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!((second["sid"].clone(), second["created"].clone()), (first["sid"].clone(), json!(false)));
    assert_eq!(participants(&second), [("bob".into(), false), ("ana".into(), false)]);
    assert_eq!(w.standin.conversations().len(), 1);
    let conversation = w.standin.conversation(first["sid"].as_str().expect("sid")).expect("in Twilio");
    let attributes: Value = serde_json::from_str(&conversation.attributes).expect("attributes JSON");
    assert_eq!(attributes, json!({"type": "direct"}));
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn users_are_created_once_with_the_restricted_role() {
    let w = World::new().await;
    assert_eq!(w.post("ana", json!({"type": "direct", "participant": "bob"})).await.0, 201);
    for who in ["ana", "bob"] {
        assert_eq!(w.standin.user(who).expect("user").role_sid.as_deref(), Some(w.role_sid.as_str()), "{who}");
    }
    w.standin.reset_requests();
    assert_eq!(w.post("ana", json!({"type": "direct", "participant": "cy"})).await.0, 201);
    assert_eq!(w.standin.count_requests("POST", "/Users"), 1, "ana is known already; only cy is created");
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn an_existing_conversation_costs_one_round_trip_of_two_reads() {
    let w = World::new().await.with_asset().await;
    assert_eq!(w.post("ana", json!({"type": "direct", "participant": "bob"})).await.0, 201);
    assert_eq!(w.post("ana", json!({"type": "asset", "asset_id": "a-1", "participants": ["bob"]})).await.0, 201);
    for body in [
        json!({"type": "direct", "participant": "ana"}),
        json!({"type": "asset", "asset_id": "a-1", "participants": ["ana"]}),
    ] {
        w.standin.reset_requests();
        let (status, _) = w.post("bob", body.clone()).await;
        assert_eq!(status, 200);
        // Who is in it and what it is about (it must be chatgate's), read at once; Twilio does
        // not rate-limit reads.
        let calls: Vec<String> = w.standin.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        assert_eq!(calls.len(), 2, "{body}: {calls:?}");
        assert!(calls.iter().all(|c| c.starts_with("GET ")), "{body}: {calls:?}");
    }
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_pair_yield_one_conversation() {
    let w = Arc::new(World::new().await);
    let calls = (0..50).map(|i| {
        let w = w.clone();
        async move {
            let (caller, other) = if i % 2 == 0 { ("ana", "bob") } else { ("bob", "ana") };
            w.post(caller, json!({"type": "direct", "participant": other})).await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let sids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|(status, body)| {
            assert!(*status == 200 || *status == 201, "{status} {body}");
            body["sid"].as_str().expect("sid").to_owned()
        })
        .collect();
    assert_eq!(sids.len(), 1);
    assert_eq!(w.standin.conversations().len(), 1);
    assert_eq!(w.identities(sids.iter().next().expect("sid")), ["ana", "bob"]);
    assert_eq!(results.iter().filter(|(s, _)| *s == 201).count(), 1, "exactly one request created it");
}

#[tokio::test]
async fn fifty_concurrent_requests_for_one_asset_yield_one_conversation() {
    let w = Arc::new(World::new().await.with_asset().await);
    let calls = (0..50).map(|i| {
        let w = w.clone();
        async move {
            let caller = if i % 2 == 0 { "ana" } else { "bob" };
            w.post(caller, json!({"type": "asset", "asset_id": "a-1"})).await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 201), "{results:?}");
    assert_eq!(w.standin.conversations().len(), 1);
    let sid = results[0].1["sid"].as_str().expect("sid").to_owned();
    assert_eq!(w.identities(&sid), ["ana", "bob"]);
    let conversation = w.standin.conversation(&sid).expect("conversation");
    assert_eq!(
        serde_json::from_str::<Value>(&conversation.attributes).expect("json"),
        json!({"type": "asset", "asset_id": "a-1"})
    );
    assert_eq!(conversation.friendly_name.as_deref(), Some("Roadmap"));
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn asset_conversations_need_read_access_for_everyone() {
    let w = World::new().await.with_asset().await;
    let (status, problem) =
        w.post("ana", json!({"type": "asset", "asset_id": "a-1", "participants": ["bob", "cy", "dan"]})).await;
    assert_eq!(status, 403);
    assert_eq!(problem["detail"], "cannot read asset a-1: cy, dan");
    let (status, problem) = w.post("cy", json!({"type": "asset", "asset_id": "a-1"})).await;
    assert_eq!((status, problem["detail"].clone()), (403, json!("you cannot read this asset")));
    let (status, missing) = w.post("ana", json!({"type": "asset", "asset_id": "no-such-asset"})).await;
    assert_eq!(status, 403, "a missing asset is readable by nobody");
    assert_eq!(missing, problem, "and says so in the same words");
    assert!(w.standin.conversations().is_empty(), "nothing was created");
    assert_eq!(w.standin.request_count(), 0, "refused before any Twilio call");
    let (registered, _) = w.store.registered_after(None, 10).await.expect("registry");
    assert!(registered.is_empty(), "nothing registered for the scheduled pass either");
}

#[tokio::test]
async fn asset_conversations_are_registered_for_the_scheduled_pass() {
    let w = World::new().await.with_asset().await;
    assert_eq!(w.post("ana", json!({"type": "asset", "asset_id": "a-1"})).await.0, 201);
    assert_eq!(w.post("bob", json!({"type": "asset", "asset_id": "a-1"})).await.0, 200);
    assert_eq!(w.post("ana", json!({"type": "direct", "participant": "bob"})).await.0, 201);
    let (registered, more) = w.store.registered_after(None, 10).await.expect("registry");
    assert_eq!((registered, more), (vec![asset("a-1")], false), "once, and only asset conversations");
}

#[tokio::test]
async fn rooms_must_exist_and_are_joined() {
    let w = World::new().await;
    let (status, problem) = w.post("ana", json!({"type": "room", "name": "support"})).await;
    assert_eq!((status, problem["code"].clone()), (404, json!("not_found")));
    w.standin.create_conversation(Some("room:support"), Some("Support"), Some(r#"{"type":"room"}"#)).expect("room");
    let (status, body) = w.post("ana", json!({"type": "room", "name": "support"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["friendly_name"].clone(), body["created"].clone()), (json!("Support"), json!(false)));
    assert_eq!(participants(&body), [("ana".into(), true)]);
    let (_, again) = w.post("ana", json!({"type": "room", "name": "support"})).await;
    assert_eq!(participants(&again), [("ana".into(), false)]);
    assert_eq!(w.post("ana", json!({"type": "room", "name": "Support!"})).await.0, 400);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn groups_are_new_each_time_unless_named_and_names_are_per_creator() {
    let w = World::new().await;
    let group = |unique: Option<&str>| {
        let mut body = json!({"type": "group", "friendly_name": "Design review", "participants": ["bob", "cy"]});
        if let Some(u) = unique {
            body["unique_name"] = json!(u);
        }
        body
    };
    let (s1, a) = w.post("ana", group(None)).await;
    let (s2, b) = w.post("ana", group(None)).await;
    assert_eq!((s1, s2), (201, 201));
    assert_ne!(a["sid"], b["sid"]);
    let (s3, c) = w.post("ana", group(Some("weekly"))).await;
    let (s4, d) = w.post("ana", group(Some("weekly"))).await;
    assert_eq!((s3, s4), (201, 200));
    assert_eq!(c["sid"], d["sid"]);
    let (s5, e) = w.post("bob", group(Some("weekly"))).await;
    assert_eq!(s5, 201, "another creator's name is another group");
    assert_ne!(e["sid"], c["sid"]);
    assert_eq!(w.identities(c["sid"].as_str().expect("sid")), ["ana", "bob", "cy"]);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn an_unnamed_group_retried_with_its_idempotency_key_is_made_once() {
    let w = World::new().await;
    let body = json!({"type": "group", "friendly_name": "Design review", "participants": ["bob"]});
    // The first answer is lost on its way to the browser; the client retries with the same key.
    let (first_status, first) = w.post_with_key("ana", "retry-1", body.clone()).await;
    assert_eq!(first_status, 201, "{first}");
    w.standin.reset_requests();
    let (status, again) = w.post_with_key("ana", "retry-1", body.clone()).await;
    assert_eq!((status, &again), (201, &first), "the first answer, again");
    assert_eq!(w.standin.request_count(), 0, "a replay costs no Twilio call");
    assert_eq!(w.standin.conversations().len(), 1);

    // Spacing and key order do not make another request; another body under the key is refused.
    let (status, _) = w
        .post_with_key(
            "ana",
            "retry-1",
            json!({"participants": ["bob"], "friendly_name": "Design review", "type": "group"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, problem) = w
        .post_with_key("ana", "retry-1", json!({"type": "group", "friendly_name": "Other", "participants": ["bob"]}))
        .await;
    assert_eq!((status, problem["code"].clone()), (409, json!("conflict")), "{problem}");
    // Keys are the caller's: bob's retry-1 is his own request.
    assert_eq!(w.post_with_key("bob", "retry-1", body.clone()).await.0, 201);
    // Without a key, a group is new every time, as before.
    assert_eq!(w.post("ana", body).await.0, 201);
    assert_eq!(w.standin.conversations().len(), 3);
}

#[tokio::test]
async fn a_failed_request_lets_its_idempotency_key_go_and_bad_keys_are_400() {
    let w = World::new().await;
    let body = json!({"type": "group", "friendly_name": "Ops", "participants": ["bob"]});
    w.standin.fail_always(Fault::INTERNAL_ERROR, None);
    assert_eq!(w.post_with_key("ana", "k-7", body.clone()).await.0, 502);
    w.standin.heal();
    let (status, created) = w.post_with_key("ana", "k-7", body.clone()).await;
    assert_eq!(status, 201, "the retry runs afresh: {created}");
    assert_eq!(w.standin.conversations().len(), 1);
    for bad in ["has space", &"k".repeat(129), "tab\tkey"] {
        let (status, problem) = w.post_with_key("ana", bad, body.clone()).await;
        assert_eq!(status, 400, "{bad}: {problem}");
    }
    assert_eq!(w.standin.conversations().len(), 1);
}

#[tokio::test]
async fn an_unnamed_group_whose_request_failed_after_the_create_is_joined_by_its_retry() {
    let w = World::new().await;
    let body = json!({"type": "group", "friendly_name": "Launch", "participants": ["bob"]});
    // Twilio makes the group, then every participant add fails: the request fails, its key goes.
    w.standin.fail_always(Fault::INTERNAL_ERROR, Some("/Conversations/CH"));
    let (status, problem) = w.post_with_key("ana", "launch-1", body.clone()).await;
    assert_eq!(status, 502, "{problem}");
    assert_eq!(w.standin.conversations().len(), 1, "the create landed before the failure");
    w.standin.heal();
    let (status, joined) = w.post_with_key("ana", "launch-1", body.clone()).await;
    assert_eq!(status, 200, "the retry joins the group its failed attempt made: {joined}");
    assert_eq!(w.standin.conversations().len(), 1, "one group, not two");
    let sid = joined["sid"].as_str().expect("sid");
    assert_eq!(w.identities(sid), ["ana", "bob"]);
    // Another key, or another caller with this key, is another group.
    assert_eq!(w.post_with_key("ana", "launch-2", body.clone()).await.0, 201);
    assert_eq!(w.post_with_key("bob", "launch-1", body).await.0, 201);
    assert_eq!(w.standin.conversations().len(), 3);
}

#[tokio::test]
async fn an_idempotency_key_used_again_after_its_window_makes_a_new_group() {
    let clock = Arc::new(ManualClock::at(NOW));
    let mut w = World::new().await;
    w.state.conversations = w.state.conversations.with_clock(clock.clone());
    let body = json!({"type": "group", "friendly_name": "Weekly", "participants": ["bob"]});
    // The first attempt makes the group and fails after; its key is let go with the group's name.
    w.standin.fail_always(Fault::INTERNAL_ERROR, Some("/Conversations/CH"));
    assert_eq!(w.post_with_key("ana", "weekly", body.clone()).await.0, 502);
    w.standin.heal();
    let old = w.standin.conversations().pop().expect("the failed attempt's group").sid;
    // A day later the key is forgotten: the same request is a new one, and its group is new, so
    // whoever it adds never sees the old group's history.
    clock.set(NOW + IDEMPOTENCY_WINDOW_SECONDS);
    let (status, created) = w.post_with_key("ana", "weekly", body.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_ne!(created["sid"].as_str(), Some(old.as_str()));
    assert_eq!(w.standin.conversations().len(), 2);
    // Used once more after another day, with another body: new again.
    clock.set(NOW + 2 * IDEMPOTENCY_WINDOW_SECONDS);
    let other = json!({"type": "group", "friendly_name": "Monthly", "participants": ["cy"]});
    assert_eq!(w.post_with_key("ana", "weekly", other).await.0, 201);
    assert_eq!(w.standin.conversations().len(), 3);
}

#[tokio::test]
async fn an_idempotency_key_that_failed_is_still_bound_to_its_request() {
    let w = World::new().await;
    let body = json!({"type": "group", "friendly_name": "Launch", "participants": ["bob"]});
    w.standin.fail_always(Fault::INTERNAL_ERROR, Some("/Conversations/CH"));
    assert_eq!(w.post_with_key("ana", "launch-1", body.clone()).await.0, 502);
    w.standin.heal();
    // The failed attempt's group is not anybody else's to join: another body under the key is
    // refused, and nobody is added to the group the failed attempt made.
    let other = json!({"type": "group", "friendly_name": "Launch", "participants": ["cy"]});
    let (status, problem) = w.post_with_key("ana", "launch-1", other).await;
    assert_eq!((status, problem["code"].clone()), (409, json!("conflict")), "{problem}");
    let made = w.standin.conversations().pop().expect("group").sid;
    assert!(!w.identities(&made).contains(&"cy".to_owned()), "cy never joins the failed attempt's group");
    // The same body is the retry: it joins that group.
    let (status, joined) = w.post_with_key("ana", "launch-1", body).await;
    assert_eq!((status, joined["sid"].as_str()), (200, Some(made.as_str())), "{joined}");
}

#[tokio::test]
async fn a_first_attempt_under_an_idempotency_key_costs_what_an_unkeyed_create_does() {
    let w = World::new().await;
    // Two pairs of users Twilio does not know yet, so both creates make their users too.
    let body = json!({"type": "group", "friendly_name": "Ops", "participants": ["bob"]});
    assert_eq!(w.post("ana", body).await.0, 201);
    let unkeyed = w.standin.request_count();
    w.standin.reset_requests();
    let body = json!({"type": "group", "friendly_name": "Ops", "participants": ["dan"]});
    assert_eq!(w.post_with_key("cy", "ops-1", body).await.0, 201);
    assert_eq!(w.standin.request_count(), unkeyed, "a key adds no Twilio call: {:?}", w.standin.requests());
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_conversation() {
    let w = World::new().await;
    w.standin.set_delay(std::time::Duration::from_millis(50));
    let body = json!({"type": "group", "friendly_name": "Race", "participants": ["bob"]});
    let answers = futures_util::future::join_all((0..5).map(|_| w.post_with_key("ana", "same", body.clone()))).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| [201, 409].contains(s)), "the others wait for the first: {statuses:?}");
    assert_eq!(w.standin.conversations().len(), 1);
}

#[tokio::test]
async fn a_create_whose_twilio_answer_was_lost_is_made_once_and_counts_as_created() {
    let w = World::new().await;
    // Twilio makes the group, and its answer is lost: the client's retry finds the name taken.
    w.standin.lose_responses(1, Some("POST"), Some(&format!("/Services/{SERVICE_SID}/Conversations")));
    let (status, body) = w.post("ana", json!({"type": "group", "friendly_name": "Ops", "participants": ["bob"]})).await;
    assert_eq!((status, body["created"].clone()), (201, json!(true)), "{body}");
    assert_eq!(w.standin.conversations().len(), 1, "one group, not two");
    assert_eq!(w.standin.faults_injected(), 1);
    assert_eq!(w.identities(body["sid"].as_str().expect("sid")), ["ana", "bob"]);
}

#[tokio::test]
async fn a_retried_add_answered_50433_counts_as_added() {
    let w = World::new().await.with_asset().await;
    // bob's add is carried out and its answer lost; the retry is told he is in already.
    w.standin.lose_responses(1, Some("POST"), Some("/Participants"));
    let (status, body) = w.post("ana", json!({"type": "asset", "asset_id": "a-1", "participants": ["bob"]})).await;
    assert_eq!(status, 201, "{body}");
    assert!(participants(&body).iter().all(|(_, added)| *added), "both were added by this request: {body}");
    assert_eq!(w.standin.faults_injected(), 1);
}

#[tokio::test]
async fn twilios_limits_are_409_problems_naming_the_limit() {
    let w =
        World::with(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID).with_limits(3, 2)).await;
    let (status, _) = w
        .post(
            "ana",
            json!({"type": "group", "friendly_name": "Full", "unique_name": "full", "participants": ["bob", "cy"]}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, problem) = w
        .post("ana", json!({"type": "group", "friendly_name": "Full", "unique_name": "full", "participants": ["dee"]}))
        .await;
    assert_eq!((status, problem["code"].clone()), (409, json!("conflict")), "{problem}");
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("as many participants as Twilio allows")),
        "{problem}"
    );
    // ana is now in two conversations, the most this stand-in allows one identity.
    assert_eq!(w.post("ana", json!({"type": "direct", "participant": "bob"})).await.0, 201);
    let (status, problem) = w.post("ana", json!({"type": "direct", "participant": "eve"})).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.starts_with("you are in as many conversations")), "{problem}");
    let (status, problem) = w.post("eve", json!({"type": "direct", "participant": "ana"})).await;
    assert_eq!(status, 409, "{problem}");
    assert!(problem["detail"].as_str().is_some_and(|d| d.starts_with("a participant is in as many")), "{problem}");
}

#[tokio::test]
async fn twilio_429_is_retried_then_succeeds() {
    let w = World::new().await;
    w.standin.fail_next(2, Fault::TOO_MANY_REQUESTS, None);
    let (status, body) = w.post("ana", json!({"type": "direct", "participant": "bob"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(w.standin.faults_injected(), 2);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn persistent_twilio_failures_are_502_or_503_problems() {
    let w = World::new().await;
    w.standin.fail_always(Fault::INTERNAL_ERROR, None);
    let (status, problem) = w.post("ana", json!({"type": "direct", "participant": "bob"})).await;
    assert_eq!((status, problem["code"].clone()), (502, json!("upstream_unavailable")));
    assert!(!problem.to_string().contains("20500"), "no Twilio internals: {problem}");
    // Two reads at once (participants, the conversation), each retried at most 4 times.
    assert!(w.standin.request_count() <= 8, "retries are bounded: {}", w.standin.request_count());
    w.standin.heal();
    w.standin.fail_always(Fault::TOO_MANY_REQUESTS, None);
    let (status, problem) = w.post("ana", json!({"type": "direct", "participant": "bob"})).await;
    assert_eq!((status, problem["code"].clone()), (503, json!("upstream_unavailable")));
    w.standin.heal();
    assert!(w.standin.conversations().is_empty());
}

#[tokio::test]
async fn bad_requests_are_400_before_any_twilio_call() {
    let w = World::new().await;
    for body in [
        json!({"type": "chat", "participant": "bob"}),
        json!({"type": "direct"}),
        json!({"type": "direct", "participant": "ana"}),
        json!({"type": "direct", "participant": format!("US{}", "0a".repeat(16))}),
        json!({"type": "direct", "participant": "bob", "asset_id": "a-1"}),
        json!({"type": "group", "participants": ["bob"]}),
        json!({"type": "group", "friendly_name": "x", "participants": (0..51).map(|i| format!("u-{i}")).collect::<Vec<_>>()}),
        json!({"type": "asset"}),
        json!({"type": "room"}),
        json!({"type": "direct", "participant": "bob", "as": "someone-else"}),
    ] {
        let (status, problem) = w.post("ana", body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
    }
    assert_eq!(w.standin.request_count(), 0);
    assert_eq!(w.call("ana", "DELETE", "/conversations", None).await.0, 405);
}

#[tokio::test]
async fn the_listing_has_unread_counts_participants_and_last_messages() {
    let w = World::new().await;
    let (_, direct) = w.post("ana", json!({"type": "direct", "participant": "bob"})).await;
    let sid = direct["sid"].as_str().expect("sid");
    for (author, text) in [("bob", "hi"), ("ana", "hello"), ("bob", "see the doc")] {
        w.standin.add_message(sid, author, text).expect("message");
    }
    w.standin.set_last_read(sid, "ana", Some(1)).expect("read");
    let (status, listing) = w.call("ana", "GET", "/conversations?messages=2", None).await;
    assert_eq!(status, 200, "{listing}");
    let first = &listing["conversations"][0];
    assert_eq!(first["sid"], direct["sid"]);
    assert_eq!(first["type"], "direct");
    assert_eq!(first["unread_count"], 1);
    assert_eq!(first["last_read_index"], 1);
    assert_eq!(first["participants"].as_array().map(Vec::len), Some(2));
    let messages: Vec<(u64, String)> = first["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| (m["index"].as_u64().expect("index"), m["body"].as_str().expect("body").to_owned()))
        .collect();
    assert_eq!(messages, [(1, "hello".to_owned()), (2, "see the doc".to_owned())]);
    assert_eq!(listing["next_page_token"], Value::Null);

    let (status, empty) = w.call("nobody", "GET", "/conversations", None).await;
    assert_eq!((status, empty["conversations"].clone()), (200, json!([])));
    for query in ["messages=21", "messages=-1", "messages=two", "page_token=not-a-token", "colour=red"] {
        assert_eq!(w.call("ana", "GET", &format!("/conversations?{query}"), None).await.0, 400, "{query}");
    }
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn unread_counts_are_numbers_for_everyone_chatgate_put_in_a_conversation() {
    let w = World::new().await;
    let (_, group) = w.post("ana", json!({"type": "group", "friendly_name": "Team", "unique_name": "team"})).await;
    let sid = group["sid"].as_str().expect("sid");
    for text in ["one", "two", "three"] {
        w.standin.add_message(sid, "ana", text).expect("message");
    }
    // bob joins a conversation with history: it starts read, at its last message.
    let (status, joined) = w
        .post("ana", json!({"type": "group", "friendly_name": "Team", "unique_name": "team", "participants": ["bob"]}))
        .await;
    assert_eq!(status, 200, "{joined}");
    w.standin.add_message(sid, "ana", "four").expect("message");
    let w = &w;
    let unread = |who: &'static str| async move {
        let (status, listing) = w.call(who, "GET", "/conversations", None).await;
        assert_eq!(status, 200, "{listing}");
        (listing["conversations"][0]["unread_count"].clone(), listing["conversations"][0]["last_read_index"].clone())
    };
    assert_eq!(unread("bob").await, (json!(1), json!(2)), "bob read up to his arrival");
    // ana was there from the start and has read nothing: Twilio has no count for her. Without
    // messages the listing asks Twilio nothing more, and says so as Twilio's SDK does (`null`);
    // with messages, chatgate counts them.
    assert_eq!(unread("ana").await, (Value::Null, Value::Null));
    let (_, with_messages) = w.call("ana", "GET", "/conversations?messages=2", None).await;
    assert_eq!(with_messages["conversations"][0]["unread_count"], 4);
    assert_eq!(with_messages["conversations"][0]["messages"].as_array().map(Vec::len), Some(2));
    // An empty conversation: nothing unread, once messages are asked for.
    w.post("cy", json!({"type": "direct", "participant": "dee"})).await;
    let (_, empty) = w.call("dee", "GET", "/conversations?messages=1", None).await;
    assert_eq!(empty["conversations"][0]["unread_count"], 0);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn a_listing_page_costs_one_twilio_call_and_one_more_per_conversation_only_for_messages() {
    let w = World::new().await;
    // 50 people each open a direct conversation with ana (each within their own budget).
    for i in 0..50 {
        let (status, _) = w.post(&format!("u-{i}"), json!({"type": "direct", "participant": "ana"})).await;
        assert_eq!(status, 201);
    }
    w.standin.reset_requests();
    let (status, listing) = w.call("ana", "GET", "/conversations", None).await;
    assert_eq!(status, 200);
    let listed = listing["conversations"].as_array().expect("conversations");
    assert_eq!(listed.len(), 50);
    assert!(listed.iter().all(|c| c["participants"].as_array().map(Vec::len) == Some(2)), "from the rosters");
    assert_eq!(w.standin.request_count(), 1, "messages=0: the page alone");
    w.standin.reset_requests();
    let (status, _) = w.call("ana", "GET", "/conversations?messages=3", None).await;
    assert_eq!(status, 200);
    assert_eq!(w.standin.request_count(), 51, "the page, and each conversation's messages");

    // A conversation made before rosters: Twilio is asked once for its participants, and its
    // roster written; the next listing does not ask again.
    let legacy = w.standin.create_conversation(None, Some("old"), Some(r#"{"type":"group"}"#)).expect("conversation");
    for who in ["ana", "zed"] {
        w.standin.add_participant(&legacy.sid, who).expect("participant");
    }
    let page = |listing: &Value| -> Vec<String> {
        let old = listing["conversations"].as_array().expect("list").iter().find(|c| c["sid"] == legacy.sid.as_str());
        let mut ids: Vec<String> = old.expect("listed")["participants"]
            .as_array()
            .expect("participants")
            .iter()
            .map(|p| p.as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    let (_, first) = w.call("zed", "GET", "/conversations", None).await;
    assert_eq!(page(&first), ["ana", "zed"]);
    w.standin.reset_requests();
    let (_, second) = w.call("zed", "GET", "/conversations", None).await;
    assert_eq!(page(&second), ["ana", "zed"]);
    assert_eq!(w.standin.request_count(), 1);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn the_listing_pages_through_twilios_pages() {
    let w = World::new().await;
    for i in 0..55 {
        let sid = w.standin.create_conversation(None, Some(&format!("c{i}")), None).expect("conversation").sid;
        w.standin.add_participant(&sid, "ana").expect("participant");
    }
    let (status, first) = w.call("ana", "GET", "/conversations", None).await;
    assert_eq!(status, 200);
    assert_eq!(first["conversations"].as_array().map(Vec::len), Some(50));
    let token = first["next_page_token"].as_str().expect("a next page");
    let (status, second) = w.call("ana", "GET", &format!("/conversations?page_token={token}"), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["conversations"].as_array().map(Vec::len), Some(5));
    assert_eq!(second["next_page_token"], Value::Null);
    assert_twilio_spec_accepts(&w.standin.requests()).await;
}

#[tokio::test]
async fn awkward_identities_reach_twilio_percent_encoded() {
    let w = World::new().await;
    let odd = "zoë+1@example.com/a b?c#d";
    let (status, body) = w.post("ana", json!({"type": "direct", "participant": odd})).await;
    assert_eq!(status, 201, "{body}");
    assert!(w.standin.user(odd).is_some(), "the user exists under the exact identity");
    let (status, listing) = w.call(odd, "GET", "/conversations", None).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["conversations"][0]["sid"], body["sid"]);
    assert!(
        w.standin
            .requests()
            .iter()
            .any(|r| r.path.contains("/Users/zo%C3%AB%2B1%40example.com%2Fa%20b%3Fc%23d/Conversations"))
    );
}
