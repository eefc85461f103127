//! Twilio's webhook signatures, exactly as its own `RequestValidator` checks them: base64 of
//! HMAC-SHA1, keyed with the auth token, over the configured public URL followed by every
//! parameter name and value (names sorted, each name's distinct values sorted), accepted for the
//! URL with and without its scheme's default port, compared in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};

use crate::config::ConfigError;

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Checks webhook signatures for one public URL (`TWILIO_WEBHOOK_URL`).
pub struct WebhookValidator {
    key: hmac::Key,
    /// The URL as configured and with its default port added or removed.
    urls: [String; 2],
}

impl fmt::Debug for WebhookValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookValidator").field("urls", &self.urls).finish_non_exhaustive()
    }
}

impl WebhookValidator {
    pub fn new(auth_token: &SecretString, url: &str) -> Result<Self, ConfigError> {
        let bad = || ConfigError::new("TWILIO_WEBHOOK_URL", "must be the absolute http(s) URL configured in Twilio");
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let default_port = match scheme {
            "https" => "443",
            "http" => "80",
            _ => return Err(bad()),
        };
        let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                host
            }
            _ => authority,
        };
        let with_port = format!(
            "{scheme}://{host}:{}{tail}",
            authority.strip_prefix(host).and_then(|p| p.strip_prefix(':')).unwrap_or(default_port)
        );
        let without_port = format!("{scheme}://{host}{tail}");
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.expose_secret().as_bytes());
        Ok(Self { key, urls: [without_port, with_port] })
    }

    /// The signature Twilio sends for `params` to `url` (for tests and tools).
    pub fn sign(&self, url: &str, params: &[(String, String)]) -> String {
        STANDARD.encode(hmac::sign(&self.key, signed_data(url, params).as_bytes()).as_ref())
    }

    /// Whether `signature` is Twilio's for these parameters at the configured URL.
    pub fn verify(&self, params: &[(String, String)], signature: &str) -> bool {
        let Ok(tag) = STANDARD.decode(signature.trim()) else { return false };
        // Both variants are always computed, so timing says nothing about which matched.
        let results =
            self.urls.each_ref().map(|url| hmac::verify(&self.key, signed_data(url, params).as_bytes(), &tag).is_ok());
        results.into_iter().any(|ok| ok)
    }
}

/// The URL, then each name with each of its distinct values, names and values sorted.
fn signed_data(url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut data = String::with_capacity(url.len() + pairs.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    data.push_str(url);
    for (name, value) in pairs {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// twilio-python's own test vectors (tests/unit/test_request_validator.py).
    const URI: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
            ("Caller", "+14158675309"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    fn validator(url: &str) -> WebhookValidator {
        WebhookValidator::new(&SecretString::from("12345"), url).expect("valid url")
    }

    #[test]
    fn computes_twilio_pythons_signature() {
        assert_eq!(validator(URI).sign(URI, &params()), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    }

    #[test]
    fn repeated_names_sort_their_values() {
        let params: Vec<(String, String)> =
            [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect();
        assert_eq!(validator(URI).sign(URI, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn validates_with_and_without_the_default_port() {
        assert!(validator(URI).verify(&params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        // Signed over the URL with :443 added.
        assert!(validator(URI).verify(&params(), "kvajT1Ptam85bY51eRf/AJRuM3w="));
        // Configured with a port: the signature over the URL without it is accepted.
        assert!(
            validator("https://mycompany.com:1234/myapp.php?foo=1&bar=2")
                .verify(&params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        );
        let http = "http://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(validator(http).verify(&params(), "0ZXoZLH/DfblKGATFgpif+LLRf4="));
        assert!(
            validator("http://mycompany.com:1234/myapp.php?foo=1&bar=2")
                .verify(&params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")
        );
    }

    #[test]
    fn refuses_wrong_signatures_and_tampering() {
        let v = validator(URI);
        assert!(!v.verify(&params(), "RSOYDt4T1cUTdK1PDd93/VVr8B9="));
        assert!(!v.verify(&params(), ""));
        assert!(!v.verify(&params(), "not base64!"));
        let mut tampered = params();
        tampered[1].1 = "9999".into();
        assert!(!v.verify(&tampered, "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
        assert!(!validator("https://mycompany.com/other").verify(&params(), "RSOYDt4T1cUTdK1PDd93/VVr8B8="));
    }

    #[test]
    fn urls_must_be_absolute_http() {
        for bad in ["mycompany.com/x", "ftp://x/y", "https://", "https://u:p@x/y", "https://x:abc/y"] {
            assert!(WebhookValidator::new(&SecretString::from("t"), bad).is_err(), "{bad}");
        }
    }
}
