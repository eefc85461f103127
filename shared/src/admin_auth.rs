//! Who may call the `/admin` routes: in AWS, a principal API Gateway's IAM authorizer signed in
//! (the SaaS back end); in the local server only, a bearer admin key. The caller is named in
//! every audit line the routes write. In a tenant deployment, which tenant's catalogue a path
//! names ([`scope`]).

use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt as _};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Tenant, TenantId};
use crate::http::ApiError;

/// How the admin routes' callers are recognised.
#[derive(Debug)]
pub enum AdminAuth {
    /// In AWS: API Gateway's IAM authorizer signed the caller in; the handler checks that it did.
    Iam,
    /// The local server only: `Authorization: Bearer <admin key>`.
    DevKey(SecretString),
}

impl AdminAuth {
    /// The caller, as audit lines name it: the IAM principal's ARN, or the local server's key.
    pub fn caller(&self, req: &Request) -> Result<String, ApiError> {
        match self {
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
}

/// Whose catalogue a path names, and the path as the routes below match it: in a tenant
/// deployment `/admin/tenants/{tenant_id}/...` (the tenant's, `/admin/...` after it), otherwise
/// `/admin/...` itself. Any other shape is no route (`404`).
pub fn scope(tenants: bool, mut segments: Vec<String>) -> Result<(Tenant, Vec<String>), ApiError> {
    if !tenants {
        return Ok((Tenant::Single, segments));
    }
    let prefixed = segments.len() > 3 && segments[0] == "admin" && segments[1] == "tenants";
    if !prefixed {
        return Err(ApiError::NotFound(
            "no such route: a tenant deployment's admin routes are under /admin/tenants/{tenant_id}/".into(),
        ));
    }
    let tenant =
        TenantId::try_from(segments[2].as_str()).map_err(|e| ApiError::BadRequest(format!("tenant_id: {e}")))?;
    segments.drain(1..3);
    Ok((Tenant::Of(tenant), segments))
}
