//! Changes to the ACL and what each may take away: the rule that says which conversations a
//! change can have made wrong. It only says where to look; whoever looks re-reads the current ACL
//! and decides, so a change seen late, twice or out of order never removes a reader.

use std::fmt;

use super::asset::{AssetId, GroupId, Principal};
use super::identity::Identity;

/// One change to the ACL, as a store's change feed (DynamoDB's stream, the in-memory store's
/// channel) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclChange {
    /// An asset record was created or replaced; `previous_owner` is `None` for a new asset.
    AssetWritten {
        asset: AssetId,
        previous_owner: Option<Identity>,
        owner: Identity,
    },
    AssetDeleted {
        asset: AssetId,
    },
    GrantWritten {
        asset: AssetId,
        principal: Principal,
        expires_at: Option<u64>,
    },
    GrantDeleted {
        asset: AssetId,
        principal: Principal,
    },
    MemberAdded {
        group: GroupId,
        user: Identity,
    },
    MemberRemoved {
        group: GroupId,
        user: Identity,
    },
}

/// What may have shrunk: the conversations in which someone may no longer read the asset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every participant of the asset's conversation.
    Asset(AssetId),
    /// The user, in every asset conversation they are in.
    User(Identity),
    /// The user, in the asset's conversation.
    Reader { asset: AssetId, user: Identity },
}

impl AclChange {
    /// Where read access may have shrunk because of this change; `None` when it can only grow
    /// (a new grant, a new member, a new asset, the same owner written again). A grant that
    /// expires shrinks access later, at its `expires_at`: the expiry sweep looks then.
    pub fn shrinks(&self) -> Option<Scope> {
        match self {
            Self::AssetWritten { asset, previous_owner: Some(previous), owner } if previous != owner => {
                Some(Scope::Asset(asset.clone()))
            }
            Self::AssetWritten { .. } | Self::GrantWritten { .. } | Self::MemberAdded { .. } => None,
            Self::AssetDeleted { asset } => Some(Scope::Asset(asset.clone())),
            Self::GrantDeleted { asset, principal } => Some(Scope::of_grant(asset, principal)),
            Self::MemberRemoved { user, .. } => Some(Scope::User(user.clone())),
        }
    }
}

impl Scope {
    /// Who a grant on `asset` to `principal` gave access to: the user in that asset's
    /// conversation, or, for a group, everyone in it.
    pub fn of_grant(asset: &AssetId, principal: &Principal) -> Self {
        match principal {
            Principal::User(user) => Self::Reader { asset: asset.clone(), user: user.clone() },
            Principal::Group(_) => Self::Asset(asset.clone()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Asset(asset) => write!(f, "asset {asset}"),
            Self::User(user) => write!(f, "user {user}"),
            Self::Reader { asset, user } => write!(f, "user {user} in asset {asset}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset() -> AssetId {
        AssetId::try_from("a-1").expect("asset")
    }

    fn user(id: &str) -> Identity {
        Identity::try_from(id).expect("user")
    }

    fn group() -> GroupId {
        GroupId::try_from("designers").expect("group")
    }

    #[test]
    fn only_changes_that_can_take_access_away_name_a_scope() {
        let cases = [
            (AclChange::AssetWritten { asset: asset(), previous_owner: None, owner: user("u-1") }, None),
            (AclChange::AssetWritten { asset: asset(), previous_owner: Some(user("u-1")), owner: user("u-1") }, None),
            (
                AclChange::AssetWritten { asset: asset(), previous_owner: Some(user("u-1")), owner: user("u-9") },
                Some(Scope::Asset(asset())),
            ),
            (AclChange::AssetDeleted { asset: asset() }, Some(Scope::Asset(asset()))),
            (
                AclChange::GrantWritten {
                    asset: asset(),
                    principal: Principal::User(user("u-2")),
                    expires_at: Some(9),
                },
                None,
            ),
            (
                AclChange::GrantDeleted { asset: asset(), principal: Principal::User(user("u-2")) },
                Some(Scope::Reader { asset: asset(), user: user("u-2") }),
            ),
            (
                AclChange::GrantDeleted { asset: asset(), principal: Principal::Group(group()) },
                Some(Scope::Asset(asset())),
            ),
            (AclChange::MemberAdded { group: group(), user: user("u-2") }, None),
            (AclChange::MemberRemoved { group: group(), user: user("u-2") }, Some(Scope::User(user("u-2")))),
        ];
        for (change, scope) in cases {
            assert_eq!(change.shrinks(), scope, "{change:?}");
        }
    }
}
