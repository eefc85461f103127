//! The asset catalogue and the groups, as the SaaS back end that owns them keeps them: assets
//! created, replaced and deleted with their grants, group memberships, and offboarding a user
//! (and lifting it). Every change is one audit line naming the caller; written once over the ACL
//! ports and the reconciler, so the admin function and `chatgate dev` call the same code.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::acl::{AclReader, CatalogWriter, Rosters, Upsert};
use crate::audit;
use crate::clock::{Clock, Deadline};
use crate::domain::{AssetId, AssetType, GroupId, Identity, Tenant};
use crate::http::ApiError;
use crate::reconcile::{Offboarded, Reconciler};

/// Longest asset name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;

/// `PUT /admin/assets/{id}`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRequest {
    pub owner: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
}

/// A validated catalogue entry: who owns the asset, what it is and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetEntry {
    pub owner: Identity,
    pub kind: AssetType,
    pub name: String,
}

impl TryFrom<AssetRequest> for AssetEntry {
    type Error = ApiError;

    fn try_from(request: AssetRequest) -> Result<Self, ApiError> {
        Self::read(request, &Tenant::Single)
    }
}

impl AssetEntry {
    /// The request as `tenant`'s: its owner is one of the tenant's users.
    pub fn read(AssetRequest { owner, kind, name }: AssetRequest, tenant: &Tenant) -> Result<Self, ApiError> {
        let owner = tenant.user(&owner).map_err(|e| ApiError::BadRequest(format!("owner: {e}")))?;
        let kind = AssetType::parse(&kind)
            .ok_or_else(|| ApiError::BadRequest("type must be document, image or video".into()))?;
        if name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest(format!(
                "name must be at most {MAX_NAME_BYTES} bytes without control characters"
            )));
        }
        Ok(Self { owner, kind, name })
    }
}

/// An asset as the catalogue holds it: `PUT /admin/assets/{id}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetView {
    pub asset_id: String,
    pub owner: String,
    #[serde(rename = "type")]
    pub kind: AssetType,
    pub name: String,
}

impl AssetView {
    /// The same asset as `tenant`'s back end names it.
    #[must_use]
    pub fn relative_to(self, tenant: &Tenant) -> Self {
        Self { asset_id: tenant.shown(&self.asset_id), owner: tenant.shown(&self.owner), ..self }
    }
}

/// What putting an asset did, and the asset as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetPut {
    pub upsert: Upsert,
    pub asset: AssetView,
}

/// A group's members: `GET /admin/groups/{id}/members`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Members {
    pub group_id: String,
    pub members: Vec<String>,
}

impl Members {
    /// The same members as `tenant`'s back end names them.
    #[must_use]
    pub fn relative_to(self, tenant: &Tenant) -> Self {
        let members = self.members.iter().filter_map(|m| tenant.local(m)).map(str::to_owned).collect();
        Self { group_id: tenant.shown(&self.group_id), members }
    }
}

/// The use cases' state over a store `C`: cheap to build (three reference counts).
#[derive(Debug)]
pub struct Catalog<C> {
    store: Arc<C>,
    clock: Arc<dyn Clock>,
    /// Offboarding takes users out of their Twilio conversations.
    rule: Arc<Reconciler<C>>,
}

impl<C> Clone for Catalog<C> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), clock: self.clock.clone(), rule: self.rule.clone() }
    }
}

impl<C> Catalog<C> {
    pub fn new(store: Arc<C>, clock: Arc<dyn Clock>, rule: Arc<Reconciler<C>>) -> Self {
        Self { store, clock, rule }
    }

    /// The same catalogue in a tenant deployment: its audit lines, and its rule's, name the
    /// tenant of each change.
    #[must_use]
    pub fn with_tenants(self, tenants: bool) -> Self {
        Self { rule: Arc::new(self.rule.as_ref().clone().with_tenants(tenants)), ..self }
    }

    /// The same catalogue on another clock (the tests' fixed one).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// The store it writes, and the rule it offboards with: what the local server's demo seeds.
    pub fn store(&self) -> &C {
        &self.store
    }

    pub fn rule(&self) -> &Reconciler<C> {
        &self.rule
    }
}

impl<C: CatalogWriter> Catalog<C> {
    /// Creates the asset or replaces its owner, type and name (its grants survive).
    pub async fn put_asset(&self, asset: AssetId, entry: AssetEntry, actor: &str) -> Result<AssetPut, ApiError> {
        let AssetEntry { owner, kind, name } = entry;
        let upsert = self.store.put_asset(&asset, &owner, kind, &name, self.clock.now()).await?;
        let detail = format!("owner {owner}, {}", if upsert == Upsert::Created { "created" } else { "replaced" });
        audit::record(&audit::Entry {
            event: "asset.put",
            tenant: self.rule.tenant_of(asset.as_str()),
            actor,
            asset: Some(asset.as_str()),
            detail: Some(&detail),
            ..audit::Entry::default()
        });
        Ok(AssetPut { upsert, asset: AssetView { asset_id: asset.to_string(), owner: owner.to_string(), kind, name } })
    }

    /// Deletes the asset and its grants; returns how many grants went.
    pub async fn delete_asset(&self, asset: &AssetId, actor: &str) -> Result<usize, ApiError> {
        let removed = self.store.delete_asset(asset).await?;
        audit::record(&audit::Entry {
            event: "asset.deleted",
            tenant: self.rule.tenant_of(asset.as_str()),
            actor,
            asset: Some(asset.as_str()),
            detail: Some(&format!("{removed} grant(s) removed")),
            ..audit::Entry::default()
        });
        Ok(removed)
    }

    pub async fn add_member(&self, group: &GroupId, user: &Identity, actor: &str) -> Result<(), ApiError> {
        self.store.add_member(group, user).await?;
        self.membership_changed("member.added", group, user, actor);
        Ok(())
    }

    pub async fn remove_member(&self, group: &GroupId, user: &Identity, actor: &str) -> Result<(), ApiError> {
        self.store.remove_member(group, user).await?;
        self.membership_changed("member.removed", group, user, actor);
        Ok(())
    }
}

impl<C: AclReader> Catalog<C> {
    pub async fn members(&self, group: GroupId) -> Result<Members, ApiError> {
        let members = self.store.group_members(&group).await?;
        Ok(Members { group_id: group.to_string(), members: members.iter().map(ToString::to_string).collect() })
    }
}

impl<C: AclReader + CatalogWriter + Rosters> Catalog<C> {
    /// Marks the user offboarded, deletes their grants, takes them out of their groups and their
    /// chatgate conversations; a retry finishes what a failure or the deadline left.
    pub async fn offboard(&self, user: &Identity, actor: &str, deadline: Deadline) -> Result<Offboarded, ApiError> {
        Ok(self.rule.offboard(user, actor, deadline).await?)
    }

    /// Lets the user be granted and added again (what they lost stays lost).
    pub async fn lift_offboarding(&self, user: &Identity, actor: &str) -> Result<(), ApiError> {
        Ok(self.rule.lift_offboarding(user, actor).await?)
    }
}

impl<C> Catalog<C> {
    fn membership_changed(&self, event: &'static str, group: &GroupId, user: &Identity, actor: &str) {
        audit::record(&audit::Entry {
            event,
            tenant: self.rule.tenant_of(group.as_str()),
            actor,
            principal: Some(&format!("user:{user}")),
            detail: Some(&format!("group:{group}")),
            ..audit::Entry::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: &str, kind: &str, name: &str) -> Result<AssetEntry, ApiError> {
        AssetEntry::try_from(AssetRequest { owner: owner.into(), kind: kind.into(), name: name.into() })
    }

    #[test]
    fn an_asset_names_its_owner_a_known_type_and_a_printable_name() {
        assert!(matches!(entry("", "document", ""), Err(ApiError::BadRequest(m)) if m.starts_with("owner: ")));
        assert!(matches!(
            entry("ana", "spreadsheet", ""),
            Err(ApiError::BadRequest(m)) if m == "type must be document, image or video"
        ));
        let refused = "name must be at most 1024 bytes without control characters";
        assert!(matches!(entry("ana", "image", "a\nb"), Err(ApiError::BadRequest(m)) if m == refused));
        assert!(matches!(entry("ana", "image", &"x".repeat(1025)), Err(ApiError::BadRequest(m)) if m == refused));
        let ok = entry("ana", "video", "Launch").expect("entry");
        assert_eq!((ok.owner.as_str(), ok.kind, ok.name.as_str()), ("ana", AssetType::Video, "Launch"));
    }
}
