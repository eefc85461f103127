//! Following the table's stream from a process: what Lambda's event source mapping does in AWS,
//! done by `chatgate dev` and the tests against DynamoDB Local (which implements Streams on its
//! own endpoint). Records come out as the same [`StreamRecord`]s Lambda delivers, so the same
//! code reads them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Value, json};

use super::stream::{Image, StreamData, StreamRecord};
use super::{DynamoStore, StoreError};

/// Where a shard is read from next (`iterator`: `None` once it is closed and read to its end),
/// and the last record read from it.
#[derive(Debug, Clone, Default)]
struct Position {
    iterator: Option<String>,
    last: Option<String>,
}

/// A reader of the table's stream from now on, shard by shard (children of closed shards included).
#[derive(Debug)]
pub struct StreamFollower {
    client: Client,
    stream_arn: String,
    shards: HashMap<String, Position>,
}

impl StreamFollower {
    /// Follows `store`'s table from its latest record on: what happened before is not replayed.
    pub async fn from_now(sdk: &aws_types::SdkConfig, store: &DynamoStore) -> Result<Self, StoreError> {
        let stream_arn = store.latest_stream_arn().await?.ok_or_else(|| {
            StoreError::Internal(
                format!("table {} has no stream (`chatgate table create` makes one)", store.table()).into(),
            )
        })?;
        let mut follower = Self { client: client(sdk), stream_arn, shards: HashMap::new() };
        follower.discover(ShardIteratorType::Latest).await?;
        Ok(follower)
    }

    /// Adds the shards not followed yet, read from `start`.
    async fn discover(&mut self, start: ShardIteratorType) -> Result<(), StoreError> {
        let mut last = None;
        loop {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.stream_arn)
                .set_exclusive_start_shard_id(last.take())
                .send()
                .await
                .map_err(unavailable)?;
            let Some(description) = out.stream_description else { return Ok(()) };
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                if self.shards.contains_key(&id) {
                    continue;
                }
                let iterator = self.iterator(&id, start.clone(), None).await?;
                self.shards.insert(id, Position { iterator, last: None });
            }
            match description.last_evaluated_shard_id {
                Some(id) => last = Some(id),
                None => return Ok(()),
            }
        }
    }

    async fn iterator(
        &self,
        shard: &str,
        kind: ShardIteratorType,
        after: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(kind)
            .set_sequence_number(after.map(str::to_owned))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.shard_iterator)
    }

    /// The records that arrived since the last call, in each shard's order; an empty batch when
    /// none did. New shards (a closed shard's children) are read from their start.
    pub async fn next_batch(&mut self) -> Result<Vec<StreamRecord>, StoreError> {
        // Positions move only once every shard has been read: after an error, the next call reads
        // the same records again (the reconciler takes them twice without harm) and none is lost.
        let mut records = Vec::new();
        let mut moved = Vec::new();
        let mut closed = false;
        for (id, position) in &self.shards {
            let Some(iterator) = position.iterator.clone() else { continue };
            let out = match self.client.get_records().shard_iterator(iterator).send().await {
                Ok(out) => out,
                // An iterator that expired, or that DynamoDB Local no longer honours: start again
                // after the last record read (from the shard's start when none was).
                Err(e) if matches!(e.code(), Some("ExpiredIteratorException" | "TrimmedDataAccessException")) => {
                    let iterator = match &position.last {
                        Some(seq) => self.iterator(id, ShardIteratorType::AfterSequenceNumber, Some(seq)).await?,
                        None => self.iterator(id, ShardIteratorType::TrimHorizon, None).await?,
                    };
                    moved.push((id.clone(), Position { iterator, last: position.last.clone() }));
                    continue;
                }
                Err(e) => return Err(unavailable(e)),
            };
            let mut last = position.last.clone();
            for record in out.records.unwrap_or_default().into_iter().filter_map(convert) {
                last = Some(record.dynamodb.sequence_number.clone());
                records.push(record);
            }
            closed |= out.next_shard_iterator.is_none();
            moved.push((id.clone(), Position { iterator: out.next_shard_iterator, last }));
        }
        if closed {
            // The children of a closed shard, read from their start.
            self.discover(ShardIteratorType::TrimHorizon).await?;
        }
        self.shards.extend(moved);
        Ok(records)
    }

    /// The records of one shard from `first` to `last` (sequence numbers, both included): what a
    /// failed batch of the reconciler's failure queue names. The stream keeps records 24 hours;
    /// what is older is gone, and fewer records come back than the batch held.
    pub async fn read_range(
        sdk: &aws_types::SdkConfig,
        stream_arn: &str,
        shard: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        /// An open shard answers empty pages at its end, and sometimes before it: give up after
        /// this many in a row.
        const EMPTY_PAGES: usize = 5;
        let follower = Self { client: client(sdk), stream_arn: stream_arn.to_owned(), shards: HashMap::new() };
        let mut iterator = follower.iterator(shard, ShardIteratorType::AtSequenceNumber, Some(first)).await?;
        let mut records = Vec::new();
        let mut empty = 0;
        // Sequence numbers are decimal strings of growing length: compare them as numbers.
        let after_last = |seq: &str| (seq.len(), seq) > (last.len(), last);
        while let Some(current) = iterator {
            let out = follower.client.get_records().shard_iterator(current).send().await.map_err(unavailable)?;
            let page: Vec<StreamRecord> = out.records.unwrap_or_default().into_iter().filter_map(convert).collect();
            empty = if page.is_empty() { empty + 1 } else { 0 };
            if empty == EMPTY_PAGES {
                break;
            }
            for record in page {
                if after_last(&record.dynamodb.sequence_number) {
                    return Ok(records);
                }
                let done = record.dynamodb.sequence_number == last;
                records.push(record);
                if done {
                    return Ok(records);
                }
            }
            iterator = out.next_shard_iterator;
        }
        Ok(records)
    }

    /// The followed stream and its shards (what a failure-queue message names).
    pub fn stream_arn(&self) -> &str {
        &self.stream_arn
    }

    pub fn shard_ids(&self) -> Vec<String> {
        self.shards.keys().cloned().collect()
    }

    /// How long to wait between empty polls.
    pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
}

/// A streams client; its endpoint is the table's unless set apart (DynamoDB Local serves both on
/// one port).
fn client(sdk: &aws_types::SdkConfig) -> Client {
    let mut config = aws_sdk_dynamodbstreams::config::Builder::from(sdk);
    if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB_STREAMS")
        .ok()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok())
    {
        config = config.endpoint_url(endpoint);
    }
    Client::from_conf(config.build())
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn convert(record: aws_sdk_dynamodbstreams::types::Record) -> Option<StreamRecord> {
    let event_name = record.event_name?.as_str().to_owned();
    let data = record.dynamodb?;
    let image = |map: Option<HashMap<String, AttributeValue>>| map.map(|m| to_image(&m));
    Some(StreamRecord {
        event_name,
        dynamodb: StreamData {
            keys: image(data.keys).unwrap_or_default(),
            old_image: image(data.old_image),
            new_image: image(data.new_image),
            sequence_number: data.sequence_number?,
        },
    })
}

/// An SDK image in DynamoDB's JSON, as Lambda delivers it.
fn to_image(map: &HashMap<String, AttributeValue>) -> Image {
    map.iter().map(|(name, value)| (name.clone(), to_json(value))).collect::<BTreeMap<_, _>>()
}

fn to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null(n) => json!({"NULL": n}),
        AttributeValue::Ss(list) => json!({"SS": list}),
        AttributeValue::Ns(list) => json!({"NS": list}),
        AttributeValue::L(list) => json!({"L": list.iter().map(to_json).collect::<Vec<_>>()}),
        AttributeValue::M(map) => json!({"M": to_image(map)}),
        // Binary values: chatgate stores none.
        _ => json!({"NULL": true}),
    }
}
