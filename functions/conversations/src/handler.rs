//! `POST /conversations` (create-or-join a direct, group, asset or room conversation) and
//! `GET /conversations` (the start-up listing): an adapter from HTTP to the use cases of
//! [`chatgate::conversations`].

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::AclReader;
use chatgate::auth::SessionRoutes;
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::conversations::{Conversations, CreateCommand, ListingQuery, Plan, Requested};
use chatgate::http::{self, ApiError};
use chatgate::twilio::rest::ConversationsClient;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument as _;

/// Most time the Twilio calls of one request may take (the function's timeout is 10 s).
const BUDGET: Duration = Duration::from_secs(8);

#[derive(Debug)]
pub struct ConversationsState<R> {
    pub session: SessionRoutes,
    pub conversations: Conversations<R>,
}

impl<R: AclReader> ConversationsState<R> {
    pub fn from_settings(settings: &Settings, secrets: &TwilioSecrets, store: Arc<R>) -> Result<Self, ConfigError> {
        let session = SessionRoutes::from_settings(settings)?;
        let twilio = ConversationsClient::from_settings(settings, secrets)?;
        let conversations =
            Conversations::new(store, twilio, settings.sid("TWILIO_USER_ROLE_SID")?, session.clock.clone());
        Ok(Self { session, conversations })
    }
}

pub async fn handle<R: AclReader>(state: &ConversationsState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!(
        "conversations",
        identity = tracing::field::Empty,
        conversation_sid = tracing::field::Empty
    );
    http::respond(state.session.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<R: AclReader>(state: &ConversationsState<R>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if http::match_path(&segments, &["conversations"]).is_none() {
        return Err(ApiError::NotFound("no such route".into()));
    }
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::MethodNotAllowed { allow: "GET, POST" });
    }
    let caller = state.session.identity(&req).await?;
    let deadline = chatgate::lambda::request_deadline(&req, BUDGET);
    if method == Method::POST {
        let command: CreateCommand = http::json_body(&req)?;
        let plan = Plan::try_from(Requested { caller, command })?;
        let joined = state.conversations.create_or_join(plan, deadline).await?;
        let status = if joined.created { StatusCode::CREATED } else { StatusCode::OK };
        Ok(http::json_response(status, &joined))
    } else {
        let query = ListingQuery::parse(req.uri().query().unwrap_or(""))?;
        let listing = state.conversations.list(&caller, &query, deadline).await?;
        tracing::info!(conversations = listing.len(), "conversations listed");
        Ok(http::json_response(StatusCode::OK, &listing))
    }
}
