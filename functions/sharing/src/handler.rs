//! The grants routes of an asset: `GET /assets/{id}/grants` for its owner and writers,
//! `PUT` and `DELETE /assets/{id}/grants/{principal}` for its owner only. Writes are conditional
//! on the asset still having the owner the decision saw: an adapter from HTTP to the use cases
//! of [`chatgate::sharing`].

use std::sync::Arc;

use chatgate::acl::{AclReader, GrantWriter};
use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::clock::SystemClock;
use chatgate::config::{self, ConfigError, Settings};
use chatgate::domain::{AssetId, Tenant};
use chatgate::http::{self, ApiError, CorsPolicy};
use chatgate::sharing::{GrantPlan, GrantRequest, Sharing};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument as _;

#[derive(Debug)]
pub struct SharingState<S> {
    /// Shared, so that the local server's routes verify with one key cache, as behind one authorizer.
    pub sessions: Arc<SessionVerifier>,
    pub cors: Option<CorsPolicy>,
    pub sharing: Sharing<S>,
}

/// What the routes read from the environment, parsed once at cold start (the table's settings
/// are the store's: [`chatgate::acl::DynamoStore::from_settings`]).
#[derive(Debug, Clone)]
pub struct SharingConfig {
    /// `AUTH_MODE` and the session settings that go with it.
    pub auth: AuthConfig,
    /// `ALLOWED_ORIGINS`.
    pub cors: Option<CorsPolicy>,
}

impl SharingConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self { auth: AuthConfig::from_settings(settings)?, cors: config::cors_policy(settings)? })
    }
}

impl<S: AclReader + GrantWriter> SharingState<S> {
    pub fn new(config: SharingConfig, store: Arc<S>) -> Result<Self, ConfigError> {
        let sessions = Arc::new(SessionVerifier::new(&config.auth)?);
        Ok(Self { sessions, cors: config.cors, sharing: Sharing::new(store, Arc::new(SystemClock)) })
    }

    pub fn from_settings(settings: &Settings, store: Arc<S>) -> Result<Self, ConfigError> {
        Self::new(SharingConfig::from_settings(settings)?, store)
    }
}

pub async fn handle<S: AclReader + GrantWriter>(state: &SharingState<S>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("sharing", identity = tracing::field::Empty, asset_id = tracing::field::Empty);
    http::respond(state.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<S: AclReader + GrantWriter>(state: &SharingState<S>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if let Some([asset]) = http::match_path(&segments, &["assets", "{}", "grants"]).as_deref() {
        http::require_method(&req, Method::GET, "GET")?;
        let caller = state.sessions.caller(&req).await?;
        let grants = state.sharing.grants(&caller, parse_asset(&caller.tenant, asset)?).await?;
        return Ok(http::json_response(StatusCode::OK, &grants));
    }
    if let Some([asset, principal]) = http::match_path(&segments, &["assets", "{}", "grants", "{}"]).as_deref() {
        let caller = state.sessions.caller(&req).await?;
        let asset = parse_asset(&caller.tenant, asset)?;
        let principal =
            caller.tenant.principal(principal).map_err(|e| ApiError::BadRequest(format!("principal: {e}")))?;
        return match *req.method() {
            Method::PUT => {
                let plan = GrantPlan::try_from(http::json_body::<GrantRequest>(&req)?)?;
                let put = state.sharing.put_grant(&caller, asset, principal, plan).await?;
                Ok(http::json_response(StatusCode::OK, &put))
            }
            Method::DELETE => {
                state.sharing.delete_grant(&caller, &asset, &principal).await?;
                Ok(http::empty_response(StatusCode::NO_CONTENT))
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
    }
    Err(ApiError::NotFound("no such route".into()))
}

fn parse_asset(tenant: &Tenant, raw: &str) -> Result<AssetId, ApiError> {
    let asset = tenant.asset(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::Span::current().record("asset_id", asset.as_str());
    Ok(asset)
}
