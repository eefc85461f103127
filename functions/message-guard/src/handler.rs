//! `POST /twilio/events`: Twilio's pre-event webhook. The signature is checked before anything
//! else; then a message (added or edited) that references an asset is allowed only if its author
//! can read it, a participant joins an asset conversation only if they can read the asset, and a
//! client cannot retarget a conversation chatgate created. Any failure to decide refuses (fails
//! closed): Twilio rejects the event on any non-2xx answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgate::acl::AclReader;
use chatgate::audit;
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{AssetId, AssetReference, AttributesError, ConversationAttributes, Identity};
use chatgate::http::{self, ApiError};
use chatgate::twilio::rest::{ConversationsClient, Deadline};
use chatgate::twilio::webhook::{SIGNATURE_HEADER, WebhookValidator};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use tracing::Instrument as _;

/// Twilio waits 5 s for the answer; the conversation lookup must leave room for the decision.
const TWILIO_BUDGET: Duration = Duration::from_millis(2500);
/// Conversations this warm instance already knows. What the guard reads of one (what it is
/// about, its attributes and unique name) never changes once chatgate created it: clients'
/// changes are refused here, and chatgate itself never changes them.
const CONVERSATION_CACHE_CAP: usize = 10_000;

pub struct GuardState<R> {
    pub validator: WebhookValidator,
    pub store: Arc<R>,
    pub twilio: ConversationsClient,
    pub clock: Arc<dyn Clock>,
    conversations: Mutex<HashMap<String, Arc<Known>>>,
}

/// What the guard knows of a conversation.
#[derive(Debug)]
struct Known {
    /// chatgate's attributes; `Ok(None)` for a conversation chatgate did not create.
    about: Result<Option<ConversationAttributes>, AttributesError>,
    attributes: Value,
    unique_name: Option<String>,
}

impl<R> std::fmt::Debug for GuardState<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardState")
            .field("validator", &self.validator)
            .field("twilio", &self.twilio)
            .finish_non_exhaustive()
    }
}

impl<R: AclReader> GuardState<R> {
    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let validator = WebhookValidator::new(secrets.auth_token()?, settings.required("TWILIO_WEBHOOK_URL")?)?;
        let twilio = ConversationsClient::from_settings(settings, secrets)?;
        Ok(Self { validator, store, twilio, clock: Arc::new(SystemClock), conversations: Mutex::default() })
    }
}

pub async fn handle<R: AclReader>(state: &GuardState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("message_guard", event = tracing::field::Empty, identity = tracing::field::Empty);
    http::respond(None, req, |req| guard(state, req)).instrument(span).await
}

/// The event's parameters, as Twilio signed them.
struct Event(Vec<(String, String)>);

impl Event {
    /// A parameter's value, when present and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.raw(name).filter(|v| !v.is_empty())
    }

    /// A parameter's value as sent, empty included.
    fn raw(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Who acts: the access token's identity (`ClientIdentity`); `Author` only when it is absent
    /// (an action through the REST API, by the back end).
    fn actor(&self) -> &str {
        self.get("ClientIdentity").or_else(|| self.get("Author")).unwrap_or("")
    }
}

/// Why an event is refused, for the caller and the audit line.
struct Refusal {
    actor: String,
    asset: Option<AssetId>,
    reason: String,
}

async fn guard<R: AclReader>(state: &GuardState<R>, req: Request) -> Result<Response<Body>, ApiError> {
    http::require_method(&req, Method::POST, "POST")?;
    let forbidden = || ApiError::Forbidden("invalid Twilio signature".into());
    let signature = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).ok_or_else(forbidden)?;
    // lambda_http has already decoded a base64 body; the form is parsed only to be verified.
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(req.body().as_ref()).map_err(|_| forbidden())?;
    if !state.validator.verify(&params, signature) {
        return Err(forbidden());
    }
    let event = Event(params);
    let kind = event.get("EventType").unwrap_or("");
    tracing::Span::current().record("event", kind);
    if let Err(refusal) = decide(state, kind, &event).await? {
        audit::record(&audit::Entry {
            event: "guard.refused",
            actor: &refusal.actor,
            asset: refusal.asset.as_ref().map(AssetId::as_str),
            conversation: event.get("ConversationSid"),
            detail: Some(&format!("{kind}: {}", refusal.reason)),
            ..audit::Entry::default()
        });
        return Err(ApiError::Forbidden(refusal.reason));
    }
    Ok(http::json_response(StatusCode::OK, &serde_json::json!({})))
}

/// `Ok(Err(_))` refuses the event; `Err(_)` is a failure to decide, which refuses it too.
async fn decide<R: AclReader>(
    state: &GuardState<R>,
    kind: &str,
    event: &Event,
) -> Result<Result<(), Refusal>, ApiError> {
    let refuse =
        |asset: Option<AssetId>, reason: String| Ok(Err(Refusal { actor: event.actor().to_owned(), asset, reason }));
    match kind {
        // An edit is a new chance to reference an asset: guarded exactly like a new message.
        "onMessageAdd" | "onMessageUpdate" => match AssetReference::from_attributes(event.get("Attributes")) {
            Err(e) => refuse(None, format!("malformed asset reference: {e}")),
            Ok(None) => Ok(Ok(())),
            Ok(Some(reference)) => reader(state, event.actor(), &reference.asset).await,
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
                Ok(_) => Ok(Ok(())),
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
        Ok(None) => attributes.is_some_and(|a| !matches!(ConversationAttributes::from_value(&a), Ok(None))),
        Ok(Some(_)) | Err(_) => {
            let unique_name = event.raw("UniqueName").map(|u| Some(u).filter(|u| !u.is_empty()));
            attributes.is_some_and(|a| a != known.attributes)
                || unique_name.is_some_and(|u| u != known.unique_name.as_deref())
        }
    }
}

async fn reader<R: AclReader>(
    state: &GuardState<R>,
    who: &str,
    asset: &AssetId,
) -> Result<Result<(), Refusal>, ApiError> {
    let refusal = |reason: String| Refusal { actor: who.to_owned(), asset: Some(asset.clone()), reason };
    let Ok(user) = Identity::try_from(who) else {
        return Ok(Err(refusal("the event names no usable identity".into())));
    };
    tracing::Span::current().record("identity", user.as_str());
    let facts = state.store.check_facts(&user, std::slice::from_ref(asset)).await?;
    if facts.decisions(&user, state.clock.now()).iter().all(|d| d.can_read()) {
        tracing::info!(asset_id = asset.as_str(), "allowed");
        Ok(Ok(()))
    } else {
        Ok(Err(refusal(format!("{user} cannot read asset {asset}"))))
    }
}

/// What the guard knows of the event's conversation: from this instance's cache, or fetched once.
async fn conversation<R>(state: &GuardState<R>, event: &Event) -> Result<Arc<Known>, ApiError> {
    let sid = event.get("ConversationSid").ok_or_else(|| ApiError::Forbidden("no ConversationSid".into()))?;
    let cached = state.conversations.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(sid).cloned();
    if let Some(known) = cached {
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
