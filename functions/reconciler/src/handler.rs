//! The reconciler function: the table's stream (a batch of change records) and the scheduled
//! expiry sweep, both turned into the rule's scopes and applied by [`chatgate::reconcile`]. A
//! stream batch answers the way its trigger expects: the records to retry, by sequence number,
//! in `batchItemFailures`; the others are done.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::{AclReader, ExpiryIndex, StreamRecord};
use chatgate::clock::SystemClock;
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::reconcile::{BatchItem, Reconciler};
use chatgate::twilio::rest::ConversationsClient;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};

/// Most time one invocation's Twilio calls may take (the function's timeout is 60 s).
const BUDGET: Duration = Duration::from_secs(50);

#[derive(Debug)]
pub struct ReconcilerState<R> {
    pub rule: Reconciler<R>,
}

impl<R> ReconcilerState<R> {
    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_settings(settings, secrets)?;
        Ok(Self { rule: Reconciler::new(store, twilio, Arc::new(SystemClock)) })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// A record without a sequence number cannot be reported on its own: failing the whole
    /// invocation makes Lambda bisect the batch until the record is alone.
    #[error("a stream record has no sequence number")]
    Unidentifiable,
    #[error("{0} expired grant(s) could not be reconciled; the next sweep retries")]
    SweepIncomplete(usize),
    #[error("neither a stream batch nor a scheduled event")]
    UnknownEvent,
    #[error(transparent)]
    Sweep(#[from] chatgate::reconcile::ReconcileError),
}

pub async fn handle<R: AclReader + ExpiryIndex>(
    state: &ReconcilerState<R>,
    event: LambdaEvent<Value>,
) -> Result<Value, InvocationError> {
    let deadline = chatgate::lambda::deadline(Some(event.context.deadline), BUDGET);
    let payload = event.payload;
    if let Some(records) = payload.get("Records").and_then(Value::as_array) {
        let items = records.iter().map(item).collect::<Result<Vec<_>, _>>()?;
        let outcome = state.rule.apply_batch(items, deadline).await;
        tracing::info!(
            records = records.len(),
            scopes = outcome.scopes,
            removed = outcome.removals.len(),
            failed = outcome.failed.len(),
            "stream batch reconciled"
        );
        let failures: Vec<Value> = outcome.failed.iter().map(|id| json!({"itemIdentifier": id})).collect();
        return Ok(json!({"batchItemFailures": failures}));
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.events") {
        let report = state.rule.sweep_expiries(deadline).await?;
        if report.failed > 0 {
            return Err(InvocationError::SweepIncomplete(report.failed));
        }
        return Ok(json!({"expired": report.expired, "removed": report.removals.len()}));
    }
    Err(InvocationError::UnknownEvent)
}

/// One stream record as a batch item: what it may have shrunk, or why it could not be read.
fn item(record: &Value) -> Result<BatchItem, InvocationError> {
    let id = StreamRecord::sequence_number_of(record).ok_or(InvocationError::Unidentifiable)?.to_owned();
    let scope = serde_json::from_value::<StreamRecord>(record.clone())
        .map_err(|e| e.to_string())
        .and_then(|r| r.change().map_err(|e| e.to_string()))
        .map(|change| change.and_then(|c| c.shrinks()));
    Ok(BatchItem { id, scope })
}
