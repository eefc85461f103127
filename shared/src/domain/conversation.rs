//! Which Twilio conversation a create-or-join request means: its kind, and the deterministic
//! unique name that makes the request idempotent (the same pair from either side, the same
//! asset, the same room), whatever characters the ids hold.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
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

/// The attributes chatgate records on a conversation it creates, and reads back everywhere it
/// needs to know what a conversation is about: the one place their format is written down.
/// Other keys a conversation may carry are not chatgate's and are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationAttributes {
    pub kind: ConversationKind,
    /// Set exactly for asset conversations.
    pub asset: Option<AssetId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributesError {
    #[error("the conversation's `type` is not one chatgate writes")]
    UnknownType,
    #[error("an asset conversation's attributes carry no valid `asset_id`")]
    MissingAsset,
}

impl ConversationAttributes {
    pub fn new(kind: ConversationKind, asset: Option<AssetId>) -> Self {
        Self { asset: asset.filter(|_| kind == ConversationKind::Asset), kind }
    }

    pub fn to_json(&self) -> Value {
        match &self.asset {
            Some(asset) => json!({"type": self.kind.as_str(), "asset_id": asset.as_str()}),
            None => json!({"type": self.kind.as_str()}),
        }
    }

    /// chatgate's attributes in a conversation's attributes (a JSON document in a string, as
    /// Twilio stores it). `Ok(None)`: not a conversation chatgate created (no `type`). A `type`
    /// chatgate never writes, or an asset conversation without its asset, is an error: whoever
    /// reads it must not guess.
    pub fn parse(raw: Option<&str>) -> Result<Option<Self>, AttributesError> {
        let value: Value = raw.and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<Option<Self>, AttributesError> {
        let Some(kind) = value.get("type") else { return Ok(None) };
        let kind = kind.as_str().and_then(ConversationKind::parse).ok_or(AttributesError::UnknownType)?;
        let asset = match kind {
            ConversationKind::Asset => Some(
                value
                    .get("asset_id")
                    .and_then(Value::as_str)
                    .and_then(|id| AssetId::try_from(id).ok())
                    .ok_or(AttributesError::MissingAsset)?,
            ),
            _ => None,
        };
        Ok(Some(Self { kind, asset }))
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

    #[test]
    fn attributes_round_trip_and_refuse_what_chatgate_never_writes() {
        let asset = AssetId::try_from("a-1").expect("asset");
        let about = ConversationAttributes::new(ConversationKind::Asset, Some(asset.clone()));
        let written = about.to_json().to_string();
        assert_eq!(written, r#"{"asset_id":"a-1","type":"asset"}"#);
        assert_eq!(ConversationAttributes::parse(Some(&written)), Ok(Some(about)));
        let with_extra = r#"{"type":"direct","topic":"x"}"#;
        assert_eq!(
            ConversationAttributes::parse(Some(with_extra)),
            Ok(Some(ConversationAttributes::new(ConversationKind::Direct, None)))
        );
        for not_ours in [None, Some(""), Some("{}"), Some("not json"), Some(r#"{"topic":"x"}"#)] {
            assert_eq!(ConversationAttributes::parse(not_ours), Ok(None), "{not_ours:?}");
        }
        assert_eq!(ConversationAttributes::parse(Some(r#"{"type":"asset"}"#)), Err(AttributesError::MissingAsset));
        assert_eq!(
            ConversationAttributes::parse(Some(r#"{"type":"asset","asset_id":""}"#)),
            Err(AttributesError::MissingAsset)
        );
        assert_eq!(ConversationAttributes::parse(Some(r#"{"type":"secret"}"#)), Err(AttributesError::UnknownType));
        assert_eq!(ConversationAttributes::parse(Some(r#"{"type":7}"#)), Err(AttributesError::UnknownType));
    }
}
