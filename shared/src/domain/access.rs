//! The access decision: a pure function of the facts a store fetched (the asset record, its
//! grants, the user's groups) and the time. Stores never decide; this is the only copy of the rule.

use std::collections::BTreeSet;

use super::asset::{AssetId, AssetRecord, Grant, GroupId, Principal, Role};
use super::identity::Identity;
use super::tenant::Tenant;

/// Everything the decision needs about one asset and one user.
#[derive(Debug, Clone, Default)]
pub struct AccessFacts {
    pub asset: Option<AssetRecord>,
    pub grants: Vec<Grant>,
}

/// How the winning role was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Owner,
    User,
    Group(GroupId),
}

impl Via {
    /// As `tenant`'s caller names it: `owner`, `user` or `group:<id>`.
    pub fn label(&self, tenant: &Tenant) -> String {
        match self {
            Self::Owner => "owner".into(),
            Self::User => "user".into(),
            Self::Group(id) => format!("group:{}", tenant.shown(id.as_str())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub role: Role,
    pub via: Option<Via>,
}

impl AccessDecision {
    pub const NONE: Self = Self { role: Role::None, via: None };

    pub fn can_read(&self) -> bool {
        self.role >= Role::Reader
    }

    pub fn can_write(&self) -> bool {
        self.role >= Role::Writer
    }

    /// Only the owner shares.
    pub fn can_share(&self) -> bool {
        self.role == Role::Owner
    }
}

/// The highest role any path gives `user` on the asset: ownership, a direct grant, or a grant to
/// one of `groups`. Grants that expired by `now`, or that belong to an earlier generation of the
/// asset, count as absent; a missing asset gives nobody anything. On equal roles a direct grant
/// beats a group grant, and groups are compared by id, so the answer is deterministic.
pub fn decide(user: &Identity, groups: &BTreeSet<GroupId>, facts: &AccessFacts, now: u64) -> AccessDecision {
    let Some(asset) = &facts.asset else { return AccessDecision::NONE };
    if &asset.owner == user {
        return AccessDecision { role: Role::Owner, via: Some(Via::Owner) };
    }
    let mut best = AccessDecision::NONE;
    for grant in facts.grants.iter().filter(|g| g.is_live(asset, now)) {
        let via = match &grant.principal {
            Principal::User(id) if id == user => Via::User,
            Principal::Group(id) if groups.contains(id) => Via::Group(id.clone()),
            _ => continue,
        };
        let better = grant.role > best.role
            || (grant.role == best.role && best.via.as_ref().is_some_and(|current| rank(&via) < rank(current)));
        if better {
            best = AccessDecision { role: grant.role, via: Some(via) };
        }
    }
    best
}

fn rank(via: &Via) -> (u8, Option<&GroupId>) {
    match via {
        Via::Owner => (0, None),
        Via::User => (1, None),
        Via::Group(id) => (2, Some(id)),
    }
}

/// The result for one asset, as the access routes answer it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccessAnswer {
    pub asset_id: String,
    pub identity: String,
    pub role: Role,
    pub can_read: bool,
    pub can_write: bool,
    pub can_share: bool,
    pub via: Option<String>,
}

impl AccessAnswer {
    /// The decision about `asset_id` for `identity`, as `tenant`'s caller names things: the asset,
    /// the user and the group access came through without the tenant.
    pub fn new(asset_id: &AssetId, identity: &Identity, decision: &AccessDecision, tenant: &Tenant) -> Self {
        Self {
            asset_id: tenant.shown(asset_id.as_str()),
            identity: tenant.shown(identity.as_str()),
            role: decision.role,
            can_read: decision.can_read(),
            can_write: decision.can_write(),
            can_share: decision.can_share(),
            via: decision.via.as_ref().map(|via| via.label(tenant)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AssetType;

    const NOW: u64 = 1_000_000;

    fn user(id: &str) -> Identity {
        Identity::try_from(id).expect("identity")
    }

    fn group(id: &str) -> GroupId {
        GroupId::try_from(id).expect("group")
    }

    fn asset(owner: &str) -> AssetRecord {
        AssetRecord {
            id: AssetId::try_from("a-1").expect("id"),
            owner: user(owner),
            kind: AssetType::Document,
            name: "Plan".into(),
            generation: "g1".into(),
        }
    }

    fn grant(principal: Principal, role: Role, expires_at: Option<u64>) -> Grant {
        Grant { principal, role, expires_at, generation: "g1".into() }
    }

    fn groups(ids: &[&str]) -> BTreeSet<GroupId> {
        ids.iter().map(|g| group(g)).collect()
    }

    /// Every combination of: owner or not; a direct grant none/reader/writer, live or expired or
    /// stale; two groups each none/reader/writer, member or not, live or expired. The decision
    /// must equal the maximum over the live paths, with the documented tie-break.
    #[test]
    fn decision_is_the_highest_live_path_exhaustively() {
        let roles = [None, Some(Role::Reader), Some(Role::Writer)];
        let states = [Liveness::Live, Liveness::Expired, Liveness::Stale];
        let mut checked = 0;
        for is_owner in [false, true] {
            for direct in roles {
                for direct_state in states {
                    for g1 in roles {
                        for g2 in roles {
                            for (in_g1, in_g2) in [(false, false), (true, false), (false, true), (true, true)] {
                                for g_state in states {
                                    let me = user("me");
                                    let record = asset(if is_owner { "me" } else { "someone" });
                                    let mut grants = Vec::new();
                                    let mut expected: Vec<(Role, u8, Via)> = Vec::new();
                                    if let Some(r) = direct {
                                        grants.push(direct_state.apply(grant(Principal::User(me.clone()), r, None)));
                                        if direct_state == Liveness::Live {
                                            expected.push((r, 1, Via::User));
                                        }
                                    }
                                    for (name, role, member) in [("g1", g1, in_g1), ("g2", g2, in_g2)] {
                                        if let Some(r) = role {
                                            grants.push(g_state.apply(grant(Principal::Group(group(name)), r, None)));
                                            if member && g_state == Liveness::Live {
                                                expected.push((r, 2, Via::Group(group(name))));
                                            }
                                        }
                                    }
                                    // Someone else's direct writer grant must never leak to me.
                                    grants.push(grant(Principal::User(user("other")), Role::Writer, None));
                                    let mut mine = BTreeSet::new();
                                    if in_g1 {
                                        mine.insert(group("g1"));
                                    }
                                    if in_g2 {
                                        mine.insert(group("g2"));
                                    }
                                    let facts = AccessFacts { asset: Some(record), grants };
                                    let got = decide(&me, &mine, &facts, NOW);
                                    let want = if is_owner {
                                        AccessDecision { role: Role::Owner, via: Some(Via::Owner) }
                                    } else {
                                        // Highest role; on a tie, direct before groups, then the lower group id.
                                        expected.sort_by(|a, b| {
                                            b.0.cmp(&a.0)
                                                .then(a.1.cmp(&b.1))
                                                .then(a.2.label(&Tenant::Single).cmp(&b.2.label(&Tenant::Single)))
                                        });
                                        expected.into_iter().next().map_or(AccessDecision::NONE, |(role, _, via)| {
                                            AccessDecision { role, via: Some(via) }
                                        })
                                    };
                                    assert_eq!(
                                        got, want,
                                        "owner={is_owner} direct={direct:?}/{direct_state:?} g1={g1:?} g2={g2:?} member={in_g1},{in_g2} {g_state:?}"
                                    );
                                    checked += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 3 * 3 * 3 * 3 * 4 * 3);
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Liveness {
        Live,
        Expired,
        Stale,
    }

    impl Liveness {
        fn apply(self, mut g: Grant) -> Grant {
            match self {
                Self::Live => g.expires_at = Some(NOW + 1),
                Self::Expired => g.expires_at = Some(NOW),
                Self::Stale => g.generation = "g0".into(),
            }
            g
        }
    }

    #[test]
    fn a_missing_asset_gives_nothing_even_to_grantees() {
        let facts = AccessFacts { asset: None, grants: vec![grant(Principal::User(user("me")), Role::Writer, None)] };
        assert_eq!(decide(&user("me"), &groups(&[]), &facts, NOW), AccessDecision::NONE);
    }

    #[test]
    fn groups_tie_break_by_id_and_direct_beats_group() {
        let facts = AccessFacts {
            asset: Some(asset("owner")),
            grants: vec![
                grant(Principal::Group(group("zeta")), Role::Reader, None),
                grant(Principal::Group(group("alpha")), Role::Reader, None),
            ],
        };
        let got = decide(&user("me"), &groups(&["alpha", "zeta"]), &facts, NOW);
        assert_eq!(got.via, Some(Via::Group(group("alpha"))));
        let mut with_direct = facts.clone();
        with_direct.grants.push(grant(Principal::User(user("me")), Role::Reader, None));
        assert_eq!(decide(&user("me"), &groups(&["alpha", "zeta"]), &with_direct, NOW).via, Some(Via::User));
    }

    #[test]
    fn answers_spell_out_capabilities() {
        let writer = AccessDecision { role: Role::Writer, via: Some(Via::Group(group("designers"))) };
        let answer = AccessAnswer::new(&AssetId::try_from("a-1").expect("id"), &user("u-1"), &writer, &Tenant::Single);
        assert_eq!(
            serde_json::to_value(&answer).expect("json"),
            serde_json::json!({"asset_id": "a-1", "identity": "u-1", "role": "writer", "can_read": true,
                               "can_write": true, "can_share": false, "via": "group:designers"})
        );
    }
}
