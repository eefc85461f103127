//! The in-memory ACL store of the local server and of handler tests: the same contract as the
//! DynamoDB adapter (one contract test suite runs against both), in one process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use super::{AclReader, CatalogWriter, CheckFacts, GrantWriter, StoreError, Upsert, new_generation};
use crate::domain::{AccessFacts, AssetId, AssetRecord, AssetType, Grant, GroupId, Identity, Principal};

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    assets: HashMap<AssetId, AssetRecord>,
    /// Grants by asset; like the table's, they outlive a deleted asset only as inert leftovers.
    grants: HashMap<AssetId, BTreeMap<Principal, Grant>>,
    members: BTreeMap<GroupId, BTreeSet<Identity>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated: every write below
        // is a single insert or remove, so the state is still coherent.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    fn facts(&self, asset: &AssetId) -> AccessFacts {
        AccessFacts {
            asset: self.assets.get(asset).cloned(),
            grants: self.grants.get(asset).map(|g| g.values().cloned().collect()).unwrap_or_default(),
        }
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
        let groups = state.members.iter().filter(|(_, m)| m.contains(user)).map(|(g, _)| g.clone()).collect();
        Ok(CheckFacts { groups, assets: assets.iter().map(|a| state.facts(a)).collect() })
    }

    async fn asset_record(&self, asset: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        Ok(self.state().assets.get(asset).cloned())
    }

    async fn asset_facts(&self, asset: &AssetId) -> Result<AccessFacts, StoreError> {
        Ok(self.state().facts(asset))
    }

    async fn group_members(&self, group: &GroupId) -> Result<Vec<Identity>, StoreError> {
        Ok(self.state().members.get(group).map(|m| m.iter().cloned().collect()).unwrap_or_default())
    }
}

impl GrantWriter for MemoryStore {
    async fn put_grant(&self, asset: &AssetRecord, grant: &Grant, _now: u64) -> Result<(), StoreError> {
        let mut state = self.state();
        if !state.holds(asset) {
            return Err(StoreError::Conflict);
        }
        let grant = Grant { generation: asset.generation.clone(), ..grant.clone() };
        state.grants.entry(asset.id.clone()).or_default().insert(grant.principal.clone(), grant);
        Ok(())
    }

    async fn delete_grant(&self, asset: &AssetRecord, principal: &Principal) -> Result<(), StoreError> {
        let mut state = self.state();
        if !state.holds(asset) {
            return Err(StoreError::Conflict);
        }
        if let Some(grants) = state.grants.get_mut(&asset.id) {
            grants.remove(principal);
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
        let mut state = self.state();
        let (generation, upsert) = match state.assets.get(id) {
            Some(current) => (current.generation.clone(), Upsert::Replaced),
            None => (new_generation(), Upsert::Created),
        };
        let record = AssetRecord { id: id.clone(), owner: owner.clone(), kind, name: name.to_owned(), generation };
        state.assets.insert(id.clone(), record);
        Ok(upsert)
    }

    async fn delete_asset(&self, id: &AssetId) -> Result<usize, StoreError> {
        let mut state = self.state();
        state.assets.remove(id);
        Ok(state.grants.remove(id).map_or(0, |g| g.len()))
    }

    async fn add_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        self.state().members.entry(group.clone()).or_default().insert(user.clone());
        Ok(())
    }

    async fn remove_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        let mut state = self.state();
        if let Some(members) = state.members.get_mut(group) {
            members.remove(user);
            if members.is_empty() {
                state.members.remove(group);
            }
        }
        Ok(())
    }
}
