//! The expiry sweep: grants stop counting at their `expires_at`, but nothing writes to the table
//! then (DynamoDB's TTL deletes the item up to 48 h later), so no change record announces it. The
//! sweep reads the expiry index from where the last sweep stopped to now, applies the rule once to
//! every grant whose expiry passed in between, and moves its cursor on. In AWS it runs every
//! minute; `chatgate dev` runs it every second.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt as _, TryStreamExt as _};

use super::{ReconcileError, Reconciler, Removal};
use crate::acl::{AclReader, Expiry, ExpiryIndex, StoreError, minute_of};
use crate::clock::Deadline;
use crate::domain::Scope;
use crate::http::ErrorChain;

/// With no cursor yet (a new deployment), the sweep starts this far back: entries are written
/// from the version that introduced the index on, so there is nothing older to find.
const FIRST_LOOKBACK_SECONDS: u64 = 3600;
/// Most minutes one sweep reads; a sweep that was down for longer catches up over several runs.
const MAX_MINUTES_PER_SWEEP: u64 = 24 * 60;
/// Index minutes read at once.
const READ_CONCURRENCY: usize = 16;
/// Scopes applied at once.
const APPLY_CONCURRENCY: usize = 4;

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The expiries handled: after `.0`, up to and including `.1` (Unix seconds).
    pub window: Option<(u64, u64)>,
    /// Expired grants found, and the distinct scopes they came to.
    pub expired: usize,
    pub scopes: usize,
    pub removals: Vec<Removal>,
    /// Scopes that could not be applied: the cursor stops before them, so the next sweep retries.
    pub failed: usize,
}

impl<R: AclReader + ExpiryIndex> Reconciler<R> {
    /// One sweep: every grant whose expiry passed since the last sweep (and at least `settle` ago),
    /// reconciled once. `settle` is how long a grant write can take to commit after it read the
    /// clock (a grant must expire after that): an expiry younger than that is left to the next
    /// sweep, so a slow write can never slip in behind the cursor.
    pub async fn sweep_expiries(&self, settle: Duration, deadline: Deadline) -> Result<SweepReport, ReconcileError> {
        let now = self.clock.now();
        let until = now.saturating_sub(settle.as_secs());
        let cursor = self.store.sweep_cursor().await?;
        let after = cursor.unwrap_or_else(|| until.saturating_sub(FIRST_LOOKBACK_SECONDS));
        if until <= after {
            return Ok(SweepReport::default());
        }
        // The minutes holding expiries in (after, until], at most a day of them per sweep.
        let first = minute_of(after + 1);
        let last = minute_of(until).min(first + MAX_MINUTES_PER_SWEEP - 1);
        let until = until.min((last + 1) * 60 - 1);
        let entries: Vec<Expiry> = futures_util::stream::iter(first..=last)
            .map(|minute| self.store.expiring_in(minute))
            .buffered(READ_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .flatten()
            .filter(|entry| after < entry.expires_at && entry.expires_at <= until)
            .collect();

        // Each scope once, remembering the earliest expiry that needs it.
        let mut scopes: BTreeMap<Scope, u64> = BTreeMap::new();
        for entry in &entries {
            let earliest = scopes.entry(Scope::of_grant(&entry.asset, &entry.principal)).or_insert(entry.expires_at);
            *earliest = (*earliest).min(entry.expires_at);
        }
        let mut report = SweepReport {
            window: Some((after, until)),
            expired: entries.len(),
            scopes: scopes.len(),
            ..SweepReport::default()
        };
        let results: Vec<_> = futures_util::stream::iter(scopes)
            .map(|(scope, expiry)| async move { (self.apply(&scope, deadline).await, scope, expiry) })
            .buffer_unordered(APPLY_CONCURRENCY)
            .collect()
            .await;
        let mut handled_until = until;
        for (result, scope, expiry) in results {
            match result {
                Ok(removals) => report.removals.extend(removals),
                Err(e) => {
                    tracing::error!(scope = %scope, error = %ErrorChain(&e), "expiry not reconciled; the next sweep retries");
                    report.failed += 1;
                    handled_until = handled_until.min(expiry - 1);
                }
            }
        }
        if handled_until > after {
            match self.store.advance_sweep_cursor(cursor, handled_until).await {
                Ok(()) => {}
                // Another sweep moved it meanwhile: it handled the same window.
                Err(StoreError::Conflict) => tracing::info!("the sweep cursor moved meanwhile"),
                Err(e) => return Err(e.into()),
            }
        }
        if report.expired > 0 {
            tracing::info!(
                after,
                until,
                expired = report.expired,
                removed = report.removals.len(),
                failed = report.failed,
                "expiries swept"
            );
        }
        Ok(report)
    }
}
