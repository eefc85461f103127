//! The `/admin` routes, for the SaaS back end that owns the asset catalogue and the groups:
//! assets (create, replace, delete with all their grants), group memberships, and offboarding a
//! user: an adapter from HTTP to the use cases of [`chatgate::catalog`]. Every change is an audit
//! line naming the IAM caller.

use std::sync::Arc;
use std::time::Duration;

use chatgate::acl::{AclReader, CatalogWriter, Rosters, Upsert};
use chatgate::admin_auth;
use chatgate::catalog::{AssetEntry, AssetRequest, Catalog};
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::{self, ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{ConversationNames, GroupId, Identity, Tenant};
use chatgate::http::{self, ApiError};
use chatgate::reconcile::Reconciler;
use chatgate::twilio::rest::{ConversationsClient, RestConfig};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument as _;

/// Most time offboarding's Twilio calls may take (the function's timeout is 10 s); a retry
/// finishes what a timeout left.
const OFFBOARDING_BUDGET: Duration = Duration::from_secs(8);

pub use chatgate::admin_auth::AdminAuth;

/// What the routes read from the environment, parsed once at cold start.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `TWILIO_API_BASE`, `TWILIO_CONVERSATIONS_SERVICE_SID`, `TWILIO_API_KEY_SID`: for offboarding.
    pub twilio: RestConfig,
    /// `TENANT_CLAIM` set: the routes are each tenant's, under `/admin/tenants/{tenant_id}/`.
    pub tenants: bool,
}

impl AdminConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        Ok(Self { twilio: RestConfig::from_settings(settings)?, tenants: config::tenants(settings)? })
    }
}

#[derive(Debug)]
pub struct AdminState<C> {
    pub auth: AdminAuth,
    pub catalog: Catalog<C>,
    /// A tenant deployment's routes are under `/admin/tenants/{tenant_id}/...` (docs/tenancy.md).
    pub tenants: bool,
}

impl<C> AdminState<C> {
    pub fn new(auth: AdminAuth, store: Arc<C>, twilio: ConversationsClient, names: ConversationNames) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Offboarding takes users out of their Twilio conversations.
        let rule = Arc::new(Reconciler::new(store.clone(), twilio, names, clock.clone()));
        Self { auth, catalog: Catalog::new(store, clock, rule), tenants: false }
    }

    /// The same routes for a tenant deployment: each under its tenant's prefix, the ids in its
    /// paths and bodies that tenant's, the un-prefixed routes `404`.
    #[must_use]
    pub fn with_tenants(self, tenants: bool) -> Self {
        Self { catalog: self.catalog.with_tenants(tenants), tenants, ..self }
    }

    /// Built from what the routes read of the environment; the table and Twilio's secrets are
    /// [`chatgate::lambda::table_and_secrets`]'s.
    pub fn from_config(
        auth: AdminAuth,
        config: AdminConfig,
        secrets: &TwilioSecrets,
        store: Arc<C>,
    ) -> Result<Self, ConfigError> {
        let twilio = ConversationsClient::from_config(&config.twilio, secrets)?;
        Ok(Self::new(auth, store, twilio, secrets.conversation_names()?).with_tenants(config.tenants))
    }

    pub fn from_settings(
        auth: AdminAuth,
        store: Arc<C>,
        settings: &Settings,
        secrets: &TwilioSecrets,
    ) -> Result<Self, ConfigError> {
        Self::from_config(auth, AdminConfig::from_settings(settings)?, secrets, store)
    }
}

pub async fn handle<C: AclReader + CatalogWriter + Rosters>(state: &AdminState<C>, req: Request) -> Response<Body> {
    let span = tracing::info_span!("admin", caller = tracing::field::Empty);
    http::respond(None, req, |req| route(state, req)).instrument(span).await
}

async fn route<C: AclReader + CatalogWriter + Rosters>(
    state: &AdminState<C>,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let actor = state.auth.caller(&req)?;
    let catalog = &state.catalog;
    let (tenant, segments) = admin_auth::scope(state.tenants, http::path_segments(&req)?)?;
    if let Some([asset]) = http::match_path(&segments, &["admin", "assets", "{}"]).as_deref() {
        let asset = tenant.asset(asset).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        return match *req.method() {
            Method::PUT => {
                let entry = AssetEntry::read(http::json_body::<AssetRequest>(&req)?, &tenant)?;
                let put = catalog.put_asset(asset, entry, &actor).await?;
                let status = if put.upsert == Upsert::Created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(http::json_response(status, &put.asset.relative_to(&tenant)))
            }
            Method::DELETE => {
                catalog.delete_asset(&asset, &actor).await?;
                Ok(http::empty_response(StatusCode::NO_CONTENT))
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        };
    }
    if let Some([user]) = http::match_path(&segments, &["admin", "users", "{}"]).as_deref() {
        let user = parse_user(&tenant, user)?;
        match *req.method() {
            Method::DELETE => {
                let deadline = chatgate::lambda::request_deadline(&req, OFFBOARDING_BUDGET);
                let done = catalog.offboard(&user, &actor, deadline).await?;
                tracing::info!(groups = done.groups_left, conversations = done.removals.len(), "user offboarded");
            }
            Method::PUT => catalog.lift_offboarding(&user, &actor).await?,
            _ => return Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        }
        return Ok(http::empty_response(StatusCode::NO_CONTENT));
    }
    if let Some([group]) = http::match_path(&segments, &["admin", "groups", "{}", "members"]).as_deref() {
        http::require_method(&req, Method::GET, "GET")?;
        let members = catalog.members(parse_group(&tenant, group)?).await?;
        return Ok(http::json_response(StatusCode::OK, &members.relative_to(&tenant)));
    }
    if let Some([group, user]) = http::match_path(&segments, &["admin", "groups", "{}", "members", "{}"]).as_deref() {
        let (group, user) = (parse_group(&tenant, group)?, parse_user(&tenant, user)?);
        match *req.method() {
            Method::PUT => catalog.add_member(&group, &user, &actor).await?,
            Method::DELETE => catalog.remove_member(&group, &user, &actor).await?,
            _ => return Err(ApiError::MethodNotAllowed { allow: "PUT, DELETE" }),
        }
        return Ok(http::empty_response(StatusCode::NO_CONTENT));
    }
    Err(ApiError::NotFound("no such route".into()))
}

fn parse_group(tenant: &Tenant, raw: &str) -> Result<GroupId, ApiError> {
    tenant.group(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn parse_user(tenant: &Tenant, raw: &str) -> Result<Identity, ApiError> {
    tenant.user(raw).map_err(|e| ApiError::BadRequest(format!("user id: {e}")))
}
