//! One benchmark size: an asset with N grants and a user in N groups, seeded through chatgate's
//! own writers so the items are exactly what production writes.

use futures_util::{StreamExt as _, TryStreamExt as _};

use chatgate::acl::{AclReader, CatalogWriter, DynamoStore, GrantWriter};
use chatgate::domain::{AccessDecision, AssetId, AssetType, Grant, GroupId, Identity, Principal, Role, Tenant, Via};

use crate::BenchError;

/// Writes in flight at once while seeding.
const SEED_CONCURRENCY: usize = 16;

/// How ids are spelt: they are in every key, so they set the item sizes and with them the RCU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ids {
    /// `doc-n50`, `me-n50`, `n50-team-0007`: 6 to 15 characters.
    Short,
    /// UUID-shaped, 36 characters, as many SaaS back ends name users, groups and documents.
    Uuid,
    /// The short ids in a tenant deployment: each qualified with a 30-character organisation id
    /// (WorkOS-shaped), as chatgate names them (`<tenant>~<id>`), written and read by a store with
    /// the tenant layout.
    TenantShort,
    /// The same UUIDs in a tenant deployment, qualified alike.
    Tenant,
}

/// The organisation of [`Ids::TenantShort`] and [`Ids::Tenant`]: `TENANT_ID`, by default a
/// 30-character one (WorkOS-shaped). The store keeps the asset's and the user's partitions under
/// the tenant's fixed-size handle, so the items a check reads do not grow with its length.
fn tenant() -> &'static str {
    static TENANT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let tenant = std::env::var("TENANT_ID").unwrap_or_else(|_| "org_01HZXK4Q5N8M2R7T3V9W1Y6B0C".to_owned());
        chatgate::domain::TenantId::try_from(tenant.as_str()).expect("TENANT_ID must be a tenant id").to_string()
    });
    &TENANT
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Grants on the asset, and groups the user belongs to.
    pub n: usize,
    pub ids: Ids,
    pub asset: AssetId,
    pub user: Identity,
    /// The only one of the user's groups with a grant (writer): the decision has to look through
    /// the groups. It is the last in sort-key order, so the naive check walks every group.
    pub granted_group: GroupId,
}

impl Scenario {
    pub fn new(n: usize, ids: Ids) -> Result<Self, BenchError> {
        Ok(Self {
            n,
            ids,
            asset: AssetId::try_from(id(ids, n, "doc", 0))?,
            user: Identity::try_from(id(ids, n, "me", 0))?,
            granted_group: GroupId::try_from(id(ids, n, "team", n.saturating_sub(1)))?,
        })
    }

    /// The first column of the table.
    pub fn label(&self) -> String {
        match self.ids {
            Ids::Short => self.n.to_string(),
            Ids::Uuid => format!("{} (36-char ids)", self.n),
            Ids::TenantShort => format!("{} (tenant-qualified)", self.n),
            Ids::Tenant => format!("{} (36-char ids, tenant-qualified)", self.n),
        }
    }

    /// The deployment the scenario's ids are of: a tenant's, or a single-tenant one.
    pub fn within(&self) -> Tenant {
        match self.ids {
            Ids::Short | Ids::Uuid => Tenant::Single,
            Ids::TenantShort | Ids::Tenant => {
                Tenant::Of(chatgate::domain::TenantId::try_from(tenant()).expect("TENANT_ID must be a tenant id"))
            }
        }
    }

    /// What every check must answer.
    pub fn expected(&self) -> AccessDecision {
        AccessDecision { role: Role::Writer, via: Some(Via::Group(self.granted_group.clone())) }
    }

    /// Grant `i` of N: even ones to groups (the first to the user's granted group, as writer, the
    /// rest reader grants to groups the user is not in), odd ones reader grants to other users.
    fn grant(&self, i: usize) -> Result<Grant, BenchError> {
        let (ids, n) = (self.ids, self.n);
        let (principal, role) = match i {
            0 => (Principal::Group(self.granted_group.clone()), Role::Writer),
            i if i % 2 == 0 => (Principal::Group(GroupId::try_from(id(ids, n, "other", i))?), Role::Reader),
            i => (Principal::User(Identity::try_from(id(ids, n, "user", i))?), Role::Reader),
        };
        Ok(Grant { principal, role, expires_at: None, generation: String::new() })
    }

    /// Creates the asset, its N grants and the user's N memberships, then reads them back.
    pub async fn seed(&self, store: &DynamoStore, now: u64) -> Result<(), BenchError> {
        let owner = Identity::try_from(id(self.ids, self.n, "owner", 0))?;
        store.put_asset(&self.asset, &owner, AssetType::Document, "acl-bench", now).await?;
        let record = store.asset_facts(&self.asset).await?.asset.ok_or("the asset just written is missing")?;

        enum Write {
            Grant(Grant),
            Member(GroupId),
        }
        let grants = (0..self.n).map(|i| self.grant(i).map(Write::Grant));
        let members = (0..self.n)
            .map(|i| GroupId::try_from(id(self.ids, self.n, "team", i)).map(Write::Member).map_err(BenchError::from));
        let writes: Vec<Write> = grants.chain(members).collect::<Result<_, _>>()?;
        futures_util::stream::iter(writes)
            .map(|write| {
                let record = &record;
                async move {
                    match write {
                        Write::Grant(grant) => store.put_grant(record, &grant, now).await,
                        Write::Member(group) => store.add_member(&group, &self.user).await,
                    }
                }
            })
            .buffer_unordered(SEED_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        let facts = store.check_facts(&self.user, std::slice::from_ref(&self.asset)).await?;
        let grants = facts.assets.first().map_or(0, |f| f.grants.len());
        if grants != self.n || facts.groups.len() != self.n {
            return Err(format!(
                "seeding N = {} left {grants} grants and {} memberships",
                self.label(),
                facts.groups.len()
            )
            .into());
        }
        Ok(())
    }
}

/// Id number `i` of a kind for size `n`; the number is the last, zero-padded part, so sort-key
/// order is numeric order (the granted team, the last, is read last by the naive check).
fn id(ids: Ids, n: usize, kind: &str, i: usize) -> String {
    match ids {
        Ids::Short if kind == "doc" || kind == "me" => format!("{kind}-n{n}"),
        Ids::Short => format!("n{n}-{kind}-{i:04}"),
        Ids::TenantShort => format!("{}{}{}", tenant(), chatgate::domain::TENANT_SEPARATOR, id(Ids::Short, n, kind, i)),
        Ids::Tenant => format!("{}{}{}", tenant(), chatgate::domain::TENANT_SEPARATOR, id(Ids::Uuid, n, kind, i)),
        Ids::Uuid => {
            let kind = kind.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            format!("{kind:08x}-{n:04x}-4000-8000-{i:012x}")
        }
    }
}
