//! Session verification: the acting identity comes only from a verified session, either the
//! claims API Gateway's JWT authorizer already checked (`AUTH_MODE=authorizer`) or a bearer token
//! chatgate checks itself (`AUTH_MODE=jwt`).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use lambda_http::http::header;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

mod ring_crypto;

pub use ring_crypto::install as install_jwt_crypto;

use crate::config::{ConfigError, Settings};
pub use crate::domain::Caller;
use crate::domain::{Identity, Tenant, TenantId};
use crate::http::ApiError;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 5;
/// An unknown `kid` refetches the key set at most this often, so forged kids cannot flood the IdP.
const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
const JWKS_TIMEOUT: Duration = Duration::from_secs(2);

/// How sessions are verified (`AUTH_MODE` and friends).
#[derive(Debug, Clone)]
pub enum AuthConfig {
    Authorizer { claim: String, tenant_claim: Option<String> },
    Jwt { claim: String, tenant_claim: Option<String>, issuer: String, audience: String, keys: KeySource },
}

#[derive(Debug, Clone)]
pub enum KeySource {
    Hs256(SecretString),
    Jwks { url: String, algorithm: Algorithm },
}

impl AuthConfig {
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let claim = settings.get("IDENTITY_CLAIM").unwrap_or("sub").to_owned();
        let tenant_claim = crate::config::tenant_claim(settings)?;
        match settings.required("AUTH_MODE")? {
            "authorizer" => Ok(Self::Authorizer { claim, tenant_claim }),
            "jwt" => {
                let keys = match (settings.secret("JWT_HS256_SECRET"), settings.get("JWT_JWKS_URL")) {
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::new(
                            "JWT_JWKS_URL",
                            "set either JWT_HS256_SECRET or JWT_JWKS_URL, not both",
                        ));
                    }
                    (None, None) => return Err(ConfigError::new("JWT_HS256_SECRET", "is not set (nor JWT_JWKS_URL)")),
                    (Some(secret), None) => {
                        if secret.expose_secret().len() < 32 {
                            return Err(ConfigError::new("JWT_HS256_SECRET", "must be at least 32 bytes"));
                        }
                        if settings.get("JWT_ALGORITHM").is_some_and(|a| a != "HS256") {
                            return Err(ConfigError::new("JWT_ALGORITHM", "must be HS256 with JWT_HS256_SECRET"));
                        }
                        KeySource::Hs256(secret)
                    }
                    (None, Some(url)) => {
                        crate::config::check_https_url("JWT_JWKS_URL", url)?;
                        let algorithm = match settings.get("JWT_ALGORITHM").unwrap_or("RS256") {
                            "RS256" => Algorithm::RS256,
                            "ES256" => Algorithm::ES256,
                            other => {
                                return Err(ConfigError::new(
                                    "JWT_ALGORITHM",
                                    format!("`{other}` is not RS256 or ES256"),
                                ));
                            }
                        };
                        KeySource::Jwks { url: url.to_owned(), algorithm }
                    }
                };
                Ok(Self::Jwt {
                    claim,
                    tenant_claim,
                    issuer: settings.required("JWT_ISSUER")?.to_owned(),
                    audience: settings.required("JWT_AUDIENCE")?.to_owned(),
                    keys,
                })
            }
            other => Err(ConfigError::new("AUTH_MODE", format!("`{other}` is not `authorizer` or `jwt`"))),
        }
    }
}

/// The identity provider's key set could not be fetched or read.
#[derive(Debug, thiserror::Error)]
#[error("the identity provider's key set could not be fetched")]
pub struct JwksUnavailable(#[source] pub reqwest::Error);

// What the caller sees when the key set cannot be had: mapped here, beside the error.
#[cfg(feature = "sessions")]
impl From<JwksUnavailable> for ApiError {
    fn from(e: JwksUnavailable) -> Self {
        ApiError::Upstream {
            what: "the identity provider's key set",
            status: lambda_http::http::StatusCode::SERVICE_UNAVAILABLE,
            retry_after: None,
            source: Some(Box::new(e)),
        }
    }
}

/// Verifies the session on a request and yields the acting identity.
#[derive(Debug)]
pub struct SessionVerifier {
    claim: String,
    /// `TENANT_CLAIM`: the claim naming the caller's tenant; `None` for a single-tenant deployment.
    tenant_claim: Option<String>,
    mode: Mode,
}

enum Mode {
    Authorizer,
    Jwt(Box<JwtCheck>),
}

/// A bearer-token check: the pinned validation rules and where the keys come from.
struct JwtCheck {
    validation: Validation,
    keys: Keys,
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authorizer => f.write_str("Authorizer"),
            Self::Jwt(check) => write!(f, "Jwt({:?})", check.validation.algorithms),
        }
    }
}

enum Keys {
    Shared(DecodingKey),
    Jwks(JwksCache),
}

impl SessionVerifier {
    /// Built once at cold start; parses the keys, fetches nothing.
    pub fn new(config: &AuthConfig) -> Result<Self, ConfigError> {
        install_jwt_crypto();
        let (claim, tenant_claim, mode) = match config {
            AuthConfig::Authorizer { claim, tenant_claim } => (claim.clone(), tenant_claim.clone(), Mode::Authorizer),
            AuthConfig::Jwt { claim, tenant_claim, issuer, audience, keys } => {
                let algorithm = match keys {
                    KeySource::Hs256(_) => Algorithm::HS256,
                    KeySource::Jwks { algorithm, .. } => *algorithm,
                };
                // One pinned algorithm: `none`, HS/RS confusion and any other alg are refused.
                let mut validation = Validation::new(algorithm);
                validation.set_issuer(&[issuer]);
                validation.set_audience(&[audience]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
                validation.validate_nbf = true;
                validation.leeway = LEEWAY_SECONDS;
                let keys = match keys {
                    KeySource::Hs256(secret) => {
                        Keys::Shared(DecodingKey::from_secret(secret.expose_secret().as_bytes()))
                    }
                    KeySource::Jwks { url, algorithm } => Keys::Jwks(JwksCache::new(url.clone(), *algorithm)?),
                };
                (claim.clone(), tenant_claim.clone(), Mode::Jwt(Box::new(JwtCheck { validation, keys })))
            }
        };
        Ok(Self { claim, tenant_claim, mode })
    }

    /// The caller's identity: `401` for a missing or invalid session, `400` for an identity
    /// Twilio cannot take. In a tenant deployment, qualified with the caller's tenant.
    pub async fn identity(&self, req: &Request) -> Result<Identity, ApiError> {
        Ok(self.caller(req).await?.identity)
    }

    /// The caller: `401` for a missing or invalid session (a tenant deployment's session without
    /// a valid tenant included), `400` for an identity Twilio cannot take. The identity is also
    /// recorded as `identity` on the current span.
    pub async fn caller(&self, req: &Request) -> Result<Caller, ApiError> {
        let (raw, tenant) = match &self.mode {
            Mode::Authorizer => {
                let tenant = self.tenant_claim.as_deref().map(|claim| authorizer_claim(req, claim)).transpose()?;
                (authorizer_claim(req, &self.claim)?, tenant)
            }
            Mode::Jwt(check) => {
                let token = bearer_token(req)?;
                let claims = verify_jwt(token, &check.validation, &check.keys).await?;
                let tenant = self.tenant_claim.as_deref().map(|claim| string_claim(&claims, claim)).transpose()?;
                (string_claim(&claims, &self.claim)?, tenant)
            }
        };
        let tenant = match (&self.tenant_claim, tenant) {
            (Some(claim), Some(raw)) => Tenant::Of(
                TenantId::try_from(raw.as_str())
                    .map_err(|e| unauthorized(format!("the session's `{claim}` claim is not a tenant id: {e}")))?,
            ),
            _ => Tenant::Single,
        };
        let identity = tenant
            .user(&raw)
            .map_err(|e| ApiError::BadRequest(format!("the session's identity cannot be used with Twilio: {e}")))?;
        tracing::Span::current().record("identity", identity.as_str());
        Ok(Caller { tenant, identity })
    }
}

/// A claim of a verified token, as text: a string, or a number written out.
fn string_claim(claims: &serde_json::Map<String, Value>, claim: &str) -> Result<String, ApiError> {
    match claims.get(claim) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(unauthorized(format!("the session's `{claim}` claim is not a string"))),
        None => Err(unauthorized(format!("the session has no `{claim}` claim"))),
    }
}

fn unauthorized(detail: impl Into<String>) -> ApiError {
    ApiError::Unauthorized(detail.into())
}

fn authorizer_claim(req: &Request, claim: &str) -> Result<String, ApiError> {
    let Some(RequestContext::ApiGatewayV2(context)) = req.request_context_ref() else {
        return Err(unauthorized("no verified session (not an API Gateway HTTP API request)"));
    };
    context
        .authorizer
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .and_then(|jwt| jwt.claims.get(claim).cloned())
        .ok_or_else(|| unauthorized(format!("no verified session carrying a `{claim}` claim")))
}

fn bearer_token(req: &Request) -> Result<&str, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing bearer token"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized("the Authorization header is not a bearer token"));
    }
    Ok(token.trim())
}

async fn verify_jwt(
    token: &str,
    validation: &Validation,
    keys: &Keys,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed session token"))?;
    if header.alg != validation.algorithms[0] {
        return Err(unauthorized("session token signed with an algorithm this deployment does not accept"));
    }
    let data = match keys {
        Keys::Shared(key) => jsonwebtoken::decode(token, key, validation),
        Keys::Jwks(cache) => {
            let key = cache.key(header.kid.as_deref()).await?;
            jsonwebtoken::decode(token, &key, validation)
        }
    };
    data.map(|d| d.claims).map_err(|e| {
        unauthorized(match e.kind() {
            ErrorKind::ExpiredSignature => "session expired".to_owned(),
            ErrorKind::ImmatureSignature => "session not yet valid".to_owned(),
            ErrorKind::InvalidIssuer => "session issued by another issuer".to_owned(),
            ErrorKind::InvalidAudience => "session issued for another audience".to_owned(),
            ErrorKind::InvalidSignature => "session signature does not verify".to_owned(),
            ErrorKind::InvalidAlgorithm => {
                "session token signed with an algorithm this deployment does not accept".to_owned()
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the session has no `{claim}` claim"),
            _ => "malformed session token".to_owned(),
        })
    })
}

/// The identity provider's signing keys, fetched on first use and refetched on an unknown `kid`,
/// kept across invocations of a warm Lambda.
struct JwksCache {
    url: String,
    algorithm: Algorithm,
    http: reqwest::Client,
    keys: RwLock<KeySet>,
    refetch: Mutex<Option<Instant>>,
}

#[derive(Clone, Default)]
struct KeySet {
    by_kid: HashMap<String, DecodingKey>,
    /// Used for a token without `kid` when the set holds exactly one key.
    only: Option<DecodingKey>,
    loaded: bool,
}

impl JwksCache {
    fn new(url: String, algorithm: Algorithm) -> Result<Self, ConfigError> {
        crate::tls::install();
        let http = reqwest::Client::builder()
            .timeout(JWKS_TIMEOUT)
            .build()
            .map_err(|e| ConfigError::new("JWT_JWKS_URL", format!("no HTTP client: {e}")))?;
        Ok(Self { url, algorithm, http, keys: RwLock::default(), refetch: Mutex::new(None) })
    }

    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, ApiError> {
        if let Some(key) = self.keys.read().await.find(kid) {
            return Ok(key);
        }
        {
            let mut last = self.refetch.lock().await;
            // Another request may have refetched while this one waited for the lock.
            if let Some(key) = self.keys.read().await.find(kid) {
                return Ok(key);
            }
            // The first load always happens; refetches for unknown kids are rate-limited.
            let first_load = !self.keys.read().await.loaded;
            if first_load || last.is_none_or(|at| at.elapsed() >= JWKS_REFETCH_COOLDOWN) {
                let fetched = self.fetch().await;
                if !first_load {
                    *last = Some(Instant::now());
                }
                *self.keys.write().await = fetched?;
            }
        }
        self.keys.read().await.find(kid).ok_or_else(|| unauthorized("session signed with an unknown key"))
    }

    async fn fetch(&self) -> Result<KeySet, ApiError> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(JwksUnavailable)?
            .json()
            .await
            .map_err(JwksUnavailable)?;
        let mut keys = KeySet { loaded: true, ..KeySet::default() };
        let usable: Vec<_> = set.keys.iter().filter(|jwk| self.fits(jwk)).collect();
        for jwk in &usable {
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            if usable.len() == 1 {
                keys.only = Some(key.clone());
            }
            if let Some(kid) = &jwk.common.key_id {
                keys.by_kid.insert(kid.clone(), key);
            }
        }
        tracing::info!(keys = keys.by_kid.len(), "fetched the identity provider's key set");
        Ok(keys)
    }

    /// Only signing keys of the pinned algorithm's family are ever used.
    fn fits(&self, jwk: &jsonwebtoken::jwk::Jwk) -> bool {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return false;
        }
        let declared_ok = matches!(
            (jwk.common.key_algorithm, self.algorithm),
            (None, _) | (Some(KeyAlgorithm::RS256), Algorithm::RS256) | (Some(KeyAlgorithm::ES256), Algorithm::ES256)
        );
        let family_ok = match (&jwk.algorithm, self.algorithm) {
            (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
            (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
            _ => false,
        };
        declared_ok && family_ok
    }
}

impl KeySet {
    fn find(&self, kid: Option<&str>) -> Option<DecodingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid).cloned(),
            None => self.only.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_pairs(pairs.iter().copied())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn jwt_mode_needs_exactly_one_key_source() {
        let base = [("AUTH_MODE", "jwt"), ("JWT_ISSUER", "i"), ("JWT_AUDIENCE", "a")];
        let err = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            AuthConfig::from_settings(&settings(&pairs)).expect_err("must fail").name
        };
        assert_eq!(err(&[]), "JWT_HS256_SECRET");
        assert_eq!(err(&[("JWT_HS256_SECRET", SECRET), ("JWT_JWKS_URL", "https://idp/jwks")]), "JWT_JWKS_URL");
        assert_eq!(err(&[("JWT_HS256_SECRET", "short")]), "JWT_HS256_SECRET");
        assert_eq!(err(&[("JWT_JWKS_URL", "ftp://idp")]), "JWT_JWKS_URL");
        assert_eq!(err(&[("JWT_JWKS_URL", "https://idp/jwks"), ("JWT_ALGORITHM", "HS256")]), "JWT_ALGORITHM");
        assert_eq!(err(&[("JWT_HS256_SECRET", SECRET), ("JWT_ALGORITHM", "RS256")]), "JWT_ALGORITHM");
    }

    #[test]
    fn auth_mode_is_required_and_checked() {
        assert_eq!(AuthConfig::from_settings(&settings(&[])).expect_err("unset").name, "AUTH_MODE");
        assert_eq!(AuthConfig::from_settings(&settings(&[("AUTH_MODE", "none")])).expect_err("bad").name, "AUTH_MODE");
        let missing_issuer = settings(&[("AUTH_MODE", "jwt"), ("JWT_HS256_SECRET", SECRET), ("JWT_AUDIENCE", "a")]);
        assert_eq!(AuthConfig::from_settings(&missing_issuer).expect_err("no issuer").name, "JWT_ISSUER");
    }

    #[test]
    fn identity_claim_defaults_to_sub() {
        let config = AuthConfig::from_settings(&settings(&[("AUTH_MODE", "authorizer")])).expect("valid");
        assert!(matches!(config, AuthConfig::Authorizer { claim, tenant_claim: None } if claim == "sub"));
    }

    #[test]
    fn hs256_secret_never_prints() {
        let config = AuthConfig::from_settings(&settings(&[
            ("AUTH_MODE", "jwt"),
            ("JWT_HS256_SECRET", SECRET),
            ("JWT_ISSUER", "i"),
            ("JWT_AUDIENCE", "a"),
        ]))
        .expect("valid");
        assert!(!format!("{config:?}").contains(SECRET));
    }
}
