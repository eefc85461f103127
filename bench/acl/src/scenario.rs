//! One benchmark size: an asset with N grants and a user in N groups, seeded through chatgate's
//! own writers so the items are exactly what production writes.

use futures_util::{StreamExt as _, TryStreamExt as _};

use chatgate::acl::{AclReader, CatalogWriter, DynamoStore, GrantWriter};
use chatgate::domain::{AccessDecision, AssetId, AssetType, Grant, GroupId, Identity, Principal, Role, Via};

use crate::BenchError;

/// Writes in flight at once while seeding.
const SEED_CONCURRENCY: usize = 16;

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Grants on the asset, and groups the user belongs to.
    pub n: usize,
    pub asset: AssetId,
    pub user: Identity,
    /// The only one of the user's groups with a grant (writer): the decision has to look through
    /// the groups. It is the last in sort-key order, so the naive check walks every group.
    pub granted_group: GroupId,
}

impl Scenario {
    pub fn new(n: usize) -> Result<Self, BenchError> {
        Ok(Self {
            n,
            asset: AssetId::try_from(format!("doc-n{n}"))?,
            user: Identity::try_from(format!("me-n{n}"))?,
            granted_group: member_group(n, n.saturating_sub(1))?,
        })
    }

    /// What every check must answer.
    pub fn expected(&self) -> AccessDecision {
        AccessDecision { role: Role::Writer, via: Some(Via::Group(self.granted_group.clone())) }
    }

    /// Grant `i` of N: even ones to groups (the first to the user's granted group, as writer, the
    /// rest reader grants to groups the user is not in), odd ones reader grants to other users.
    fn grant(&self, i: usize) -> Result<Grant, BenchError> {
        let n = self.n;
        let (principal, role) = match i {
            0 => (Principal::Group(self.granted_group.clone()), Role::Writer),
            i if i % 2 == 0 => (Principal::Group(GroupId::try_from(format!("n{n}-other-{i:04}"))?), Role::Reader),
            i => (Principal::User(Identity::try_from(format!("n{n}-user-{i:04}"))?), Role::Reader),
        };
        Ok(Grant { principal, role, expires_at: None, generation: String::new() })
    }

    /// Creates the asset, its N grants and the user's N memberships, then reads them back.
    pub async fn seed(&self, store: &DynamoStore, now: u64) -> Result<(), BenchError> {
        let owner = Identity::try_from(format!("n{}-owner", self.n))?;
        store.put_asset(&self.asset, &owner, AssetType::Document, "acl-bench", now).await?;
        let record = store.asset_facts(&self.asset).await?.asset.ok_or("the asset just written is missing")?;

        enum Write {
            Grant(Grant),
            Member(GroupId),
        }
        let grants = (0..self.n).map(|i| self.grant(i).map(Write::Grant));
        let members = (0..self.n).map(|i| member_group(self.n, i).map(Write::Member));
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
            return Err(
                format!("seeding N = {} left {grants} grants and {} memberships", self.n, facts.groups.len()).into()
            );
        }
        Ok(())
    }
}

/// The user's group `i` of N; zero-padded so sort-key order is numeric order.
fn member_group(n: usize, i: usize) -> Result<GroupId, BenchError> {
    Ok(GroupId::try_from(format!("n{n}-team-{i:04}"))?)
}
