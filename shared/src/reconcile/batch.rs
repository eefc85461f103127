//! A batch of changes, as the table's stream delivers them: each item names what may have shrunk
//! (or could not be read), the same scope is applied once however many items name it, and the
//! items whose scope failed are reported, so the trigger retries exactly those; unreadable items
//! are set aside, never retried (no retry makes them readable, and retrying would block the shard).

use std::collections::BTreeMap;

use futures_util::StreamExt as _;
use serde_json::Value;

use super::{Reconciler, Removal};
use crate::acl::{AclReader, Rosters, StoreError, StreamKeys, StreamRecord, StreamTenants, UnreadableRecord};
use crate::clock::Deadline;
use crate::domain::Scope;
use crate::http::ErrorChain;

/// Scopes applied at once.
const SCOPE_CONCURRENCY: usize = 4;

/// One item of a batch: its id (a stream record's sequence number), and what it may have shrunk,
/// `None` when nothing, or why the record could not be read.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub id: String,
    pub scope: Result<Option<Scope>, UnreadableRecord>,
}

impl BatchItem {
    /// A record, its keys read in the tenants their handles stand for.
    pub fn read(record: &StreamRecord, tenants: &StreamTenants) -> Self {
        let scope = record.change_in(tenants).map(|change| change.and_then(|c| c.shrinks()));
        Self { id: record.dynamodb.sequence_number.clone(), scope }
    }
}

/// A stream batch as Lambda delivers it: each record with a sequence number, read or not. The
/// records stay raw until each is read on its own, so one bad record fails alone. Records without
/// a sequence number cannot be reported, so cannot be retried alone, and are set aside like
/// unreadable ones (failing the invocation would block the shard for a day of retries).
fn parse(records: Vec<Value>) -> Vec<(String, Result<StreamRecord, UnreadableRecord>)> {
    records
        .into_iter()
        .filter_map(|record| {
            let id = StreamRecord::sequence_number_of(&record)?.to_owned();
            Some((id, StreamRecord::from_lambda(record)))
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct BatchOutcome {
    /// The ids of the items to retry: those whose scope could not be applied (Twilio or the table
    /// unavailable). Retried until they succeed: an outage delays them, it does not drop them.
    pub failed: Vec<String>,
    /// The ids of the items set aside: records nobody can read, which no retry would make
    /// readable. Logged and counted (an alarm watches the count); the scheduled pass re-decides
    /// every asset conversation, so what they may have meant is applied by it.
    pub set_aside: Vec<String>,
    pub removals: Vec<Removal>,
    /// Distinct scopes applied.
    pub scopes: usize,
}

impl BatchOutcome {
    /// The batch's log line; `poison_records` (with the batch's `nameless` records) is a metric,
    /// template.yaml's PoisonRecordsMetric, with an alarm.
    pub fn log(&self, records: usize, nameless: usize) {
        tracing::info!(
            records,
            scopes = self.scopes,
            removed = self.removals.len(),
            failed = self.failed.len(),
            poison_records = self.set_aside.len() + nameless,
            "stream batch reconciled"
        );
    }
}

impl<R: AclReader + Rosters + StreamKeys> Reconciler<R> {
    /// Records of the table's stream as batch items, read in the tenants their keys name (the
    /// tenants' records read first, in a tenant deployment): what every reader of the stream
    /// applies.
    pub async fn read_records(&self, records: &[StreamRecord]) -> Result<Vec<BatchItem>, StoreError> {
        let tenants = self.store.stream_tenants(StreamRecord::handles(records)).await?;
        Ok(records.iter().map(|record| BatchItem::read(record, &tenants)).collect())
    }

    /// A stream batch as Lambda delivers it: its records read ([`Self::read_records`]), applied
    /// ([`Self::apply_batch`]) and logged. When their tenants cannot be read (the table
    /// unavailable), every readable record fails, to be retried; unreadable ones are set aside.
    pub async fn apply_stream(&self, records: Vec<Value>, deadline: Deadline) -> BatchOutcome {
        let count = records.len();
        let parsed = parse(records);
        let nameless = count - parsed.len();
        if nameless > 0 {
            tracing::error!(nameless, "stream records without a sequence number set aside; the pass covers them");
        }
        let mut items = Vec::with_capacity(parsed.len());
        let mut records = Vec::with_capacity(parsed.len());
        for (id, record) in parsed {
            match record {
                Ok(record) => records.push(record),
                Err(unreadable) => items.push(BatchItem { id, scope: Err(unreadable) }),
            }
        }
        let mut failed = Vec::new();
        match self.read_records(&records).await {
            Ok(read) => items.extend(read),
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "could not read the records' tenants; they are retried");
                failed = records.into_iter().map(|r| r.dynamodb.sequence_number).collect();
            }
        }
        let mut outcome = self.apply_batch(items, deadline).await;
        outcome.failed.extend(failed);
        outcome.log(count, nameless);
        outcome
    }
}

impl<R: AclReader + Rosters> Reconciler<R> {
    /// Applies every distinct scope of the batch once, a few at a time, and says which items failed.
    pub async fn apply_batch(&self, items: Vec<BatchItem>, deadline: Deadline) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let mut by_scope: BTreeMap<Scope, Vec<String>> = BTreeMap::new();
        for item in items {
            match item.scope {
                Ok(Some(scope)) => by_scope.entry(scope).or_default().push(item.id),
                Ok(None) => {}
                Err(reason) => {
                    tracing::error!(item = item.id, %reason, "unreadable change record set aside; the pass covers it");
                    outcome.set_aside.push(item.id);
                }
            }
        }
        outcome.scopes = by_scope.len();
        let results: Vec<_> = futures_util::stream::iter(by_scope)
            .map(|(scope, ids)| async move { (self.apply(&scope, deadline).await, scope, ids) })
            .buffer_unordered(SCOPE_CONCURRENCY)
            .collect()
            .await;
        for (result, scope, ids) in results {
            match result {
                Ok(removals) => outcome.removals.extend(removals),
                Err(e) if e.is_transient() => {
                    tracing::error!(scope = %scope, error = %ErrorChain(&e), "could not reconcile; the items are retried");
                    outcome.failed.extend(ids);
                }
                // No retry cures it (a corrupt item, a Twilio refusal): retrying would block the
                // shard for a day. Set aside and counted; the pass covers the conversation.
                Err(e) => {
                    tracing::error!(scope = %scope, error = %ErrorChain(&e), "cannot reconcile; the items are set aside");
                    outcome.set_aside.extend(ids);
                }
            }
        }
        outcome
    }
}
