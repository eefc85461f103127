//! `chatgate session`: development session tokens, signed like the identity provider would.

use chatgate::config::{ConfigError, Settings};
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

pub fn run(args: &SessionArgs) -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env();
    let secret = settings.required("JWT_HS256_SECRET")?;
    let token =
        sign(secret, settings.required("JWT_ISSUER")?, settings.required("JWT_AUDIENCE")?, &args.sub, args.ttl)?;
    println!("{token}");
    Ok(())
}

/// An HS256 session for `sub`, valid from now for `ttl` seconds.
pub fn sign(secret: &str, issuer: &str, audience: &str, sub: &str, ttl: u64) -> Result<String, ConfigError> {
    let now = chatgate::clock::Clock::now(&chatgate::clock::SystemClock);
    let claims = json!({"sub": sub, "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl});
    chatgate::auth::install_jwt_crypto();
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(|e| ConfigError::new("JWT_HS256_SECRET", format!("cannot sign a session: {e}")))
}
