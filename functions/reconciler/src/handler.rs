//! The reconciler function: the table's stream (a batch of change records) and the scheduled
//! expiry sweep, both turned into the rule's scopes and applied by [`chatgate::reconcile`]. A
//! stream batch answers the way its trigger expects: the records to retry, by sequence number,
//! in `batchItemFailures`; the others are done.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::{AclReader, ExpiryIndex, StreamRecord};
use chatgate::clock::SystemClock;
use chatgate::config::{ConfigError, TwilioSecrets};
use chatgate::reconcile::{BatchItem, ReconcileError, Reconciler};
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most time one invocation's Twilio calls may take (the function's timeout is 60 s).
const BUDGET: Duration = Duration::from_secs(50);
/// How long a grant write can take to commit after reading the clock: the timeout of the
/// functions that write grants (10 s). The sweep leaves younger expiries to its next run.
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ReconcilerState<R> {
    pub rule: Reconciler<R>,
}

impl<R> ReconcilerState<R> {
    /// The rule needs Twilio's REST settings alone ([`RestConfig`]); the table and Twilio's
    /// secrets are [`chatgate::lambda::table_and_secrets`]'s.
    pub fn new(config: RestConfig, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_config(&config, secrets)?;
        Ok(Self { rule: Reconciler::new(store, twilio, secrets.conversation_names()?, Arc::new(SystemClock)) })
    }
}

/// What invokes the function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    /// A batch of the table's stream. Records stay raw until each is read on its own, so one bad
    /// record fails alone.
    Stream {
        #[serde(rename = "Records")]
        records: Vec<Value>,
    },
    /// EventBridge's schedule (`"source": "aws.events"`).
    Schedule { source: String },
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Answer {
    /// Lambda's partial batch response: the records to retry.
    Batch {
        #[serde(rename = "batchItemFailures")]
        failures: Vec<ItemFailure>,
    },
    Sweep {
        expired: usize,
        removed: usize,
        failed: usize,
    },
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error("a scheduled event from `{0}`, not EventBridge")]
    UnknownSource(String),
    #[error(transparent)]
    Sweep(#[from] ReconcileError),
}

pub async fn handle<R: AclReader + ExpiryIndex>(
    state: &ReconcilerState<R>,
    event: LambdaEvent<Trigger>,
) -> Result<Answer, InvocationError> {
    let deadline = chatgate::lambda::deadline(Some(event.context.deadline), BUDGET);
    match event.payload {
        Trigger::Stream { records } => {
            let count = records.len();
            // A record without a sequence number cannot be reported, so it cannot be retried
            // alone: it is set aside like any unreadable record (failing the invocation would
            // block its shard for a day of retries).
            let items: Vec<BatchItem> = records.into_iter().filter_map(item).collect();
            let nameless = count - items.len();
            if nameless > 0 {
                tracing::error!(nameless, "stream records without a sequence number set aside; the pass covers them");
            }
            let outcome = state.rule.apply_batch(items, deadline).await;
            // `poison_records` is a metric (template.yaml's PoisonRecordsMetric) with an alarm.
            tracing::info!(
                records = count,
                scopes = outcome.scopes,
                removed = outcome.removals.len(),
                failed = outcome.failed.len(),
                poison_records = outcome.set_aside.len() + nameless,
                "stream batch reconciled"
            );
            let failures = outcome.failed.into_iter().map(|item_identifier| ItemFailure { item_identifier }).collect();
            Ok(Answer::Batch { failures })
        }
        Trigger::Schedule { source } if source == "aws.events" => {
            // A scope that fails is logged and retried by the next sweep (the cursor stops before
            // it); the invocation itself succeeded.
            let report = state.rule.sweep_expiries(SETTLE, deadline).await?;
            Ok(Answer::Sweep { expired: report.expired, removed: report.removals.len(), failed: report.failed })
        }
        Trigger::Schedule { source } => Err(InvocationError::UnknownSource(source)),
    }
}

/// One stream record as a batch item: what it may have shrunk, or why it could not be read;
/// `None` when it has no sequence number to be reported by.
fn item(record: Value) -> Option<BatchItem> {
    let id = StreamRecord::sequence_number_of(&record)?.to_owned();
    Some(match StreamRecord::from_lambda(record) {
        Ok(record) => BatchItem::from(record),
        Err(unreadable) => BatchItem { id, scope: Err(unreadable) },
    })
}
