//! The DynamoDB Local harness itself: the proxy forwards faithfully, injects exactly the faults
//! asked for, writes nothing when it faults, and counts round trips.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put, ScalarAttributeType,
    TransactWriteItem,
};
use chatgate_tests::dynamo::{self, Fault, FaultProxy};

/// A fresh table (`pk` string key) on DynamoDB Local and a proxy in front of it.
async fn setup() -> (String, FaultProxy) {
    let local = dynamo::dynamo_local();
    let table = dynamo::unique_table_name("harness");
    dynamo::client(&local.endpoint)
        .await
        .create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attribute"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().expect("key"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create table");
    let proxy = FaultProxy::start(&local.endpoint).await;
    (table, proxy)
}

/// A client through `endpoint` whose every call is a single attempt.
async fn no_retry_client(endpoint: &str) -> Client {
    let config = dynamo::sdk_config(endpoint).await;
    Client::from_conf(aws_sdk_dynamodb::config::Builder::from(&config).retry_config(RetryConfig::disabled()).build())
}

async fn direct_client() -> Client {
    dynamo::client(&dynamo::dynamo_local().endpoint).await
}

fn key(pk: &str) -> AttributeValue {
    AttributeValue::S(pk.to_owned())
}

async fn put(client: &Client, table: &str, pk: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    client.put_item().table_name(table).item("pk", key(pk)).item("v", key("x")).send().await?;
    Ok(())
}

async fn exists(client: &Client, table: &str, pk: &str) -> Result<bool, aws_sdk_dynamodb::Error> {
    let out = client.get_item().table_name(table).key("pk", key(pk)).consistent_read(true).send().await?;
    Ok(out.item().is_some())
}

#[tokio::test]
async fn dynamo_local_answers_list_tables() {
    let local = dynamo::dynamo_local();
    assert!(local.endpoint.starts_with("http://"), "{}", local.endpoint);
    eprintln!("DynamoDB Local at {} ready after {:?}", local.endpoint, local.startup);
    direct_client().await.list_tables().send().await.expect("list tables");
}

#[tokio::test]
async fn item_round_trips_through_the_proxy() {
    let (table, proxy) = setup().await;
    let client = dynamo::client(&proxy.endpoint).await;
    put(&client, &table, "a").await.expect("put");
    assert!(exists(&client, &table, "a").await.expect("get"));
    assert!(!exists(&client, &table, "b").await.expect("get"));
    assert!(exists(&direct_client().await, &table, "a").await.expect("direct get"), "the proxy forwarded the write");
    assert_eq!(proxy.operations(), ["PutItem", "GetItem", "GetItem"]);
    assert_eq!(proxy.requests(None), 3);
    assert_eq!(proxy.requests(Some("GetItem")), 2);
    assert_eq!(proxy.requests(Some("DynamoDB_20120810.PutItem")), 1);
    assert_eq!(proxy.requests(Some("Query")), 0);
    assert_eq!(proxy.faults_injected(), 0);
    assert_eq!(proxy.max_in_flight(), 1);
}

#[tokio::test]
async fn throttled_get_item_fails_once_then_succeeds() {
    let (table, proxy) = setup().await;
    let client = no_retry_client(&proxy.endpoint).await;
    put(&client, &table, "a").await.expect("put");
    proxy.fail_next(1, Fault::Throttling, Some("GetItem"));

    // Only GetItem is targeted: a write and a BatchGetItem-like name pass untouched.
    put(&client, &table, "b").await.expect("put is not targeted");
    let err = client.get_item().table_name(&table).key("pk", key("a")).send().await.expect_err("throttled");
    assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
    assert_eq!(err.message(), Some("Rate of requests exceeds the allowed throughput."));
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));

    assert!(exists(&client, &table, "a").await.expect("the next GetItem succeeds"));
    assert_eq!(proxy.faults_injected(), 1);
    assert_eq!(proxy.requests(Some("GetItem")), 2);
}

#[tokio::test]
async fn target_matching_is_by_whole_operation_name() {
    let (table, proxy) = setup().await;
    let client = no_retry_client(&proxy.endpoint).await;
    proxy.fail_next(1, Fault::Throttling, Some("GetItem"));
    let keys = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
        .keys([("pk".to_owned(), key("a"))].into())
        .build()
        .expect("keys");
    client.batch_get_item().request_items(&table, keys).send().await.expect("BatchGetItem is not GetItem");
    assert_eq!(proxy.faults_injected(), 0);
}

#[tokio::test]
async fn faulted_put_item_writes_nothing() {
    let (table, proxy) = setup().await;
    let client = no_retry_client(&proxy.endpoint).await;
    proxy.fail_next(1, Fault::InternalServerError, Some("PutItem"));
    let err = put(&client, &table, "a").await.expect_err("faulted");
    assert_eq!(err.code(), Some("InternalServerError"), "{err:?}");
    assert!(!exists(&direct_client().await, &table, "a").await.expect("direct get"));
    assert_eq!(proxy.faults_injected(), 1);
}

#[tokio::test]
async fn transaction_conflict_carries_cancellation_reasons_and_writes_nothing() {
    let (table, proxy) = setup().await;
    let client = no_retry_client(&proxy.endpoint).await;
    proxy.fail_next(1, Fault::TransactionConflict, Some("TransactWriteItems"));
    let item = |pk: &str| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).item("pk", key(pk)).build().expect("put"))
            .build()
    };
    let err = client
        .transact_write_items()
        .transact_items(item("a"))
        .transact_items(item("b"))
        .send()
        .await
        .expect_err("conflict");
    let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) = err.as_service_error() else {
        panic!("expected TransactionCanceledException: {err:?}");
    };
    let codes: Vec<_> = canceled.cancellation_reasons().iter().map(|r| r.code().unwrap_or("")).collect();
    assert_eq!(codes, ["None", "TransactionConflict"]);
    let direct = direct_client().await;
    assert!(!exists(&direct, &table, "a").await.expect("get a") && !exists(&direct, &table, "b").await.expect("get b"));
}

#[tokio::test]
async fn fail_always_lasts_until_healed() {
    let (table, proxy) = setup().await;
    let client = no_retry_client(&proxy.endpoint).await;
    proxy.fail_always(Fault::ServiceUnavailable, None);
    for _ in 0..3 {
        let err = client.put_item().table_name(&table).item("pk", key("a")).send().await.expect_err("unavailable");
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(503), "{err:?}");
    }
    proxy.heal();
    put(&client, &table, "a").await.expect("healed");
    assert_eq!(proxy.faults_injected(), 3);
    assert_eq!(proxy.requests(Some("PutItem")), 4);
}

#[tokio::test]
async fn default_retries_absorb_two_throttles() {
    let (table, proxy) = setup().await;
    let client = dynamo::client(&proxy.endpoint).await;
    proxy.fail_next(2, Fault::ProvisionedThroughputExceeded, Some("GetItem"));
    let began = Instant::now();
    assert!(!exists(&client, &table, "a").await.expect("third attempt succeeds"));
    eprintln!("3 attempts with the default retry strategy took {:?}", began.elapsed());
    assert_eq!(proxy.requests(Some("GetItem")), 3);
    assert_eq!(proxy.faults_injected(), 2);
}

#[tokio::test]
async fn concurrent_gets_show_two_in_flight_and_sequential_ones_one() {
    let (table, proxy) = setup().await;
    let client = dynamo::client(&proxy.endpoint).await;
    proxy.set_delay(Duration::from_millis(50));

    let (a, b) = tokio::join!(exists(&client, &table, "a"), exists(&client, &table, "b"));
    a.expect("a");
    b.expect("b");
    assert_eq!(proxy.max_in_flight(), 2);

    proxy.reset_counts();
    exists(&client, &table, "a").await.expect("a");
    exists(&client, &table, "b").await.expect("b");
    assert_eq!(proxy.max_in_flight(), 1);
    assert_eq!(proxy.requests(None), 2);
}

#[test]
fn unique_table_names_are_valid_and_distinct() {
    let names: Vec<String> = (0..100).map(|_| dynamo::unique_table_name("Acl")).collect();
    let mut distinct = names.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len());
    for name in &names {
        assert!((3..=255).contains(&name.len()), "{name}");
        assert!(name.starts_with("acl-"), "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')), "{name}");
    }
}
