//! The DynamoDB adapter against AWS's DynamoDB Local: the shared ACL contract, one round trip
//! per check whatever the number of groups, capacity per check, and the faults DynamoDB Local
//! never produces (throttling, server errors, transaction conflicts), injected by a proxy.

use std::sync::Arc;
use std::time::Duration;

use access::handler::AccessState;
use chatgate::acl::{AclReader, CatalogWriter, DynamoStore, GrantWriter, StoreError};
use chatgate::domain::{AssetType, Principal, Role};
use chatgate_tests::acl_contract::{self, NOW, asset, grant, group, record, role_of, user};
use chatgate_tests::dynamo::{Fault, FaultProxy, dynamo_local, test_store, unique_table_name};
use chatgate_tests::*;
use futures_util::StreamExt as _;
use lambda_http::http::header;

async fn store_at(endpoint: &str, table: &str) -> DynamoStore {
    test_store(endpoint, table).await
}

/// A fresh table, and a store reaching it through a fault-injecting proxy.
async fn proxied_store() -> (DynamoStore, FaultProxy) {
    let local = dynamo_local();
    let table = unique_table_name("acl");
    store_at(&local.endpoint, &table).await.create_table().await.expect("create table");
    let proxy = FaultProxy::start(&local.endpoint).await;
    (store_at(&proxy.endpoint, &table).await, proxy)
}

#[tokio::test]
async fn dynamodb_store_honours_the_acl_contract() {
    let local = dynamo_local();
    let store = store_at(&local.endpoint, &unique_table_name("contract")).await;
    store.create_table().await.expect("create table");
    acl_contract::run_all(&store).await;
}

/// Seeds `a-big`: `grants` grants (half users, half groups) and a user `me` in `groups` groups.
async fn seed(store: &DynamoStore, grants: usize, groups: usize) {
    store.put_asset(&asset("a-big"), &user("owner"), AssetType::Document, "Big", NOW).await.expect("put");
    let doc = record(store, "a-big").await;
    futures_util::stream::iter(0..grants)
        .map(|i| {
            let principal = if i % 2 == 0 {
                Principal::User(user(&format!("user-{i}")))
            } else {
                Principal::Group(group(&format!("group-{i}")))
            };
            let (store, doc) = (store, &doc);
            async move { store.put_grant(doc, &grant(principal, Role::Reader, None), NOW).await.expect("grant") }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    futures_util::stream::iter(0..groups)
        .map(|i| async move {
            store.add_member(&group(&format!("group-{}", i * 2 + 1)), &user("me")).await.expect("member")
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::test]
async fn a_check_is_one_round_trip_of_two_requests_whatever_the_groups() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 50, 50).await;
    proxy.set_delay(Duration::from_millis(100));
    proxy.reset_counts();
    let (requests_before, capacity_before) = store.stats().snapshot();

    let (role, via) = role_of(&store, "me", "a-big").await;
    assert_eq!(role, Role::Reader);
    assert!(matches!(via, Some(chatgate::domain::Via::Group(_))));
    assert_eq!(proxy.requests(None), 2, "{:?}", proxy.operations());
    assert_eq!(proxy.requests(Some("Query")), 2);
    assert_eq!(proxy.max_in_flight(), 2, "both reads are in flight at once: one round trip");
    let (requests, capacity) = store.stats().snapshot();
    assert_eq!(requests - requests_before, 2);
    let used = capacity - capacity_before;
    assert!(used > 0.0 && used <= 2.0, "consumed {used} RCU for 50 grants and 50 groups");
}

#[tokio::test]
async fn a_batch_of_100_assets_is_one_wave_of_concurrent_reads() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 4, 3).await;
    proxy.set_delay(Duration::from_millis(100));
    proxy.reset_counts();
    let ids: Vec<_> =
        (0..100).map(|i| asset(if i == 42 { "a-big".into() } else { format!("missing-{i}") }.as_str())).collect();
    let facts = store.check_facts(&user("me"), &ids).await.expect("batch");
    assert_eq!(facts.assets.iter().filter(|f| f.asset.is_some()).count(), 1);
    assert!(facts.assets[42].asset.is_some());
    // 101 reads (plus at most a few attempts the SDK retries when this 2-core machine is loaded).
    let requests = proxy.requests(None);
    assert!((101..=110).contains(&requests), "{requests} requests: {:?}", proxy.operations());
    assert!(proxy.max_in_flight() >= 95, "every read is issued at once: {} in flight", proxy.max_in_flight());
}

#[tokio::test]
async fn throttling_is_retried_within_bounds_then_succeeds() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 2, 1).await;
    proxy.reset_counts();
    proxy.fail_next(2, Fault::Throttling, Some("Query"));
    assert_eq!(role_of(&store, "me", "a-big").await.0, Role::Reader);
    assert_eq!(proxy.faults_injected(), 2);
    assert_eq!(proxy.requests(Some("Query")), 4, "two faulted attempts were retried");
}

#[tokio::test]
async fn persistent_throttling_is_503_with_retry_after() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 2, 1).await;
    let state = AccessState::from_settings(&jwt_settings(&[]), Arc::new(store)).expect("state");
    for fault in
        [Fault::Throttling, Fault::ProvisionedThroughputExceeded, Fault::InternalServerError, Fault::ServiceUnavailable]
    {
        proxy.reset_counts();
        proxy.fail_always(fault, Some("Query"));
        let req = lambda_http::http::Request::builder()
            .uri("http://localhost/assets/a-big/access")
            .header(header::AUTHORIZATION, format!("Bearer {}", hs256_session(&claims("me"))))
            .body(lambda_http::Body::Empty)
            .expect("request");
        let response = access::handler::handle(&state, req).await;
        assert_eq!(response.status(), 503, "{fault:?}");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = json_body(&response);
        assert_eq!(body["code"], "upstream_unavailable");
        assert!(!body.to_string().to_lowercase().contains("throughput"), "no SDK text leaks: {body}");
        assert!(proxy.requests(Some("Query")) <= 6, "retries are bounded: {} attempts", proxy.requests(Some("Query")));
        proxy.heal();
    }
}

#[tokio::test]
async fn a_failed_transaction_writes_nothing() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 0, 0).await;
    let doc = record(&store, "a-big").await;
    for fault in [Fault::Throttling, Fault::TransactionConflict, Fault::InternalServerError] {
        proxy.fail_always(fault, Some("TransactWriteItems"));
        let result = store.put_grant(&doc, &grant(Principal::User(user("bob")), Role::Writer, None), NOW).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{fault:?}: {result:?}");
        let result = store.add_member(&group("g"), &user("bob")).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{fault:?}: {result:?}");
        proxy.heal();
        assert_eq!(role_of(&store, "bob", "a-big").await.0, Role::None, "{fault:?}");
        assert!(store.group_members(&group("g")).await.expect("members").is_empty(), "{fault:?}: half a membership");
        assert!(
            store.check_facts(&user("bob"), &[]).await.expect("groups").groups.is_empty(),
            "{fault:?}: half a membership"
        );
    }
}

#[tokio::test]
async fn a_transaction_conflict_once_is_retried() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 0, 0).await;
    let doc = record(&store, "a-big").await;
    proxy.reset_counts();
    proxy.fail_next(1, Fault::TransactionConflict, Some("TransactWriteItems"));
    let result = store.put_grant(&doc, &grant(Principal::User(user("bob")), Role::Writer, None), NOW).await;
    match result {
        Ok(()) => assert_eq!(role_of(&store, "bob", "a-big").await.0, Role::Writer),
        Err(e) => panic!("a single conflict should be retried by the SDK: {e:?} after {:?}", proxy.operations()),
    }
}

#[tokio::test]
async fn deleting_an_asset_with_thousands_of_grants_removes_them_all() {
    let (store, _proxy) = proxied_store().await;
    seed(&store, 2500, 0).await;
    assert_eq!(store.asset_facts(&asset("a-big")).await.expect("read").grants.len(), 2500);
    assert_eq!(store.delete_asset(&asset("a-big")).await.expect("delete"), 2500);
    let facts = store.asset_facts(&asset("a-big")).await.expect("read");
    assert!(facts.asset.is_none() && facts.grants.is_empty());
}

#[tokio::test]
async fn an_interrupted_delete_leaves_only_inert_grants_and_finishes_on_retry() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 60, 0).await;
    // The record's DeleteItem goes through; the sweep's Query of the grants fails.
    proxy.fail_always(Fault::InternalServerError, Some("Query"));
    assert!(store.delete_asset(&asset("a-big")).await.is_err());
    proxy.heal();
    let left = store.asset_facts(&asset("a-big")).await.expect("read");
    assert!(left.asset.is_none(), "the record goes first: access ended at once");
    assert_eq!(left.grants.len(), 60, "the grants are still there");
    assert_eq!(role_of(&store, "user-0", "a-big").await.0, Role::None, "leftovers give nothing");
    // Deleting again finishes the job.
    assert_eq!(store.delete_asset(&asset("a-big")).await.expect("delete"), 60);
    assert!(store.asset_facts(&asset("a-big")).await.expect("read").grants.is_empty());
}

#[tokio::test]
async fn re_creating_an_asset_sweeps_leftovers_but_a_delete_spares_the_new_life() {
    let (store, proxy) = proxied_store().await;
    seed(&store, 10, 0).await;
    proxy.fail_always(Fault::InternalServerError, Some("Query"));
    assert!(store.delete_asset(&asset("a-big")).await.is_err());
    proxy.heal();
    assert_eq!(store.asset_facts(&asset("a-big")).await.expect("read").grants.len(), 10);
    // Re-creating the id sweeps what the interrupted delete left.
    store.put_asset(&asset("a-big"), &user("owner"), AssetType::Document, "", NOW).await.expect("recreate");
    assert!(store.asset_facts(&asset("a-big")).await.expect("read").grants.is_empty());
    // A grant of the new life survives a sweep (a late delete of the old life would run one).
    let doc = record(&store, "a-big").await;
    store.put_grant(&doc, &grant(Principal::User(user("user-0")), Role::Writer, None), NOW).await.expect("grant");
    store.put_asset(&asset("a-big"), &user("owner"), AssetType::Document, "renamed", NOW).await.expect("replace");
    assert_eq!(role_of(&store, "user-0", "a-big").await.0, Role::Writer);
}

#[tokio::test]
async fn ids_stored_before_the_unicode_rules_count_for_nothing_instead_of_failing_reads() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let local = dynamo_local();
    let table = unique_table_name("legacy-ids");
    let store = store_at(&local.endpoint, &table).await;
    store.create_table().await.expect("create table");
    store.put_asset(&asset("a-1"), &user("ana"), AssetType::Document, "Plan", NOW).await.expect("put");
    let generation = record(&store, "a-1").await.generation;
    store
        .put_grant(&record(&store, "a-1").await, &grant(Principal::User(user("bob")), Role::Reader, None), NOW)
        .await
        .expect("grant");
    // Written as v1.1 would have: a grant to `bob\u{200b}`, and bob in the group `team\u{200b}`,
    // which itself has a grant.
    let client = aws_sdk_dynamodb::Client::new(&chatgate_tests::dynamo::sdk_config(&local.endpoint).await);
    let s = |v: &str| AttributeValue::S(v.to_owned());
    for (pk, sk, extra) in [
        ("A#a-1", "G#user:bob\u{200b}", vec![("r", s("w")), ("g", s(&generation))]),
        ("A#a-1", "G#group:team\u{200b}", vec![("r", s("w")), ("g", s(&generation))]),
        ("U#bob", "M#team\u{200b}", vec![]),
        ("G#team\u{200b}", "M#bob", vec![]),
        ("G#team", "M#bob\u{200b}", vec![]),
    ] {
        let mut put = client.put_item().table_name(&table).item("pk", s(pk)).item("sk", s(sk));
        for (k, v) in extra {
            put = put.item(k, v);
        }
        put.send().await.expect("legacy item");
    }
    assert_eq!(role_of(&store, "bob", "a-1").await.0, Role::Reader, "only the valid grant counts");
    let facts = store.check_facts(&user("bob"), &[asset("a-1")]).await.expect("no failure");
    assert!(facts.groups.is_empty());
    assert_eq!(facts.assets[0].grants.len(), 1);
    assert!(store.group_members(&group("team")).await.expect("members").is_empty());
}
