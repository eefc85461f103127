//! The event source mapping's `FilterCriteria` in template.yaml, checked against real records of
//! DynamoDB Local's stream and against the `events/reconciler` fixtures: every change that can take
//! read access away gets through (a typo there would drop revocations silently, and only in AWS),
//! and writes that only add access, the group side of memberships, the expiry index and the sweep's
//! cursor do not invoke the function.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::acl::follow::StreamFollower;
use chatgate::acl::{
    BudgetLimits, Budgets, CatalogWriter, ConversationRegistry, ExpiryIndex, GrantWriter, Idempotency, StreamRecord,
};
use chatgate::clock::ManualClock;
use chatgate::domain::ConversationNames;
use chatgate::domain::{AssetType, Grant, Principal, Role};
use chatgate::reconcile::Reconciler;
use chatgate_tests::acl_contract::{asset, group, record, user};
use chatgate_tests::dynamo::{dynamo_local, sdk_config, test_store, unique_table_name};
use chatgate_tests::stream_filter::{passes, patterns};
use chatgate_tests::*;
use serde_json::Value;

/// Whether the reconciler must see the record: it names a scope, or it is a replaced asset record
/// (the filter cannot compare owners; the reconciler does).
fn must_pass(record: &Value) -> bool {
    let parsed = StreamRecord::from_lambda(record.clone()).expect("record");
    let replaced_asset = parsed.event_name == "MODIFY" && record["dynamodb"]["Keys"]["sk"]["S"] == "#ASSET";
    replaced_asset || parsed.change().ok().flatten().and_then(|c| c.shrinks()).is_some()
}

#[test]
fn the_fixture_records_that_name_a_scope_pass_the_filter() {
    let patterns = patterns();
    let mut checked = 0;
    for file in std::fs::read_dir(workspace_root().join("events/reconciler")).expect("fixtures") {
        let event: Value =
            serde_json::from_str(&std::fs::read_to_string(file.expect("entry").path()).expect("read")).expect("json");
        for record in event["Records"].as_array().into_iter().flatten() {
            if StreamRecord::from_lambda(record.clone()).expect("record").change().is_err() {
                // An unreadable record: it must reach the function (and the failure queue).
                assert!(passes(&patterns, record), "{record}");
            } else {
                assert_eq!(passes(&patterns, record), must_pass(record), "{record}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_write_on_dynamodb_local_is_filtered_as_the_rule_needs() {
    let patterns = patterns();
    let endpoint = &dynamo_local().endpoint;
    let store = Arc::new(test_store(endpoint, &unique_table_name("filter")).await);
    store.create_table().await.expect("table");
    let mut follower = StreamFollower::from_now(&sdk_config(endpoint).await, &store).await.expect("stream");

    let now = now();
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", now).await.expect("asset");
    let a1 = record(store.as_ref(), "a-1").await;
    let grants = [
        (Principal::User(user("bob")), Some(now + 3600)),
        (Principal::Group(group("designers")), None),
        (Principal::User(user(&"#".repeat(3))), None),
    ];
    for (principal, expires_at) in grants.clone() {
        let grant = Grant { principal, role: Role::Reader, expires_at, generation: a1.generation.clone() };
        store.put_grant(&a1, &grant, now).await.expect("grant");
    }
    store.add_member(&group("designers"), &user("cy")).await.expect("member");
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Image, "Plan v2", now).await.expect("rename");
    store.put_asset(&asset("a-1"), &user("dee"), AssetType::Image, "Plan v2", now).await.expect("new owner");
    let a1 = record(store.as_ref(), "a-1").await;
    store.remove_member(&group("designers"), &user("cy")).await.expect("leave");
    store.delete_grant(&a1, &grants[0].0).await.expect("revoke");
    store.delete_grant(&a1, &grants[2].0).await.expect("revoke hashed");
    // The sweep moves its cursor.
    let standin = twilio_standin::StandIn::start(twilio_standin::StandInConfig::new(
        ACCOUNT_SID,
        API_KEY_SID,
        API_KEY_SECRET,
        SERVICE_SID,
    ))
    .await;
    let rule = Reconciler::new(
        store.clone(),
        twilio_client(&standin.base_url),
        ConversationNames::development(),
        Arc::new(ManualClock::at(now)),
    );
    rule.sweep_expiries(Duration::ZERO, 300, chatgate::clock::Deadline::after(Duration::from_secs(30)))
        .await
        .expect("sweep");
    assert!(store.sweep_cursor().await.expect("cursor").is_some());
    store.delete_asset(&asset("a-1")).await.expect("delete");
    // Offboarding's marker, set and lifted, and a budget spent: none of them takes access away
    // through the stream (offboarding removes the user itself).
    store.set_offboarded(&user("eve"), true, now).await.expect("offboard");
    store.set_offboarded(&user("eve"), false, now).await.expect("lift");
    store.spend_new_conversation(&user("eve"), None, BudgetLimits::default(), now).await.expect("spend").expect("room");
    // An idempotency key taken, an asset conversation registered, and the pass's cursor moved:
    // bookkeeping, never a change of access.
    store.begin(&user("eve"), "retry-1", "fp", "group:x", 30, now).await.expect("key");
    store.register_conversation(&asset("a-1"), now).await.expect("registered");
    rule.pass_run(Duration::ZERO, 10, chatgate::clock::Deadline::after(Duration::from_secs(30))).await.expect("pass");

    // Every record: the asset (3 writes, 1 removal), 3 grants in, 2 out, 1 swept by the asset's
    // deletion, the two user grants' mirrors in and out, the expiry entry, 2 × 2 membership
    // sides, the cursor, the offboarding marker in and out, two budget counters, the idempotency
    // key, the registry item and the pass's cursor.
    let mut records: Vec<Value> = Vec::new();
    let started = Instant::now();
    while records.len() < 27 {
        let batch = follower.next_batch().await.expect("stream");
        records.extend(batch.into_iter().map(|r| serde_json::to_value(r).expect("json")));
        assert!(started.elapsed() < Duration::from_secs(20), "{} records: {records:#?}", records.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut passed = 0;
    for record in &records {
        assert_eq!(passes(&patterns, record), must_pass(record), "{record}");
        passed += usize::from(passes(&patterns, record));
    }
    // The rename and the owner change, two grant revocations and the grant the deletion took,
    // the asset's removal, and the user side of the membership's removal.
    assert_eq!(passed, 7, "{records:#?}");
}
