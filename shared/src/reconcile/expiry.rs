//! The expiry sweep: grants stop counting at their `expires_at`, but nothing writes to the table
//! then (DynamoDB's TTL deletes the item up to 48 h later), so no change record announces it. The
//! sweep reads the expiry index minute by minute, from where the last sweep finished to now,
//! applies the rule to every grant whose expiry has passed, and moves its cursor on. In AWS it
//! runs every minute; `chatgate dev` runs it every second.

use std::collections::BTreeMap;

use futures_util::{StreamExt as _, TryStreamExt as _};

use super::{ReconcileError, Reconciler, Removal};
use crate::acl::{AclReader, ExpiryIndex, StoreError, minute_of};
use crate::domain::Scope;
use crate::http::ErrorChain;
use crate::twilio::rest::Deadline;

/// With no cursor yet (a new deployment), the sweep starts this far back: entries are written
/// from the version that introduced the index on, so there is nothing older to find.
const FIRST_LOOKBACK_MINUTES: u64 = 60;
/// Most minutes one sweep reads; a sweep that was down for longer catches up over several runs.
const MAX_MINUTES_PER_SWEEP: u64 = 24 * 60;
/// A minute counts as settled (no grant expiring in it can still be written) this long after it
/// ends: a grant's expiry must be in the future when it is written, and a write may take a while
/// to commit. Until then the minute is read again by every sweep, at no risk.
const SETTLE_SECONDS: u64 = 60;
/// Index minutes read at once.
const READ_CONCURRENCY: usize = 16;
/// Scopes applied at once.
const APPLY_CONCURRENCY: usize = 4;

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The minutes read, first and last.
    pub minutes: Option<(u64, u64)>,
    /// Expired grants found, and the distinct scopes they came to.
    pub expired: usize,
    pub scopes: usize,
    pub removals: Vec<Removal>,
    /// Scopes that could not be applied: the cursor stops before them, so the next sweep retries.
    pub failed: usize,
    /// Where the cursor was moved to, if it moved.
    pub cursor: Option<u64>,
}

impl<R: AclReader + ExpiryIndex> Reconciler<R> {
    /// One sweep: every grant whose expiry passed since the last one, reconciled.
    pub async fn sweep_expiries(&self, deadline: Deadline) -> Result<SweepReport, ReconcileError> {
        let now = self.clock.now();
        let current = minute_of(now);
        let cursor = self.store.sweep_cursor().await?;
        let first = cursor.map_or(current.saturating_sub(FIRST_LOOKBACK_MINUTES), |c| c + 1);
        if first > current {
            return Ok(SweepReport::default());
        }
        let last = current.min(first + MAX_MINUTES_PER_SWEEP - 1);
        let entries: Vec<(u64, Vec<crate::acl::Expiry>)> = futures_util::stream::iter(first..=last)
            .map(|minute| async move { Ok::<_, StoreError>((minute, self.store.expiring_in(minute).await?)) })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;

        // Each scope once, remembering the earliest minute that needs it.
        let mut scopes: BTreeMap<Scope, u64> = BTreeMap::new();
        let mut expired = 0;
        for (minute, entries) in &entries {
            for entry in entries.iter().filter(|e| e.expires_at <= now) {
                expired += 1;
                scopes.entry(Scope::of_grant(&entry.asset, &entry.principal)).or_insert(*minute);
            }
        }
        let mut report =
            SweepReport { minutes: Some((first, last)), expired, scopes: scopes.len(), ..SweepReport::default() };
        let results: Vec<_> = futures_util::stream::iter(scopes)
            .map(|(scope, minute)| async move { (self.apply(&scope, deadline).await, scope, minute) })
            .buffer_unordered(APPLY_CONCURRENCY)
            .collect()
            .await;
        let mut retry_from = None::<u64>;
        for (result, scope, minute) in results {
            match result {
                Ok(removals) => report.removals.extend(removals),
                Err(e) => {
                    tracing::error!(scope = %scope, error = %ErrorChain(&e), "expiry not reconciled; the next sweep retries");
                    report.failed += 1;
                    retry_from = Some(retry_from.map_or(minute, |m| m.min(minute)));
                }
            }
        }

        // The cursor never passes an unsettled minute, nor one whose expiries failed.
        let settled = minute_of(now.saturating_sub(SETTLE_SECONDS)).saturating_sub(1);
        let target = retry_from.map_or(last, |m| m.saturating_sub(1)).min(settled);
        if target >= first && cursor.is_none_or(|c| target > c) {
            match self.store.advance_sweep_cursor(cursor, target).await {
                Ok(()) => report.cursor = Some(target),
                // Another sweep moved it meanwhile: it read the same minutes, nothing is lost.
                Err(StoreError::Conflict) => tracing::info!("the sweep cursor moved meanwhile"),
                Err(e) => return Err(e.into()),
            }
        }
        if report.expired > 0 {
            tracing::info!(
                first,
                last,
                expired = report.expired,
                removed = report.removals.len(),
                failed = report.failed,
                "expiries swept"
            );
        }
        Ok(report)
    }
}
