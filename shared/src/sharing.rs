//! Sharing an asset: its owner and writers see its live grants, and its owner alone puts or
//! deletes one, each write conditional on the asset still having the owner and generation the
//! decision saw. Written once over the ACL ports, so the sharing function and `chatgate dev` call
//! the same code.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::acl::{AclReader, GrantWriter, StoreError};
use crate::audit;
use crate::clock::Clock;
use crate::domain::Caller;
use crate::domain::{AssetId, AssetRecord, Grant, Identity, Principal, Role, Tenant, TenantId};
use crate::http::ApiError;

const NOT_OWNER: &str = "only the owner can share this asset";

/// `PUT /assets/{id}/grants/{principal}`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub role: String,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A validated grant request: a role that can be granted and, when the grant expires, when.
/// Whether that time is still ahead is the clock's to say, when the grant is put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantPlan {
    pub role: Role,
    pub expires_at: Option<OffsetDateTime>,
}

impl TryFrom<GrantRequest> for GrantPlan {
    type Error = ApiError;

    fn try_from(request: GrantRequest) -> Result<Self, ApiError> {
        let role = Role::grantable(&request.role)
            .ok_or_else(|| ApiError::BadRequest("role must be `reader` or `writer`".into()))?;
        let expires_at = request
            .expires_at
            .map(|at| {
                OffsetDateTime::parse(&at, &Rfc3339)
                    .map_err(|_| ApiError::BadRequest("expires_at must be an RFC 3339 time".into()))
            })
            .transpose()?;
        Ok(Self { role, expires_at })
    }
}

/// One grant as the routes show it: ids as the caller names them (relative to their tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantView {
    pub principal: String,
    pub role: Role,
    pub expires_at: Option<String>,
}

/// An asset's live grants, by principal: `GET /assets/{id}/grants`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetGrants {
    pub asset_id: String,
    pub owner: String,
    pub grants: Vec<GrantView>,
}

/// The grant as written: `PUT /assets/{id}/grants/{principal}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrantPut {
    pub asset_id: String,
    #[serde(flatten)]
    pub grant: GrantView,
}

/// The use cases' state over a store `S`: cheap to build (two reference counts).
#[derive(Debug, Clone)]
pub struct Sharing<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S> Sharing<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The same use cases on another clock (the tests' fixed one).
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }
}

impl<S: AclReader> Sharing<S> {
    /// The asset's live grants, for its owner and writers; anyone else (or a missing asset) is 403.
    pub async fn grants(&self, caller: &Caller, asset: AssetId) -> Result<AssetGrants, ApiError> {
        let (user, tenant) = (&caller.identity, &caller.tenant);
        let now = self.clock.now();
        let facts = self.store.check_facts(user, std::slice::from_ref(&asset)).await?;
        let can_write = facts.decision(user, now).can_write();
        let Some((Some(record), grants)) = facts.assets.first().map(|f| (&f.asset, &f.grants)).filter(|_| can_write)
        else {
            return Err(ApiError::Forbidden("only the owner or a writer can see this asset's grants".into()));
        };
        // Only the caller's tenant's principals (nothing else can be granted through chatgate).
        let mut grants: Vec<&Grant> = grants
            .iter()
            .filter(|g| g.is_live(record, now) && tenant.local_principal(&g.principal).is_some())
            .collect();
        grants.sort_by_cached_key(|g| g.principal.to_string());
        let grants = grants.into_iter().map(|g| view(g, tenant)).collect::<Result<_, _>>()?;
        Ok(AssetGrants { asset_id: tenant.shown(asset.as_str()), owner: tenant.shown(record.owner.as_str()), grants })
    }
}

impl<S: GrantWriter> Sharing<S> {
    /// Grants `principal` the plan's role on the asset, for its owner only; one audit line.
    pub async fn put_grant(
        &self,
        caller: &Caller,
        asset: AssetId,
        principal: Principal,
        plan: GrantPlan,
    ) -> Result<GrantPut, ApiError> {
        let (user, tenant) = (&caller.identity, &caller.tenant);
        let now = self.clock.now();
        let expires_at = plan
            .expires_at
            .map(|at| {
                u64::try_from(at.unix_timestamp())
                    .ok()
                    .filter(|&at| at > now)
                    .ok_or_else(|| ApiError::BadRequest("expires_at must be in the future".into()))
            })
            .transpose()?;
        let record = self.owned(user, &asset).await?;
        if principal == Principal::User(record.owner.clone()) {
            return Err(ApiError::BadRequest("the owner already has every right on the asset".into()));
        }
        let grant = Grant { principal, role: plan.role, expires_at, generation: record.generation.clone() };
        self.store.put_grant(&record, &grant, now).await.map_err(ownership_changed)?;
        let view = view(&grant, tenant)?;
        let detail = match &view.expires_at {
            Some(at) => format!("{} until {at}", plan.role.as_str()),
            None => plan.role.as_str().to_owned(),
        };
        audit::record(&audit::Entry {
            event: "grant.put",
            tenant: tenant.id().map(TenantId::as_str),
            actor: user.as_str(),
            asset: Some(asset.as_str()),
            principal: Some(&grant.principal.to_string()),
            detail: Some(&detail),
            ..audit::Entry::default()
        });
        Ok(GrantPut { asset_id: tenant.shown(asset.as_str()), grant: view })
    }

    /// Takes `principal`'s grant on the asset away, for its owner only; one audit line.
    pub async fn delete_grant(&self, caller: &Caller, asset: &AssetId, principal: &Principal) -> Result<(), ApiError> {
        let user = &caller.identity;
        let record = self.owned(user, asset).await?;
        self.store.delete_grant(&record, principal).await.map_err(ownership_changed)?;
        audit::record(&audit::Entry {
            event: "grant.deleted",
            tenant: caller.tenant.id().map(TenantId::as_str),
            actor: user.as_str(),
            asset: Some(asset.as_str()),
            principal: Some(&principal.to_string()),
            ..audit::Entry::default()
        });
        Ok(())
    }

    /// The record, when `user` owns it; otherwise 403 (also for a missing asset: no oracle).
    async fn owned(&self, user: &Identity, asset: &AssetId) -> Result<AssetRecord, ApiError> {
        let record = self.store.asset_record(asset).await?;
        record.filter(|r| &r.owner == user).ok_or_else(|| ApiError::Forbidden(NOT_OWNER.into()))
    }
}

/// The asset changed owner (or was replaced) between the read and the conditional write.
fn ownership_changed(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict => ApiError::Forbidden(NOT_OWNER.into()),
        other => other.into(),
    }
}

fn view(grant: &Grant, tenant: &Tenant) -> Result<GrantView, ApiError> {
    let expires_at = grant
        .expires_at
        .map(|at| {
            OffsetDateTime::from_unix_timestamp(i64::try_from(at).map_err(ApiError::internal)?)
                .map_err(ApiError::internal)?
                .format(&Rfc3339)
                .map_err(ApiError::internal)
        })
        .transpose()?;
    // A principal of the caller's tenant (the grants shown are filtered so).
    let principal = tenant.local_principal(&grant.principal).unwrap_or_default();
    Ok(GrantView { principal, role: grant.role, expires_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::{CatalogWriter as _, MemoryStore};
    use crate::clock::FixedClock;
    use crate::domain::AssetType;

    const NOW: u64 = 1_795_000_000;

    fn user(id: &str) -> Identity {
        Identity::try_from(id).expect("identity")
    }

    fn caller(id: &str) -> Caller {
        Caller { tenant: Tenant::Single, identity: user(id) }
    }

    fn plan(role: &str, expires_at: Option<&str>) -> Result<GrantPlan, ApiError> {
        GrantPlan::try_from(GrantRequest { role: role.into(), expires_at: expires_at.map(Into::into) })
    }

    async fn sharing() -> (Sharing<MemoryStore>, AssetId) {
        let store = Arc::new(MemoryStore::new());
        let asset = AssetId::try_from("a-1").expect("asset");
        store.put_asset(&asset, &user("ana"), AssetType::Document, "Plan", NOW).await.expect("asset");
        (Sharing::new(store, Arc::new(FixedClock(NOW))), asset)
    }

    #[test]
    fn a_grant_request_names_a_grantable_role_and_an_rfc_3339_time() {
        assert!(
            matches!(plan("owner", None), Err(ApiError::BadRequest(m)) if m == "role must be `reader` or `writer`")
        );
        assert!(matches!(plan("reader", Some("tomorrow")), Err(ApiError::BadRequest(m)) if m.contains("RFC 3339")));
        assert_eq!(plan("writer", None).expect("plan"), GrantPlan { role: Role::Writer, expires_at: None });
    }

    #[tokio::test]
    async fn owner_can_share_but_a_writer_cannot() {
        let (sharing, asset) = sharing().await;
        let bob = Principal::User(user("bob"));
        let put = sharing
            .put_grant(&caller("ana"), asset.clone(), bob.clone(), plan("writer", None).expect("plan"))
            .await
            .expect("owner shares");
        assert_eq!(put.grant, GrantView { principal: "user:bob".into(), role: Role::Writer, expires_at: None });
        let cy = Principal::User(user("cy"));
        let refused = sharing.put_grant(&caller("bob"), asset.clone(), cy, plan("reader", None).expect("plan")).await;
        assert!(matches!(refused, Err(ApiError::Forbidden(m)) if m == NOT_OWNER));
        let listed = sharing.grants(&caller("bob"), asset.clone()).await.expect("a writer lists");
        assert_eq!(listed.owner, "ana");
        assert_eq!(listed.grants, vec![put.grant]);
        sharing.delete_grant(&caller("ana"), &asset, &bob).await.expect("owner revokes");
        assert!(matches!(sharing.grants(&caller("bob"), asset).await, Err(ApiError::Forbidden(_))));
    }

    #[tokio::test]
    async fn a_grant_expires_in_the_future_and_never_to_the_owner() {
        let (sharing, asset) = sharing().await;
        let past = plan("reader", Some("2020-01-01T00:00:00Z")).expect("plan");
        let bob = Principal::User(user("bob"));
        let refused = sharing.put_grant(&caller("ana"), asset.clone(), bob, past).await;
        assert!(matches!(refused, Err(ApiError::BadRequest(m)) if m == "expires_at must be in the future"));
        let ana = Principal::User(user("ana"));
        let refused = sharing.put_grant(&caller("ana"), asset, ana, plan("reader", None).expect("plan")).await;
        assert!(matches!(refused, Err(ApiError::BadRequest(m)) if m.starts_with("the owner already")));
    }
}
