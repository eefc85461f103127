//! The `/admin` routes, for the SaaS back end that owns the asset catalogue and the groups:
//! assets (create, replace, delete with all their grants), group memberships, and offboarding a
//! user. Every change is an audit line naming the IAM caller.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::{AclReader, CatalogWriter, Rosters, Upsert};
use chatgate::audit;
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{AssetId, AssetType, ConversationNames, GroupId, Identity};
use chatgate::http::{self, ApiError};
use chatgate::reconcile::Reconciler;
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use lambda_http::http::{Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt as _, Response};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

/// Longest asset name kept, in bytes.
const MAX_NAME_BYTES: usize = 1024;
/// Most time offboarding's Twilio calls may take (the function's timeout is 10 s); a retry
/// finishes what a timeout left.
const OFFBOARDING_BUDGET: Duration = Duration::from_secs(8);

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
    /// Offboarding takes users out of their Twilio conversations.
    pub rule: Reconciler<C>,
}

impl<C> AdminState<C> {
    pub fn new(auth: AdminAuth, store: Arc<C>, twilio: ConversationsClient, names: ConversationNames) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let rule = Reconciler::new(store.clone(), twilio, names, clock.clone());
        Self { auth, store, clock, rule }
    }

    /// The routes read Twilio's REST settings alone ([`RestConfig`], for offboarding); the table
    /// and Twilio's secrets are [`chatgate::lambda::table_and_secrets`]'s.
    pub fn from_config(
        auth: AdminAuth,
        config: RestConfig,
        secrets: &TwilioSecrets,
        store: Arc<C>,
    ) -> Result<Self, ConfigError> {
        Ok(Self::new(auth, store, ConversationsClient::from_config(&config, secrets)?, secrets.conversation_names()?))
    }

    pub fn from_settings(
        auth: AdminAuth,
        store: Arc<C>,
        settings: &Settings,
        secrets: &TwilioSecrets,
    ) -> Result<Self, ConfigError> {
        Self::from_config(auth, RestConfig::from_settings(settings)?, secrets, store)
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

pub async fn handle<C: AclReader + CatalogWriter + Rosters>(state: &AdminState<C>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("admin", caller = tracing::field::Empty);
    http::respond(None, req, |req| route(state, req)).instrument(span).await
}

async fn route<C: AclReader + CatalogWriter + Rosters>(
    state: &AdminState<C>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let actor = authorize(&state.auth, &req)?;
    let segments = http::path_segments(&req)?;
    if let Some([asset]) = http::match_path(&segments, &["admin", "assets", "{}"]).as_deref() {
        let asset = AssetId::try_from(*asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        return match *req.method() {
            Method::PUT => put_asset(state, asset, &actor, &req).await,
            Method::DELETE => {
                let removed = state.store.delete_asset(&asset).await?;
                audit::record(&audit::Entry {
                    event: "asset.deleted",
                    actor: &actor,
                    asset: Some(asset.as_str()),
                    detail: Some(&format!("{removed} grant(s) removed")),
                    ..audit::Entry::default()
                });
                Ok(http::empty_response(StatusCode::NO_CONTENT))
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
    }
    if let Some([user]) = http::match_path(&segments, &["admin", "users", "{}"]).as_deref() {
        let user = Identity::try_from(*user).map_err(|e| ApiError::BadRequest(format!("user id: {e}")))?;
        match *req.method() {
            Method::DELETE => {
                let deadline = chatgate::lambda::request_deadline(&req, OFFBOARDING_BUDGET);
                let done = state.rule.offboard(&user, &actor, deadline).await?;
                tracing::info!(groups = done.groups_left, conversations = done.removals.len(), "user offboarded");
            }
            Method::PUT => state.rule.lift_offboarding(&user, &actor).await?,
            _ => return Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        }
        return Ok(http::empty_response(StatusCode::NO_CONTENT));
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
        let event = match *req.method() {
            Method::PUT => {
                state.store.add_member(&group, &user).await?;
                "member.added"
            }
            Method::DELETE => {
                state.store.remove_member(&group, &user).await?;
                "member.removed"
            }
            _ => return Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
        audit::record(&audit::Entry {
            event,
            actor: &actor,
            principal: Some(&format!("user:{user}")),
            detail: Some(&format!("group:{group}")),
            ..audit::Entry::default()
        });
        return Ok(http::empty_response(StatusCode::NO_CONTENT));
    }
    Err(ApiError::NotFound("no such route".into()))
}

/// The caller, as audit lines name it: the IAM principal's ARN, or the local server's key.
fn authorize(auth: &AdminAuth, req: &Request) -> Result<String, ApiError> {
    match auth {
        AdminAuth::Iam => {
            let caller = match req.request_context_ref() {
                Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()),
                _ => None,
            };
            let caller =
                caller.ok_or_else(|| ApiError::Forbidden("the admin routes take IAM-signed requests".into()))?;
            let arn = caller.user_arn.clone().unwrap_or_else(|| "unknown IAM principal".into());
            tracing::Span::current().record("caller", arn.as_str());
            Ok(arn)
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
            // In constant time: the key's MAC under a key of this moment, checked against the given one.
            let mac = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
                .map_err(|_| ApiError::internal(std::io::Error::other("no randomness")))?;
            let expected = ring::hmac::sign(&mac, key.expose_secret().as_bytes());
            ring::hmac::verify(&mac, given.trim().as_bytes(), expected.as_ref())
                .map_err(|_| ApiError::Unauthorized("wrong admin key".into()))?;
            tracing::Span::current().record("caller", "dev-admin-key");
            Ok("dev-admin-key".into())
        }
    }
}

fn parse_group(raw: &str) -> Result<GroupId, ApiError> {
    GroupId::try_from(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

async fn put_asset<C: CatalogWriter>(
    state: &AdminState<C>,
    asset: AssetId,
    actor: &str,
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
    let detail = format!("owner {owner}, {}", if upsert == Upsert::Created { "created" } else { "replaced" });
    audit::record(&audit::Entry {
        event: "asset.put",
        actor,
        asset: Some(asset.as_str()),
        detail: Some(&detail),
        ..audit::Entry::default()
    });
    let status = if upsert == Upsert::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(http::json_response(status, &AssetView { asset_id: &asset, owner: &owner, kind, name: &body.name }))
}
