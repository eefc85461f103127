//! The message guard's judgement of Twilio's pre-event webhooks, once the signature is checked:
//! a message (added or edited) that references an asset needs an author who can read it, a
//! participant joins an asset conversation only if they can read the asset, nobody offboarded
//! speaks or is added, a client cannot retarget a conversation chatgate created, and only chatgate
//! creates conversations. Any failure to decide is an error, which refuses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::acl::AclReader;
use crate::clock::Clock;
use crate::clock::Deadline;
use crate::domain::{
    AssetId, AssetReference, AttributesError, ConversationAttributes, ConversationKind, Identity, RoomName, Tenant,
};
use crate::http::ApiError;
use crate::twilio::rest::ConversationsClient;

/// Twilio waits 5 s for the answer; the conversation lookup must leave room for the decision.
const TWILIO_BUDGET: Duration = Duration::from_millis(2500);
/// Twilio does not wait on a post-event's answer: the deletion may take its retries.
const BACKSTOP_BUDGET: Duration = Duration::from_secs(8);
/// Conversations this warm instance already knows. What the guard reads of one (what it is
/// about, its attributes and unique name) does not change once chatgate created it (clients'
/// changes are refused here), but an operator may change or delete one: so it is forgotten after
/// [`CONVERSATION_CACHE_SECONDS`].
const CONVERSATION_CACHE_CAP: usize = 10_000;
/// How long the guard trusts what it read of a conversation.
pub const CONVERSATION_CACHE_SECONDS: u64 = 60;

/// The guard's state, built once at cold start.
pub struct MessageGuard<R> {
    store: Arc<R>,
    twilio: ConversationsClient,
    clock: Arc<dyn Clock>,
    conversations: Mutex<HashMap<String, Arc<Known>>>,
    /// Whether the deployment has tenants (`TENANT_CLAIM`): then every identity and stored id
    /// names its tenant, and nothing is decided across two.
    tenants: bool,
}

impl<R> std::fmt::Debug for MessageGuard<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageGuard").field("twilio", &self.twilio).finish_non_exhaustive()
    }
}

/// What the guard knows of a conversation.
#[derive(Debug)]
struct Known {
    /// When it was read (the clock's seconds).
    read_at: u64,
    /// chatgate's attributes; `Ok(None)` for a conversation chatgate did not create.
    about: Result<Option<ConversationAttributes>, AttributesError>,
    attributes: Value,
    unique_name: Option<String>,
}

/// The event's parameters, as Twilio signed them.
pub struct Event(pub Vec<(String, String)>);

impl std::fmt::Debug for Event {
    /// The parameters' names only: values carry message bodies.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Event").field(&self.0.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()).finish()
    }
}

impl Event {
    /// A parameter's value, when present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    /// A parameter's value as sent, empty included.
    fn raw(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Who acts: the access token's identity (`ClientIdentity`); `Author` only when it is absent
    /// (an action through the REST API, by the back end).
    pub fn actor(&self) -> &str {
        self.get("ClientIdentity").or_else(|| self.get("Author")).unwrap_or("")
    }
}

/// Why an event is refused, for the caller and the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub actor: String,
    pub asset: Option<AssetId>,
    pub reason: String,
}

impl<R: AclReader> MessageGuard<R> {
    pub fn new(store: Arc<R>, twilio: ConversationsClient, clock: Arc<dyn Clock>) -> Self {
        Self { store, twilio, clock, conversations: Mutex::default(), tenants: false }
    }

    /// The same guard for a tenant deployment (docs/tenancy.md): an asset a message references
    /// is the author's tenant's, and an identity of one tenant is never let into another's asset
    /// conversation or room.
    #[must_use]
    pub fn with_tenants(self, tenants: bool) -> Self {
        Self { tenants, ..self }
    }

    /// The verdict on one signed event: `Ok(Err(_))` refuses it; `Err(_)` is a failure to decide,
    /// which refuses it too.
    pub async fn judge(&self, event: &Event) -> Result<Result<(), Refusal>, ApiError> {
        decide(self, event.get("EventType").unwrap_or(""), event).await
    }

    /// The backstop behind Twilio's fail-open edge: a post-event (`onMessageAdded`,
    /// `onMessageUpdated`) of a message the guard would have refused (Twilio published it
    /// because the pre-event went unanswered for 5 s) deletes the message. `Ok(Some(_))` when it
    /// did; `Ok(None)` for a message the guard allows, one gone already, and any other event.
    pub async fn backstop(&self, event: &Event) -> Result<Option<Refusal>, ApiError> {
        let judged_as = match event.get("EventType") {
            Some("onMessageAdded") => "onMessageAdd",
            Some("onMessageUpdated") => "onMessageUpdate",
            _ => return Ok(None),
        };
        let Err(refusal) = decide(self, judged_as, event).await? else { return Ok(None) };
        let (Some(conversation), Some(message)) = (event.get("ConversationSid"), event.get("MessageSid")) else {
            return Err(ApiError::BadRequest("the post-event names no message".into()));
        };
        // Gone already (a replayed post-event, someone deleted it): nothing done, nothing to say.
        let deleted = self.twilio.delete_message(conversation, message, Deadline::after(BACKSTOP_BUDGET)).await?;
        Ok(deleted.then_some(refusal))
    }
}

impl<R> MessageGuard<R> {
    /// The tenant a stored id (an actor, an asset) belongs to, in a tenant deployment: what the
    /// audit line of a refusal names.
    pub fn tenant_of<'a>(&self, stored: &'a str) -> Option<&'a str> {
        Tenant::id_of(self.tenants, stored)
    }

    /// Whether an identity and a stored id (an asset's, a room's name) are of one tenant: always
    /// in a single-tenant deployment; in a tenant deployment, only when both name the same one.
    fn same_tenant(&self, who: &str, stored: &str) -> bool {
        match (Tenant::of_stored(self.tenants, who), Tenant::of_stored(self.tenants, stored)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// Whether an identity and the room a unique name names are of one tenant (always in a
    /// single-tenant deployment, whatever the name).
    fn same_tenant_room(&self, who: &str, unique_name: Option<&str>) -> bool {
        let room = unique_name.and_then(RoomName::from_unique_name);
        !self.tenants || room.is_some_and(|room| self.same_tenant(who, room.as_str()))
    }
}

/// `Ok(Err(_))` refuses the event; `Err(_)` is a failure to decide, which refuses it too.
async fn decide<R: AclReader>(
    state: &MessageGuard<R>,
    kind: &str,
    event: &Event,
) -> Result<Result<(), Refusal>, ApiError> {
    let refuse =
        |asset: Option<AssetId>, reason: String| Ok(Err(Refusal { actor: event.actor().to_owned(), asset, reason }));
    match kind {
        // Only chatgate creates conversations, and its REST calls never reach pre-event hooks: a
        // client creating one (the service's roles should already forbid it) is refused.
        "onConversationAdd" => refuse(None, "only chatgate creates conversations".into()),
        // An edit is a new chance to reference an asset: guarded exactly like a new message.
        "onMessageAdd" | "onMessageUpdate" => match AssetReference::from_attributes(event.get("Attributes")) {
            Err(e) => refuse(None, format!("malformed asset reference: {e}")),
            Ok(None) => standing(state, event.actor()).await,
            // `assetRef` is named as the author's client names it, relative to their tenant.
            Ok(Some(reference)) => match Tenant::of_stored(state.tenants, event.actor()) {
                None => refuse(Some(reference.asset), "the author belongs to no tenant".into()),
                Some(tenant) => match tenant.asset(reference.asset.as_str()) {
                    Ok(asset) => reader(state, event.actor(), &asset).await,
                    Err(e) => refuse(Some(reference.asset), format!("malformed asset reference: {e}")),
                },
            },
        },
        "onParticipantAdd" => {
            let known = conversation(state, event).await?;
            match &known.about {
                Err(_) => refuse(None, "malformed conversation attributes".into()),
                Ok(Some(ConversationAttributes { asset: Some(asset), .. })) => {
                    let who = event.get("Identity").unwrap_or("");
                    let verdict = reader(state, who, asset).await?;
                    Ok(verdict.map_err(|r| Refusal { actor: who.to_owned(), ..r }))
                }
                // A room is public: anyone not offboarded may be in it (a participant without an
                // identity, SMS or WhatsApp, has no standing to check).
                Ok(Some(ConversationAttributes { kind: ConversationKind::Room, .. })) => match event.get("Identity") {
                    Some(who) if !state.same_tenant_room(who, known.unique_name.as_deref()) => {
                        refuse(None, "a room is only for its own tenant's users".into())
                    }
                    Some(who) => {
                        let verdict = standing(state, who).await?;
                        Ok(verdict.map_err(|r| Refusal { actor: event.actor().to_owned(), ..r }))
                    }
                    None => Ok(Ok(())),
                },
                // Direct and group conversations, and conversations chatgate did not create: only
                // chatgate puts people in them, and its REST calls never reach pre-event hooks, so
                // a client adding (or joining) is refused whatever its role allows.
                Ok(_) => refuse(None, "only chatgate adds participants to this conversation".into()),
            }
        }
        "onConversationUpdate" => {
            let known = conversation(state, event).await?;
            if retargets(&known, event) {
                let asset = known.about.as_ref().ok().and_then(|a| a.as_ref()).and_then(|a| a.asset.clone());
                return refuse(
                    asset,
                    "clients cannot change a chatgate conversation's attributes or unique name".into(),
                );
            }
            Ok(Ok(()))
        }
        _ => Ok(Ok(())),
    }
}

/// Whether the update changes what a conversation is about: a chatgate conversation's
/// `Attributes` (compared as JSON) or `UniqueName`, or attributes that would make another
/// conversation look like chatgate's. Parameters the event leaves out are not changes.
fn retargets(known: &Known, event: &Event) -> bool {
    let attributes = event.raw("Attributes").map(|a| serde_json::from_str::<Value>(a).unwrap_or(Value::Null));
    match &known.about {
        // A client may neither make a conversation look like chatgate's nor take a name (a
        // chatgate name freed by a deletion included).
        Ok(None) => {
            attributes.is_some_and(|a| !matches!(ConversationAttributes::from_value(&a), Ok(None)))
                || event
                    .raw("UniqueName")
                    .is_some_and(|u| Some(u).filter(|u| !u.is_empty()) != known.unique_name.as_deref())
        }
        Ok(Some(_)) | Err(_) => {
            let unique_name = event.raw("UniqueName").map(|u| Some(u).filter(|u| !u.is_empty()));
            attributes.is_some_and(|a| a != known.attributes)
                || unique_name.is_some_and(|u| u != known.unique_name.as_deref())
        }
    }
}

async fn reader<R: AclReader>(
    state: &MessageGuard<R>,
    who: &str,
    asset: &AssetId,
) -> Result<Result<(), Refusal>, ApiError> {
    let refusal = |reason: String| Refusal { actor: who.to_owned(), asset: Some(asset.clone()), reason };
    let Ok(user) = Identity::try_from(who) else {
        return Ok(Err(refusal("the event names no usable identity".into())));
    };
    if !state.same_tenant(who, asset.as_str()) {
        return Ok(Err(refusal("an asset is only for its own tenant's users".into())));
    }
    tracing::Span::current().record("identity", user.as_str());
    let facts = state.store.check_facts(&user, std::slice::from_ref(asset)).await?;
    if facts.decision(&user, state.clock.now()).can_read() {
        tracing::info!(asset_id = asset.as_str(), "allowed");
        Ok(Ok(()))
    } else {
        Ok(Err(refusal(format!("{user} cannot read asset {asset}"))))
    }
}

/// Whether `who` may act at all: a usable identity, not offboarded (one read; an author of no
/// tenant in a tenant deployment, such as a REST `system` or an SMS number, has no marker).
async fn standing<R: AclReader>(state: &MessageGuard<R>, who: &str) -> Result<Result<(), Refusal>, ApiError> {
    let refusal = |reason: &str| Ok(Err(Refusal { actor: who.to_owned(), asset: None, reason: reason.to_owned() }));
    let Ok(user) = Identity::try_from(who) else { return refusal("the event names no usable identity") };
    if state.store.offboarded(std::slice::from_ref(&user)).await?.first().copied().unwrap_or(true) {
        return refusal("the user is offboarded");
    }
    Ok(Ok(()))
}

/// What the guard knows of the event's conversation: from this instance's cache while it is
/// fresh, or fetched.
async fn conversation<R>(state: &MessageGuard<R>, event: &Event) -> Result<Arc<Known>, ApiError> {
    let sid = event.get("ConversationSid").ok_or_else(|| ApiError::Forbidden("no ConversationSid".into()))?;
    let now = state.clock.now();
    let cached = state.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(sid).cloned();
    if let Some(known) = cached.filter(|k| now.saturating_sub(k.read_at) < CONVERSATION_CACHE_SECONDS) {
        return Ok(known);
    }
    let conversation = state
        .twilio
        .fetch_conversation(sid, Deadline::after(TWILIO_BUDGET))
        .await?
        .ok_or_else(|| ApiError::Forbidden("unknown conversation".into()))?;
    let attributes: Value =
        conversation.attributes.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
    let known = Arc::new(Known {
        read_at: now,
        about: ConversationAttributes::from_value(&attributes),
        attributes,
        unique_name: conversation.unique_name,
    });
    let mut cache = state.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= CONVERSATION_CACHE_CAP {
        cache.clear();
    }
    cache.insert(sid.to_owned(), known.clone());
    Ok(known)
}
