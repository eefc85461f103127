//! `POST /token`: exchanges the verified session for a Twilio Conversations access token.
//! No network call: the key is ready from cold start and minting is a local HMAC.

use chatgate::auth::{AuthConfig, SessionRoutes, SessionVerifier};
use chatgate::config::{self, ConfigError, Settings, TokenConfig, TwilioSecrets};
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
    pub session: SessionRoutes,
    pub minter: AccessTokenMinter,
    pub ttl: TtlPolicy,
}

impl TokenState {
    pub async fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let auth = AuthConfig::from_settings(settings)?;
        let token = TokenConfig::from_settings(settings)?;
        let cors = config::cors_policy(settings)?;
        let secrets = TwilioSecrets::load(settings).await?;
        Self::new(&auth, token, &secrets, cors)
    }

    pub fn new(
        auth: &AuthConfig,
        token: TokenConfig,
        secrets: &TwilioSecrets,
        cors: Option<CorsPolicy>,
    ) -> Result<Self, ConfigError> {
        let key = TokenSigningKey::new(secrets.api_key_secret()?);
        Ok(Self {
            session: SessionRoutes::new(SessionVerifier::new(auth)?, cors),
            minter: AccessTokenMinter::new(
                token.account_sid,
                token.api_key_sid,
                key,
                &token.service_sid,
                token.push_credential_sid.as_ref(),
            ),
            ttl: token.ttl,
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
    http::respond(state.session.cors.as_ref(), req, |req| issue(state, req)).instrument(span).await
}

async fn issue(state: &TokenState, req: Request) -> Result<Response<Body>, ApiError> {
    http::require_method(&req, Method::POST, "POST")?;
    let identity = state.session.identity(&req).await?;
    let body: TokenRequest = http::optional_json_body(&req)?.unwrap_or_default();
    let ttl = state.ttl.ttl(body.ttl_seconds).map_err(|e| ApiError::BadRequest(e.to_string()))?;

    let minted = state.minter.mint(&identity, ttl, state.session.clock.now());
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
