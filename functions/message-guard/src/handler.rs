//! `POST /twilio/events`: Twilio's pre-event webhook. The signature is checked before anything
//! else; then a message that references an asset is allowed only if its author can read it, and a
//! participant joins an asset conversation only if they can read the asset. Any failure to decide
//! refuses (fails closed): Twilio rejects the event on any non-2xx answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatgate::acl::AclReader;
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{AssetId, AssetReference, Identity, decide};
use chatgate::http::{self, ApiError};
use chatgate::twilio::rest::{ConversationsClient, Deadline};
use chatgate::twilio::webhook::{SIGNATURE_HEADER, WebhookValidator};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use tracing::Instrument as _;

/// Twilio waits 5 s for the answer; the conversation lookup must leave room for the decision.
const TWILIO_BUDGET: Duration = Duration::from_millis(2500);
/// Conversations whose kind this warm instance already knows (it never changes after creation).
const CONVERSATION_CACHE_CAP: usize = 10_000;

pub struct GuardState<R> {
    pub validator: WebhookValidator,
    pub store: Arc<R>,
    pub twilio: ConversationsClient,
    pub clock: Arc<dyn Clock>,
    /// Conversation SID → the asset it is about, if any.
    conversation_assets: Mutex<HashMap<String, Option<AssetId>>>,
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
        Ok(Self { validator, store, twilio, clock: Arc::new(SystemClock), conversation_assets: Mutex::default() })
    }
}

pub async fn handle<R: AclReader>(state: &GuardState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("message_guard", event = tracing::field::Empty, identity = tracing::field::Empty);
    http::respond(None, req, |req| guard(state, req)).instrument(span).await
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
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

    let event = param(&params, "EventType").unwrap_or("");
    tracing::Span::current().record("event", event);
    match event {
        "onMessageAdd" => {
            let reference = AssetReference::from_attributes(param(&params, "Attributes"))
                .map_err(|e| ApiError::Forbidden(format!("malformed asset reference: {e}")))?;
            if let Some(reference) = reference {
                // ClientIdentity is the access token's identity; Author only when it is absent
                // (a message sent through the REST API by the back end).
                let author = param(&params, "ClientIdentity").or_else(|| param(&params, "Author")).unwrap_or("");
                require_reader(state, author, &reference.asset).await?;
            }
        }
        "onParticipantAdd" => {
            let conversation =
                param(&params, "ConversationSid").ok_or_else(|| ApiError::Forbidden("no ConversationSid".into()))?;
            if let Some(asset) = conversation_asset(state, conversation).await? {
                require_reader(state, param(&params, "Identity").unwrap_or(""), &asset).await?;
            }
        }
        _ => {}
    }
    Ok(http::json_response(StatusCode::OK, &serde_json::json!({})))
}

async fn require_reader<R: AclReader>(state: &GuardState<R>, who: &str, asset: &AssetId) -> Result<(), ApiError> {
    let who = Identity::try_from(who).map_err(|_| ApiError::Forbidden("the event names no usable identity".into()))?;
    tracing::Span::current().record("identity", who.as_str());
    let facts = state.store.check_facts(&who, std::slice::from_ref(asset)).await?;
    if decide(&who, &facts.groups, &facts.assets[0], state.clock.now()).can_read() {
        tracing::info!(asset_id = asset.as_str(), "allowed");
        Ok(())
    } else {
        tracing::info!(asset_id = asset.as_str(), "refused");
        Err(ApiError::Forbidden(format!("{who} cannot read asset {asset}")))
    }
}

/// The asset a conversation is about, from the attributes chatgate set when it created it.
async fn conversation_asset<R>(state: &GuardState<R>, sid: &str) -> Result<Option<AssetId>, ApiError> {
    if let Some(known) = state.conversation_assets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(sid) {
        return Ok(known.clone());
    }
    let conversation = state
        .twilio
        .fetch_conversation(sid, Deadline::after(TWILIO_BUDGET))
        .await?
        .ok_or_else(|| ApiError::Forbidden("unknown conversation".into()))?;
    let attributes: Value =
        conversation.attributes.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
    let asset = match (attributes["type"].as_str(), attributes["asset_id"].as_str()) {
        (Some("asset"), Some(id)) => {
            Some(AssetId::try_from(id).map_err(|_| ApiError::Forbidden("malformed conversation attributes".into()))?)
        }
        (Some("asset"), None) => return Err(ApiError::Forbidden("malformed conversation attributes".into())),
        _ => None,
    };
    let mut cache = state.conversation_assets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= CONVERSATION_CACHE_CAP {
        cache.clear();
    }
    cache.insert(sid.to_owned(), asset.clone());
    Ok(asset)
}
