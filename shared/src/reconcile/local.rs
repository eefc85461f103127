//! The reconciler in a long-running process (`chatgate dev`, the tests, the benchmark): the same
//! code as the reconciler function, driven by the in-memory store's change feed or by DynamoDB
//! Local's stream (what Lambda's event source mapping does in AWS), and the expiry sweep every
//! second (what EventBridge does every minute).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};

use super::{BatchItem, Reconciler};
use crate::acl::follow::StreamFollower;
use crate::acl::{AclReader, ExpiryIndex};
use crate::clock::Deadline;
use crate::domain::AclChange;
use crate::http::ErrorChain;

/// Budget of one reconciliation.
const BUDGET: Duration = Duration::from_secs(30);
/// Attempts for a change whose reconciliation fails (Twilio or the table unavailable).
const ATTEMPTS: u32 = 3;
/// Reconciliations in flight at once.
const CONCURRENCY: usize = 8;

/// Applies the rule to every change of the in-memory store, as it happens.
pub async fn follow_memory<S: AclReader + 'static>(
    rule: Arc<Reconciler<S>>,
    mut changes: mpsc::UnboundedReceiver<AclChange>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while let Some(change) = changes.recv().await {
        let Some(scope) = change.shrinks() else { continue };
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let rule = rule.clone();
        tokio::spawn(async move {
            for attempt in 1..=ATTEMPTS {
                match rule.apply(&scope, Deadline::after(BUDGET)).await {
                    Ok(_) => break,
                    Err(e) if attempt == ATTEMPTS => {
                        tracing::error!(scope = %scope, error = %ErrorChain(&e), "gave up reconciling; run `chatgate reconcile`");
                    }
                    Err(e) => {
                        tracing::warn!(scope = %scope, attempt, error = %ErrorChain(&e), "could not reconcile; retrying");
                        tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Applies the rule to every batch of the table's stream, retrying the items that failed.
pub async fn follow_table<S: AclReader + 'static>(rule: Arc<Reconciler<S>>, mut follower: StreamFollower) {
    let mut retry: Vec<(BatchItem, u32)> = Vec::new();
    loop {
        let records = match follower.next_batch().await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "could not read the table's stream");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut items: Vec<(BatchItem, u32)> = std::mem::take(&mut retry);
        items.extend(records.into_iter().map(|record| (BatchItem::from(record), 1)));
        if items.is_empty() {
            tokio::time::sleep(StreamFollower::POLL_INTERVAL).await;
            continue;
        }
        let outcome =
            rule.apply_batch(items.iter().map(|(item, _)| item.clone()).collect(), Deadline::after(BUDGET)).await;
        for (item, attempt) in items {
            if !outcome.failed.contains(&item.id) {
                continue;
            }
            if attempt < ATTEMPTS && item.scope.is_ok() {
                retry.push((item, attempt + 1));
            } else {
                tracing::error!(item = item.id, "gave up on a stream record; run `chatgate reconcile`");
            }
        }
        if !retry.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// How long a local grant write can take to commit after reading the clock: the sweep leaves
/// younger expiries to its next run (see [`Reconciler::sweep_expiries`]).
const SETTLE: Duration = Duration::from_secs(2);

/// The expiry sweep, every second: a holder leaves within about 3 s of `expires_at`.
pub async fn sweep_expiries<S: AclReader + ExpiryIndex + 'static>(rule: Arc<Reconciler<S>>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = rule.sweep_expiries(SETTLE, Deadline::after(BUDGET)).await {
            tracing::warn!(error = %ErrorChain(&e), "expiry sweep failed; the next one retries");
        }
    }
}
