//! The `/admin` routes, for the SaaS back end that owns the asset catalogue and the groups:
//! assets (create, replace, delete with all their grants) and group memberships.

use std::sync::Arc;

use chatgate::acl::{AclReader, CatalogWriter, Upsert};
use chatgate::clock::{Clock, SystemClock};
use chatgate::domain::{AssetId, AssetType, GroupId, Identity};
use chatgate::http::{self, ApiError};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

/// Longest asset name kept, in bytes.
const MAX_NAME_BYTES: usize = 1024;

/// Who may call the admin routes.
#[derive(Debug)]
pub enum AdminAuth {
    /// In AWS: API Gateway's IAM authorizer signed the caller in; the handler checks that it did.
    Iam,
    /// The local server only: `Authorization: Bearer <admin key>`.
    DevKey(SecretString),
}

#[derive(Debug)]
pub struct AdminState<C> {
    pub auth: AdminAuth,
    pub store: Arc<C>,
    pub clock: Arc<dyn Clock>,
}

impl<C> AdminState<C> {
    pub fn new(auth: AdminAuth, store: Arc<C>) -> Self {
        Self { auth, store, clock: Arc::new(SystemClock) }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssetRequest {
    owner: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Serialize)]
struct AssetView<'a> {
    asset_id: &'a AssetId,
    owner: &'a Identity,
    #[serde(rename = "type")]
    kind: AssetType,
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct MembersView<'a> {
    group_id: &'a GroupId,
    members: Vec<Identity>,
}

pub async fn handle<C: AclReader + CatalogWriter>(state: &AdminState<C>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("admin", caller = tracing::field::Empty);
    http::respond(None, req, |req| route(state, req)).instrument(span).await
}

async fn route<C: AclReader + CatalogWriter>(state: &AdminState<C>, req: Request) -> Result<Response<Body>, ApiError> {
    authorize(&state.auth, &req)?;
    let segments = http::path_segments(&req)?;
    if let Some([asset]) = http::match_path(&segments, &["admin", "assets", "{}"]).as_deref() {
        let asset = AssetId::try_from(*asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        return match *req.method() {
            Method::PUT => put_asset(state, asset, &req).await,
            Method::DELETE => {
                let removed = state.store.delete_asset(&asset).await?;
                tracing::info!(asset_id = asset.as_str(), grants_removed = removed, "asset deleted");
                Ok(http::empty_response(StatusCode::NO_CONTENT))
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
    }
    if let Some([group]) = http::match_path(&segments, &["admin", "groups", "{}", "members"]).as_deref() {
        http::require_method(&req, Method::GET, "GET")?;
        let group = parse_group(group)?;
        let members = state.store.group_members(&group).await?;
        return Ok(http::json_response(StatusCode::OK, &MembersView { group_id: &group, members }));
    }
    if let Some([group, user]) = http::match_path(&segments, &["admin", "groups", "{}", "members", "{}"]).as_deref() {
        let group = parse_group(group)?;
        let user = Identity::try_from(*user).map_err(|e| ApiError::BadRequest(format!("user id: {e}")))?;
        match *req.method() {
            Method::PUT => state.store.add_member(&group, &user).await?,
            Method::DELETE => state.store.remove_member(&group, &user).await?,
            _ => return Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        }
        tracing::info!(group_id = group.as_str(), user_id = user.as_str(), method = %req.method(), "membership changed");
        return Ok(http::empty_response(StatusCode::NO_CONTENT));
    }
    Err(ApiError::NotFound("no such route".into()))
}

fn authorize(auth: &AdminAuth, req: &Request) -> Result<(), ApiError> {
    match auth {
        AdminAuth::Iam => {
            let caller = match req.request_context_ref() {
                Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()),
                _ => None,
            };
            let caller =
                caller.ok_or_else(|| ApiError::Forbidden("the admin routes take IAM-signed requests".into()))?;
            tracing::Span::current().record("caller", caller.user_arn.as_deref().unwrap_or("unknown"));
            Ok(())
        }
        AdminAuth::DevKey(key) => {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| {
                    ApiError::Unauthorized("the admin routes take `Authorization: Bearer <admin key>`".into())
                })?;
            aws_lc_rs::constant_time::verify_slices_are_equal(given.trim().as_bytes(), key.expose_secret().as_bytes())
                .map_err(|_| ApiError::Unauthorized("wrong admin key".into()))?;
            tracing::Span::current().record("caller", "dev-admin-key");
            Ok(())
        }
    }
}

fn parse_group(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::try_from(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn put_asset<C: CatalogWriter>(
    state: &AdminState<C>,
    asset: AssetId,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: AssetRequest = http::json_body(req)?;
    let owner = Identity::try_from(body.owner).map_err(|e| ApiError::BadRequest(format!("owner: {e}")))?;
    let kind = AssetType::parse(&body.kind)
        .ok_or_else(|| ApiError::BadRequest("type must be document, image or video".into()))?;
    if body.name.len() > MAX_NAME_BYTES || body.name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "name must be at most {MAX_NAME_BYTES} bytes without control characters"
        )));
    }
    let upsert = state.store.put_asset(&asset, &owner, kind, &body.name, state.clock.now()).await?;
    tracing::info!(
        asset_id = asset.as_str(),
        owner = owner.as_str(),
        created = upsert == Upsert::Created,
        "asset written"
    );
    let status = if upsert == Upsert::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(http::json_response(status, &AssetView { asset_id: &asset, owner: &owner, kind, name: &body.name }))
}
