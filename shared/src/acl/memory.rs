//! The in-memory ACL store of the local server and of handler tests: the same contract as the
//! DynamoDB adapter (one contract test suite runs against both), in one process. Like the table's
//! stream, it reports every change on a feed ([`MemoryStore::changes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::{
    AclReader, AudienceFacts, Begun, BudgetLimits, BudgetSpent, Budgets, CatalogWriter, CheckFacts,
    ConversationRegistry, Expiry, ExpiryIndex, GrantWriter, IDEMPOTENCY_WINDOW_SECONDS, Idempotency, PassCursor,
    PassProgress, RegisteredConversations, Remembered, Rosters, StoreError, StreamKeys, StreamTenants, Upsert,
    minute_of, new_generation,
};
use crate::domain::{
    AccessFacts, AclChange, AssetId, AssetRecord, AssetType, Grant, GroupId, Identity, Principal, TenantId,
};

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    feeds: Mutex<Vec<mpsc::UnboundedSender<AclChange>>>,
}

#[derive(Debug, Default)]
struct State {
    assets: HashMap<AssetId, AssetRecord>,
    /// Grants by asset; like the table's, they outlive a deleted asset only as inert leftovers.
    grants: HashMap<AssetId, BTreeMap<Principal, Grant>>,
    members: BTreeMap<GroupId, BTreeSet<Identity>>,
    /// The expiry index: minute → entries. Like the table's, entries outlive their grants.
    expiries: BTreeMap<u64, BTreeSet<Expiry>>,
    sweep_cursor: Option<u64>,
    /// The sweep's failed attempts per entry, and the entries it set aside.
    expiry_attempts: HashMap<Expiry, u32>,
    expiries_aside: BTreeSet<Expiry>,
    offboarded: BTreeSet<Identity>,
    /// New conversations counted per user, window and bucket.
    budgets: HashMap<(super::BudgetCounter, &'static str, u64), u32>,
    /// Remembered requests by user and `Idempotency-Key`.
    idempotency: HashMap<(Identity, String), KeyHold>,
    /// The assets that have a conversation, in order, for the scheduled pass.
    registry: BTreeSet<AssetId>,
    pass: PassCursor,
    /// Each conversation's roster.
    rosters: HashMap<String, BTreeSet<Identity>>,
}

/// What an idempotency key holds, as the table's item does.
#[derive(Debug)]
struct KeyHold {
    fingerprint: String,
    group_name: String,
    lease_until: u64,
    forget_at: u64,
    answer: Option<Remembered>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every change made from now on, in order, as the table's stream would report it.
    pub fn changes(&self) -> mpsc::UnboundedReceiver<AclChange> {
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.feeds).push(sender);
        receiver
    }

    fn publish(&self, change: AclChange) {
        lock(&self.feeds).retain(|feed| feed.send(change.clone()).is_ok());
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// A panic while holding a lock cannot leave the maps half-updated: every write below is a
/// single insert or remove, so the state is still coherent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    fn facts(&self, asset: &AssetId) -> AccessFacts {
        AccessFacts {
            asset: self.assets.get(asset).cloned(),
            grants: self.grants.get(asset).map(|g| g.values().cloned().collect()).unwrap_or_default(),
        }
    }

    fn groups_of(&self, user: &Identity) -> BTreeSet<GroupId> {
        self.members.iter().filter(|(_, m)| m.contains(user)).map(|(g, _)| g.clone()).collect()
    }

    fn holds(&self, asset: &AssetRecord) -> bool {
        self.assets
            .get(&asset.id)
            .is_some_and(|current| current.owner == asset.owner && current.generation == asset.generation)
    }
}

impl AclReader for MemoryStore {
    async fn check_facts(&self, user: &Identity, assets: &[AssetId]) -> Result<CheckFacts, StoreError> {
        let state = self.state();
        Ok(CheckFacts {
            groups: state.groups_of(user),
            offboarded: state.offboarded.contains(user),
            assets: assets.iter().map(|a| state.facts(a)).collect(),
        })
    }

    async fn audience_facts(&self, asset: &AssetId, users: &[Identity]) -> Result<AudienceFacts, StoreError> {
        let state = self.state();
        Ok(AudienceFacts {
            asset: state.facts(asset),
            groups: users.iter().map(|u| state.groups_of(u)).collect(),
            offboarded: users.iter().map(|u| state.offboarded.contains(u)).collect(),
        })
    }

    async fn asset_facts(&self, asset: &AssetId) -> Result<AccessFacts, StoreError> {
        Ok(self.state().facts(asset))
    }

    async fn group_members(&self, group: &GroupId) -> Result<Vec<Identity>, StoreError> {
        Ok(self.state().members.get(group).map(|m| m.iter().cloned().collect()).unwrap_or_default())
    }

    async fn offboarded(&self, users: &[Identity]) -> Result<Vec<bool>, StoreError> {
        let state = self.state();
        Ok(users.iter().map(|u| state.offboarded.contains(u)).collect())
    }
}

impl Budgets for MemoryStore {
    async fn spend_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> Result<Result<(), BudgetSpent>, StoreError> {
        let mut state = self.state();
        let windows = limits.windows(user, tenant, now);
        let key = |w: &super::BudgetWindow| (w.counter.clone(), w.name, w.bucket);
        // The user's windows first (the one that frees last), then the tenant's, as the table's
        // adapter decides them.
        let full = |user_windows: bool| {
            windows
                .iter()
                .filter(|w| matches!(w.counter, super::BudgetCounter::User(_)) == user_windows)
                .filter(|w| state.budgets.get(&key(w)).is_some_and(|n| *n >= w.limit))
                .max_by_key(|w| w.seconds_left)
                .map(super::BudgetWindow::spent)
        };
        if let Some(spent) = full(true).or_else(|| full(false)) {
            return Ok(Err(spent));
        }
        state.budgets.retain(|(_, name, bucket), _| windows.iter().any(|w| w.name == *name && w.bucket == *bucket));
        for window in &windows {
            *state.budgets.entry(key(window)).or_default() += 1;
        }
        Ok(Ok(()))
    }

    async fn refund_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        for window in limits.windows(user, tenant, now) {
            if let Some(count) = state.budgets.get_mut(&(window.counter, window.name, window.bucket)) {
                *count = count.saturating_sub(1);
            }
        }
        Ok(())
    }
}

impl Idempotency for MemoryStore {
    async fn begin(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        group_name: &str,
        lease_seconds: u64,
        now: u64,
    ) -> Result<Begun, StoreError> {
        let mut state = self.state();
        state.idempotency.retain(|_, held| held.forget_at > now);
        let slot = (user.clone(), key.to_owned());
        if let Some(held) = state.idempotency.get_mut(&slot) {
            return Ok(match &held.answer {
                _ if held.fingerprint != fingerprint => Begun::Mismatch,
                Some(answer) => Begun::Replay(answer.clone()),
                None if held.lease_until > now => Begun::InProgress,
                None => {
                    held.lease_until = now + lease_seconds;
                    held.forget_at = now + IDEMPOTENCY_WINDOW_SECONDS;
                    Begun::Fresh { group_name: held.group_name.clone(), attempted: true }
                }
            });
        }
        state.idempotency.insert(
            slot,
            KeyHold {
                fingerprint: fingerprint.to_owned(),
                group_name: group_name.to_owned(),
                lease_until: now + lease_seconds,
                forget_at: now + IDEMPOTENCY_WINDOW_SECONDS,
                answer: None,
            },
        );
        Ok(Begun::Fresh { group_name: group_name.to_owned(), attempted: false })
    }

    async fn finish(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        answer: &Remembered,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        match state.idempotency.get_mut(&(user.clone(), key.to_owned())) {
            Some(held) if held.fingerprint == fingerprint => {
                held.answer = Some(answer.clone());
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn abandon(&self, user: &Identity, key: &str, fingerprint: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(held) = state.idempotency.get_mut(&(user.clone(), key.to_owned()))
            && held.fingerprint == fingerprint
            && held.answer.is_none()
        {
            held.lease_until = 0;
        }
        Ok(())
    }
}

impl ConversationRegistry for MemoryStore {
    async fn register_conversation(&self, asset: &AssetId, _now: u64) -> Result<(), StoreError> {
        self.state().registry.insert(asset.clone());
        Ok(())
    }
}

impl RegisteredConversations for MemoryStore {
    async fn registered_after(
        &self,
        after: Option<&AssetId>,
        limit: usize,
    ) -> Result<(Vec<AssetId>, bool), StoreError> {
        let state = self.state();
        let mut following = state.registry.iter().filter(|asset| after.is_none_or(|after| *asset > after)).cloned();
        let page: Vec<AssetId> = following.by_ref().take(limit).collect();
        Ok((page, following.next().is_some()))
    }
}

impl PassProgress for MemoryStore {
    async fn pass_cursor(&self) -> Result<PassCursor, StoreError> {
        Ok(self.state().pass.clone())
    }

    async fn save_pass_cursor(&self, from: &PassCursor, to: &PassCursor) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.pass.version != from.version {
            return Err(StoreError::Conflict);
        }
        state.pass = to.clone();
        Ok(())
    }
}

/// The in-memory store keys nothing by handle, and has no stream of records.
impl StreamKeys for MemoryStore {
    async fn stream_tenants(&self, _handles: BTreeSet<String>) -> Result<StreamTenants, StoreError> {
        Ok(StreamTenants::Single)
    }
}

impl Rosters for MemoryStore {
    async fn write_roster(&self, conversation: &str, joined: &[Identity], left: &[Identity]) -> Result<(), StoreError> {
        let mut state = self.state();
        let roster = state.rosters.entry(conversation.to_owned()).or_default();
        roster.extend(joined.iter().cloned());
        for user in left {
            roster.remove(user);
        }
        if roster.is_empty() {
            state.rosters.remove(conversation);
        }
        Ok(())
    }

    async fn rosters(&self, conversations: &[String]) -> Result<Vec<Vec<Identity>>, StoreError> {
        let state = self.state();
        Ok(conversations
            .iter()
            .map(|c| state.rosters.get(c).map(|r| r.iter().cloned().collect()).unwrap_or_default())
            .collect())
    }
}

impl GrantWriter for MemoryStore {
    async fn asset_record(&self, asset: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        Ok(self.state().assets.get(asset).cloned())
    }

    async fn put_grant(&self, asset: &AssetRecord, grant: &Grant, _now: u64) -> Result<(), StoreError> {
        {
            let mut state = self.state();
            if !state.holds(asset) {
                return Err(StoreError::Conflict);
            }
            let grant = Grant { generation: asset.generation.clone(), ..grant.clone() };
            if let Some(at) = grant.expires_at {
                let entry = Expiry { asset: asset.id.clone(), principal: grant.principal.clone(), expires_at: at };
                state.expiries.entry(minute_of(at)).or_default().insert(entry);
            }
            state.grants.entry(asset.id.clone()).or_default().insert(grant.principal.clone(), grant);
        }
        self.publish(AclChange::GrantWritten {
            asset: asset.id.clone(),
            principal: grant.principal.clone(),
            expires_at: grant.expires_at,
        });
        Ok(())
    }

    async fn delete_grant(&self, asset: &AssetRecord, principal: &Principal) -> Result<(), StoreError> {
        let removed = {
            let mut state = self.state();
            if !state.holds(asset) {
                return Err(StoreError::Conflict);
            }
            state.grants.get_mut(&asset.id).and_then(|grants| grants.remove(principal)).is_some()
        };
        // Like the table's stream: deleting nothing is no change.
        if removed {
            self.publish(AclChange::GrantDeleted { asset: asset.id.clone(), principal: principal.clone() });
        }
        Ok(())
    }
}

impl CatalogWriter for MemoryStore {
    async fn put_asset(
        &self,
        id: &AssetId,
        owner: &Identity,
        kind: AssetType,
        name: &str,
        _now: u64,
    ) -> Result<Upsert, StoreError> {
        let (upsert, previous_owner) = {
            let mut state = self.state();
            let (generation, upsert, previous_owner) = match state.assets.get(id) {
                Some(current) => (current.generation.clone(), Upsert::Replaced, Some(current.owner.clone())),
                None => (new_generation(), Upsert::Created, None),
            };
            let record = AssetRecord { id: id.clone(), owner: owner.clone(), kind, name: name.to_owned(), generation };
            state.assets.insert(id.clone(), record);
            (upsert, previous_owner)
        };
        self.publish(AclChange::AssetWritten { asset: id.clone(), previous_owner, owner: owner.clone() });
        Ok(upsert)
    }

    async fn delete_asset(&self, id: &AssetId) -> Result<usize, StoreError> {
        let (existed, removed) = {
            let mut state = self.state();
            (state.assets.remove(id).is_some(), state.grants.remove(id).map_or(0, |g| g.len()))
        };
        if existed {
            self.publish(AclChange::AssetDeleted { asset: id.clone() });
        }
        Ok(removed)
    }

    async fn add_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        let added = self.state().members.entry(group.clone()).or_default().insert(user.clone());
        if added {
            self.publish(AclChange::MemberAdded { group: group.clone(), user: user.clone() });
        }
        Ok(())
    }

    async fn remove_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        let removed = {
            let mut state = self.state();
            let removed = state.members.get_mut(group).is_some_and(|members| members.remove(user));
            if state.members.get(group).is_some_and(BTreeSet::is_empty) {
                state.members.remove(group);
            }
            removed
        };
        if removed {
            self.publish(AclChange::MemberRemoved { group: group.clone(), user: user.clone() });
        }
        Ok(())
    }

    async fn set_offboarded(&self, user: &Identity, offboarded: bool, _now: u64) -> Result<(), StoreError> {
        let mut state = self.state();
        if offboarded {
            state.offboarded.insert(user.clone());
        } else {
            state.offboarded.remove(user);
        }
        Ok(())
    }

    async fn delete_user_grants(&self, user: &Identity) -> Result<Vec<AssetId>, StoreError> {
        let principal = Principal::User(user.clone());
        let assets: Vec<AssetId> = {
            let mut state = self.state();
            state
                .grants
                .iter_mut()
                .filter_map(|(asset, grants)| grants.remove(&principal).map(|_| asset.clone()))
                .collect()
        };
        for asset in &assets {
            self.publish(AclChange::GrantDeleted { asset: asset.clone(), principal: principal.clone() });
        }
        Ok(assets)
    }
}

impl ExpiryIndex for MemoryStore {
    async fn expiring_in(&self, minute: u64) -> Result<Vec<Expiry>, StoreError> {
        let state = self.state();
        let entries = state.expiries.get(&minute).into_iter().flatten();
        Ok(entries.filter(|e| !state.expiries_aside.contains(*e)).cloned().collect())
    }

    async fn expiry_done(&self, entry: &Expiry) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(entries) = state.expiries.get_mut(&minute_of(entry.expires_at)) {
            entries.remove(entry);
        }
        state.expiry_attempts.remove(entry);
        Ok(())
    }

    async fn expiry_failed(&self, entry: &Expiry, set_aside_after: u32) -> Result<bool, StoreError> {
        let mut state = self.state();
        let attempts = state.expiry_attempts.entry(entry.clone()).or_default();
        *attempts += 1;
        if *attempts >= set_aside_after {
            return Ok(state.expiries_aside.insert(entry.clone()));
        }
        Ok(false)
    }

    async fn sweep_cursor(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.state().sweep_cursor)
    }

    async fn advance_sweep_cursor(&self, from: Option<u64>, to: u64) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.sweep_cursor != from {
            return Err(StoreError::Conflict);
        }
        state.sweep_cursor = Some(to);
        Ok(())
    }
}
