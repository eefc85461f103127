//! Tokens from `POST /token` against Twilio's own helper libraries: byte-identical to
//! twilio-python's for the same inputs and clock, verified by its `AccessToken.from_jwt`, and
//! carrying the same grants as twilio-node's.

use std::sync::Arc;

use chatgate::clock::FixedClock;
use chatgate_tests::*;
use serde_json::{Value, json};
use token::handler::{TokenState, handle};

const IDENTITIES: &[&str] =
    &["u-123", "alice@example.com", "Zoë Ångström", "名前", "emoji 😀 id", "quote\"back\\slash/", "US123"];
const PUSH_SID: &str = "CR00000000000000000000000000000009";

async fn minted(settings: &chatgate::config::Settings, identity: &str, ttl: u32, now: u64) -> Value {
    let mut state = TokenState::from_settings(settings).await.expect("config");
    state.clock = Arc::new(FixedClock(now));
    let session = hs256_session(&claims(identity));
    let response = handle(&state, token_request(Some(&session), Some(&json!({"ttl_seconds": ttl}).to_string()))).await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    json_body(&response)
}

fn case(identity: &str, ttl: u32, now: u64, push: bool) -> Value {
    let mut c = json!({"account_sid": ACCOUNT_SID, "api_key_sid": API_KEY_SID, "secret": API_KEY_SECRET,
                       "service_sid": SERVICE_SID, "identity": identity, "ttl": ttl, "now": now});
    if push {
        c["push_credential_sid"] = json!(PUSH_SID);
    }
    c
}

#[tokio::test]
async fn tokens_are_byte_identical_to_twilio_python() {
    let mut ours = Vec::new();
    let mut cases = Vec::new();
    for (i, identity) in IDENTITIES.iter().enumerate() {
        for push in [false, true] {
            let ttl = [180, 3600, 86_400][i % 3];
            let now = 1_795_000_000 + i as u64 * 7;
            // Up to Twilio's own maximum of 24 h (the default maximum is an hour).
            let max = ("TOKEN_MAX_TTL_SECONDS", "86400");
            let settings = if push {
                jwt_settings(&[("TWILIO_PUSH_CREDENTIAL_SID", PUSH_SID), max])
            } else {
                jwt_settings(&[max])
            };
            ours.push(minted(&settings, identity, ttl, now).await["token"].clone());
            cases.push(case(identity, ttl, now, push));
        }
    }
    let python = oracle("twilio_token.py", &json!({"mint": cases}));
    assert_eq!(python["minted"].as_array().expect("minted").len(), ours.len());
    for (theirs, ours) in python["minted"].as_array().expect("minted").iter().zip(&ours) {
        assert_eq!(ours, theirs);
    }
}

#[tokio::test]
async fn tokens_verify_with_twilio_pythons_from_jwt() {
    let body = minted(&jwt_settings(&[]), "Zoë 😀", 3600, now()).await;
    let result = oracle(
        "twilio_token.py",
        &json!({"verify": [
            {"jwt": body["token"], "secret": API_KEY_SECRET},
            {"jwt": body["token"], "secret": "another secret"},
        ]}),
    );
    let good = &result["verified"][0];
    assert_eq!(good["ok"], true, "{good}");
    assert_eq!(good["headers"], json!({"alg": "HS256", "typ": "JWT", "cty": "twilio-fpa;v=1"}));
    assert_eq!(good["payload"]["grants"], json!({"identity": "Zoë 😀", "chat": {"service_sid": SERVICE_SID}}));
    assert_eq!(good["payload"]["iss"], API_KEY_SID);
    assert_eq!(good["payload"]["sub"], ACCOUNT_SID);
    assert_eq!(result["verified"][1]["ok"], false, "a wrong key must not verify");
}

#[tokio::test]
async fn expired_tokens_fail_twilio_pythons_from_jwt() {
    let body = minted(&jwt_settings(&[]), "u-1", 180, now() - 10_000).await;
    let result = oracle("twilio_token.py", &json!({"verify": [{"jwt": body["token"], "secret": API_KEY_SECRET}]}));
    assert_eq!(result["verified"][0]["ok"], false);
}

#[tokio::test]
async fn grants_and_claims_match_twilio_node() {
    let now = now();
    let body = minted(&jwt_settings(&[("TWILIO_PUSH_CREDENTIAL_SID", PUSH_SID)]), "Zoë", 3600, now).await;
    let node = oracle("twilio_token.js", &json!([case("Zoë", 3600, now, true)]));
    let theirs = &node[0];
    let ours = decode(body["token"].as_str().expect("token"));
    assert_eq!(ours.0["cty"], theirs["header"]["cty"]);
    assert_eq!(ours.0["alg"], theirs["header"]["alg"]);
    assert_eq!(ours.1["grants"], theirs["payload"]["grants"]);
    for claim in ["iss", "sub"] {
        assert_eq!(ours.1[claim], theirs["payload"][claim], "{claim}");
    }
    // twilio-node reads the clock itself: the timed claims agree up to the seconds between runs.
    let their_now = theirs["payload"]["iat"].as_u64().expect("iat");
    assert!(their_now.abs_diff(now) < 60);
    assert_eq!(theirs["payload"]["jti"], format!("{API_KEY_SID}-{their_now}"));
    assert_eq!(ours.1["jti"], format!("{API_KEY_SID}-{now}"));
    assert_eq!(ours.1["exp"].as_u64().expect("exp") - now, theirs["payload"]["exp"].as_u64().expect("exp") - their_now);
}

fn decode(jwt: &str) -> (Value, Value) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.').map(|p| serde_json::from_slice::<Value>(&b64.decode(p).expect("b64")).ok());
    (parts.next().flatten().expect("header"), parts.next().flatten().expect("claims"))
}
