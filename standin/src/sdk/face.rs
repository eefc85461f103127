//! The SDK face's routes: the token, the implicit connect, the permission checks of the roles as
//! they are now, and the pre- and post-event webhooks around every write.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};
use serde_json::Value;

use crate::Shared;
use crate::error::Rejection;
use crate::harness::lock;
use crate::model::{Conversation, User};
use crate::paging::{PageRequest, page_body};
use crate::sdk::token;
use crate::server::{Answer, Call, StandInResponse, created, ok, parse_form, respond, segments};
use crate::state::{Form, State, check_identity, iso8601};
use crate::webhooks::{self, Event, conversation_event, message_event, participant_event};

/// The list ceiling of the SDK face's pages.
const PAGE_MAX: usize = 100;
/// What an SDK may set on a conversation.
const CONVERSATION_FIELDS: [&str; 3] = ["UniqueName", "FriendlyName", "Attributes"];

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> StandInResponse {
    let path = request.uri().path().to_owned();
    let answer = match Call::read(request).await {
        Ok(call) => answer(&shared, &call).await.unwrap_or_else(Answer::Rejected),
        Err(rejection) => Answer::Rejected(rejection),
    };
    respond(&path, answer)
}

async fn answer(shared: &Arc<Shared>, call: &Call) -> Result<Answer, Rejection> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let actor = token::verify(bearer(call).unwrap_or_default(), shared.issuer(), now)?;
    if call.bad_query {
        return Err(Rejection::invalid("Malformed query string"));
    }
    let form = parse_form(call)?;
    let (user, user_json) = connect(shared, &actor)?;
    let segments = segments(&call.path).ok_or_else(Rejection::not_found)?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let Some(rest) = segments.strip_prefix(&["sdk", "v1"][..]) else { return Err(Rejection::not_found()) };
    let list_url = format!("{}{}", shared.base_url, call.path);
    let page = |name: &str, items: Vec<Value>| -> Result<Value, Rejection> {
        Ok(page_body(name, items, PageRequest::parse(&call.query, PAGE_MAX)?, &list_url, &call.query))
    };
    let actor = user.identity.as_str();
    match (rest, &call.method) {
        (["connect"], &Method::POST) => ok(user_json),
        (["Conversations"], &Method::POST) => {
            perform(shared, actor, CreateConversation { form: only(&form, &CONVERSATION_FIELDS) }).await
        }
        (["Conversations", key], &Method::GET) => read(shared, actor, key, |state, c| Ok(state.conversation_json(c))),
        (["Conversations", key], &Method::POST) => {
            let update = UpdateConversation { key: key.to_string(), form: only(&form, &CONVERSATION_FIELDS) };
            perform(shared, actor, update).await
        }
        (["Conversations", key, "Participants"], &Method::GET) => read(shared, actor, key, |state, c| {
            page("participants", c.participants.iter().map(|p| state.participant_json(p)).collect())
        }),
        (["Conversations", key, "Participants"], &Method::POST) => {
            let add = AddParticipant {
                key: key.to_string(),
                identity: form.get("Identity").filter(|i| !i.is_empty()).unwrap_or(actor).to_owned(),
                attributes: form.get("Attributes").map(str::to_owned),
            };
            perform(shared, actor, add).await
        }
        (["Conversations", key, "Participants", who], &Method::DELETE) => {
            perform(shared, actor, RemoveParticipant { key: key.to_string(), who: who.to_string() }).await
        }
        (["Conversations", key, "Messages"], &Method::GET) => read(shared, actor, key, |state, c| {
            page("messages", c.messages.iter().map(|m| state.message_json(m)).collect())
        }),
        (["Conversations", key, "Messages"], &Method::POST) => {
            let send = SendMessage {
                key: key.to_string(),
                body: form.get("Body").map(str::to_owned),
                attributes: form.get("Attributes").map(str::to_owned),
            };
            perform(shared, actor, send).await
        }
        (["Conversations", key, "Messages", sid], &Method::GET) => read(shared, actor, key, |state, c| {
            let message = c.messages.iter().find(|m| m.sid == *sid).ok_or_else(Rejection::not_found)?;
            Ok(state.message_json(message))
        }),
        (["Conversations", key, "Messages", sid], &Method::POST) => {
            let edit = EditMessage {
                key: key.to_string(),
                sid: sid.to_string(),
                body: form.get("Body").map(str::to_owned),
                attributes: form.get("Attributes").map(str::to_owned),
            };
            perform(shared, actor, edit).await
        }
        (path, _) if known_path(path) => Err(Rejection::method_not_allowed()),
        _ => Err(Rejection::not_found()),
    }
}

fn known_path(path: &[&str]) -> bool {
    matches!(
        path,
        ["connect"]
            | ["Conversations"]
            | ["Conversations", _]
            | ["Conversations", _, "Participants" | "Messages"]
            | ["Conversations", _, "Participants" | "Messages", _]
    )
}

/// The token of `Authorization: Bearer …`.
fn bearer(call: &Call) -> Option<&str> {
    let value = call.headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What an SDK's connect does: the user of a new identity is created with the service's default
/// service role (and announced as `onUserAdded`).
fn connect(shared: &Arc<Shared>, actor: &str) -> Result<(User, Value), Rejection> {
    let (user, new, json) = {
        let mut state = lock(&shared.state);
        // An identity Twilio cannot hold makes the token unusable, not the request malformed.
        let (user, new) = state.ensure_user(actor).map_err(|_| Rejection::invalid_access_token())?;
        let json = state.user_json(&user);
        (user, new, json)
    };
    if new {
        let event = Event::new("onUserAdded")
            .with("UserSid", &user.sid)
            .with("Identity", &user.identity)
            .with_some("RoleSid", user.role_sid.clone())
            .with("Attributes", &user.attributes)
            .with("DateCreated", iso8601(user.date_created));
        webhooks::post_event(shared, Some(actor), event);
    }
    Ok((user, json))
}

/// The form's pairs named in `names`: what an SDK can send, whatever else the request carries.
fn only(form: &Form, names: &[&str]) -> Form {
    Form(form.0.iter().filter(|(k, _)| names.contains(&k.as_str())).cloned().collect())
}

/// A read: only a participant sees a conversation and what is in it.
fn read(
    shared: &Shared,
    actor: &str,
    key: &str,
    view: impl FnOnce(&State, &Conversation) -> Result<Value, Rejection>,
) -> Result<Answer, Rejection> {
    let state = lock(&shared.state);
    let conversation = state.conversation(key).ok_or_else(Rejection::not_found)?;
    allow(conversation.participant(actor).is_some())?;
    ok(view(&state, conversation)?)
}

/// An SDK write, checked before the pre-event webhook is asked and again, with the write, after.
trait Write: Send {
    /// The pre-event, if `actor` may do this now.
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection>;

    /// Does it: the answer, and the post-events to announce.
    fn apply(&self, state: &mut State, actor: &str) -> Result<(Answer, Vec<Event>), Rejection>;
}

async fn perform(shared: &Arc<Shared>, actor: &str, write: impl Write) -> Result<Answer, Rejection> {
    let pre = write.check(&lock(&shared.state), actor)?;
    webhooks::pre_event(shared, actor, pre).await?;
    // Roles, rosters and names may have changed while the webhook answered.
    let (answer, posts) = {
        let mut state = lock(&shared.state);
        write.check(&state, actor)?;
        write.apply(&mut state, actor)?
    };
    for event in posts {
        webhooks::post_event(shared, Some(actor), event);
    }
    Ok(answer)
}

fn allow(granted: bool) -> Result<(), Rejection> {
    if granted { Ok(()) } else { Err(Rejection::not_authorized()) }
}

/// What the actor may do now: its user's service role and, where it takes part in the
/// conversation, its participant's conversation role.
struct Standing<'a> {
    service: &'a [String],
    /// `None` when the actor is not a participant.
    conversation: Option<&'a [String]>,
}

impl<'a> Standing<'a> {
    fn of(state: &'a State, actor: &str, conversation: Option<&'a Conversation>) -> Self {
        let service = state.permissions_of(state.user(actor).and_then(|u| u.role_sid.as_deref()));
        let conversation =
            conversation.and_then(|c| c.participant(actor)).map(|p| state.permissions_of(p.role_sid.as_deref()));
        Self { service, conversation }
    }

    fn is_participant(&self) -> bool {
        self.conversation.is_some()
    }

    fn service_may(&self, permission: &str) -> bool {
        self.service.iter().any(|p| p == permission)
    }

    /// A conversation permission: a participant's, from either of its roles (Twilio's rule: a
    /// service role's conversation permissions apply in every conversation).
    fn may(&self, permission: &str) -> bool {
        self.conversation.is_some_and(|c| c.iter().any(|p| p == permission) || self.service_may(permission))
    }
}

fn conversation_of<'a>(state: &'a State, key: &str) -> Result<&'a Conversation, Rejection> {
    state.conversation(key).ok_or_else(Rejection::not_found)
}

/// `POST /Conversations`: the creator joins it with the service's creator role.
struct CreateConversation {
    form: Form,
}

impl Write for CreateConversation {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        allow(Standing::of(state, actor, None).service_may("createConversation"))?;
        // The creator joins it, so it must have room for one more conversation.
        state.check_identity_limit(actor)?;
        if let Some(name) = self.form.get("UniqueName").filter(|n| !n.is_empty()) {
            state.free_unique_name(name, None)?;
        }
        let given = |name| self.form.get(name).map(str::to_owned);
        Ok(Event::new("onConversationAdd")
            .with_some("UniqueName", given("UniqueName"))
            .with_some("FriendlyName", given("FriendlyName"))
            .with_some("Attributes", given("Attributes")))
    }

    fn apply(&self, state: &mut State, actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let conversation = state.create_conversation(&self.form)?;
        let mut creator = vec![("Identity".to_owned(), actor.to_owned())];
        if let Some(role) = state.default_conversation_creator_role() {
            creator.push(("RoleSid".to_owned(), role.to_owned()));
        }
        // A creator who cannot join leaves no conversation behind.
        let participant = match state.add_participant(&conversation.sid, &Form(creator)) {
            Ok(participant) => participant,
            Err(rejection) => {
                state.delete_conversation(&conversation.sid)?;
                return Err(rejection);
            }
        };
        let posts = vec![
            conversation_event("onConversationAdded", &conversation),
            participant_event("onParticipantAdded", &participant),
        ];
        Ok((created(state.conversation_json(&conversation))?, posts))
    }
}

/// `POST /Conversations/{key}`: names and attributes.
struct UpdateConversation {
    key: String,
    form: Form,
}

impl Write for UpdateConversation {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        let conversation = conversation_of(state, &self.key)?;
        let standing = Standing::of(state, actor, Some(conversation));
        allow(standing.is_participant())?;
        if self.form.0.is_empty() {
            return Err(Rejection::invalid("Give UniqueName, FriendlyName or Attributes"));
        }
        if self.form.get("Attributes").is_some() {
            allow(standing.may("editConversationAttributes"))?;
        }
        if self.form.get("UniqueName").is_some() || self.form.get("FriendlyName").is_some() {
            allow(standing.may("editConversationName"))?;
        }
        if let Some(name) = self.form.get("UniqueName").filter(|n| !n.is_empty()) {
            state.free_unique_name(name, Some(&conversation.sid))?;
        }
        let given = |name| self.form.get(name).map(str::to_owned);
        Ok(Event::new("onConversationUpdate")
            .with("ConversationSid", &conversation.sid)
            .with_some("UniqueName", given("UniqueName"))
            .with_some("FriendlyName", given("FriendlyName"))
            .with_some("Attributes", given("Attributes")))
    }

    fn apply(&self, state: &mut State, _actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let conversation = state.update_conversation(&self.key, &self.form)?;
        let posts = vec![conversation_event("onConversationUpdated", &conversation)];
        Ok((ok(state.conversation_json(&conversation))?, posts))
    }
}

/// `POST /Conversations/{key}/Participants`: joining (the actor itself) or adding another.
struct AddParticipant {
    key: String,
    identity: String,
    attributes: Option<String>,
}

impl Write for AddParticipant {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        let conversation = conversation_of(state, &self.key)?;
        let standing = Standing::of(state, actor, Some(conversation));
        let joining = self.identity == actor;
        if joining && !standing.is_participant() {
            allow(standing.service_may("joinConversation"))?;
        } else if !joining {
            allow(standing.may("addParticipant"))?;
        }
        check_identity(&self.identity)?;
        if conversation.participant(&self.identity).is_some() {
            return Err(Rejection::participant_exists());
        }
        state.check_limits(conversation, &self.identity)?;
        Ok(Event::new("onParticipantAdd")
            .with("ConversationSid", &conversation.sid)
            .with("Identity", &self.identity)
            .with("RoleSid", state.default_conversation_role().unwrap_or_default())
            .with("Attributes", self.attributes.as_deref().unwrap_or("{}")))
    }

    fn apply(&self, state: &mut State, _actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let mut form = vec![("Identity".to_owned(), self.identity.clone())];
        if let Some(attributes) = &self.attributes {
            form.push(("Attributes".to_owned(), attributes.clone()));
        }
        let participant = state.add_participant(&self.key, &Form(form))?;
        let posts = vec![participant_event("onParticipantAdded", &participant)];
        Ok((created(state.participant_json(&participant))?, posts))
    }
}

/// `DELETE /Conversations/{key}/Participants/{identity or sid}`: leaving, or removing another.
struct RemoveParticipant {
    key: String,
    who: String,
}

impl Write for RemoveParticipant {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        let conversation = conversation_of(state, &self.key)?;
        let standing = Standing::of(state, actor, Some(conversation));
        allow(standing.is_participant())?;
        let target = conversation
            .participants
            .iter()
            .find(|p| p.sid == self.who || p.identity == self.who)
            .ok_or_else(Rejection::not_found)?;
        allow(standing.may(if target.identity == actor { "leaveConversation" } else { "removeParticipant" }))?;
        Ok(Event::new("onParticipantRemove")
            .with("ConversationSid", &conversation.sid)
            .with("ParticipantSid", &target.sid)
            .with("Identity", &target.identity))
    }

    fn apply(&self, state: &mut State, _actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let participant = state.remove_participant(&self.key, &self.who)?;
        Ok((Answer::NoContent, vec![participant_event("onParticipantRemoved", &participant)]))
    }
}

/// `POST /Conversations/{key}/Messages`: the author is the actor.
struct SendMessage {
    key: String,
    body: Option<String>,
    attributes: Option<String>,
}

impl Write for SendMessage {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        let conversation = conversation_of(state, &self.key)?;
        allow(Standing::of(state, actor, Some(conversation)).may("sendMessage"))?;
        let body = self.body.as_deref().ok_or_else(|| Rejection::invalid("Body is required"))?;
        Ok(Event::new("onMessageAdd")
            .with("ConversationSid", &conversation.sid)
            .with("Body", body)
            .with("Author", actor)
            .with("Attributes", self.attributes.as_deref().unwrap_or("{}"))
            .with_some("ParticipantSid", conversation.participant(actor).map(|p| p.sid.clone())))
    }

    fn apply(&self, state: &mut State, actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let mut form = vec![("Author".to_owned(), actor.to_owned())];
        form.extend(self.body.clone().map(|b| ("Body".to_owned(), b)));
        form.extend(self.attributes.clone().map(|a| ("Attributes".to_owned(), a)));
        let message = state.add_message(&self.key, &Form(form))?;
        let posts = vec![message_event("onMessageAdded", &message)];
        Ok((created(state.message_json(&message))?, posts))
    }
}

/// `POST /Conversations/{key}/Messages/{sid}`: one's own message, or any with the `Any` permissions.
struct EditMessage {
    key: String,
    sid: String,
    body: Option<String>,
    attributes: Option<String>,
}

impl Write for EditMessage {
    fn check(&self, state: &State, actor: &str) -> Result<Event, Rejection> {
        let conversation = conversation_of(state, &self.key)?;
        let standing = Standing::of(state, actor, Some(conversation));
        allow(standing.is_participant())?;
        let message = state.message(&self.key, &self.sid)?;
        if self.body.is_none() && self.attributes.is_none() {
            return Err(Rejection::invalid("Give Body or Attributes"));
        }
        let own = message.author == actor;
        if self.body.is_some() {
            allow(own && standing.may("editOwnMessage") || standing.may("editAnyMessage"))?;
        }
        if self.attributes.is_some() {
            allow(own && standing.may("editOwnMessageAttributes") || standing.may("editAnyMessageAttributes"))?;
        }
        Ok(Event::new("onMessageUpdate")
            .with("ConversationSid", &conversation.sid)
            .with("MessageSid", &message.sid)
            .with("Index", message.index.to_string())
            .with("Author", &message.author)
            .with_some("Body", self.body.clone().or_else(|| message.body.clone()))
            .with("Attributes", self.attributes.as_deref().unwrap_or(&message.attributes))
            .with_some("ParticipantSid", message.participant_sid.clone()))
    }

    fn apply(&self, state: &mut State, _actor: &str) -> Result<(Answer, Vec<Event>), Rejection> {
        let mut form = Vec::new();
        form.extend(self.body.clone().map(|b| ("Body".to_owned(), b)));
        form.extend(self.attributes.clone().map(|a| ("Attributes".to_owned(), a)));
        let message = state.update_message(&self.key, &self.sid, &Form(form))?;
        let posts = vec![message_event("onMessageUpdated", &message)];
        Ok((ok(state.message_json(&message))?, posts))
    }
}
