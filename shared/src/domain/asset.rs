//! Assets, groups, principals and roles: the vocabulary of document sharing.

use std::fmt;

use super::identity::{Identity, IdentityError};
use super::text::{IdTextProblem, id_text_problem};

/// Longest asset or group id, in bytes: keys stay far inside DynamoDB's key-size limits.
pub const MAX_ID_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {MAX_ID_BYTES} bytes")]
    TooLong { what: &'static str },
    #[error("{what} is longer than {} bytes (a tenant deployment's limit)", super::tenant::MAX_TENANT_ID_BYTES)]
    TooLongForTenant { what: &'static str },
    #[error("{what} contains a control character")]
    ControlCharacter { what: &'static str },
    #[error("{what} {problem}")]
    Text { what: &'static str, problem: IdTextProblem },
}

fn check_id(value: &str, what: &'static str) -> Result<(), IdError> {
    if value.is_empty() {
        Err(IdError::Empty { what })
    } else if value.len() > MAX_ID_BYTES {
        Err(IdError::TooLong { what })
    } else {
        match id_text_problem(value) {
            None => Ok(()),
            Some(IdTextProblem::Control(_)) => Err(IdError::ControlCharacter { what }),
            Some(problem) => Err(IdError::Text { what, problem }),
        }
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                check_id(&value, $what).map(|()| Self(value))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::try_from(value.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A document, image or video in the SaaS's catalogue: any 1–256 bytes of NFC text without
    /// control, invisible formatting, separator or private-use characters.
    AssetId,
    "asset id"
);
id_type!(
    /// A group of users, as the SaaS's back end names it (under the same rules as an asset id).
    GroupId,
    "group id"
);

/// What kind of asset a record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetType {
    Document,
    Image,
    Video,
}

impl AssetType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Document => "document",
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "document" => Some(Self::Document),
            "image" => Some(Self::Image),
            "video" => Some(Self::Video),
            _ => None,
        }
    }
}

/// Who a grant is for: one user, or every member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(Identity),
    Group(GroupId),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("a principal is `user:<id>` or `group:<id>`")]
    Shape,
    #[error(transparent)]
    User(#[from] IdentityError),
    #[error(transparent)]
    Group(#[from] IdError),
}

impl TryFrom<&str> for Principal {
    type Error = PrincipalError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        match value.split_once(':') {
            Some(("user", id)) => Ok(Self::User(Identity::try_from(id)?)),
            Some(("group", id)) => Ok(Self::Group(GroupId::try_from(id)?)),
            _ => Err(PrincipalError::Shape),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Group(id) => write!(f, "group:{id}"),
        }
    }
}

impl serde::Serialize for Principal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A role on an asset; the order is the order of power.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    None,
    Reader,
    Writer,
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Reader => "reader",
            Self::Writer => "writer",
            Self::Owner => "owner",
        }
    }

    /// The roles a grant can give (`reader`, `writer`); ownership is not granted, it is recorded.
    pub fn grantable(value: &str) -> Option<Self> {
        match value {
            "reader" => Some(Self::Reader),
            "writer" => Some(Self::Writer),
            _ => None,
        }
    }
}

/// An asset's catalogue record, as the SaaS back end sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetRecord {
    pub id: AssetId,
    pub owner: Identity,
    pub kind: AssetType,
    pub name: String,
    /// Set when the asset is created and kept while it lives: grants carry the generation they
    /// were made under, so grants left behind by a deleted asset never revive with a new one.
    pub generation: String,
}

/// One grant of a role on an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub principal: Principal,
    pub role: Role,
    /// Unix seconds; `None` never expires.
    pub expires_at: Option<u64>,
    pub generation: String,
}

impl Grant {
    pub fn is_live(&self, asset: &AssetRecord, now: u64) -> bool {
        self.generation == asset.generation && self.expires_at.is_none_or(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_at_the_first_colon() {
        assert_eq!(Principal::try_from("user:u-1").map(|p| p.to_string()), Ok("user:u-1".into()));
        assert_eq!(Principal::try_from("group:a:b#c").map(|p| p.to_string()), Ok("group:a:b#c".into()));
        assert_eq!(Principal::try_from("users:u-1"), Err(PrincipalError::Shape));
        assert_eq!(Principal::try_from("u-1"), Err(PrincipalError::Shape));
        assert!(matches!(Principal::try_from("user:"), Err(PrincipalError::User(_))));
        assert!(matches!(Principal::try_from("group:"), Err(PrincipalError::Group(_))));
    }

    #[test]
    fn ids_refuse_empty_long_and_control_characters() {
        assert!(AssetId::try_from("").is_err());
        assert!(AssetId::try_from("a".repeat(257)).is_err());
        assert!(AssetId::try_from("a\u{0}").is_err());
        assert!(AssetId::try_from("a".repeat(256)).is_ok());
        assert!(AssetId::try_from("doc#G#U#x/../y ü").is_ok());
    }

    #[test]
    fn asset_and_group_ids_are_what_they_look_like() {
        for ok in ["a-1", "Zo\u{eb}", "日本", "u-123", "🙂"] {
            assert!(AssetId::try_from(ok).is_ok(), "{ok}");
            assert!(GroupId::try_from(ok).is_ok(), "{ok}");
        }
        for (refused, problem) in [
            ("alice\u{200b}", IdTextProblem::Format('\u{200b}')),
            ("a\u{202e}b", IdTextProblem::Format('\u{202e}')),
            ("\u{feff}x", IdTextProblem::Format('\u{feff}')),
            ("a\u{2028}", IdTextProblem::Separator('\u{2028}')),
            ("\u{e000}", IdTextProblem::PrivateUse('\u{e000}')),
            ("e\u{301}", IdTextProblem::NotNfc),
        ] {
            assert_eq!(AssetId::try_from(refused), Err(IdError::Text { what: "asset id", problem }), "{refused:?}");
            assert_eq!(GroupId::try_from(refused), Err(IdError::Text { what: "group id", problem }), "{refused:?}");
        }
        assert_eq!(
            AssetId::try_from("a\u{202e}b").map_err(|e| e.to_string()),
            Err("asset id contains an invisible formatting character (U+202E)".to_owned())
        );
        assert_eq!(
            Principal::try_from("group:eng\u{200d}").map_err(|e| e.to_string()),
            Err("group id contains an invisible formatting character (U+200D)".to_owned())
        );
        assert_eq!(
            Principal::try_from("user:alice\u{200b}").map_err(|e| e.to_string()),
            Err("identity contains an invisible formatting character (U+200B)".to_owned())
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Owner > Role::Writer && Role::Writer > Role::Reader && Role::Reader > Role::None);
        assert_eq!(Role::grantable("owner"), None);
        assert_eq!(Role::grantable("writer"), Some(Role::Writer));
    }
}
