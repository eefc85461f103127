//! `POST /token`: exchanges the verified session for a Twilio Conversations access token.
//! No network call: the key is ready from cold start and minting is a local HMAC.

use std::sync::Arc;

use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{self, ConfigError, MintConfig, Settings, TwilioSecrets};
use chatgate::domain::{Identity, TtlPolicy};
use chatgate::http::{self, ApiError, CorsPolicy};
use chatgate::twilio::{AccessTokenMinter, TokenSigningKey};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument as _;

/// Everything the route needs, built once at cold start.
#[derive(Debug)]
pub struct TokenState {
    /// Shared, so that the local server's routes verify with one key cache, as behind one authorizer.
    pub sessions: Arc<SessionVerifier>,
    pub cors: Option<CorsPolicy>,
    pub clock: Arc<dyn Clock>,
    pub minter: AccessTokenMinter,
    pub ttl: TtlPolicy,
}

/// What the route reads from the environment, parsed once at cold start (Twilio's API key secret
/// is [`TwilioSecrets`]'s).
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// `AUTH_MODE` and the session settings that go with it.
    pub auth: AuthConfig,
    /// `ALLOWED_ORIGINS`.
    pub cors: Option<CorsPolicy>,
    /// The account, API key, service, push credential and lifetimes of the tokens.
    pub mint: MintConfig,
}

impl TokenConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self {
            auth: AuthConfig::from_settings(settings)?,
            cors: config::cors_policy(settings)?,
            mint: MintConfig::from_settings(settings)?,
        })
    }
}

impl TokenState {
    pub async fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let config = TokenConfig::from_settings(settings)?;
        Self::new(config, &TwilioSecrets::load(settings).await?)
    }

    pub fn new(config: TokenConfig, secrets: &TwilioSecrets) -> Result<Self, ConfigError> {
        let (key, mint) = (TokenSigningKey::new(secrets.api_key_secret()?), config.mint);
        Ok(Self {
            sessions: Arc::new(SessionVerifier::new(&config.auth)?),
            cors: config.cors,
            clock: Arc::new(SystemClock),
            minter: AccessTokenMinter::new(
                mint.account_sid,
                mint.api_key_sid,
                key,
                &mint.service_sid,
                mint.push_credential_sid.as_ref(),
            ),
            ttl: mint.ttl,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    #[serde(default, deserialize_with = "http::whole_number")]
    ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize)]
struct TokenResponse<'a> {
    token: &'a str,
    identity: &'a Identity,
    ttl_seconds: u32,
    expires_at: String,
}

/// Handles one request; every expected failure is already a problem+json response.
pub async fn handle(state: &TokenState, req: Request) -> Response<Body> {
    let span = tracing::info_span!("token", identity = tracing::field::Empty);
    http::respond(state.cors.as_ref(), req, |req| issue(state, req)).instrument(span).await
}

async fn issue(state: &TokenState, req: Request) -> Result<Response<Body>, ApiError> {
    http::require_method(&req, Method::POST, "POST")?;
    let identity = state.sessions.identity(&req).await?;
    let body: TokenRequest = http::optional_json_body(&req)?.unwrap_or_default();
    let ttl = state.ttl.ttl(body.ttl_seconds).map_err(|e| ApiError::BadRequest(e.to_string()))?;

    let minted = state.minter.mint(&identity, ttl, state.clock.now());
    let expires_at = OffsetDateTime::from_unix_timestamp(i64::try_from(minted.expires_at).map_err(ApiError::internal)?)
        .map_err(ApiError::internal)?
        .format(&Rfc3339)
        .map_err(ApiError::internal)?;
    tracing::info!(ttl_seconds = ttl.seconds(), "token issued");
    Ok(http::json_response(
        StatusCode::OK,
        &TokenResponse { token: &minted.jwt, identity: &identity, ttl_seconds: ttl.seconds(), expires_at },
    ))
}
