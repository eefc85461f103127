//! Typed configuration, read once at cold start. A missing or malformed setting is a
//! [`ConfigError`] naming it, which stops the start; it never becomes a per-request 500.

use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};

use crate::domain::{
    AccountSid, ApiKeySid, ConversationNames, MIN_NAME_KEY_BYTES, PushCredentialSid, ServiceSid, Sid, SidKind,
    TtlPolicy,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration {name}: {problem}")]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(name: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { name: name.into(), problem: problem.into() }
    }
}

/// The raw settings: the process environment, or a map in tests and the local server.
#[derive(Clone, Default)]
pub struct Settings(HashMap<String, String>);

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show only which names are set.
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("Settings").field(&names).finish()
    }
}

impl Settings {
    pub fn from_env() -> Self {
        Self(std::env::vars().collect())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// Sets `name` unless it is already set (the local server's embedded defaults).
    pub fn set_default(&mut self, name: &str, value: impl Into<String>) {
        if self.get(name).is_none() {
            self.0.insert(name.to_owned(), value.into());
        }
    }

    /// A setting's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> Result<&str, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::new(name, "is not set"))
    }

    pub fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|v| SecretString::from(v.to_owned()))
    }

    /// Every name and value, for handing the settings to a child process.
    pub fn iter_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn sid<K: SidKind>(&self, name: &str) -> Result<Sid<K>, ConfigError> {
        Sid::try_from(self.required(name)?).map_err(|e| ConfigError::new(name, e.to_string()))
    }

    pub fn optional_sid<K: SidKind>(&self, name: &str) -> Result<Option<Sid<K>>, ConfigError> {
        self.get(name).map(|v| Sid::try_from(v).map_err(|e| ConfigError::new(name, e.to_string()))).transpose()
    }

    /// A whole number (a limit, a count).
    pub fn count(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| ConfigError::new(name, format!("expected a whole number, got `{v}`")))
        })
    }

    pub fn seconds(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        self.get(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| ConfigError::new(name, format!("expected whole seconds, got `{v}`")))
        })
    }
}

/// What minting access tokens needs (the API key secret comes from [`TwilioSecrets`]).
#[derive(Debug, Clone)]
pub struct MintConfig {
    pub account_sid: AccountSid,
    pub api_key_sid: ApiKeySid,
    pub service_sid: ServiceSid,
    pub push_credential_sid: Option<PushCredentialSid>,
    pub ttl: TtlPolicy,
}

impl MintConfig {
    /// `TWILIO_ACCOUNT_SID`, `TWILIO_API_KEY_SID`, `TWILIO_CONVERSATIONS_SERVICE_SID`,
    /// `TWILIO_PUSH_CREDENTIAL_SID`, `TOKEN_TTL_SECONDS`, `TOKEN_MAX_TTL_SECONDS` (default an
    /// hour: a token cannot be revoked, so its life is how long an offboarded user's lasts).
    pub fn from_settings(settings: &Settings) -> Result<Self, ConfigError> {
        let max = settings.seconds("TOKEN_MAX_TTL_SECONDS", 3_600)?;
        let default = settings.seconds("TOKEN_TTL_SECONDS", 3_600.min(max))?;
        let ttl = TtlPolicy::new(default, max).map_err(|e| {
            let name = if TtlPolicy::new(max, max).is_err() { "TOKEN_MAX_TTL_SECONDS" } else { "TOKEN_TTL_SECONDS" };
            ConfigError::new(name, format!("must be between {} and {}", e.min, e.max))
        })?;
        Ok(Self {
            account_sid: settings.sid("TWILIO_ACCOUNT_SID")?,
            api_key_sid: settings.sid("TWILIO_API_KEY_SID")?,
            service_sid: settings.sid("TWILIO_CONVERSATIONS_SERVICE_SID")?,
            push_credential_sid: settings.optional_sid("TWILIO_PUSH_CREDENTIAL_SID")?,
            ttl,
        })
    }
}

/// Which browser origins may call the API (`ALLOWED_ORIGINS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// Exactly these origins.
    Origins(Vec<String>),
    /// Any `http://localhost:<port>` or `http://127.0.0.1:<port>`: the local server's default.
    Loopback,
}

impl CorsPolicy {
    /// Parses `ALLOWED_ORIGINS`: comma-separated `scheme://host[:port]`, no wildcard.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if origin.contains('*') {
                return Err("a wildcard origin is not allowed; list the SPA's origins".into());
            }
            let Some((scheme, rest)) = origin.split_once("://") else {
                return Err(format!("`{origin}` is not an origin (scheme://host[:port])"));
            };
            if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
                return Err(format!("`{origin}` is not an origin (scheme://host[:port])"));
            }
            origins.push(origin.to_ascii_lowercase());
        }
        Ok(Self::Origins(origins))
    }

    /// Whether a browser at `origin` may call the API.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            Self::Origins(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
            Self::Loopback => ["http://localhost:", "http://127.0.0.1:"].iter().any(|prefix| {
                origin
                    .strip_prefix(prefix)
                    .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            }),
        }
    }
}

/// `ALLOWED_ORIGINS`, when set.
pub fn cors_policy(settings: &Settings) -> Result<Option<CorsPolicy>, ConfigError> {
    settings
        .get("ALLOWED_ORIGINS")
        .map(|v| CorsPolicy::parse(v).map_err(|p| ConfigError::new("ALLOWED_ORIGINS", p)))
        .transpose()
}

/// A URL chatgate sends credentials to or takes keys from: https, or plain http to this machine
/// only (the local server, stand-ins, tests), since anywhere else plain http would carry the API
/// key, or a key set that signs sessions, in the clear.
pub fn check_https_url(name: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("https://") && url.len() > "https://".len() {
        return Ok(());
    }
    let loopback = url.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    });
    if loopback { Ok(()) } else { Err(ConfigError::new(name, "must be an https URL (plain http only to localhost)")) }
}

/// `TENANT_CLAIM`: the session claim naming the caller's tenant (docs/tenancy.md), for example
/// `org_id`. Unset (or empty): single-tenant, exactly as before tenants existed.
pub fn tenant_claim(settings: &Settings) -> Result<Option<String>, ConfigError> {
    match settings.get("TENANT_CLAIM") {
        None => Ok(None),
        Some(claim) if claim.len() <= 128 && claim.bytes().all(|b| b.is_ascii_graphic()) => Ok(Some(claim.to_owned())),
        Some(_) => Err(ConfigError::new("TENANT_CLAIM", "must be a claim name: at most 128 visible ASCII characters")),
    }
}

/// Whether this deployment has tenants (`TENANT_CLAIM` set): what the functions without sessions
/// (the admin routes, the guard, the reconciler) need to know of it.
pub fn tenants(settings: &Settings) -> Result<bool, ConfigError> {
    Ok(tenant_claim(settings)?.is_some())
}

/// `TABLE_NAME`.
pub fn table_name(settings: &Settings) -> Result<String, ConfigError> {
    settings.required("TABLE_NAME").map(str::to_owned)
}

/// Where the deployment's secrets come from: Twilio's from the secret `TWILIO_SECRET_ARN` names in
/// Secrets Manager (in AWS), else `TWILIO_API_KEY_SECRET` and `TWILIO_AUTH_TOKEN` (the local
/// server, the tests); the conversation name key from `CONVERSATION_NAME_KEY`, else (in AWS) the
/// secret `CONVERSATION_NAME_KEY_SECRET_ARN` names, which the template generates.
#[derive(Debug, Clone)]
pub enum SecretsSource {
    SecretsManager { arn: String, name_key_arn: Option<String>, name_key: Option<SecretString> },
    Environment(TwilioSecrets),
}

impl SecretsSource {
    pub fn from_settings(settings: &Settings) -> Self {
        match settings.get("TWILIO_SECRET_ARN") {
            Some(arn) => Self::SecretsManager {
                arn: arn.to_owned(),
                name_key_arn: settings.get("CONVERSATION_NAME_KEY_SECRET_ARN").map(str::to_owned),
                name_key: settings.secret("CONVERSATION_NAME_KEY"),
            },
            None => Self::Environment(TwilioSecrets::from_env(settings)),
        }
    }

    /// Reads the secrets once, at cold start, on an SDK configuration the caller already loaded:
    /// both secrets at once when both are in Secrets Manager.
    #[cfg(feature = "secrets")]
    pub async fn load(&self, aws: &aws_types::SdkConfig) -> Result<TwilioSecrets, ConfigError> {
        match self {
            Self::Environment(secrets) => Ok(secrets.clone()),
            Self::SecretsManager { arn, name_key_arn, name_key } => {
                let client = aws_sdk_secretsmanager::Client::new(aws);
                let read = |name: &'static str, arn: String| {
                    let client = client.clone();
                    async move {
                        let output = client.get_secret_value().secret_id(arn).send().await.map_err(|e| {
                            let reason = aws_sdk_secretsmanager::error::DisplayErrorContext(e);
                            ConfigError::new(name, format!("could not be read: {reason}"))
                        })?;
                        Ok::<_, ConfigError>(output.secret_string().unwrap_or_default().to_owned())
                    }
                };
                let key_arn = name_key_arn.clone().filter(|_| name_key.is_none());
                let (document, key) = tokio::join!(read("TWILIO_SECRET_ARN", arn.clone()), async {
                    match key_arn {
                        Some(key_arn) => read("CONVERSATION_NAME_KEY_SECRET_ARN", key_arn).await.map(Some),
                        None => Ok(None),
                    }
                });
                let mut secrets = TwilioSecrets::from_secret_string(&document?)?;
                secrets.name_key = name_key.clone().or(key?.filter(|k| !k.is_empty()).map(SecretString::from));
                secrets.name_key_from_arn = name_key.is_none() && name_key_arn.is_some();
                Ok(secrets)
            }
        }
    }
}

/// The deployment's secrets (see [`SecretsSource`]): Twilio's two, and the key of conversation
/// names. Each function asks only for the ones it uses.
#[derive(Debug, Clone, Default)]
pub struct TwilioSecrets {
    api_key_secret: Option<SecretString>,
    auth_token: Option<SecretString>,
    name_key: Option<SecretString>,
    from_secret_arn: bool,
    name_key_from_arn: bool,
}

#[derive(serde::Deserialize)]
struct SecretDocument {
    api_key_secret: Option<String>,
    auth_token: Option<String>,
}

impl TwilioSecrets {
    /// From `TWILIO_API_KEY_SECRET` and `TWILIO_AUTH_TOKEN` (the local server, the tests).
    pub fn from_env(settings: &Settings) -> Self {
        Self {
            api_key_secret: settings.secret("TWILIO_API_KEY_SECRET"),
            auth_token: settings.secret("TWILIO_AUTH_TOKEN"),
            name_key: settings.secret("CONVERSATION_NAME_KEY"),
            from_secret_arn: false,
            name_key_from_arn: false,
        }
    }

    /// Parses the secret's JSON document (`{"api_key_secret": ..., "auth_token": ...}`).
    pub fn from_secret_string(document: &str) -> Result<Self, ConfigError> {
        let doc: SecretDocument = serde_json::from_str(document).map_err(|_| {
            ConfigError::new("TWILIO_SECRET_ARN", "the secret is not a JSON object with api_key_secret and auth_token")
        })?;
        let secret = |v: Option<String>| v.filter(|s| !s.is_empty()).map(SecretString::from);
        Ok(Self {
            api_key_secret: secret(doc.api_key_secret),
            auth_token: secret(doc.auth_token),
            name_key: None,
            from_secret_arn: true,
            name_key_from_arn: false,
        })
    }

    fn missing(&self, env_name: &str, field: &str) -> ConfigError {
        if self.from_secret_arn {
            ConfigError::new("TWILIO_SECRET_ARN", format!("the secret has no `{field}`"))
        } else {
            ConfigError::new(env_name, "is not set (nor TWILIO_SECRET_ARN)")
        }
    }

    pub fn api_key_secret(&self) -> Result<&SecretString, ConfigError> {
        self.api_key_secret.as_ref().ok_or_else(|| self.missing("TWILIO_API_KEY_SECRET", "api_key_secret"))
    }

    pub fn auth_token(&self) -> Result<&SecretString, ConfigError> {
        self.auth_token.as_ref().ok_or_else(|| self.missing("TWILIO_AUTH_TOKEN", "auth_token"))
    }

    /// The names of chatgate's conversations, keyed with `CONVERSATION_NAME_KEY` (at least
    /// [`MIN_NAME_KEY_BYTES`] bytes).
    pub fn conversation_names(&self) -> Result<ConversationNames, ConfigError> {
        let name = if self.name_key_from_arn { "CONVERSATION_NAME_KEY_SECRET_ARN" } else { "CONVERSATION_NAME_KEY" };
        let key = self.name_key.as_ref().ok_or_else(|| ConfigError::new(name, "is not set"))?;
        let key = key.expose_secret().as_bytes();
        if key.len() < MIN_NAME_KEY_BYTES {
            return Err(ConfigError::new(name, format!("must be at least {MIN_NAME_KEY_BYTES} bytes")));
        }
        Ok(ConversationNames::new(key))
    }

    /// The same secrets with `key` as the conversation name key, unless one is configured (the
    /// local server's development key).
    pub fn with_default_name_key(mut self, key: &str) -> Self {
        if self.name_key.is_none() {
            self.name_key = Some(SecretString::from(key.to_owned()));
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AC: &str = "AC0123456789abcdef0123456789abcdef";
    const SK: &str = "SK0123456789abcdef0123456789abcdef";
    const IS: &str = "IS0123456789abcdef0123456789abcdef";

    fn mint_settings(extra: &[(&str, &str)]) -> Settings {
        let mut pairs =
            vec![("TWILIO_ACCOUNT_SID", AC), ("TWILIO_API_KEY_SID", SK), ("TWILIO_CONVERSATIONS_SERVICE_SID", IS)];
        pairs.extend_from_slice(extra);
        Settings::from_pairs(pairs)
    }

    fn error_name(settings: &Settings) -> String {
        MintConfig::from_settings(settings).expect_err("must fail").name
    }

    #[test]
    fn mint_config_has_twilio_defaults() {
        let config = MintConfig::from_settings(&mint_settings(&[])).expect("valid");
        assert_eq!(config.ttl.default_ttl().seconds(), 3600);
        assert_eq!(config.ttl.max_seconds(), 3_600);
        assert!(config.push_credential_sid.is_none());
    }

    #[test]
    fn each_bad_setting_is_named() {
        assert_eq!(error_name(&Settings::from_pairs([("TWILIO_API_KEY_SID", SK)])), "TWILIO_ACCOUNT_SID");
        assert_eq!(error_name(&mint_settings(&[("TWILIO_API_KEY_SID", AC)])), "TWILIO_API_KEY_SID");
        assert_eq!(error_name(&mint_settings(&[("TWILIO_PUSH_CREDENTIAL_SID", "CR1")])), "TWILIO_PUSH_CREDENTIAL_SID");
        assert_eq!(error_name(&mint_settings(&[("TOKEN_TTL_SECONDS", "1h")])), "TOKEN_TTL_SECONDS");
        assert_eq!(error_name(&mint_settings(&[("TOKEN_TTL_SECONDS", "100")])), "TOKEN_TTL_SECONDS");
        assert_eq!(error_name(&mint_settings(&[("TOKEN_TTL_SECONDS", "7200")])), "TOKEN_TTL_SECONDS");
        assert_eq!(error_name(&mint_settings(&[("TOKEN_MAX_TTL_SECONDS", "90000")])), "TOKEN_MAX_TTL_SECONDS");
        assert_eq!(
            error_name(&mint_settings(&[("TOKEN_MAX_TTL_SECONDS", "600"), ("TOKEN_TTL_SECONDS", "3600")])),
            "TOKEN_TTL_SECONDS"
        );
    }

    #[test]
    fn a_lower_maximum_lowers_the_default() {
        let config = MintConfig::from_settings(&mint_settings(&[("TOKEN_MAX_TTL_SECONDS", "600")])).expect("valid");
        assert_eq!(config.ttl.default_ttl().seconds(), 600);
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        for ok in ["https://conversations.twilio.com", "http://127.0.0.1:4010", "http://localhost/x", "http://[::1]:9/"]
        {
            assert_eq!(check_https_url("U", ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://conversations.twilio.com",
            "http://127.0.0.1.example.com/",
            "http://localhost@evil.com",
            "ftp://x",
            "https://",
        ] {
            assert_eq!(check_https_url("U", bad).expect_err(bad).name, "U", "{bad}");
        }
    }

    #[test]
    fn settings_debug_shows_no_values() {
        let settings = Settings::from_pairs([("TWILIO_API_KEY_SECRET", "hunter2")]);
        let printed = format!("{settings:?}");
        assert!(printed.contains("TWILIO_API_KEY_SECRET") && !printed.contains("hunter2"), "{printed}");
    }

    #[test]
    fn secret_document_is_parsed_and_missing_fields_named() {
        let secrets = TwilioSecrets::from_secret_string(r#"{"api_key_secret":"k"}"#).expect("valid");
        assert!(secrets.api_key_secret().is_ok());
        let err = secrets.auth_token().expect_err("absent");
        assert_eq!(err.name, "TWILIO_SECRET_ARN");
        assert!(err.problem.contains("auth_token"));
        assert!(!format!("{secrets:?}").contains("\"k\""));
        assert!(TwilioSecrets::from_secret_string("k").is_err());
    }

    #[test]
    fn the_name_key_is_required_and_long_enough() {
        let err = TwilioSecrets::default().conversation_names().expect_err("absent");
        assert_eq!(err.name, "CONVERSATION_NAME_KEY");
        let short = TwilioSecrets::from_env(&Settings::from_pairs([("CONVERSATION_NAME_KEY", "short")]));
        assert!(short.conversation_names().expect_err("short").problem.contains("32"));
        let key = "k".repeat(32);
        let ok = TwilioSecrets::from_env(&Settings::from_pairs([("CONVERSATION_NAME_KEY", key.as_str())]));
        assert!(ok.conversation_names().is_ok());
        assert!(!format!("{ok:?}").contains(&key));
        assert!(TwilioSecrets::default().with_default_name_key(&key).conversation_names().is_ok());
    }

    #[test]
    fn allowed_origins_refuse_wildcards_and_paths() {
        assert!(CorsPolicy::parse("*").is_err());
        assert!(CorsPolicy::parse("https://*.example.com").is_err());
        assert!(CorsPolicy::parse("https://app.example.com/path").is_err());
        assert!(CorsPolicy::parse("app.example.com").is_err());
        assert_eq!(
            CorsPolicy::parse(" https://App.example.com, http://localhost:5173 ,"),
            Ok(CorsPolicy::Origins(vec!["https://app.example.com".into(), "http://localhost:5173".into()]))
        );
    }

    #[test]
    fn loopback_policy_admits_only_loopback_origins() {
        let policy = CorsPolicy::Loopback;
        assert!(policy.allows("http://localhost:5173"));
        assert!(policy.allows("http://127.0.0.1:8080"));
        assert!(!policy.allows("http://localhost.evil.com:80"));
        assert!(!policy.allows("http://localhost:"));
        assert!(!policy.allows("https://example.com"));
    }

    #[cfg(feature = "secrets")]
    #[tokio::test]
    async fn secrets_come_from_the_environment_without_an_arn() {
        let secrets =
            TwilioSecrets::load(&Settings::from_pairs([("TWILIO_API_KEY_SECRET", "k")])).await.expect("loads");
        assert!(secrets.api_key_secret().is_ok());
        assert_eq!(secrets.auth_token().expect_err("absent").name, "TWILIO_AUTH_TOKEN");
    }
}
