//! `POST /twilio/events`: Twilio's pre-event webhook. The signature is checked before anything
//! else; then [`chatgate::guard`] judges the event, and every refusal is an audit line. Any
//! failure to decide refuses (fails closed): Twilio rejects the event on any non-2xx answer.

use std::sync::Arc;

use chatgate::acl::AclReader;
use chatgate::audit;
use chatgate::clock::SystemClock;
use chatgate::config::{self, ConfigError, Settings, TwilioSecrets};
use chatgate::domain::AssetId;
use chatgate::guard::{Event, MessageGuard};
use chatgate::http::{self, ApiError};
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use chatgate::twilio::webhook::{SIGNATURE_HEADER, WebhookValidator};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument as _;

#[derive(Debug)]
pub struct GuardState<R> {
    pub validator: WebhookValidator,
    pub guard: MessageGuard<R>,
}

/// What the webhook reads from the environment, parsed once at cold start (the table and Twilio's
/// secrets are [`chatgate::lambda::table_and_secrets`]'s).
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// `TWILIO_WEBHOOK_URL`: the URL Twilio signs, as configured on the service.
    pub webhook_url: String,
    /// `TWILIO_API_BASE`, `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_API_KEY_SID`.
    pub twilio: RestConfig,
    /// `TENANT_CLAIM` set: a tenant deployment, whose events never decide across tenants.
    pub tenants: bool,
}

impl GuardConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let webhook_url = settings.required("TWILIO_WEBHOOK_URL")?.to_owned();
        let tenants = config::tenants(settings)?;
        Ok(Self { webhook_url, twilio: RestConfig::from_settings(settings)?, tenants })
    }
}

impl<R: AclReader> GuardState<R> {
    pub fn new(config: GuardConfig, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let validator = WebhookValidator::new(secrets.auth_token()?, &config.webhook_url)?;
        let twilio = ConversationsClient::from_config(&config.twilio, secrets)?;
        let guard = MessageGuard::new(store, twilio, Arc::new(SystemClock));
        Ok(Self { validator, guard: guard.with_tenants(config.tenants) })
    }

    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        Self::new(GuardConfig::from_settings(settings)?, secrets, store)
    }
}

pub async fn handle<R: AclReader>(state: &GuardState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("message_guard", event = tracing::field::Empty, identity = tracing::field::Empty);
    http::respond(None, req, |req| guard(state, req)).instrument(span).await
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
    if POST_EVENTS.contains(&kind) {
        backstop(state, &event).await;
        return Ok(http::json_response(StatusCode::OK, &serde_json::json!({})));
    }
    if let Err(refusal) = state.guard.judge(&event).await? {
        audit::record(&audit::Entry {
            event: "guard.refused",
            tenant: state.guard.tenant_of(&refusal.actor),
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

/// The post-events the guard backs itself up with; Twilio ignores their answer.
const POST_EVENTS: [&str; 2] = ["onMessageAdded", "onMessageUpdated"];

/// A published message the guard would have refused is deleted and audited. Post-events are
/// answered `200` whatever happens (Twilio does not retry them): a failure here is an error line
/// with `backstop_failures`, which template.yaml's BackstopFailuresMetric counts and its alarm
/// reports, and the message stays until someone deletes it. Each deletion is counted too
/// (`backstop_deleted`): every one is a message the pre-event guard did not answer in time.
async fn backstop<R: AclReader>(state: &GuardState<R>, event: &Event) {
    let kind = event.get("EventType").unwrap_or("");
    match state.guard.backstop(event).await {
        Ok(None) => {}
        Ok(Some(refusal)) => {
            audit::record(&audit::Entry {
                event: "guard.deleted",
                tenant: state.guard.tenant_of(&refusal.actor),
                actor: &refusal.actor,
                asset: refusal.asset.as_ref().map(AssetId::as_str),
                conversation: event.get("ConversationSid"),
                detail: Some(&format!("{kind} {}: {}", event.get("MessageSid").unwrap_or(""), refusal.reason)),
                ..audit::Entry::default()
            });
            tracing::info!(backstop_deleted = 1, "a message published past the guard was deleted");
        }
        Err(e) => tracing::error!(
            error = %chatgate::http::ErrorChain(&e),
            conversation_sid = event.get("ConversationSid"),
            message_sid = event.get("MessageSid"),
            backstop_failures = 1,
            "a published message could not be judged or deleted; it stays"
        ),
    }
}
