//! Twilio Conversations access tokens, byte for byte what twilio-python's `AccessToken` with a
//! `ChatGrant` produces for the same inputs and clock: a sorted header, the claims in its order,
//! and JSON escaped as Python's `json.dumps` escapes it.

use std::fmt;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{AccountSid, ApiKeySid, Identity, PushCredentialSid, ServiceSid, Ttl};

/// `{"alg":"HS256","cty":"twilio-fpa;v=1","typ":"JWT"}`: PyJWT sorts header keys.
const HEADER: &str = r#"{"alg":"HS256","cty":"twilio-fpa;v=1","typ":"JWT"}"#;

/// The API key secret, keyed for HMAC-SHA256 once at cold start.
pub struct TokenSigningKey(hmac::Key);

impl TokenSigningKey {
    pub fn new(api_key_secret: &SecretString) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, api_key_secret.expose_secret().as_bytes()))
    }
}

impl fmt::Debug for TokenSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSigningKey([REDACTED])")
    }
}

/// Mints Conversations access tokens for one account, API key and service.
#[derive(Debug)]
pub struct AccessTokenMinter {
    key: TokenSigningKey,
    api_key_sid: ApiKeySid,
    account_sid: AccountSid,
    /// `{"chat":{...}` with the grant's fields, computed once.
    chat_grant: String,
    header_b64: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintedToken {
    pub jwt: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl AccessTokenMinter {
    pub fn new(
        account_sid: AccountSid,
        api_key_sid: ApiKeySid,
        key: TokenSigningKey,
        service_sid: &ServiceSid,
        push_credential_sid: Option<&PushCredentialSid>,
    ) -> Self {
        // ChatGrant.to_payload: service_sid, then push_credential_sid.
        let mut chat_grant = format!(r#"{{"chat":{{"service_sid":"{service_sid}""#);
        if let Some(push) = push_credential_sid {
            let _ = write!(chat_grant, r#","push_credential_sid":"{push}""#);
        }
        chat_grant.push('}');
        Self { key, api_key_sid, account_sid, chat_grant, header_b64: URL_SAFE_NO_PAD.encode(HEADER) }
    }

    /// A token for `identity` valid from `now` (Unix seconds) for `ttl`.
    pub fn mint(&self, identity: &Identity, ttl: Ttl, now: u64) -> MintedToken {
        let expires_at = now + u64::from(ttl.seconds());
        let mut claims = String::with_capacity(256 + identity.as_str().len() * 6);
        let _ = write!(claims, r#"{{"jti":"{}-{now}","grants":{},"identity":"#, self.api_key_sid, self.chat_grant);
        push_python_json_string(&mut claims, identity.as_str());
        let _ = write!(
            claims,
            r#"}},"iss":"{}","exp":{expires_at},"nbf":{now},"sub":"{}"}}"#,
            self.api_key_sid, self.account_sid
        );

        let claims_len = base64::encoded_len(claims.len(), false).unwrap_or(0);
        let mut jwt = String::with_capacity(self.header_b64.len() + claims_len + 46);
        jwt.push_str(&self.header_b64);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut jwt);
        let signature = hmac::sign(&self.key.0, jwt.as_bytes());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut jwt);
        MintedToken { jwt, expires_at }
    }
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`): everything outside
/// ASCII as `\uXXXX` (lowercase hex, surrogate pairs above the BMP), so tokens match byte for byte.
fn push_python_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TtlPolicy;

    fn sid<T: for<'a> TryFrom<&'a str>>(prefix: &str) -> T {
        T::try_from(format!("{prefix}{}", "0123456789abcdef".repeat(2)).as_str())
            .unwrap_or_else(|_| panic!("valid {prefix} SID"))
    }

    fn minter(push: bool) -> AccessTokenMinter {
        let push_sid: PushCredentialSid = sid("CR");
        AccessTokenMinter::new(
            sid("AC"),
            sid("SK"),
            TokenSigningKey::new(&SecretString::from("s3cret")),
            &sid("IS"),
            push.then_some(&push_sid),
        )
    }

    fn decode_part(part: &str) -> String {
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("utf-8")
    }

    #[test]
    fn claims_follow_twilio_python_layout() {
        let ttl = TtlPolicy::new(3600, 86_400).expect("policy").default_ttl();
        let token = minter(false).mint(&Identity::try_from("u-1").expect("identity"), ttl, 1_700_000_000);
        let parts: Vec<&str> = token.jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(decode_part(parts[0]), HEADER);
        assert_eq!(
            decode_part(parts[1]),
            concat!(
                r#"{"jti":"SK0123456789abcdef0123456789abcdef-1700000000","#,
                r#""grants":{"chat":{"service_sid":"IS0123456789abcdef0123456789abcdef"},"identity":"u-1"},"#,
                r#""iss":"SK0123456789abcdef0123456789abcdef","exp":1700003600,"nbf":1700000000,"#,
                r#""sub":"AC0123456789abcdef0123456789abcdef"}"#
            )
        );
        assert_eq!(token.expires_at, 1_700_003_600);
        let expected = hmac::sign(
            &TokenSigningKey::new(&SecretString::from("s3cret")).0,
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).expect("sig"), expected.as_ref());
    }

    #[test]
    fn push_credential_goes_into_the_chat_grant() {
        let ttl = TtlPolicy::new(3600, 86_400).expect("policy").default_ttl();
        let token = minter(true).mint(&Identity::try_from("u-1").expect("identity"), ttl, 0);
        let claims = decode_part(token.jwt.split('.').nth(1).expect("claims"));
        assert!(claims.contains(r#""chat":{"service_sid":"IS0123456789abcdef0123456789abcdef","push_credential_sid":"CR0123456789abcdef0123456789abcdef"}"#), "{claims}");
    }

    #[test]
    fn identity_is_escaped_like_python_json() {
        let mut out = String::new();
        push_python_json_string(&mut out, "a\"b\\c/é😀\u{7f}");
        assert_eq!(out, r#""a\"b\\c/\u00e9\ud83d\ude00\u007f""#);
    }
}
