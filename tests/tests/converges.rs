//! The rule holds after faults, with no operator (API.md, "Converges"): each case is played end
//! to end on the in-memory store's change feed and on DynamoDB Local's stream, as `chatgate dev`
//! follows them, against the Twilio stand-in, and ends with every participant of an asset
//! conversation a reader of its asset.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{
    AclReader, CatalogWriter, ConversationRegistry, DynamoStore, ExpiryIndex, GrantWriter, MemoryStore, PassProgress,
    RegisteredConversations, Rosters,
};
use chatgate::clock::{Clock, Deadline, ManualClock, SystemClock};
use chatgate::domain::{AssetType, ConversationNames, Grant, Principal, Role};
use chatgate::reconcile::{Reconciler, local};
use chatgate_tests::acl_contract::{asset, record, user};
use chatgate_tests::dynamo::{dynamo_local, sdk_config, test_store, unique_table_name};
use chatgate_tests::*;
use twilio_standin::{Fault, StandIn, StandInConfig};

/// An asset owned by ana, read by each of `readers`, and its conversation with all of them in it.
async fn shared_asset<S: AclReader + GrantWriter + CatalogWriter>(store: &S, standin: &StandIn, readers: &[&str]) {
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", now()).await.expect("asset");
    let doc = record(store, "a-1").await;
    for reader in readers {
        let grant = Grant {
            principal: Principal::User(user(reader)),
            role: Role::Reader,
            expires_at: None,
            generation: doc.generation.clone(),
        };
        store.put_grant(&doc, &grant, now()).await.expect("grant");
    }
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    for member in std::iter::once(&"ana").chain(readers) {
        standin.add_participant(&name, member).expect("participant");
    }
}

fn members(standin: &StandIn) -> BTreeSet<String> {
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.conversation(&name).expect("conversation").participants.into_iter().map(|p| p.identity).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn eventually(standin: &StandIn, expected: &[&str], within: Duration) {
    let started = Instant::now();
    while members(standin) != set(expected) {
        assert!(started.elapsed() < within, "still {:?} after {within:?}", members(standin));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Revocations land during a 20-second Twilio outage; once Twilio is back, every removal they
/// delayed completes by itself.
async fn outage_during_revocations<S: AclReader + GrantWriter + CatalogWriter>(store: &S, standin: &StandIn) {
    standin.outage(Duration::ZERO, Duration::from_secs(20), Fault::SERVICE_UNAVAILABLE, None);
    let doc = record(store, "a-1").await;
    for revoked in ["bob", "cy"] {
        store.delete_grant(&doc, &Principal::User(user(revoked))).await.expect("revoke");
    }
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert_eq!(members(standin), set(&["ana", "bob", "cy", "dee"]), "nothing moves while Twilio is down");
    assert!(standin.faults_injected() > 2, "the reconciler kept trying");
    // The outage ends by itself, 20 s after it began.
    eventually(standin, &["ana", "dee"], Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_second_twilio_outage_delays_removals_on_the_memory_feed_and_loses_none() {
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let store = Arc::new(MemoryStore::new());
    shared_asset(store.as_ref(), &standin, &["bob", "cy", "dee"]).await;
    let rule = Arc::new(Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ));
    let feed = tokio::spawn(local::follow_memory(rule, store.changes()));
    outage_during_revocations(store.as_ref(), &standin).await;
    feed.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_second_twilio_outage_delays_removals_on_the_table_stream_and_loses_none() {
    let standin = standin_().await;
    let dynamo = dynamo_local();
    let store = table("outage").await;
    shared_asset(store.as_ref(), &standin, &["bob", "cy", "dee"]).await;
    let follower = StreamFollower::from_now(&sdk_config(&dynamo.endpoint).await, &store).await.expect("stream");
    let rule = Arc::new(Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ));
    let feed = tokio::spawn(local::follow_table(rule, follower));
    outage_during_revocations(store.as_ref(), &standin).await;
    feed.abort();
}

async fn table(prefix: &str) -> Arc<DynamoStore> {
    let dynamo = dynamo_local();
    let store = Arc::new(test_store(&dynamo.endpoint, &unique_table_name(prefix)).await);
    store.create_table().await.expect("table");
    store
}

fn standin_() -> impl std::future::Future<Output = StandIn> {
    StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID))
}

/// What the scheduled pass's scenarios need of a store: seeding (catalogue, grants, registry) and
/// what the pass itself reads and writes.
trait PassStore:
    AclReader
    + GrantWriter
    + CatalogWriter
    + ConversationRegistry
    + RegisteredConversations
    + PassProgress
    + Rosters
    + 'static
{
}

impl<S> PassStore for S where
    S: AclReader
        + GrantWriter
        + CatalogWriter
        + ConversationRegistry
        + RegisteredConversations
        + PassProgress
        + Rosters
        + 'static
{
}

/// Someone added to an asset conversation behind chatgate's back (an operator's REST call, a
/// client before the service was closed) is taken out by the next scheduled pass, as
/// `chatgate dev` runs it; the readers stay.
async fn stranger_behind_chatgates_back<S: PassStore>(store: Arc<S>) {
    let standin = standin_().await;
    shared_asset(store.as_ref(), &standin, &["bob"]).await;
    store.register_conversation(&asset("a-1"), now()).await.expect("registered");
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.add_participant(&name, "mallory").expect("added behind chatgate's back");
    let rule = Arc::new(Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ));
    let passes = tokio::spawn(local::full_passes(rule, Duration::from_secs(1)));
    eventually(&standin, &["ana", "bob"], Duration::from_secs(10)).await;
    passes.abort();
    // The pass wrote what Twilio holds back into the conversation's roster.
    let started = Instant::now();
    while store.rosters(std::slice::from_ref(&name)).await.expect("roster") != [vec![user("ana"), user("bob")]] {
        assert!(started.elapsed() < Duration::from_secs(5), "roster not synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_added_behind_chatgates_back_is_removed_by_the_pass_in_memory() {
    stranger_behind_chatgates_back(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_added_behind_chatgates_back_is_removed_by_the_pass_on_dynamodb() {
    stranger_behind_chatgates_back(table("stranger").await).await;
}

/// The pass walks the registry a bounded run at a time from its cursor, completes, and starts
/// again only once its interval has passed; a run that fails resumes where it stopped.
async fn the_pass_resumes_and_repeats<S: PassStore>(store: Arc<S>) {
    let standin = standin_().await;
    let clock = Arc::new(ManualClock::at(now()));
    let ids: Vec<String> = (0..25).map(|i| format!("p-{i:02}")).collect();
    for id in &ids {
        store.put_asset(&asset(id), &user("ana"), AssetType::Document, id, now()).await.expect("asset");
        store.register_conversation(&asset(id), now()).await.expect("registered");
        let name = ConversationNames::development().asset(&asset(id));
        let attributes = format!(r#"{{"type":"asset","asset_id":"{id}"}}"#);
        standin.create_conversation(Some(&name), Some(id), Some(&attributes)).expect("conversation");
        for who in ["ana", "mallory"] {
            standin.add_participant(&name, who).expect("participant");
        }
    }
    let rule = Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        clock.clone(),
    );
    let every = Duration::from_secs(3600);
    let deadline = || Deadline::after(Duration::from_secs(30));
    let strangers = || standin.conversations().iter().filter(|c| c.participant("mallory").is_some()).count();

    let first = rule.pass_run(every, 10, deadline()).await.expect("run");
    assert!((first.started, first.completed, first.checked) == (true, false, 10), "{first:?}");
    assert_eq!(strangers(), 15);
    // Twilio fails the next run's reads: it moves nothing, and the one after resumes there.
    standin.fail_always(Fault::SERVICE_UNAVAILABLE, Some("GET /Participants"));
    let failed = rule.pass_run(every, 10, deadline()).await.expect("run");
    assert_eq!((failed.checked, failed.failed), (0, 1), "{failed:?}");
    standin.heal();
    let second = rule.pass_run(every, 10, deadline()).await.expect("run");
    assert!((second.started, second.completed, second.checked) == (false, false, 10), "{second:?}");
    let third = rule.pass_run(every, 10, deadline()).await.expect("run");
    assert!((third.completed, third.checked) == (true, 5), "{third:?}");
    assert_eq!(strangers(), 0);
    assert_eq!(store.pass_cursor().await.expect("cursor").last_completed, Some(clock.now()));

    // Not due again until the interval has passed.
    for name in ["p-00", "p-13"] {
        standin.add_participant(&ConversationNames::development().asset(&asset(name)), "mallory").expect("again");
    }
    clock.set(clock.now() + 600);
    let idle = rule.pass_run(every, 10, deadline()).await.expect("run");
    assert!((idle.started, idle.checked, idle.age_seconds) == (false, 0, 600), "{idle:?}");
    clock.set(clock.now() + 3000);
    let again = rule.pass_to_end(10, deadline()).await.expect("pass");
    assert!((again.completed, again.checked, again.removals.len()) == (true, 25, 2), "{again:?}");
    assert_eq!(strangers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_resumes_from_its_cursor_and_repeats_on_its_interval_in_memory() {
    the_pass_resumes_and_repeats(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pass_resumes_from_its_cursor_and_repeats_on_its_interval_on_dynamodb() {
    the_pass_resumes_and_repeats(table("pass").await).await;
}

/// 150 grants run out in the same second: the sweep, bounded to 40 scopes a run, works through
/// them over four runs, each starting where the last stopped, and its lag says so.
async fn a_burst_of_expiries<S>(store: Arc<S>)
where
    S: AclReader + GrantWriter + CatalogWriter + ExpiryIndex + Rosters + 'static,
{
    let standin = standin_().await;
    let start = now();
    let clock = Arc::new(ManualClock::at(start));
    let readers: Vec<String> = (0..150).map(|i| format!("r-{i:03}")).collect();
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", start).await.expect("asset");
    let doc = record(store.as_ref(), "a-1").await;
    futures_util::future::try_join_all(readers.iter().map(|reader| {
        let grant = Grant {
            principal: Principal::User(user(reader)),
            role: Role::Reader,
            expires_at: Some(start + 30),
            generation: doc.generation.clone(),
        };
        let store = store.clone();
        let doc = doc.clone();
        async move { store.put_grant(&doc, &grant, start).await }
    }))
    .await
    .expect("grants");
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    for who in std::iter::once("ana").chain(readers.iter().map(String::as_str)) {
        standin.add_participant(&name, who).expect("participant");
    }
    let rule = Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        clock.clone(),
    );
    let deadline = || Deadline::after(Duration::from_secs(60));
    clock.set(start + 31);
    let mut runs = Vec::new();
    loop {
        let report = rule.sweep_expiries(Duration::ZERO, 40, deadline()).await.expect("sweep");
        runs.push((report.scopes, report.removals.len(), report.deferred));
        if report.deferred == 0 {
            assert_eq!(report.lag_seconds, 0, "caught up");
            break;
        }
        assert!(report.lag_seconds > 0, "behind while entries wait");
        assert!(runs.len() < 6, "no progress: {runs:?}");
    }
    assert_eq!(runs, [(40, 40, 110), (40, 40, 70), (40, 40, 30), (30, 30, 0)]);
    assert_eq!(members(&standin), set(&["ana"]));
    assert!(store.expiring_in(chatgate::acl::minute_of(start + 30)).await.expect("index").is_empty(), "all handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_fifty_grants_expiring_in_one_second_are_worked_through_in_memory() {
    a_burst_of_expiries(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_and_fifty_grants_expiring_in_one_second_are_worked_through_on_dynamodb() {
    a_burst_of_expiries(table("burst").await).await;
}

/// An expiry whose removal Twilio refuses for good (a 400, not an outage) is tried three runs,
/// then set aside, and the sweep's cursor moves on past it; an outage never sets anything aside.
async fn a_poison_expiry<S>(store: Arc<S>)
where
    S: AclReader + GrantWriter + CatalogWriter + ExpiryIndex + Rosters + 'static,
{
    let standin = standin_().await;
    let start = now();
    let clock = Arc::new(ManualClock::at(start));
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", start).await.expect("asset");
    let doc = record(store.as_ref(), "a-1").await;
    for (reader, at) in [("bob", start + 30), ("cy", start + 40)] {
        let grant = Grant {
            principal: Principal::User(user(reader)),
            role: Role::Reader,
            expires_at: Some(at),
            generation: doc.generation.clone(),
        };
        store.put_grant(&doc, &grant, start).await.expect("grant");
    }
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    for who in ["ana", "bob", "cy"] {
        standin.add_participant(&name, who).expect("participant");
    }
    let rule = Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        clock.clone(),
    );
    let sweep = || rule.sweep_expiries(Duration::ZERO, 40, Deadline::after(Duration::from_secs(30)));
    clock.set(start + 50);

    // An outage: every run fails, nothing is set aside, the cursor waits.
    standin.fail_always(Fault::SERVICE_UNAVAILABLE, None);
    for _ in 0..4 {
        let report = sweep().await.expect("sweep");
        assert_eq!((report.failed, report.set_aside), (2, 0), "{report:?}");
    }
    standin.heal();
    // bob's removal is refused for good: three runs, then set aside; cy's goes through at once.
    standin.fail_always(Fault { status: 400, code: 50_000 }, Some("DELETE /Users/bob"));
    let first = sweep().await.expect("sweep");
    assert_eq!((first.removals.len(), first.set_aside), (1, 0));
    assert_eq!(store.sweep_cursor().await.expect("cursor"), Some(start + 29), "waits before bob's expiry");
    assert_eq!(sweep().await.expect("sweep").set_aside, 0);
    let third = sweep().await.expect("sweep");
    assert_eq!(third.set_aside, 1, "{third:?}");
    assert_eq!(store.sweep_cursor().await.expect("cursor"), Some(start + 50), "moved on");
    assert!(store.expiring_in(chatgate::acl::minute_of(start + 30)).await.expect("index").is_empty());
    assert_eq!(sweep().await.expect("sweep").expired, 0, "never read again");
    standin.heal();
    assert_eq!(members(&standin), set(&["ana", "bob"]), "bob waits for the pass");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_expiry_is_set_aside_after_three_runs_and_an_outage_never_is_in_memory() {
    a_poison_expiry(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_expiry_is_set_aside_after_three_runs_and_an_outage_never_is_on_dynamodb() {
    a_poison_expiry(table("poison").await).await;
}

/// When Twilio answers 429 (its rate spent), user traffic yields after three quick attempts while
/// the rule's removals keep trying within their deadline: the removal gets the rate back first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_429_storm_removals_outlast_user_traffic() {
    let standin = standin_().await;
    let store = Arc::new(MemoryStore::new());
    shared_asset(store.as_ref(), &standin, &["bob"]).await;
    let doc = record(store.as_ref(), "a-1").await;
    store.delete_grant(&doc, &Principal::User(user("bob"))).await.expect("revoke");
    let name = ConversationNames::development().asset(&asset("a-1"));
    let deadline = || Deadline::after(Duration::from_secs(20));

    standin.fail_next(8, Fault::TOO_MANY_REQUESTS, None);
    let user_call = twilio_client(&standin.base_url).fetch_conversation(&name, deadline()).await;
    assert!(
        matches!(user_call, Err(chatgate::twilio::rest::TwilioError::Unavailable { status: Some(429), .. })),
        "user traffic yields: {user_call:?}"
    );
    assert_eq!(standin.faults_injected(), 3);
    let rule = Reconciler::new(
        store,
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    );
    let removals = rule
        .apply(&chatgate::domain::Scope::Reader { asset: asset("a-1"), user: user("bob") }, deadline())
        .await
        .expect("the removal gets through");
    assert_eq!(removals.len(), 1);
    assert_eq!(standin.faults_injected(), 8, "it waited out the other five");
    assert_eq!(members(&standin), set(&["ana"]));
}

/// A grant that runs out for someone who never joined the conversation costs no Twilio call: the
/// conversation's roster says they are not in it. A holder on the roster still leaves.
async fn expiries_of_outsiders<S>(store: Arc<S>)
where
    S: AclReader + GrantWriter + CatalogWriter + ExpiryIndex + Rosters + 'static,
{
    let standin = standin_().await;
    let start = now();
    let clock = Arc::new(ManualClock::at(start));
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", start).await.expect("asset");
    let doc = record(store.as_ref(), "a-1").await;
    for reader in ["bob", "cy", "dee"] {
        let grant = Grant {
            principal: Principal::User(user(reader)),
            role: Role::Reader,
            expires_at: Some(start + 30),
            generation: doc.generation.clone(),
        };
        store.put_grant(&doc, &grant, start).await.expect("grant");
    }
    // ana and bob joined through chatgate; cy and dee never did.
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    for who in ["ana", "bob"] {
        standin.add_participant(&name, who).expect("participant");
    }
    store.write_roster(&name, &[user("ana"), user("bob")], &[]).await.expect("roster");
    let rule = Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        clock.clone(),
    );
    clock.set(start + 31);
    standin.reset_requests();
    let report =
        rule.sweep_expiries(Duration::ZERO, 40, Deadline::after(Duration::from_secs(30))).await.expect("sweep");
    assert_eq!((report.scopes, report.removals.len()), (3, 1));
    assert_eq!(standin.request_count(), 1, "one call: bob's removal; none for cy and dee");
    assert_eq!(members(&standin), set(&["ana"]));
    assert_eq!(store.rosters(std::slice::from_ref(&name)).await.expect("roster"), [vec![user("ana")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_for_someone_never_in_the_conversation_costs_no_twilio_call_in_memory() {
    expiries_of_outsiders(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_for_someone_never_in_the_conversation_costs_no_twilio_call_on_dynamodb() {
    expiries_of_outsiders(table("outsiders").await).await;
}

/// bob asks to join the asset's conversation; his grant is revoked while Twilio is adding him
/// (a slow add). Whichever looks first, the revocation's reconciliation or the join's own look
/// after the add, bob ends up out, and the join is refused.
async fn join_racing_a_revocation<S>(store: Arc<S>, standin: &StandIn)
where
    S: chatgate::acl::ConversationsStore + GrantWriter + CatalogWriter + 'static,
{
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", now()).await.expect("asset");
    let doc = record(store.as_ref(), "a-1").await;
    let grant = Grant {
        principal: Principal::User(user("bob")),
        role: Role::Reader,
        expires_at: None,
        generation: doc.generation.clone(),
    };
    store.put_grant(&doc, &grant, now()).await.expect("grant");
    let name = ConversationNames::development().asset(&asset("a-1"));
    standin.create_conversation(Some(&name), Some("Plan"), Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
    standin.add_participant(&name, "ana").expect("ana");
    store.write_roster(&name, &[user("ana")], &[]).await.expect("roster");

    let role = standin.role_by_name("service user").expect("role").sid;
    let settings = jwt_settings(&[("TWILIO_API_BASE", &standin.base_url), ("TWILIO_USER_ROLE_SID", &role)]);
    let secrets = chatgate::config::TwilioSecrets::load(&settings).await.expect("secrets");
    let state = Arc::new(
        conversations::handler::ConversationsState::from_settings(&settings, &secrets, store.clone()).expect("state"),
    );
    standin.slow(Some("POST"), "/Participants", Duration::from_millis(1500));
    let join = tokio::spawn({
        let state = state.clone();
        async move {
            let req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("http://localhost/conversations")
                .header("authorization", format!("Bearer {}", hs256_session(&claims("bob"))))
                .header("content-type", "application/json")
                .body(lambda_http::Body::from(r#"{"type":"asset","asset_id":"a-1"}"#))
                .expect("request");
            conversations::handler::handle(&state, req).await.status().as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    store.delete_grant(&doc, &Principal::User(user("bob"))).await.expect("revoke while bob is being added");
    assert_eq!(join.await.expect("join"), 403, "the join's own look saw the revocation");
    eventually(standin, &["ana"], Duration::from_secs(10)).await;
    assert_eq!(store.rosters(std::slice::from_ref(&name)).await.expect("roster"), [vec![user("ana")]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_racing_a_revocation_never_leaves_the_non_reader_in_on_the_memory_feed() {
    let standin = standin_().await;
    let store = Arc::new(MemoryStore::new());
    let rule = Arc::new(Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ));
    let feed = tokio::spawn(local::follow_memory(rule, store.changes()));
    join_racing_a_revocation(store, &standin).await;
    feed.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_racing_a_revocation_never_leaves_the_non_reader_in_on_the_table_stream() {
    let standin = standin_().await;
    let store = table("race").await;
    let follower = StreamFollower::from_now(&sdk_config(&dynamo_local().endpoint).await, &store).await.expect("stream");
    let rule = Arc::new(Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(SystemClock),
    ));
    let feed = tokio::spawn(local::follow_table(rule, follower));
    join_racing_a_revocation(store, &standin).await;
    feed.abort();
}
