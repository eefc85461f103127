//! `POST /conversations` (create-or-join a direct, group, asset or room conversation) and
//! `GET /conversations` (the start-up listing): an adapter from HTTP to the use cases of
//! [`chatgate::conversations`].

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::{BudgetLimits, ConversationsStore};
use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::clock::SystemClock;
use chatgate::config::{self, ConfigError, Settings, TwilioSecrets};
use chatgate::conversations::{Conversations, CreateCommand, IdempotencyKey, ListingQuery, Plan, Requested};
use chatgate::domain::RoleSid;
use chatgate::http::{self, ApiError, CorsPolicy};
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument as _;

/// Most time the Twilio calls of one request may take (the function's timeout is 10 s).
const BUDGET: Duration = Duration::from_secs(8);

#[derive(Debug)]
pub struct ConversationsState<R> {
    /// Shared, so that the local server's routes verify with one key cache, as behind one authorizer.
    pub sessions: Arc<SessionVerifier>,
    pub cors: Option<CorsPolicy>,
    pub conversations: Conversations<R>,
}

/// What the routes read from the environment, parsed once at cold start (the table and Twilio's
/// secrets are [`chatgate::lambda::table_and_secrets`]'s).
#[derive(Debug, Clone)]
pub struct ConversationsConfig {
    /// `AUTH_MODE` and the session settings that go with it.
    pub auth: AuthConfig,
    /// `ALLOWED_ORIGINS`.
    pub cors: Option<CorsPolicy>,
    /// `TWILIO_API_BASE`, `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_API_KEY_SID`.
    pub twilio: RestConfig,
    /// `TWILIO_USER_ROLE_SID`: the role of participants chatgate adds.
    pub user_role: RoleSid,
    /// `TENANT_CLAIM` set: the rule's audit lines name the tenant (the sessions carry it).
    pub tenants: bool,
    /// `USER_NEW_CONVERSATIONS_PER_MINUTE`, `USER_NEW_CONVERSATIONS_PER_DAY`, and in a tenant
    /// deployment `TENANT_NEW_CONVERSATIONS_PER_MINUTE` (0: no limit).
    pub budgets: BudgetLimits,
}

impl ConversationsConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            auth: AuthConfig::from_settings(settings)?,
            cors: config::cors_policy(settings)?,
            twilio: RestConfig::from_settings(settings)?,
            user_role: settings.sid("TWILIO_USER_ROLE_SID")?,
            tenants: config::tenants(settings)?,
            budgets: BudgetLimits {
                per_minute: settings.count("USER_NEW_CONVERSATIONS_PER_MINUTE", BudgetLimits::default().per_minute)?,
                per_day: settings.count("USER_NEW_CONVERSATIONS_PER_DAY", BudgetLimits::default().per_day)?,
                tenant_per_minute: settings
                    .count("TENANT_NEW_CONVERSATIONS_PER_MINUTE", BudgetLimits::default().tenant_per_minute)?,
            },
        })
    }
}

impl<R: ConversationsStore> ConversationsState<R> {
    pub fn new(config: ConversationsConfig, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_config(&config.twilio, secrets)?;
        let conversations =
            Conversations::new(store, twilio, secrets.conversation_names()?, config.user_role, Arc::new(SystemClock))
                .with_budgets(config.budgets);
        Ok(Self {
            sessions: Arc::new(SessionVerifier::new(&config.auth)?),
            cors: config.cors,
            conversations: conversations.with_tenants(config.tenants),
        })
    }

    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        Self::new(ConversationsConfig::from_settings(settings)?, secrets, store)
    }
}

pub async fn handle<R: ConversationsStore>(state: &ConversationsState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!(
        "conversations",
        identity = tracing::field::Empty,
        conversation_sid = tracing::field::Empty
    );
    http::respond(state.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<R: ConversationsStore>(state: &ConversationsState<R>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if http::match_path(&segments, &["conversations"]).is_none() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    let caller = state.sessions.caller(&req).await?;
    let deadline = chatgate::lambda::request_deadline(&req, BUDGET);
    if method == Method::POST {
        let key = req.headers().get("idempotency-key").map(|v| IdempotencyKey::parse(v.as_bytes())).transpose()?;
        let command: CreateCommand = http::json_body(&req)?;
        let plan = Plan::try_from(Requested { caller, command: command.clone() })?;
        let answer = state.conversations.create_or_join_once(plan, &command, key.as_ref(), deadline).await?;
        let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
        Ok(http::json_bytes_response(status, answer.body.into_bytes()))
    } else {
        let query = ListingQuery::parse(req.uri().query().unwrap_or(""))?;
        let listing = state.conversations.list(&caller, &query, deadline).await?;
        tracing::info!(conversations = listing.len(), "conversations listed");
        Ok(http::json_response(StatusCode::OK, &listing))
    }
}
