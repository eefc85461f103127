//! Twilio access tokens as an SDK presents them, checked as Twilio checks them: an HS256 JWT
//! signed with the API key's secret, issued by that key for the account, granting one identity
//! the chat of this service, and within its validity.

use base64::Engine as _;
use ring::hmac;
use serde_json::Value;

use crate::error::Rejection;

/// The header's `cty`: what marks a JWT as a Twilio access token.
const CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// What a token must match: the stand-in's account, API key and service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Issuer<'a> {
    pub account_sid: &'a str,
    pub api_key_sid: &'a str,
    pub api_key_secret: &'a str,
    pub service_sid: &'a str,
}

/// The identity the token grants, if it is valid at `now` (Unix seconds); 401 (code 20101)
/// otherwise, whatever the reason, as Twilio answers.
pub(crate) fn verify(token: &str, issuer: Issuer<'_>, now: i64) -> Result<String, Rejection> {
    verified_identity(token, issuer, now).ok_or_else(Rejection::invalid_access_token)
}

fn verified_identity(token: &str, issuer: Issuer<'_>, now: i64) -> Option<String> {
    let mut parts = token.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, issuer.api_key_secret.as_bytes());
    let signing_input = &token[..header.len() + 1 + claims.len()];
    // Constant-time, and before anything in the token is trusted.
    hmac::verify(&key, signing_input.as_bytes(), &decode(signature)?).ok()?;
    let header: Value = serde_json::from_slice(&decode(header)?).ok()?;
    if header["alg"] != "HS256" || header["cty"] != CONTENT_TYPE {
        return None;
    }
    let claims: Value = serde_json::from_slice(&decode(claims)?).ok()?;
    let expires = claims["exp"].as_i64()?;
    let not_before = match &claims["nbf"] {
        Value::Null => i64::MIN,
        nbf => nbf.as_i64()?,
    };
    let valid = claims["iss"] == issuer.api_key_sid
        && claims["sub"] == issuer.account_sid
        && claims["grants"]["chat"]["service_sid"] == issuer.service_sid
        && now < expires
        && not_before <= now;
    if !valid {
        return None;
    }
    claims["grants"]["identity"].as_str().filter(|i| !i.is_empty()).map(str::to_owned)
}

/// base64url, with or without padding.
fn decode(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()
}

/// The identity a token names, read without checking it: what a client knows of its own token.
pub(crate) fn unverified_identity(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).ok()?;
    claims["grants"]["identity"].as_str().map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;

    const ISSUER: Issuer<'static> = Issuer {
        account_sid: "AC00000000000000000000000000000001",
        api_key_sid: "SK00000000000000000000000000000001",
        api_key_secret: "secret",
        service_sid: "IS00000000000000000000000000000001",
    };
    const NOW: i64 = 1_800_000_000;

    /// A token as Twilio's helper libraries mint one; the test-only minter.
    pub(crate) fn mint(secret: &str, header: &Value, claims: &Value) -> String {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let input = format!("{}.{}", b64(header), b64(claims));
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hmac::sign(&key, input.as_bytes()));
        format!("{input}.{signature}")
    }

    fn header() -> Value {
        json!({"alg": "HS256", "typ": "JWT", "cty": CONTENT_TYPE})
    }

    fn claims() -> Value {
        json!({
            "jti": format!("{}-{NOW}", ISSUER.api_key_sid),
            "iss": ISSUER.api_key_sid,
            "sub": ISSUER.account_sid,
            "nbf": NOW - 10,
            "exp": NOW + 3600,
            "grants": {"identity": "ana", "chat": {"service_sid": ISSUER.service_sid}},
        })
    }

    fn with(mut value: Value, pointer: &str, new: Value) -> Value {
        if let Some(slot) = value.pointer_mut(pointer) {
            *slot = new;
        }
        value
    }

    #[test]
    fn a_well_formed_token_grants_its_identity() {
        let token = mint(ISSUER.api_key_secret, &header(), &claims());
        assert_eq!(verify(&token, ISSUER, NOW), Ok("ana".to_owned()));
        assert_eq!(unverified_identity(&token).as_deref(), Some("ana"));
    }

    #[test]
    fn every_flaw_is_401_with_20101() {
        let flawed = [
            mint("other secret", &header(), &claims()),
            mint(ISSUER.api_key_secret, &with(header(), "/alg", json!("none")), &claims()),
            mint(ISSUER.api_key_secret, &with(header(), "/cty", json!("JWT")), &claims()),
            mint(ISSUER.api_key_secret, &header(), &with(claims(), "/exp", json!(NOW))),
            mint(ISSUER.api_key_secret, &header(), &with(claims(), "/nbf", json!(NOW + 60))),
            mint(
                ISSUER.api_key_secret,
                &header(),
                &with(claims(), "/iss", json!("SK00000000000000000000000000000002")),
            ),
            mint(
                ISSUER.api_key_secret,
                &header(),
                &with(claims(), "/sub", json!("AC00000000000000000000000000000002")),
            ),
            mint(
                ISSUER.api_key_secret,
                &header(),
                &with(claims(), "/grants/chat/service_sid", json!("IS00000000000000000000000000000002")),
            ),
            mint(ISSUER.api_key_secret, &header(), &with(claims(), "/grants/identity", json!(""))),
            "not.a-token".to_owned(),
            String::new(),
        ];
        for token in flawed {
            let refused = verify(&token, ISSUER, NOW).expect_err(&token);
            assert_eq!((refused.status, refused.code), (401, 20101), "{token}");
        }
    }

    #[test]
    fn a_tampered_claim_breaks_the_signature() {
        let token = mint(ISSUER.api_key_secret, &header(), &claims());
        let forged = mint("anything", &header(), &with(claims(), "/grants/identity", json!("admin")));
        let spliced = format!(
            "{}.{}.{}",
            token.split('.').next().unwrap_or_default(),
            forged.split('.').nth(1).unwrap_or_default(),
            token.split('.').nth(2).unwrap_or_default()
        );
        assert!(verify(&spliced, ISSUER, NOW).is_err());
    }
}
