//! `GET /assets/{asset_id}/access` and `POST /access/check`: the verified user's role on assets,
//! from one strongly consistent round trip to the store and the one access decision.

use std::collections::BTreeSet;
use std::sync::Arc;

use chatgate::acl::{AclReader, MAX_BATCH_ASSETS};
use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{self, ConfigError, Settings};
use chatgate::domain::{AccessAnswer, AssetId, Caller, Tenant};
use chatgate::http::{self, ApiError, CorsPolicy};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

/// Everything the routes need, built once at cold start; `R` is the read-only store port.
#[derive(Debug)]
pub struct AccessState<R> {
    /// Shared, so that the local server's routes verify with one key cache, as behind one authorizer.
    pub sessions: Arc<SessionVerifier>,
    pub cors: Option<CorsPolicy>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<R>,
}

/// What the routes read from the environment, parsed once at cold start (the table's settings
/// are the store's: [`chatgate::acl::DynamoStore::from_settings`]).
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// `AUTH_MODE` and the session settings that go with it.
    pub auth: AuthConfig,
    /// `ALLOWED_ORIGINS`.
    pub cors: Option<CorsPolicy>,
}

impl AccessConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self { auth: AuthConfig::from_settings(settings)?, cors: config::cors_policy(settings)? })
    }
}

impl<R: AclReader> AccessState<R> {
    pub fn new(config: AccessConfig, store: Arc<R>) -> Result<Self, ConfigError> {
        let sessions = Arc::new(SessionVerifier::new(&config.auth)?);
        Ok(Self { sessions, cors: config.cors, clock: Arc::new(SystemClock), store })
    }

    pub fn from_settings(settings: &Settings, store: Arc<R>) -> Result<Self, ConfigError> {
        Self::new(AccessConfig::from_settings(settings)?, store)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    asset_ids: Vec<String>,
}

#[derive(Debug, Serialize)]
struct CheckResponse {
    results: Vec<AccessAnswer>,
}

pub async fn handle<R: AclReader>(state: &AccessState<R>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("access", identity = tracing::field::Empty, asset_id = tracing::field::Empty);
    http::respond(state.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<R: AclReader>(state: &AccessState<R>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if let Some([asset]) = http::match_path(&segments, &["assets", "{}", "access"]).as_deref() {
        http::require_method(&req, Method::GET, "GET")?;
        let caller = state.sessions.caller(&req).await?;
        let asset = parse_asset(&caller.tenant, asset)?;
        tracing::Span::current().record("asset_id", asset.as_str());
        let mut results = check(state, &caller, vec![asset]).await?;
        return Ok(http::json_response(StatusCode::OK, &results.remove(0)));
    }
    if http::match_path(&segments, &["access", "check"]).is_some() {
        http::require_method(&req, Method::POST, "POST")?;
        let caller = state.sessions.caller(&req).await?;
        let body: CheckRequest = http::json_body(&req)?;
        let assets = parse_batch(&caller.tenant, body.asset_ids)?;
        let results = check(state, &caller, assets).await?;
        return Ok(http::json_response(StatusCode::OK, &CheckResponse { results }));
    }
    Err(ApiError::NotFound("no such route".into()))
}

fn parse_asset(tenant: &Tenant, raw: &str) -> Result<AssetId, ApiError> {
    tenant.asset(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// 1–100 distinct, valid ids, in request order.
fn parse_batch(tenant: &Tenant, raw: Vec<String>) -> Result<Vec<AssetId>, ApiError> {
    if raw.is_empty() || raw.len() > MAX_BATCH_ASSETS {
        return Err(ApiError::BadRequest(format!("asset_ids must hold 1 to {MAX_BATCH_ASSETS} ids")));
    }
    let mut seen = BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let asset = tenant.asset(&id).map_err(|e| ApiError::BadRequest(format!("asset_ids[{i}]: {e}")))?;
            if !seen.insert(asset.clone()) {
                return Err(ApiError::BadRequest(format!("asset_ids[{i}] repeats `{id}`")));
            }
            Ok(asset)
        })
        .collect()
}

/// The decision for each asset, from one round trip of facts, shown as the caller names things.
/// A missing asset is `role: none`, never 404, so the route is no oracle for which assets exist.
async fn check<R: AclReader>(
    state: &AccessState<R>,
    caller: &Caller,
    assets: Vec<AssetId>,
) -> Result<Vec<AccessAnswer>, ApiError> {
    let user = &caller.identity;
    let decisions = state.store.check_facts(user, &assets).await?.decisions(user, state.clock.now());
    let answers: Vec<AccessAnswer> =
        assets.iter().zip(&decisions).map(|(asset, d)| AccessAnswer::new(asset, user, d, &caller.tenant)).collect();
    tracing::info!(assets = answers.len(), readable = answers.iter().filter(|a| a.can_read).count(), "access checked");
    Ok(answers)
}
