//! `chatgate session`: development session tokens, signed like the identity provider would.

use chatgate::config::{ConfigError, Settings};
use chatgate::domain::Tenant;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

#[derive(Debug, clap::Args)]
pub struct SessionArgs {
    /// The user the session is for (the `sub` claim).
    #[arg(long)]
    sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
}

/// With `--tenant`, the session carries the tenant in the claim `TENANT_CLAIM` names.
pub fn run(args: &SessionArgs, tenant: &Tenant) -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env();
    let secret = settings.required("JWT_HS256_SECRET")?;
    let organisation = match tenant.id() {
        Some(tenant) => Some((settings.required("TENANT_CLAIM")?, tenant.as_str())),
        None => None,
    };
    let (issuer, audience) = (settings.required("JWT_ISSUER")?, settings.required("JWT_AUDIENCE")?);
    println!("{}", sign(secret, issuer, audience, &args.sub, organisation, args.ttl)?);
    Ok(())
}

/// An HS256 session for `sub` (of the organisation `(claim, tenant)` when given), valid from now
/// for `ttl` seconds.
pub fn sign(
    secret: &str,
    issuer: &str,
    audience: &str,
    sub: &str,
    organisation: Option<(&str, &str)>,
    ttl: u64,
) -> Result<String, ConfigError> {
    let now = chatgate::clock::Clock::now(&chatgate::clock::SystemClock);
    let mut claims = json!({"sub": sub, "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl});
    if let Some((claim, tenant)) = organisation {
        claims[claim] = json!(tenant);
    }
    chatgate::auth::install_jwt_crypto();
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| ConfigError::new("JWT_HS256_SECRET", format!("cannot sign a session: {e}")))
}
