//! The AWS SDK's configuration. A Lambda function has everything it needs in its environment:
//! `AWS_REGION`, and its execution role's credentials in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. [`from_environment`] reads those (with the
//! SDK's standard `AWS_ENDPOINT_URL[_<SERVICE>]`, `AWS_USE_FIPS_ENDPOINT` and
//! `AWS_USE_DUALSTACK_ENDPOINT`) and nothing else, so no function links profile files, SSO, STS or
//! instance metadata it could never use. The operator CLI asks for the SDK's whole default chain
//! ([`default_chain`], with the `aws-config` feature) by name: which configuration a caller gets
//! never depends on the features something else compiled in.

use std::collections::BTreeMap;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};

use crate::config::{ConfigError, Settings};
#[cfg(feature = "secrets")]
use crate::config::{SecretsSource, TwilioSecrets};

/// The SDK's default chain (profiles, SSO, instance and container credentials, ...) on chatgate's
/// TLS stack: for operators' tools, never a function.
#[cfg(feature = "aws-config")]
pub async fn default_chain() -> SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(crate::tls::aws_http_client()).load().await
}

/// The configuration a Lambda's environment gives; a missing region or credential is a
/// [`ConfigError`] naming it, at cold start rather than on the first call.
pub fn from_environment(settings: &Settings) -> Result<SdkConfig, ConfigError> {
    let region = settings.required("AWS_REGION")?;
    let credentials = Credentials::new(
        settings.required("AWS_ACCESS_KEY_ID")?,
        settings.required("AWS_SECRET_ACCESS_KEY")?,
        settings.get("AWS_SESSION_TOKEN").map(str::to_owned),
        None,
        "lambda-environment",
    );
    let flag = |name: &str| match settings.get(name) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(v) => Err(ConfigError::new(name, format!("expected true or false, got `{v}`"))),
    };
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(crate::tls::aws_http_client())
        .service_config(EndpointUrls::from(settings));
    builder.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT")?);
    builder.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT")?);
    Ok(builder.build())
}

#[cfg(feature = "secrets")]
impl TwilioSecrets {
    /// A function's secrets, read once at cold start: on [`from_environment`], and only for an ARN.
    pub async fn load(settings: &Settings) -> Result<Self, ConfigError> {
        match SecretsSource::from_settings(settings) {
            SecretsSource::Environment(secrets) => Ok(secrets),
            source => source.load(&from_environment(settings)?).await,
        }
    }
}

/// A service's own settings from the environment, as the SDK names them: the service-specific
/// variable (`AWS_ENDPOINT_URL_DYNAMODB`) before the global one (`AWS_ENDPOINT_URL`). The SDK asks
/// through this whenever the configuration sets no endpoint of its own, as this one never does.
#[derive(Debug)]
struct EndpointUrls(BTreeMap<String, String>);

impl From<&Settings> for EndpointUrls {
    fn from(settings: &Settings) -> Self {
        let urls = settings.iter_pairs().filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL"));
        Self(urls.filter(|(_, url)| !url.trim().is_empty()).map(|(n, u)| (n.to_owned(), u.trim().to_owned())).collect())
    }
}

impl LoadServiceConfig for EndpointUrls {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        self.0.get(&format!("{}_{service}", key.env())).or_else(|| self.0.get(key.env())).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda_env(extra: &[(&str, &str)]) -> Settings {
        let mut pairs = vec![
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "session"),
        ];
        pairs.extend_from_slice(extra);
        Settings::from_pairs(pairs)
    }

    #[test]
    fn region_and_credentials_come_from_the_environment() {
        let config = from_environment(&lambda_env(&[])).expect("complete");
        assert_eq!(config.region().map(Region::as_ref), Some("eu-west-1"));
        assert!(config.credentials_provider().is_some());
        assert_eq!(config.use_fips(), None);
        assert_eq!(config.endpoint_url(), None);
    }

    #[test]
    fn each_missing_setting_is_named() {
        for name in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let settings = Settings::from_pairs(
                lambda_env(&[]).iter_pairs().filter(|(k, _)| *k != name).map(|(k, v)| (k.to_owned(), v.to_owned())),
            );
            assert_eq!(from_environment(&settings).expect_err("incomplete").name, name);
        }
        let bad = lambda_env(&[("AWS_USE_FIPS_ENDPOINT", "yes")]);
        assert_eq!(from_environment(&bad).expect_err("not a flag").name, "AWS_USE_FIPS_ENDPOINT");
    }

    #[test]
    fn endpoint_flags_are_honoured() {
        let settings = lambda_env(&[("AWS_USE_FIPS_ENDPOINT", "TRUE"), ("AWS_USE_DUALSTACK_ENDPOINT", "false")]);
        let config = from_environment(&settings).expect("complete");
        assert_eq!((config.use_fips(), config.use_dual_stack()), (Some(true), Some(false)));
    }

    #[test]
    fn a_service_endpoint_wins_over_the_global_one() {
        let key = |service| {
            ServiceConfigKey::builder().service_id(service).env("AWS_ENDPOINT_URL").profile("endpoint_url").build()
        };
        let urls = EndpointUrls::from(&lambda_env(&[
            ("AWS_ENDPOINT_URL", "http://global"),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "http://secrets"),
        ]));
        assert_eq!(urls.load_config(key("Secrets Manager").expect("key")).as_deref(), Some("http://secrets"));
        assert_eq!(urls.load_config(key("DynamoDB").expect("key")).as_deref(), Some("http://global"));
    }
}
