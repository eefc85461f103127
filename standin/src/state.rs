//! The service's resources and every operation on them. Each operation runs under the caller's
//! lock from check to write, so concurrent creates of one unique name (or identity) make one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::{Rejection, codes};
use crate::model::{Conversation, Message, Participant, Role, RoleKind, ServiceConfiguration, User, Webhooks};

/// Twilio's limit on conversation (and, here, user and participant) attributes.
const ATTRIBUTES_LIMIT: usize = 16 * 1024;
const MESSAGE_ATTRIBUTES_LIMIT: usize = 4 * 1024;
const MESSAGE_BODY_LIMIT: usize = 1600;
const NAME_LIMIT: usize = 256;
const IDENTITY_LIMIT: usize = 256;
const CONVERSATION_STATES: [&str; 3] = ["active", "inactive", "closed"];

/// The events a service webhook may filter on, as the spec lists them.
const WEBHOOK_FILTERS: [&str; 23] = [
    "onParticipantAdd",
    "onParticipantAdded",
    "onDeliveryUpdated",
    "onConversationUpdated",
    "onConversationRemove",
    "onParticipantRemove",
    "onConversationUpdate",
    "onMessageAdd",
    "onMessageRemoved",
    "onParticipantUpdated",
    "onConversationAdded",
    "onMessageAdded",
    "onConversationAdd",
    "onConversationRemoved",
    "onParticipantUpdate",
    "onMessageRemove",
    "onMessageUpdated",
    "onParticipantRemoved",
    "onMessageUpdate",
    "onConversationStateUpdated",
    "onUserAdded",
    "onUserUpdate",
    "onUserUpdated",
];

/// The roles a new Twilio Conversations service comes with; the permission lists are close to
/// Twilio's, not guaranteed equal.
const DEFAULT_ROLES: [(&str, RoleKind, &[&str]); 4] = [
    (
        "service admin",
        RoleKind::Service,
        &[
            "addParticipant",
            "createConversation",
            "deleteAnyMessage",
            "deleteConversation",
            "editAnyMessage",
            "editAnyMessageAttributes",
            "editAnyParticipantAttributes",
            "editAnyUserInfo",
            "editConversationAttributes",
            "editConversationName",
            "joinConversation",
            "removeParticipant",
        ],
    ),
    ("service user", RoleKind::Service, &["createConversation", "joinConversation", "editOwnUserInfo"]),
    (
        "channel admin",
        RoleKind::Conversation,
        &[
            "addParticipant",
            "deleteAnyMessage",
            "editAnyMessage",
            "editAnyMessageAttributes",
            "editAnyParticipantAttributes",
            "editConversationAttributes",
            "editConversationName",
            "leaveConversation",
            "removeParticipant",
            "sendMediaMessage",
            "sendMessage",
        ],
    ),
    (
        "channel user",
        RoleKind::Conversation,
        &[
            "deleteOwnMessage",
            "editOwnMessage",
            "editOwnMessageAttributes",
            "editOwnParticipantAttributes",
            "leaveConversation",
            "sendMediaMessage",
            "sendMessage",
        ],
    ),
];

/// A form body (or query) as sent: pairs in order, names repeated for list parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// A fixed one-second window of actions against one rate-limit bucket.
#[derive(Debug)]
struct Window {
    started: Instant,
    actions: u32,
}

#[derive(Debug)]
pub(crate) struct State {
    account_sid: String,
    service_sid: String,
    /// `http://127.0.0.1:PORT/v1/Services/IS…`: resource URLs point back at the stand-in.
    service_url: String,
    conversations: Vec<Conversation>,
    users: Vec<User>,
    roles: Vec<Role>,
    webhooks: Webhooks,
    default_service_role: Option<String>,
    default_conversation_role: Option<String>,
    default_conversation_creator_role: Option<String>,
    reachability_enabled: bool,
    /// Actions per second per conversation and per service; `None` for no limit.
    pub rate_limit: Option<u32>,
    windows: HashMap<String, Window>,
    /// Twilio's limit on one conversation's participants (50417 past it).
    pub participants_per_conversation: usize,
    /// Twilio's limit on the conversations one identity takes part in (50214 past it).
    pub conversations_per_identity: usize,
    /// Per conversation SID, the index of its next message: deleted messages' indexes stay used.
    next_message_index: HashMap<String, u64>,
}

impl State {
    pub fn new(account_sid: &str, service_sid: &str, base_url: &str, seed_default_roles: bool) -> Self {
        let mut state = Self {
            account_sid: account_sid.to_owned(),
            service_sid: service_sid.to_owned(),
            service_url: format!("{base_url}/v1/Services/{service_sid}"),
            conversations: Vec::new(),
            users: Vec::new(),
            roles: Vec::new(),
            webhooks: Webhooks::default(),
            default_service_role: None,
            default_conversation_role: None,
            default_conversation_creator_role: None,
            reachability_enabled: false,
            rate_limit: None,
            windows: HashMap::new(),
            participants_per_conversation: crate::TWILIO_PARTICIPANTS_PER_CONVERSATION,
            conversations_per_identity: crate::TWILIO_CONVERSATIONS_PER_IDENTITY,
            next_message_index: HashMap::new(),
        };
        if seed_default_roles {
            for (name, kind, permissions) in DEFAULT_ROLES {
                let role = state.insert_role(name, kind, permissions.iter().map(|p| (*p).to_owned()).collect());
                match name {
                    "service user" => state.default_service_role = Some(role.sid),
                    "channel user" => state.default_conversation_role = Some(role.sid),
                    // As in a new Twilio service, a conversation's creator administers it.
                    "channel admin" => state.default_conversation_creator_role = Some(role.sid),
                    _ => {}
                }
            }
            if state.default_conversation_creator_role.is_none() {
                state.default_conversation_creator_role = state.default_conversation_role.clone();
            }
        }
        state
    }

    /// Counts one action against `bucket` (a conversation SID, or the service); 429 past the limit.
    pub fn check_rate(&mut self, bucket: &str) -> Result<(), Rejection> {
        let Some(limit) = self.rate_limit else { return Ok(()) };
        let now = Instant::now();
        let window = self.windows.entry(bucket.to_owned()).or_insert(Window { started: now, actions: 0 });
        if now.duration_since(window.started) >= Duration::from_secs(1) {
            *window = Window { started: now, actions: 0 };
        }
        if window.actions >= limit {
            return Err(Rejection::rate_limited());
        }
        window.actions += 1;
        Ok(())
    }

    // ---- conversations ----

    fn conversation_position(&self, key: &str) -> Option<usize> {
        self.conversations.iter().position(|c| c.sid == key || c.unique_name.as_deref() == Some(key))
    }

    pub fn conversation(&self, key: &str) -> Option<&Conversation> {
        self.conversation_position(key).map(|i| &self.conversations[i])
    }

    fn conversation_mut(&mut self, key: &str) -> Result<&mut Conversation, Rejection> {
        let i = self.conversation_position(key).ok_or_else(Rejection::not_found)?;
        Ok(&mut self.conversations[i])
    }

    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    pub fn create_conversation(&mut self, form: &Form) -> Result<Conversation, Rejection> {
        let friendly_name = optional_name(form, "FriendlyName")?;
        let unique_name = match form.get("UniqueName").filter(|n| !n.is_empty()) {
            Some(name) => Some(self.free_unique_name(name, None)?),
            None => None,
        };
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?.unwrap_or_else(|| "{}".to_owned());
        let state = conversation_state(form)?.unwrap_or("active").to_owned();
        let now = now();
        let conversation = Conversation {
            sid: new_sid("CH"),
            unique_name,
            friendly_name,
            attributes,
            state,
            date_created: now,
            date_updated: now,
            participants: Vec::new(),
            messages: Vec::new(),
        };
        self.conversations.push(conversation.clone());
        Ok(conversation)
    }

    /// `name` if no other conversation (than `except`) has it and it does not look like a SID.
    pub fn free_unique_name(&self, name: &str, except: Option<&str>) -> Result<String, Rejection> {
        if is_sid(name, "CH") {
            return Err(Rejection::invalid("UniqueName must not look like a conversation SID"));
        }
        if name.chars().count() > NAME_LIMIT {
            return Err(Rejection::invalid(format!("UniqueName is longer than {NAME_LIMIT} characters")));
        }
        let taken =
            self.conversations.iter().any(|c| c.unique_name.as_deref() == Some(name) && Some(c.sid.as_str()) != except);
        if taken {
            return Err(Rejection::conflict(
                codes::CONVERSATION_EXISTS,
                "Conversation with provided unique name already exists",
            ));
        }
        Ok(name.to_owned())
    }

    pub fn update_conversation(&mut self, key: &str, form: &Form) -> Result<Conversation, Rejection> {
        let sid = self.conversation(key).ok_or_else(Rejection::not_found)?.sid.clone();
        let friendly_name = optional_name(form, "FriendlyName")?;
        let unique_name = match form.get("UniqueName") {
            Some("") => Some(None),
            Some(name) => Some(Some(self.free_unique_name(name, Some(&sid))?)),
            None => None,
        };
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?;
        let state = conversation_state(form)?;
        let conversation = self.conversation_mut(&sid)?;
        if let Some(name) = friendly_name {
            conversation.friendly_name = Some(name);
        }
        if let Some(name) = unique_name {
            conversation.unique_name = name;
        }
        if let Some(attributes) = attributes {
            conversation.attributes = attributes;
        }
        if let Some(state) = state {
            conversation.state = state.to_owned();
        }
        conversation.date_updated = now();
        Ok(conversation.clone())
    }

    /// Removes the conversation (SID or unique name) and answers it.
    pub fn delete_conversation(&mut self, key: &str) -> Result<Conversation, Rejection> {
        let i = self.conversation_position(key).ok_or_else(Rejection::not_found)?;
        let removed = self.conversations.remove(i);
        self.windows.remove(&removed.sid);
        self.next_message_index.remove(&removed.sid);
        Ok(removed)
    }

    // ---- participants ----

    pub fn add_participant(&mut self, key: &str, form: &Form) -> Result<Participant, Rejection> {
        let Some(raw_identity) = form.get("Identity") else {
            return Err(Rejection::invalid(
                "Identity is required: the stand-in only has chat participants (no MessagingBinding)",
            ));
        };
        let identity = identity(raw_identity)?;
        let role_sid = self.role_for(form, RoleKind::Conversation, self.default_conversation_role.clone())?;
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?.unwrap_or_else(|| "{}".to_owned());
        let conversation = self.conversation(key).ok_or_else(Rejection::not_found)?;
        if conversation.participant(&identity).is_some() {
            return Err(Rejection::participant_exists());
        }
        self.check_limits(conversation, &identity)?;
        let conversation_sid = conversation.sid.clone();
        self.user_of(&identity);
        let now = now();
        let participant = Participant {
            sid: new_sid("MB"),
            conversation_sid: conversation_sid.clone(),
            identity,
            role_sid,
            attributes,
            last_read_message_index: None,
            last_read_timestamp: None,
            date_created: now,
            date_updated: now,
        };
        self.conversation_mut(&conversation_sid)?.participants.push(participant.clone());
        Ok(participant)
    }

    /// Whether `identity` (not yet a participant) may join `conversation` under Twilio's limits:
    /// 400 code 50417 when the conversation is full, 400 code 50214 when the identity already
    /// takes part in as many conversations as one identity may.
    pub fn check_limits(&self, conversation: &Conversation, identity: &str) -> Result<(), Rejection> {
        if conversation.participants.len() >= self.participants_per_conversation {
            return Err(Rejection::participant_limit());
        }
        self.check_identity_limit(identity)
    }

    /// 400 code 50214 when `identity` takes part in as many conversations as one identity may.
    pub fn check_identity_limit(&self, identity: &str) -> Result<(), Rejection> {
        let joined = self.conversations.iter().filter(|c| c.participant(identity).is_some()).count();
        if joined >= self.conversations_per_identity {
            return Err(Rejection::user_conversation_limit());
        }
        Ok(())
    }

    /// The participant `key` (SID or identity) of the conversation `conversation`.
    pub fn participant(&self, conversation: &str, key: &str) -> Result<&Participant, Rejection> {
        let conversation = self.conversation(conversation).ok_or_else(Rejection::not_found)?;
        conversation.participants.iter().find(|p| p.sid == key || p.identity == key).ok_or_else(Rejection::not_found)
    }

    pub fn update_participant(&mut self, conversation: &str, key: &str, form: &Form) -> Result<Participant, Rejection> {
        let sid = self.participant(conversation, key)?.sid.clone();
        let role_sid = match form.get("RoleSid") {
            Some(_) => Some(self.role_for(form, RoleKind::Conversation, None)?),
            None => None,
        };
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?;
        let last_read =
            match form.get("LastReadMessageIndex") {
                None => None,
                Some("" | "null") => Some(None),
                Some(raw) => Some(Some(raw.parse::<u64>().map_err(|_| {
                    Rejection::invalid(format!("LastReadMessageIndex must be an integer, not {raw:?}"))
                })?)),
            };
        let conversation = self.conversation_mut(conversation)?;
        let participant =
            conversation.participants.iter_mut().find(|p| p.sid == sid).ok_or_else(Rejection::not_found)?;
        let now = now();
        if let Some(role_sid) = role_sid {
            participant.role_sid = role_sid;
        }
        if let Some(attributes) = attributes {
            participant.attributes = attributes;
        }
        if let Some(index) = last_read {
            participant.last_read_message_index = index;
            participant.last_read_timestamp = index.map(|_| now);
        }
        participant.date_updated = now;
        Ok(participant.clone())
    }

    /// Removes the participant `key` (SID or identity) and answers it.
    pub fn remove_participant(&mut self, conversation: &str, key: &str) -> Result<Participant, Rejection> {
        let conversation = self.conversation_mut(conversation)?;
        let i = conversation.participants.iter().position(|p| p.sid == key || p.identity == key);
        Ok(conversation.participants.remove(i.ok_or_else(Rejection::not_found)?))
    }

    // ---- messages ----

    pub fn add_message(&mut self, key: &str, form: &Form) -> Result<Message, Rejection> {
        let author = form.get("Author").filter(|a| !a.is_empty()).unwrap_or("system").to_owned();
        let body = form.get("Body").map(str::to_owned);
        match &body {
            None => {
                return Err(Rejection::invalid("Body is required (the stand-in has no media or content templates)"));
            }
            Some(b) if b.chars().count() > MESSAGE_BODY_LIMIT => {
                return Err(Rejection::invalid(format!("Body is longer than {MESSAGE_BODY_LIMIT} characters")));
            }
            Some(_) => {}
        }
        let attributes = attributes(form, "Attributes", MESSAGE_ATTRIBUTES_LIMIT)?.unwrap_or_else(|| "{}".to_owned());
        let i = self.conversation_position(key).ok_or_else(Rejection::not_found)?;
        let index = self.take_message_index(i);
        let conversation = &mut self.conversations[i];
        let now = now();
        let message = Message {
            sid: new_sid("IM"),
            conversation_sid: conversation.sid.clone(),
            index,
            participant_sid: conversation.participant(&author).map(|p| p.sid.clone()),
            author,
            body,
            attributes,
            date_created: now,
            date_updated: now,
        };
        conversation.messages.push(message.clone());
        Ok(message)
    }

    /// The next message index of the conversation at position `i`, used up: like Twilio's,
    /// indexes only grow, so a deleted message's index is never given again.
    fn take_message_index(&mut self, i: usize) -> u64 {
        let conversation = &self.conversations[i];
        let next = self
            .next_message_index
            .entry(conversation.sid.clone())
            .or_insert_with(|| conversation.messages.last().map_or(0, |m| m.index + 1));
        let index = *next;
        *next += 1;
        index
    }

    /// Removes the message `sid` of the conversation `key` and answers it.
    pub fn remove_message(&mut self, key: &str, sid: &str) -> Result<Message, Rejection> {
        let conversation = self.conversation_mut(key)?;
        let i = conversation.messages.iter().position(|m| m.sid == sid).ok_or_else(Rejection::not_found)?;
        Ok(conversation.messages.remove(i))
    }

    /// The message `sid` of the conversation `key`.
    pub fn message(&self, key: &str, sid: &str) -> Result<&Message, Rejection> {
        let conversation = self.conversation(key).ok_or_else(Rejection::not_found)?;
        conversation.messages.iter().find(|m| m.sid == sid).ok_or_else(Rejection::not_found)
    }

    /// Sets the `Body` and `Attributes` the form names.
    pub fn update_message(&mut self, key: &str, sid: &str, form: &Form) -> Result<Message, Rejection> {
        let body = match form.get("Body") {
            Some(b) if b.chars().count() > MESSAGE_BODY_LIMIT => {
                return Err(Rejection::invalid(format!("Body is longer than {MESSAGE_BODY_LIMIT} characters")));
            }
            body => body.map(str::to_owned),
        };
        let attributes = attributes(form, "Attributes", MESSAGE_ATTRIBUTES_LIMIT)?;
        let conversation = self.conversation_mut(key)?;
        let message = conversation.messages.iter_mut().find(|m| m.sid == sid).ok_or_else(Rejection::not_found)?;
        if let Some(body) = body {
            message.body = Some(body);
        }
        if let Some(attributes) = attributes {
            message.attributes = attributes;
        }
        message.date_updated = now();
        Ok(message.clone())
    }

    // ---- users ----

    fn user_position(&self, key: &str) -> Option<usize> {
        self.users.iter().position(|u| u.sid == key || u.identity == key)
    }

    pub fn user(&self, key: &str) -> Option<&User> {
        self.user_position(key).map(|i| &self.users[i])
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The user of `identity`, created with the service's default role if new, as Twilio does
    /// when an SDK first connects with a token for it (or a participant is added for it).
    /// The user, and whether it was created just now.
    pub fn ensure_user(&mut self, identity_claim: &str) -> Result<(User, bool), Rejection> {
        let identity = identity(identity_claim)?;
        let new = self.user(&identity).is_none();
        Ok((self.user_of(&identity).clone(), new))
    }

    /// The user of an identity already checked, created if new.
    fn user_of(&mut self, identity: &str) -> &User {
        let i = match self.users.iter().position(|u| u.identity == identity) {
            Some(i) => i,
            None => {
                let now = now();
                self.users.push(User {
                    sid: new_sid("US"),
                    identity: identity.to_owned(),
                    friendly_name: None,
                    role_sid: self.default_service_role.clone(),
                    attributes: "{}".to_owned(),
                    date_created: now,
                    date_updated: now,
                });
                self.users.len() - 1
            }
        };
        &self.users[i]
    }

    pub fn create_user(&mut self, form: &Form) -> Result<User, Rejection> {
        let identity = identity(form.get("Identity").ok_or_else(|| Rejection::invalid("Identity is required"))?)?;
        let role_sid = self.role_for(form, RoleKind::Service, self.default_service_role.clone())?;
        let friendly_name = optional_name(form, "FriendlyName")?;
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?.unwrap_or_else(|| "{}".to_owned());
        if self.users.iter().any(|u| u.identity == identity) {
            return Err(Rejection::conflict(codes::USER_EXISTS, "User already exists"));
        }
        let now = now();
        let user = User {
            sid: new_sid("US"),
            identity,
            friendly_name,
            role_sid,
            attributes,
            date_created: now,
            date_updated: now,
        };
        self.users.push(user.clone());
        Ok(user)
    }

    pub fn update_user(&mut self, key: &str, form: &Form) -> Result<User, Rejection> {
        let i = self.user_position(key).ok_or_else(Rejection::not_found)?;
        let role_sid = match form.get("RoleSid") {
            Some(_) => Some(self.role_for(form, RoleKind::Service, None)?),
            None => None,
        };
        let friendly_name = optional_name(form, "FriendlyName")?;
        let attributes = attributes(form, "Attributes", ATTRIBUTES_LIMIT)?;
        let user = &mut self.users[i];
        if let Some(role_sid) = role_sid {
            user.role_sid = role_sid;
        }
        if let Some(name) = friendly_name {
            user.friendly_name = Some(name);
        }
        if let Some(attributes) = attributes {
            user.attributes = attributes;
        }
        user.date_updated = now();
        Ok(user.clone())
    }

    pub fn delete_user(&mut self, key: &str) -> Result<(), Rejection> {
        let i = self.user_position(key).ok_or_else(Rejection::not_found)?;
        self.users.remove(i);
        Ok(())
    }

    // ---- roles ----

    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    pub fn role(&self, sid: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.sid == sid)
    }

    /// `RoleSid` from the form, which must name a role of `kind`; else `default`.
    fn role_for(&self, form: &Form, kind: RoleKind, default: Option<String>) -> Result<Option<String>, Rejection> {
        match form.get("RoleSid") {
            None | Some("") => Ok(default),
            Some(sid) => match self.role(sid) {
                Some(role) if role.kind == kind => Ok(Some(role.sid.clone())),
                Some(_) => Err(Rejection::invalid(format!("RoleSid {sid} is not a {} role", kind.as_str()))),
                None => Err(Rejection::invalid(format!("RoleSid {sid} does not exist"))),
            },
        }
    }

    fn insert_role(&mut self, name: &str, kind: RoleKind, permissions: Vec<String>) -> Role {
        let now = now();
        let role = Role {
            sid: new_sid("RL"),
            friendly_name: name.to_owned(),
            kind,
            permissions,
            date_created: now,
            date_updated: now,
        };
        self.roles.push(role.clone());
        role
    }

    pub fn create_role(&mut self, form: &Form) -> Result<Role, Rejection> {
        let name =
            optional_name(form, "FriendlyName")?.ok_or_else(|| Rejection::invalid("FriendlyName is required"))?;
        let kind = form.get("Type").ok_or_else(|| Rejection::invalid("Type is required"))?;
        let kind = RoleKind::parse(kind)
            .ok_or_else(|| Rejection::invalid(format!("Type must be conversation or service, not {kind:?}")))?;
        let permissions = permissions(form)?;
        Ok(self.insert_role(&name, kind, permissions))
    }

    /// Replaces the role's permissions, as Twilio's update does.
    pub fn update_role(&mut self, sid: &str, form: &Form) -> Result<Role, Rejection> {
        let permissions = permissions(form)?;
        let role = self.roles.iter_mut().find(|r| r.sid == sid).ok_or_else(Rejection::not_found)?;
        role.permissions = permissions;
        role.date_updated = now();
        Ok(role.clone())
    }

    pub fn delete_role(&mut self, sid: &str) -> Result<(), Rejection> {
        let i = self.roles.iter().position(|r| r.sid == sid).ok_or_else(Rejection::not_found)?;
        let removed = self.roles.remove(i);
        for default in [
            &mut self.default_service_role,
            &mut self.default_conversation_role,
            &mut self.default_conversation_creator_role,
        ] {
            if default.as_deref() == Some(removed.sid.as_str()) {
                *default = None;
            }
        }
        Ok(())
    }

    /// The permissions of role `sid` as it is now; none for no role or a deleted one.
    pub fn permissions_of(&self, sid: Option<&str>) -> &[String] {
        sid.and_then(|sid| self.role(sid)).map_or(&[], |r| r.permissions.as_slice())
    }

    // ---- service configuration ----

    pub fn configuration(&self) -> ServiceConfiguration {
        ServiceConfiguration {
            default_conversation_creator_role_sid: self.default_conversation_creator_role.clone(),
            default_conversation_role_sid: self.default_conversation_role.clone(),
            default_chat_service_role_sid: self.default_service_role.clone(),
            reachability_enabled: self.reachability_enabled,
        }
    }

    /// The roles Twilio gives creators, participants and new users; each must be an existing
    /// role of the right kind, and nothing changes unless every parameter is valid.
    pub fn update_configuration(&mut self, form: &Form) -> Result<ServiceConfiguration, Rejection> {
        let role = |name: &str, kind: RoleKind| -> Result<Option<String>, Rejection> {
            let Some(sid) = form.get(name) else { return Ok(None) };
            match self.role(sid) {
                Some(role) if role.kind == kind => Ok(Some(role.sid.clone())),
                Some(_) => Err(Rejection::invalid(format!("{name} {sid} is not a {} role", kind.as_str()))),
                None => Err(Rejection::invalid(format!("{name} {sid} does not exist"))),
            }
        };
        let creator = role("DefaultConversationCreatorRoleSid", RoleKind::Conversation)?;
        let participant = role("DefaultConversationRoleSid", RoleKind::Conversation)?;
        let user = role("DefaultChatServiceRoleSid", RoleKind::Service)?;
        let reachability = match form.get("ReachabilityEnabled") {
            None => None,
            Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
            Some(v) => return Err(Rejection::invalid(format!("ReachabilityEnabled must be true or false, not {v:?}"))),
        };
        if creator.is_some() {
            self.default_conversation_creator_role = creator;
        }
        if participant.is_some() {
            self.default_conversation_role = participant;
        }
        if user.is_some() {
            self.default_service_role = user;
        }
        if let Some(enabled) = reachability {
            self.reachability_enabled = enabled;
        }
        Ok(self.configuration())
    }

    /// The creator role of a conversation made through the SDK.
    pub fn default_conversation_creator_role(&self) -> Option<&str> {
        self.default_conversation_creator_role.as_deref()
    }

    /// The role a participant added without `RoleSid` gets.
    pub fn default_conversation_role(&self) -> Option<&str> {
        self.default_conversation_role.as_deref()
    }

    // ---- webhooks ----

    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Sets what the form names; `Filters`, when present, replace the list.
    pub fn update_webhooks(&mut self, form: &Form) -> Result<Webhooks, Rejection> {
        let url = |name: &str| -> Result<Option<Option<String>>, Rejection> {
            match form.get(name) {
                None => Ok(None),
                Some("") => Ok(Some(None)),
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => Ok(Some(Some(u.to_owned()))),
                Some(u) => Err(Rejection::invalid(format!("{name} must be an absolute http(s) URL, not {u:?}"))),
            }
        };
        let pre = url("PreWebhookUrl")?;
        let post = url("PostWebhookUrl")?;
        let filters = form.all("Filters");
        if let Some(bad) = filters.iter().find(|f| !WEBHOOK_FILTERS.contains(&f.as_str())) {
            return Err(Rejection::invalid(format!("Filters has an unknown event {bad:?}")));
        }
        let method = match form.get("Method") {
            None => None,
            Some(m) if m.eq_ignore_ascii_case("GET") || m.eq_ignore_ascii_case("POST") => Some(m.to_ascii_uppercase()),
            Some(m) => return Err(Rejection::invalid(format!("Method must be GET or POST, not {m:?}"))),
        };
        if let Some(pre) = pre {
            self.webhooks.pre_webhook_url = pre;
        }
        if let Some(post) = post {
            self.webhooks.post_webhook_url = post;
        }
        if !filters.is_empty() {
            self.webhooks.filters = filters;
        }
        if method.is_some() {
            self.webhooks.method = method;
        }
        Ok(self.webhooks.clone())
    }

    // ---- resource bodies, shaped as the spec's schemas ----

    pub fn conversation_json(&self, c: &Conversation) -> Value {
        let url = format!("{}/Conversations/{}", self.service_url, c.sid);
        json!({
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "messaging_service_sid": null,
            "sid": c.sid,
            "friendly_name": c.friendly_name,
            "unique_name": c.unique_name,
            "attributes": c.attributes,
            "state": c.state,
            "date_created": iso8601(c.date_created),
            "date_updated": iso8601(c.date_updated),
            "timers": {},
            "bindings": null,
            "url": url,
            "links": {
                "participants": format!("{url}/Participants"),
                "messages": format!("{url}/Messages"),
                "webhooks": format!("{url}/Webhooks"),
            },
        })
    }

    pub fn participant_json(&self, p: &Participant) -> Value {
        json!({
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "conversation_sid": p.conversation_sid,
            "sid": p.sid,
            "identity": p.identity,
            "attributes": p.attributes,
            "messaging_binding": null,
            "role_sid": p.role_sid,
            "date_created": iso8601(p.date_created),
            "date_updated": iso8601(p.date_updated),
            "url": format!("{}/Conversations/{}/Participants/{}", self.service_url, p.conversation_sid, p.sid),
            "last_read_message_index": p.last_read_message_index,
            "last_read_timestamp": p.last_read_timestamp.map(iso8601),
        })
    }

    pub fn message_json(&self, m: &Message) -> Value {
        let url = format!("{}/Conversations/{}/Messages/{}", self.service_url, m.conversation_sid, m.sid);
        json!({
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "conversation_sid": m.conversation_sid,
            "sid": m.sid,
            "index": m.index,
            "author": m.author,
            "body": m.body,
            "media": null,
            "attributes": m.attributes,
            "participant_sid": m.participant_sid,
            "date_created": iso8601(m.date_created),
            "date_updated": iso8601(m.date_updated),
            "delivery": null,
            "content_sid": null,
            "url": url,
            "links": {
                "delivery_receipts": format!("{url}/Receipts"),
                "channel_metadata": format!("{url}/ChannelMetadata"),
            },
        })
    }

    pub fn user_json(&self, u: &User) -> Value {
        let url = format!("{}/Users/{}", self.service_url, u.sid);
        json!({
            "sid": u.sid,
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "role_sid": u.role_sid,
            "identity": u.identity,
            "friendly_name": u.friendly_name,
            "attributes": u.attributes,
            "is_online": null,
            "is_notifiable": null,
            "date_created": iso8601(u.date_created),
            "date_updated": iso8601(u.date_updated),
            "url": url,
            "links": { "user_conversations": format!("{url}/Conversations") },
        })
    }

    pub fn role_json(&self, r: &Role) -> Value {
        json!({
            "sid": r.sid,
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "friendly_name": r.friendly_name,
            "type": r.kind.as_str(),
            "permissions": r.permissions,
            "date_created": iso8601(r.date_created),
            "date_updated": iso8601(r.date_updated),
            "url": format!("{}/Roles/{}", self.service_url, r.sid),
        })
    }

    pub fn webhooks_json(&self) -> Value {
        let w = &self.webhooks;
        json!({
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "pre_webhook_url": w.pre_webhook_url,
            "post_webhook_url": w.post_webhook_url,
            "filters": w.filters,
            "method": w.method,
            "url": format!("{}/Configuration/Webhooks", self.service_url),
        })
    }

    pub fn configuration_json(&self) -> Value {
        let url = format!("{}/Configuration", self.service_url);
        json!({
            "chat_service_sid": self.service_sid,
            "default_conversation_creator_role_sid": self.default_conversation_creator_role,
            "default_conversation_role_sid": self.default_conversation_role,
            "default_chat_service_role_sid": self.default_service_role,
            "reachability_enabled": self.reachability_enabled,
            "url": url,
            "links": {
                "notifications": format!("{url}/Notifications"),
                "webhooks": format!("{url}/Webhooks"),
            },
        })
    }

    /// The user's conversations (those where their identity is a participant), in creation order,
    /// as `conversations.v1.service.service_user.service_user_conversation` bodies.
    pub fn user_conversations_json(&self, user: &User, only: Option<&str>) -> Vec<Value> {
        self.conversations
            .iter()
            .filter(|c| only.is_none_or(|key| c.sid == key || c.unique_name.as_deref() == Some(key)))
            .filter_map(|c| c.participant(&user.identity).map(|p| self.user_conversation_json(user, c, p)))
            .collect()
    }

    fn user_conversation_json(&self, user: &User, c: &Conversation, p: &Participant) -> Value {
        // Unread: messages after the read horizon; like Twilio, none (null) before one is set.
        let unread = p.last_read_message_index.map(|read| c.messages.iter().filter(|m| m.index > read).count());
        let conversation_url = format!("{}/Conversations/{}", self.service_url, c.sid);
        json!({
            "account_sid": self.account_sid,
            "chat_service_sid": self.service_sid,
            "conversation_sid": c.sid,
            "unread_messages_count": unread,
            "last_read_message_index": p.last_read_message_index,
            "participant_sid": p.sid,
            "user_sid": user.sid,
            "friendly_name": c.friendly_name,
            "conversation_state": c.state,
            "timers": {},
            "attributes": c.attributes,
            "date_created": iso8601(c.date_created),
            "date_updated": iso8601(c.date_updated),
            "created_by": null,
            "notification_level": "default",
            "unique_name": c.unique_name,
            "url": format!("{}/Users/{}/Conversations/{}", self.service_url, user.sid, c.sid),
            "links": {
                "participant": format!("{conversation_url}/Participants/{}", p.sid),
                "conversation": conversation_url,
            },
        })
    }
}

/// `prefix` + 32 hex digits, as every Twilio SID is.
pub(crate) fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34 && value.get(..2) == Some(prefix) && value[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

pub(crate) fn new_sid(prefix: &str) -> String {
    format!("{prefix}{:032x}", rand::random::<u128>())
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2015-12-16T22:18:37Z`, as Twilio writes dates.
pub(crate) fn iso8601(at: OffsetDateTime) -> String {
    at.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

fn optional_name(form: &Form, name: &str) -> Result<Option<String>, Rejection> {
    match form.get(name) {
        Some(value) if value.chars().count() > NAME_LIMIT => {
            Err(Rejection::invalid(format!("{name} is longer than {NAME_LIMIT} characters")))
        }
        value => Ok(value.map(str::to_owned)),
    }
}

/// The attributes as sent, if they are JSON within `limit` bytes.
fn attributes(form: &Form, name: &str, limit: usize) -> Result<Option<String>, Rejection> {
    let Some(value) = form.get(name) else { return Ok(None) };
    if value.len() > limit {
        return Err(Rejection::invalid(format!("{name} is larger than {limit} bytes")));
    }
    serde_json::from_str::<Value>(value).map_err(|_| Rejection::invalid(format!("{name} must be valid JSON")))?;
    Ok(Some(value.to_owned()))
}

fn conversation_state(form: &Form) -> Result<Option<&str>, Rejection> {
    match form.get("State") {
        Some(s) if !CONVERSATION_STATES.contains(&s) => {
            Err(Rejection::invalid(format!("State must be active, inactive or closed, not {s:?}")))
        }
        state => Ok(state),
    }
}

/// Whether `value` may be a chat identity (see [`identity`]).
pub(crate) fn check_identity(value: &str) -> Result<(), Rejection> {
    identity(value).map(drop)
}

/// A chat identity: 1 to 256 characters, not shaped like a user SID.
fn identity(value: &str) -> Result<String, Rejection> {
    if value.is_empty() {
        return Err(Rejection::invalid("Identity must not be empty"));
    }
    if value.chars().count() > IDENTITY_LIMIT {
        return Err(Rejection::invalid(format!("Identity is longer than {IDENTITY_LIMIT} characters")));
    }
    if is_sid(value, "US") {
        return Err(Rejection::invalid("Identity must not look like a user SID"));
    }
    Ok(value.to_owned())
}

fn permissions(form: &Form) -> Result<Vec<String>, Rejection> {
    let permissions: Vec<String> = form.all("Permission").into_iter().filter(|p| !p.is_empty()).collect();
    if permissions.is_empty() {
        return Err(Rejection::invalid("Permission is required (repeat it once per permission)"));
    }
    Ok(permissions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_a_prefix_and_thirty_two_hex_digits() {
        let sid = new_sid("CH");
        assert!(is_sid(&sid, "CH"), "{sid}");
        assert!(!is_sid(&sid, "US"));
        assert!(!is_sid("CHnot-hex-not-hex-not-hex-not-hex!", "CH"));
        assert!(is_sid("CHAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "CH"));
        assert!(!is_sid("chaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "CH"));
        assert!(!is_sid("CHé23456789abcdef0123456789abcde", "CH"));
    }

    #[test]
    fn dates_are_iso8601_in_utc_to_the_second() {
        let at = OffsetDateTime::from_unix_timestamp(1_450_304_317).expect("timestamp");
        assert_eq!(iso8601(at), "2015-12-16T22:18:37Z");
    }
}
