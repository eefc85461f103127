//! Which Twilio conversation a create-or-join request means: its kind, and the deterministic
//! unique name that makes the request idempotent (the same pair from either side, the same
//! asset, the same room), whatever characters the ids hold.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
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

    /// A room's name as stored: `support`, or in a tenant deployment `acme~support`.
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        match value.split_once(super::TENANT_SEPARATOR) {
            Some((tenant, room)) if super::TenantId::try_from(tenant).is_ok() => Self::local(room).map(|_| ()),
            Some(_) => Err(RoomNameError),
            None => Self::local(value).map(|_| ()),
        }?;
        Ok(Self(value.to_owned()))
    }
}

impl RoomName {
    /// A room's name as a caller or an operator writes it: 1 to 64 of `a-z 0-9 - _`.
    pub fn local(value: &str) -> Result<Self, RoomNameError> {
        let ok = (1..=64).contains(&value.len())
            && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok { Ok(Self(value.to_owned())) } else { Err(RoomNameError) }
    }

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

/// What identifies a conversation chatgate finds again, before it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationKey {
    Direct(Identity, Identity),
    Asset(AssetId),
    /// A named group: its creator and the name they gave it.
    Group {
        creator: Identity,
        name: String,
    },
    Room(RoomName),
    /// An unnamed group: a new conversation under a random name
    /// ([`ConversationNames::fresh_group`]), free by construction, so it is made without looking.
    Fresh(String),
    /// An unnamed group that an earlier attempt of the same idempotent request named, and may
    /// have made before it failed: joined if it exists, made under that name if not.
    Attempted(String),
}

/// The name v1.1 gave the conversation `key` identifies: SHA-256 of the public ids, which anyone
/// could compute. Only for finding those conversations to rename them (`chatgate reconcile
/// rename-legacy`); never used to find a conversation to join. Rooms never changed.
pub fn legacy_unique_name(key: &ConversationKey) -> Option<String> {
    let (kind, parts): (&str, Vec<&str>) = match key {
        ConversationKey::Direct(a, b) => {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            ("direct", vec![first.as_str(), second.as_str()])
        }
        ConversationKey::Asset(asset) => ("asset", vec![asset.as_str()]),
        ConversationKey::Group { creator, name } => ("group", vec![creator.as_str(), name.as_str()]),
        ConversationKey::Room(_) | ConversationKey::Fresh(_) | ConversationKey::Attempted(_) => return None,
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    Some(format!("{kind}:{}", URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())))
}

/// How chatgate names the conversations it finds again (direct, asset, named group): an HMAC over
/// length-prefixed parts, keyed with the deployment's `CONVERSATION_NAME_KEY`. Without the key
/// nobody can compute the name chatgate will use for a pair of users or a document, so nobody can
/// create that conversation first and sit in it; two deployments name the same pair differently.
/// Distinct part lists never share a name, and no name looks like a conversation SID (`CH` + 32
/// hex) because each carries a `kind:` prefix. The key must never change: a new key names every
/// conversation anew, and the old ones are not found again.
#[derive(Clone)]
pub struct ConversationNames {
    key: hmac::Key,
}

impl fmt::Debug for ConversationNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConversationNames([key])")
    }
}

/// The key `chatgate dev` and the tests use unless `CONVERSATION_NAME_KEY` is set: public, so for
/// nothing but local development.
pub const DEVELOPMENT_NAME_KEY: &str = "chatgate-development-conversation-name-key";
/// Shortest accepted key, in bytes: the template generates 64 characters.
pub const MIN_NAME_KEY_BYTES: usize = 32;

impl ConversationNames {
    /// Keyed with `key` (at least [`MIN_NAME_KEY_BYTES`] bytes; checked by configuration).
    pub fn new(key: &[u8]) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key) }
    }

    /// The development key's names (`chatgate dev`, the tests).
    pub fn development() -> Self {
        Self::new(DEVELOPMENT_NAME_KEY.as_bytes())
    }

    fn name(&self, kind: &str, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(kind.as_bytes());
        for part in parts {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        format!("{kind}:{}", URL_SAFE_NO_PAD.encode(ctx.sign().as_ref()))
    }

    /// The direct conversation of two users: the same whichever side asks.
    pub fn direct(&self, a: &Identity, b: &Identity) -> String {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        self.name("direct", &[first.as_str(), second.as_str()])
    }

    /// The one conversation about an asset.
    pub fn asset(&self, asset: &AssetId) -> String {
        self.name("asset", &[asset.as_str()])
    }

    /// A named group: scoped to its creator, so the same request twice is one group and nobody
    /// joins someone else's group by guessing its name.
    pub fn group(&self, creator: &Identity, name: &str) -> String {
        self.name("group", &[creator.as_str(), name])
    }

    /// A name for an unnamed group: random, so that a create whose answer Twilio lost and the
    /// REST client retried finds the group it made (50353) instead of making a second one, and
    /// an idempotent request's retry finds it by the name its key kept. Shaped like the others,
    /// so nothing tells them apart.
    pub fn fresh_group() -> String {
        format!("group:{}", URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
    }

    /// The unique name of the conversation `key` identifies (a room's is its public name).
    pub fn unique_name(&self, key: &ConversationKey) -> String {
        match key {
            ConversationKey::Direct(a, b) => self.direct(a, b),
            ConversationKey::Asset(asset) => self.asset(asset),
            ConversationKey::Group { creator, name } => self.group(creator, name),
            ConversationKey::Room(room) => room.unique_name(),
            ConversationKey::Fresh(name) | ConversationKey::Attempted(name) => name.clone(),
        }
    }
}

/// How a conversation's roster (who chatgate put in it, which the listing reads instead of
/// Twilio) is named: its unique name, or its SID when it has none.
pub fn roster_name(unique_name: Option<&str>, sid: &str) -> String {
    unique_name.filter(|u| !u.is_empty()).unwrap_or(sid).to_owned()
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
        let names = ConversationNames::development();
        assert_eq!(names.direct(&id("a"), &id("b")), names.direct(&id("b"), &id("a")));
        // Concatenation ambiguity cannot collide: ("ab", "c") vs ("a", "bc").
        assert_ne!(names.direct(&id("ab"), &id("c")), names.direct(&id("a"), &id("bc")));
        let name = names.direct(&id("u-1"), &id("u-2"));
        assert!(name.starts_with("direct:") && name.len() == 7 + 43, "{name}");
    }

    #[test]
    fn names_of_different_kinds_never_meet() {
        let names = ConversationNames::development();
        let asset = AssetId::try_from("x").expect("asset");
        assert_ne!(names.asset(&asset), names.group(&id("x"), ""));
        assert_ne!(names.group(&id("u-1"), "team"), names.group(&id("u-2"), "team"));
        // Fresh names look like the others, do not repeat, and are what an unnamed group's key
        // names, first attempt or retry.
        let named = names.group(&id("u-1"), "team");
        let (fresh, again) = (ConversationNames::fresh_group(), ConversationNames::fresh_group());
        assert!(fresh.starts_with("group:") && fresh.len() == named.len() && fresh != again, "{fresh}");
        assert_eq!(names.unique_name(&ConversationKey::Fresh(fresh.clone())), fresh);
        assert_eq!(names.unique_name(&ConversationKey::Attempted(fresh.clone())), fresh);
        assert_eq!(legacy_unique_name(&ConversationKey::Attempted(fresh)), None);
    }

    #[test]
    fn names_depend_on_the_key_and_are_not_the_public_hash() {
        let asset = AssetId::try_from("a-1").expect("asset");
        let ours = ConversationNames::new(&[7; 32]);
        let theirs = ConversationNames::new(&[8; 32]);
        assert_eq!(ours.asset(&asset), ConversationNames::new(&[7; 32]).asset(&asset));
        assert_ne!(ours.asset(&asset), theirs.asset(&asset));
        assert_ne!(ours.direct(&id("u-1"), &id("u-2")), theirs.direct(&id("u-1"), &id("u-2")));
        // What anyone could compute from the ids alone (v1.1's names) is not what v1.2 uses.
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&3u64.to_be_bytes());
        ctx.update(b"a-1");
        let public = format!("asset:{}", URL_SAFE_NO_PAD.encode(ctx.finish().as_ref()));
        assert_eq!(legacy_unique_name(&ConversationKey::Asset(asset.clone())), Some(public.clone()));
        assert_ne!(ours.asset(&asset), public);
        let pair = |a: &str, b: &str| ConversationKey::Direct(id(a), id(b));
        assert_eq!(legacy_unique_name(&pair("u-1", "u-2")), legacy_unique_name(&pair("u-2", "u-1")));
        assert!(!format!("{ours:?}").contains('7'));
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
