//! The rule holds after faults, with no operator (API.md, "Converges"): each case is played end
//! to end on the in-memory store's change feed and on DynamoDB Local's stream, as `chatgate dev`
//! follows them, against the Twilio stand-in, and ends with every participant of an asset
//! conversation a reader of its asset.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{AclReader, CatalogWriter, GrantWriter, MemoryStore};
use chatgate::clock::SystemClock;
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
    standin.fail_always(Fault::SERVICE_UNAVAILABLE, None);
    let doc = record(store, "a-1").await;
    for revoked in ["bob", "cy"] {
        store.delete_grant(&doc, &Principal::User(user(revoked))).await.expect("revoke");
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(members(standin), set(&["ana", "bob", "cy", "dee"]), "nothing moves while Twilio is down");
    assert!(standin.faults_injected() > 2, "the reconciler kept trying");
    standin.heal();
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
    let standin = StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
    let dynamo = dynamo_local();
    let store = Arc::new(test_store(&dynamo.endpoint, &unique_table_name("outage")).await);
    store.create_table().await.expect("table");
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
