//! Which Twilio conversation a create-or-join request means: its kind, and the deterministic
//! unique name that makes the request idempotent (the same pair from either side, the same
//! asset, the same room), whatever characters the ids hold.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::asset::AssetId;
use super::identity::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationKind {
    Direct,
    Group,
    Asset,
    Room,
}

impl ConversationKind {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "direct" => Some(Self::Direct),
            "group" => Some(Self::Group),
            "asset" => Some(Self::Asset),
            "room" => Some(Self::Room),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
            Self::Asset => "asset",
            Self::Room => "room",
        }
    }
}

/// A room's name, chosen by operators: 1–64 of `a-z 0-9 - _`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RoomName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a room name is 1 to 64 of a-z, 0-9, - and _, starting with a letter or digit")]
pub struct RoomNameError;

impl TryFrom<&str> for RoomName {
    type Error = RoomNameError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        let ok = (1..=64).contains(&value.len())
            && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok { Ok(Self(value.to_owned())) } else { Err(RoomNameError) }
    }
}

impl RoomName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The room's conversation unique name.
    pub fn unique_name(&self) -> String {
        format!("room:{}", self.0)
    }

    /// The room a unique name belongs to, if it is a room's.
    pub fn from_unique_name(unique_name: &str) -> Option<Self> {
        unique_name.strip_prefix("room:").and_then(|name| Self::try_from(name).ok())
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoomName({:?})", self.0)
    }
}

/// SHA-256 over length-prefixed parts, base64url: distinct part lists never share a name, and no
/// name looks like a conversation SID (`CH` + 32 hex) because each carries a `kind:` prefix.
fn digest_name(kind: &str, parts: &[&str]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    format!("{kind}:{}", URL_SAFE_NO_PAD.encode(ctx.finish().as_ref()))
}

/// The direct conversation of two users: the same whichever side asks.
pub fn direct_unique_name(a: &Identity, b: &Identity) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    digest_name("direct", &[first.as_str(), second.as_str()])
}

/// The one conversation about an asset.
pub fn asset_unique_name(asset: &AssetId) -> String {
    digest_name("asset", &[asset.as_str()])
}

/// A named group: scoped to its creator, so the same request twice is one group and nobody joins
/// someone else's group by guessing its name.
pub fn group_unique_name(creator: &Identity, name: &str) -> String {
    digest_name("group", &[creator.as_str(), name])
}

/// The attributes chatgate records on a conversation it creates.
pub fn conversation_attributes(kind: ConversationKind, asset: Option<&AssetId>) -> Value {
    match asset {
        Some(asset) => json!({"type": kind.as_str(), "asset_id": asset.as_str()}),
        None => json!({"type": kind.as_str()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        Identity::try_from(s).expect("identity")
    }

    #[test]
    fn direct_names_are_symmetric_and_collision_free() {
        assert_eq!(direct_unique_name(&id("a"), &id("b")), direct_unique_name(&id("b"), &id("a")));
        // Concatenation ambiguity cannot collide: ("ab", "c") vs ("a", "bc").
        assert_ne!(direct_unique_name(&id("ab"), &id("c")), direct_unique_name(&id("a"), &id("bc")));
        let name = direct_unique_name(&id("u-1"), &id("u-2"));
        assert!(name.starts_with("direct:") && name.len() == 7 + 43, "{name}");
    }

    #[test]
    fn names_of_different_kinds_never_meet() {
        let asset = AssetId::try_from("x").expect("asset");
        assert_ne!(asset_unique_name(&asset), group_unique_name(&id("x"), ""));
        assert_ne!(group_unique_name(&id("u-1"), "team"), group_unique_name(&id("u-2"), "team"));
    }

    #[test]
    fn room_names_are_checked() {
        for ok in ["support", "a", "sales-emea_2", &"x".repeat(64)] {
            assert!(RoomName::try_from(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Support", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(RoomName::try_from(bad).is_err(), "{bad}");
        }
        let room = RoomName::try_from("support").expect("room");
        assert_eq!(RoomName::from_unique_name(&room.unique_name()), Some(room));
    }
}
