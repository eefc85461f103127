//! Audit lines: every grant and membership change, asset change, removal by the rule,
//! offboarding, guard refusal and backstop deletion is one structured line with `"audit": true`, the event, the
//! asset and principal, the actor and the time; never a token or a message body.

use std::io::Write;
use std::sync::{Arc, Mutex};

use admin::handler::{AdminAuth, AdminState};
use chatgate::acl::MemoryStore;
use chatgate::config::TwilioSecrets;
use chatgate::domain::ConversationNames;
use chatgate_tests::acl_contract::asset;
use chatgate_tests::*;
use lambda_http::http::header;
use lambda_http::{Body, Request};
use message_guard::handler::GuardState;
use serde_json::{Value, json};
use sharing::handler::SharingState;
use twilio_standin::{StandIn, StandInConfig};

/// Everything written through the subscriber, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8")
    }

    /// The audit lines' fields, in order.
    fn audit(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|l| l["fields"].clone())
            .filter(|f| f["audit"] == true)
            .collect()
    }
}

fn request(method: &str, path: &str, bearer: &str, body: Option<Value>) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {bearer}"));
    if body.is_some() {
        builder = builder.header(header::CONTENT_TYPE, "application/json");
    }
    builder.body(body.map_or(Body::Empty, |b| Body::from(b.to_string()))).expect("request")
}

#[test]
fn every_change_and_refusal_is_one_audit_line_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let session = hs256_session(&claims("ana"));
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let standin =
                StandIn::start(StandInConfig::new(ACCOUNT_SID, API_KEY_SID, API_KEY_SECRET, SERVICE_SID)).await;
            let admin = AdminState::new(
                AdminAuth::DevKey("k".into()),
                store.clone(),
                twilio_client(&standin.base_url),
                ConversationNames::development(),
            );
            let sharing = SharingState::from_settings(&jwt_settings(&[]), store.clone()).expect("sharing");
            let call_admin = |method: &str, path: &str, body: Option<Value>| {
                admin::handler::handle(&admin, request(method, path, "k", body))
            };
            let call_sharing = |method: &str, path: &str, body: Option<Value>| {
                sharing::handler::handle(&sharing, request(method, path, &session, body))
            };
            let name = ConversationNames::development().asset(&asset("a-1"));
            standin.create_conversation(Some(&name), None, Some(r#"{"type":"asset","asset_id":"a-1"}"#)).expect("c");
            standin.add_participant(&name, "bob").expect("participant");

            let doc = json!({"owner": "ana", "type": "document", "name": "Plan"});
            assert_eq!(call_admin("PUT", "/admin/assets/a-1", Some(doc)).await.status(), 201);
            assert_eq!(call_admin("PUT", "/admin/groups/designers/members/bob", None).await.status(), 204);
            let reader = json!({"role": "reader"});
            assert_eq!(call_sharing("PUT", "/assets/a-1/grants/group:designers", Some(reader)).await.status(), 200);
            assert_eq!(call_sharing("DELETE", "/assets/a-1/grants/group:designers", None).await.status(), 204);
            assert_eq!(call_admin("DELETE", "/admin/groups/designers/members/bob", None).await.status(), 204);
            assert_eq!(call_admin("DELETE", "/admin/users/bob", None).await.status(), 204);
            assert_eq!(call_admin("DELETE", "/admin/assets/a-1", None).await.status(), 204);

            let settings = jwt_settings(&[
                ("TWILIO_AUTH_TOKEN", "audit-auth-token"),
                ("TWILIO_WEBHOOK_URL", "https://api.example.com/twilio/events"),
                ("TWILIO_API_BASE", &standin.base_url),
            ]);
            let secrets = TwilioSecrets::load(&settings).await.expect("secrets");
            let guard = GuardState::from_settings(&settings, &secrets, store).expect("guard");
            let params: Vec<(String, String)> = [
                ("EventType", "onMessageAdd"),
                ("ConversationSid", "CH00000000000000000000000000000001"),
                ("Author", "bob"),
                ("ClientIdentity", "bob"),
                ("Body", "the secret launch date is friday"),
                ("Attributes", r#"{"assetRef": "a-1", "assetType": "document"}"#),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
            let signature = guard.validator.sign("https://api.example.com/twilio/events", &params);
            let req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("http://localhost/twilio/events")
                .header("X-Twilio-Signature", signature)
                .body(Body::from(serde_urlencoded::to_string(&params).expect("form")))
                .expect("request");
            assert_eq!(message_guard::handler::handle(&guard, req).await.status(), 403);

            // The same message, published past a guard that did not answer in time: deleted.
            let c = standin.create_conversation(None, None, Some(r#"{"type":"group"}"#)).expect("conversation");
            let published = standin.add_message(&c.sid, "bob", "the secret launch date is friday").expect("message");
            let mut params = params;
            params[0].1 = "onMessageAdded".into();
            params[1].1 = c.sid.clone();
            params.push(("MessageSid".into(), published.sid.clone()));
            let signature = guard.validator.sign("https://api.example.com/twilio/events", &params);
            let req = lambda_http::http::Request::builder()
                .method("POST")
                .uri("http://localhost/twilio/events")
                .header("X-Twilio-Signature", signature)
                .body(Body::from(serde_urlencoded::to_string(&params).expect("form")))
                .expect("request");
            assert_eq!(message_guard::handler::handle(&guard, req).await.status(), 200);
            assert!(standin.conversation(&c.sid).expect("conversation").messages.is_empty());
        });
    });

    let lines = captured.audit();
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap_or("")).collect();
    assert_eq!(
        events,
        [
            "asset.put",
            "member.added",
            "grant.put",
            "grant.deleted",
            "member.removed",
            "participant.removed",
            "user.offboarded",
            "asset.deleted",
            "guard.refused",
            "guard.deleted"
        ],
        "{lines:#?}"
    );
    for line in &lines {
        assert!(line["actor"].is_string() && line["at"].as_str().is_some_and(|at| at.ends_with('Z')), "{line}");
    }
    assert_eq!(lines[2]["actor"], "ana");
    assert_eq!(lines[2]["asset_id"], "a-1");
    assert_eq!(lines[2]["principal"], "group:designers");
    assert_eq!(lines[1]["actor"], "dev-admin-key");
    assert_eq!(lines[5]["actor"], "chatgate:reconciler");
    assert_eq!(lines[5]["principal"], "user:bob");
    assert_eq!(lines[8]["actor"], "bob");
    assert_eq!((lines[9]["actor"].as_str(), lines[9]["asset_id"].as_str()), (Some("bob"), Some("a-1")));
    let text = captured.text();
    for secret in [session.as_str(), "the secret launch date", API_KEY_SECRET, "audit-auth-token"] {
        assert!(!text.contains(secret), "a log line carries {secret:?}");
    }
}

#[test]
fn a_tenant_deployments_audit_lines_name_the_tenant() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().json().with_writer(move || writer.clone()).finish();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let admin = AdminState::new(
                AdminAuth::DevKey("k".into()),
                store.clone(),
                no_twilio(),
                ConversationNames::development(),
            )
            .with_tenants(true);
            let mut sharing = SharingState::from_settings(&jwt_settings(&[]), store).expect("sharing");
            sharing.sessions = tenant_sessions();
            let doc = json!({"owner": "ana", "type": "document", "name": "Plan"});
            let put = admin::handler::handle(&admin, request("PUT", "/admin/tenants/acme/assets/a-1", "k", Some(doc)));
            assert_eq!(put.await.status(), 201);
            let added = admin::handler::handle(
                &admin,
                request("PUT", "/admin/tenants/globex/groups/eng/members/cy", "k", None),
            );
            assert_eq!(added.await.status(), 204);
            let session = hs256_session(&tenant_claims("acme", "ana"));
            let grant = json!({"role": "reader"});
            let shared = sharing::handler::handle(
                &sharing,
                request("PUT", "/assets/a-1/grants/user:bob", &session, Some(grant)),
            );
            assert_eq!(shared.await.status(), 200);
        });
    });
    let lines: Vec<(String, String, String)> = captured
        .audit()
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            (text("event"), text("tenant"), text("asset_id"))
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("asset.put".to_owned(), "acme".to_owned(), "acme~a-1".to_owned()),
            ("member.added".to_owned(), "globex".to_owned(), String::new()),
            ("grant.put".to_owned(), "acme".to_owned(), "acme~a-1".to_owned()),
        ]
    );
}
