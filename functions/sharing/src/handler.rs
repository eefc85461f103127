//! The grants routes of an asset: `GET /assets/{id}/grants` for its owner and writers,
//! `PUT` and `DELETE /assets/{id}/grants/{principal}` for its owner only. Writes are conditional
//! on the asset still having the owner the decision saw.

use std::sync::Arc;

use chatgate::acl::{AclReader, GrantWriter};
use chatgate::audit;
use chatgate::auth::{AuthConfig, SessionVerifier};
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{self, ConfigError, Settings};
use chatgate::domain::{AssetId, AssetRecord, Grant, Identity, Principal, Role};
use chatgate::http::{self, ApiError, CorsPolicy};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument as _;

const NOT_OWNER: &str = "only the owner can share this asset";

#[derive(Debug)]
pub struct SharingState<S> {
    /// Shared, so that the local server's routes verify with one key cache, as behind one authorizer.
    pub sessions: Arc<SessionVerifier>,
    pub cors: Option<CorsPolicy>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<S>,
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
        Ok(Self { sessions, cors: config.cors, clock: Arc::new(SystemClock), store })
    }

    pub fn from_settings(settings: &Settings, store: Arc<S>) -> Result<Self, ConfigError> {
        Self::new(SharingConfig::from_settings(settings)?, store)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    role: String,
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct GrantView {
    principal: String,
    role: Role,
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct GrantsResponse<'a> {
    asset_id: &'a AssetId,
    owner: &'a Identity,
    grants: Vec<GrantView>,
}

#[derive(Debug, Serialize)]
struct PutGrantResponse<'a> {
    asset_id: &'a AssetId,
    #[serde(flatten)]
    grant: GrantView,
}

pub async fn handle<S: AclReader + GrantWriter>(state: &SharingState<S>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("sharing", identity = tracing::field::Empty, asset_id = tracing::field::Empty);
    http::respond(state.cors.as_ref(), req, |req| route(state, req)).instrument(span).await
}

async fn route<S: AclReader + GrantWriter>(state: &SharingState<S>, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::path_segments(&req)?;
    if let Some([asset]) = http::match_path(&segments, &["assets", "{}", "grants"]).as_deref() {
        http::require_method(&req, Method::GET, "GET")?;
        let user = state.sessions.identity(&req).await?;
        return list(state, &user, parse_asset(asset)?).await;
    }
    if let Some([asset, principal]) = http::match_path(&segments, &["assets", "{}", "grants", "{}"]).as_deref() {
        let user = state.sessions.identity(&req).await?;
        let asset = parse_asset(asset)?;
        let principal = Principal::try_from(*principal).map_err(|e| ApiError::BadRequest(format!("principal: {e}")))?;
        return match *req.method() {
            Method::PUT => put(state, &user, asset, principal, &req).await,
            Method::DELETE => delete(state, &user, asset, principal).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
    }
    Err(ApiError::NotFound("no such route".into()))
}

fn parse_asset(raw: &str) -> Result<AssetId, ApiError> {
    let asset = AssetId::try_from(raw).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    tracing::Span::current().record("asset_id", asset.as_str());
    Ok(asset)
}

/// The asset's live grants, for its owner and writers; anyone else (or a missing asset) is 403.
async fn list<S: AclReader>(
    state: &SharingState<S>,
    user: &Identity,
    asset: AssetId,
) -> Result<Response<Body>, ApiError> {
    let now = state.clock.now();
    let facts = state.store.check_facts(user, std::slice::from_ref(&asset)).await?;
    let can_write = facts.decision(user, now).can_write();
    let Some((Some(record), grants)) = facts.assets.first().map(|f| (&f.asset, &f.grants)).filter(|_| can_write) else {
        return Err(ApiError::Forbidden("only the owner or a writer can see this asset's grants".into()));
    };
    let mut grants: Vec<&Grant> = grants.iter().filter(|g| g.is_live(record, now)).collect();
    grants.sort_by_cached_key(|g| g.principal.to_string());
    let grants = grants.into_iter().map(view).collect::<Result<_, _>>()?;
    Ok(http::json_response(StatusCode::OK, &GrantsResponse { asset_id: &asset, owner: &record.owner, grants }))
}

/// The record, when `user` owns it; otherwise 403 (also for a missing asset: no oracle).
async fn owned<S: GrantWriter>(
    state: &SharingState<S>,
    user: &Identity,
    asset: &AssetId,
) -> Result<AssetRecord, ApiError> {
    let record = state.store.asset_record(asset).await?;
    record.filter(|r| &r.owner == user).ok_or_else(|| ApiError::Forbidden(NOT_OWNER.into()))
}

async fn put<S: AclReader + GrantWriter>(
    state: &SharingState<S>,
    user: &Identity,
    asset: AssetId,
    principal: Principal,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: GrantRequest = http::json_body(req)?;
    let role =
        Role::grantable(&body.role).ok_or_else(|| ApiError::BadRequest("role must be `reader` or `writer`".into()))?;
    let now = state.clock.now();
    let expires_at = body.expires_at.as_deref().map(|at| parse_expiry(at, now)).transpose()?;
    let record = owned(state, user, &asset).await?;
    if principal == Principal::User(record.owner.clone()) {
        return Err(ApiError::BadRequest("the owner already has every right on the asset".into()));
    }
    let grant = Grant { principal, role, expires_at, generation: record.generation.clone() };
    state.store.put_grant(&record, &grant, now).await.map_err(ownership_changed)?;
    let view = view(&grant)?;
    let detail = match &view.expires_at {
        Some(at) => format!("{} until {at}", role.as_str()),
        None => role.as_str().to_owned(),
    };
    audit::record(&audit::Entry {
        event: "grant.put",
        actor: user.as_str(),
        asset: Some(asset.as_str()),
        principal: Some(&view.principal),
        detail: Some(&detail),
        ..audit::Entry::default()
    });
    Ok(http::json_response(StatusCode::OK, &PutGrantResponse { asset_id: &asset, grant: view }))
}

async fn delete<S: AclReader + GrantWriter>(
    state: &SharingState<S>,
    user: &Identity,
    asset: AssetId,
    principal: Principal,
) -> Result<Response<Body>, ApiError> {
    let record = owned(state, user, &asset).await?;
    state.store.delete_grant(&record, &principal).await.map_err(ownership_changed)?;
    audit::record(&audit::Entry {
        event: "grant.deleted",
        actor: user.as_str(),
        asset: Some(asset.as_str()),
        principal: Some(&principal.to_string()),
        ..audit::Entry::default()
    });
    Ok(http::empty_response(StatusCode::NO_CONTENT))
}

/// The asset changed owner (or was replaced) between the read and the conditional write.
fn ownership_changed(e: chatgate::acl::StoreError) -> ApiError {
    match e {
        chatgate::acl::StoreError::Conflict => ApiError::Forbidden(NOT_OWNER.into()),
        other => other.into(),
    }
}

fn parse_expiry(value: &str, now: u64) -> Result<u64, ApiError> {
    let at = OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| ApiError::BadRequest("expires_at must be an RFC 3339 time".into()))?;
    u64::try_from(at.unix_timestamp())
        .ok()
        .filter(|&at| at > now)
        .ok_or_else(|| ApiError::BadRequest("expires_at must be in the future".into()))
}

fn view(grant: &Grant) -> Result<GrantView, ApiError> {
    let expires_at = grant
        .expires_at
        .map(|at| {
            OffsetDateTime::from_unix_timestamp(i64::try_from(at).map_err(ApiError::internal)?)
                .map_err(ApiError::internal)?
                .format(&Rfc3339)
                .map_err(ApiError::internal)
        })
        .transpose()?;
    Ok(GrantView { principal: grant.principal.to_string(), role: grant.role, expires_at })
}
