//! The resources the stand-in keeps, as tests read them back (snapshots, not live views).

use time::OffsetDateTime;

/// A conversation with its roster and its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `CH` + 32 hex.
    pub sid: String,
    pub unique_name: Option<String>,
    pub friendly_name: Option<String>,
    /// A JSON document in a string (`{}` when none was given), as Twilio stores it.
    pub attributes: String,
    /// `active`, `inactive` or `closed`.
    pub state: String,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
    /// In the order they joined.
    pub participants: Vec<Participant>,
    /// In index order (0, 1, 2…, with a gap where a message was deleted).
    pub messages: Vec<Message>,
}

impl Conversation {
    pub fn participant(&self, identity: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.identity == identity)
    }

    /// The participants' identities, in the order they joined.
    pub fn identities(&self) -> Vec<&str> {
        self.participants.iter().map(|p| p.identity.as_str()).collect()
    }
}

/// A chat participant (the stand-in has no SMS or WhatsApp bindings, so every one has an identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// `MB` + 32 hex.
    pub sid: String,
    pub conversation_sid: String,
    pub identity: String,
    pub role_sid: Option<String>,
    pub attributes: String,
    /// `None` until set with `LastReadMessageIndex`.
    pub last_read_message_index: Option<u64>,
    pub last_read_timestamp: Option<OffsetDateTime>,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `IM` + 32 hex.
    pub sid: String,
    pub conversation_sid: String,
    /// 0 for the first message of the conversation, then one more each time; as on Twilio, a
    /// deleted message's index is not given again.
    pub index: u64,
    /// `system` when none was given.
    pub author: String,
    pub body: Option<String>,
    pub attributes: String,
    /// The author's participant, if the author is one.
    pub participant_sid: Option<String>,
    pub date_created: OffsetDateTime,
    /// Equal to `date_created` until the message is edited.
    pub date_updated: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `US` + 32 hex.
    pub sid: String,
    pub identity: String,
    pub friendly_name: Option<String>,
    pub role_sid: Option<String>,
    pub attributes: String,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
}

/// Whether a role applies to a whole service (users) or to one conversation (participants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Conversation,
    Service,
}

impl RoleKind {
    /// As the `type` field spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conversation => "conversation",
            Self::Service => "service",
        }
    }

    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "conversation" => Some(Self::Conversation),
            "service" => Some(Self::Service),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// `RL` + 32 hex.
    pub sid: String,
    pub friendly_name: String,
    pub kind: RoleKind,
    pub permissions: Vec<String>,
    pub date_created: OffsetDateTime,
    pub date_updated: OffsetDateTime,
}

/// The service-level webhook configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Webhooks {
    pub pre_webhook_url: Option<String>,
    pub post_webhook_url: Option<String>,
    /// Empty until set.
    pub filters: Vec<String>,
    /// `GET` or `POST`; `None` until set.
    pub method: Option<String>,
}

/// The service's defaults (`/v1/Services/{IS}/Configuration`): the roles Twilio gives a new user,
/// a new participant and a conversation's creator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceConfiguration {
    /// A conversation role: what the creator of a conversation gets in it (SDK creates only).
    pub default_conversation_creator_role_sid: Option<String>,
    /// A conversation role: what every other participant gets.
    pub default_conversation_role_sid: Option<String>,
    /// A service role: what a user gets when Twilio creates it (SDK connect, participant add).
    pub default_chat_service_role_sid: Option<String>,
    pub reachability_enabled: bool,
}
