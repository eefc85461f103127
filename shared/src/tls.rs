//! One TLS and crypto stack for every connection chatgate makes: rustls with ring, for the AWS
//! SDK's clients and for reqwest's (Twilio, the identity provider's key set).

/// Makes ring the process's rustls crypto provider, which reqwest's clients use. Idempotent, and
/// harmless when a provider is installed already.
pub fn install() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The HTTPS client for the AWS SDK's clients (rustls with ring, the system's trust roots).
#[cfg(feature = "aws")]
pub fn aws_http_client() -> aws_types::sdk_config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}
