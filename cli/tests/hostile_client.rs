//! The attacks of docs/security.md, tried end to end against `chatgate dev` as a signed-in user
//! would try them: through chatgate's routes, and through the Twilio SDK (the stand-in's SDK face)
//! with the very access token chatgate hands out. Each must fail; where a layer is switched off on
//! purpose (a drifted Twilio service), the next layer must still hold.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use chatgate::domain::{AssetId, ConversationNames, Identity};
use chatgate_tests::{AUDIENCE, ISSUER, SESSION_SECRET, TENANT_CLAIM, claims, hs256_session, tenant_claims};
use serde_json::{Value, json};
use twilio_standin::sdk::SdkClient;

const ADMIN_KEY: &str = "hostile-client-admin-key";

struct Dev {
    child: Child,
    base: String,
    twilio: String,
    service: String,
    key: (String, String),
    http: reqwest::Client,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: u16,
    retry_after: Option<u32>,
    body: Value,
}

impl Dev {
    fn start(extra: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatgate"));
        command
            .args(["dev", "--port", "0"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("JWT_HS256_SECRET", SESSION_SECRET)
            .env("JWT_ISSUER", ISSUER)
            .env("JWT_AUDIENCE", AUDIENCE)
            .env("CHATGATE_DEV_ADMIN_KEY", ADMIN_KEY);
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn chatgate dev");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).expect("banner") > 0, "chatgate dev exited early: {lines:?}");
            let done = line.trim_end() == "ready";
            lines.push(line.trim_end().to_owned());
            if done {
                break;
            }
        }
        let find = |prefix: &str| -> String {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {lines:?}"))
                .to_owned()
        };
        let base = find("chatgate dev listening on ");
        let twilio = find("twilio: ");
        let credentials = find("twilio stand-in credentials (for seeding messages): ");
        let mut parts = credentials.split(' ').map(str::to_owned);
        let (service, sid, secret) =
            (parts.next().expect("IS"), parts.next().expect("SK"), parts.next().expect("secret"));
        chatgate::tls::install();
        let http = reqwest::Client::builder().no_proxy().build().expect("client");
        Self { child, base, twilio, service, key: (sid, secret), http }
    }

    async fn call(&self, method: &str, path: &str, who: &str, body: Option<Value>) -> Answer {
        let session = hs256_session(&claims(who));
        let mut request =
            self.http.request(method.parse().expect("method"), format!("{}{path}", self.base)).bearer_auth(session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("chatgate dev answers")).await
    }

    /// The same call by `who` of the organisation `tenant` (a tenant deployment's session).
    async fn call_in(&self, tenant: &str, method: &str, path: &str, who: &str, body: Option<Value>) -> Answer {
        let session = hs256_session(&tenant_claims(tenant, who));
        let mut request =
            self.http.request(method.parse().expect("method"), format!("{}{path}", self.base)).bearer_auth(session);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("chatgate dev answers")).await
    }

    /// The SDK holding the token chatgate hands `who` of `tenant`.
    async fn sdk_in(&self, tenant: &str, who: &str) -> SdkClient {
        let token = self.call_in(tenant, "POST", "/token", who, None).await;
        assert_eq!(token.status, 200, "{}", token.body);
        assert_eq!(token.body["identity"], format!("{tenant}~{who}"), "the Twilio identity names the tenant");
        SdkClient::new(&self.twilio, token.body["token"].as_str().expect("token"))
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> u16 {
        let mut request =
            self.http.request(method.parse().expect("method"), format!("{}{path}", self.base)).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("admin answers").status().as_u16()
    }

    /// A Twilio access token for `who`, as the SPA gets it, and the SDK holding it.
    async fn sdk(&self, who: &str) -> SdkClient {
        let token = self.call("POST", "/token", who, None).await;
        assert_eq!(token.status, 200, "{}", token.body);
        SdkClient::new(&self.twilio, token.body["token"].as_str().expect("token"))
    }

    /// The stand-in's REST face, with the service's API key: what an operator (or drift) does.
    async fn rest(&self, method: &str, path: &str, form: &[(&str, &str)]) -> Value {
        let url = format!("{}/v1/Services/{}/{path}", self.twilio, self.service);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.key.0, self.key.1));
        let mut request =
            self.http.request(method.parse().expect("method"), url).header("authorization", format!("Basic {basic}"));
        if !form.is_empty() {
            request = request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).expect("form"));
        }
        let response = request.send().await.expect("stand-in answers");
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {body}");
        body
    }

    async fn conversation_count(&self) -> usize {
        self.rest("GET", "Conversations?PageSize=100", &[]).await["conversations"].as_array().expect("list").len()
    }

    /// Drift: Twilio's own default role ("service user", which may create and join) back as the
    /// service's default for new users, as in a service nobody set up.
    async fn reopen_service_role(&self) {
        let roles = self.rest("GET", "Roles", &[]).await;
        let open = roles["roles"]
            .as_array()
            .expect("roles")
            .iter()
            .find(|r| r["friendly_name"] == "service user")
            .expect("Twilio's default role")["sid"]
            .as_str()
            .expect("sid")
            .to_owned();
        self.rest("POST", "Configuration", &[("DefaultChatServiceRoleSid", &open)]).await;
    }

    async fn message_sids(&self, conversation: &str) -> Vec<String> {
        let listed = self.rest("GET", &format!("Conversations/{conversation}/Messages"), &[]).await;
        let messages = listed["messages"].as_array().expect("messages");
        messages.iter().map(|m| m["sid"].as_str().expect("sid").to_owned()).collect()
    }

    async fn asset(&self, id: &str, owner: &str) {
        let status = self
            .admin(
                "PUT",
                &format!("/admin/assets/{id}"),
                Some(json!({"owner": owner, "type": "document", "name": "Plan"})),
            )
            .await;
        assert_eq!(status, 201);
    }

    async fn share(&self, asset: &str, owner: &str, with: &str) {
        let answer = self
            .call("PUT", &format!("/assets/{asset}/grants/user:{with}"), owner, Some(json!({"role": "reader"})))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Answer { status, retry_after, body }
}

fn id(s: &str) -> Identity {
    Identity::try_from(s).expect("identity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_user_cannot_create_or_join_through_the_sdk() {
    let dev = Dev::start(&[]);
    let alice_bob =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(alice_bob.status, 201, "{}", alice_bob.body);
    let sid = alice_bob.body["sid"].as_str().expect("sid").to_owned();

    let mallory = dev.sdk("mallory").await;
    mallory.connect().await.expect("an SDK connects with chatgate's token");
    let created = mallory.create_conversation(Some("mine"), None).await.expect_err("no createConversation");
    assert_eq!((created.status(), created.code()), (Some(403), Some(50107)));
    let joined = mallory.join(&sid).await.expect_err("no joinConversation");
    assert_eq!((joined.status(), joined.code()), (Some(403), Some(50107)));
    let read = mallory.messages(&sid).await.expect_err("not a participant");
    assert_eq!(read.status(), Some(403));
    // The user Twilio made on mallory's first connect got chatgate's role, not Twilio's default.
    let user = dev.rest("GET", "Users/mallory", &[]).await;
    let role = dev.rest("GET", &format!("Roles/{}", user["role_sid"].as_str().expect("role")), &[]).await;
    assert_eq!(role["friendly_name"], "chatgate user");
    assert_eq!(role["permissions"], json!(["editOwnUserInfo"]));
    // And a participant cannot add anyone, even to a conversation they are in.
    let alice = dev.sdk("alice").await;
    let added = alice.add_participant(&sid, "mallory").await.expect_err("no addParticipant");
    assert_eq!((added.status(), added.code()), (Some(403), Some(50107)));
    assert_eq!(dev.conversation_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_twilio_made_with_another_role_are_given_chatgates_when_chatgate_meets_them() {
    let dev = Dev::start(&[]);
    dev.reopen_service_role().await;
    let mallory = dev.sdk("mallory").await;
    mallory.connect().await.expect("connect");
    let user = dev.rest("GET", "Users/mallory", &[]).await;
    let role = dev.rest("GET", &format!("Roles/{}", user["role_sid"].as_str().expect("role")), &[]).await;
    assert_eq!(role["friendly_name"], "service user", "the drift is real");
    let joined =
        dev.call("POST", "/conversations", "mallory", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    let user = dev.rest("GET", "Users/mallory", &[]).await;
    let role = dev.rest("GET", &format!("Roles/{}", user["role_sid"].as_str().expect("role")), &[]).await;
    assert_eq!(role["friendly_name"], "chatgate user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guard_refuses_a_conversation_a_client_creates_when_the_role_allows_it() {
    let dev = Dev::start(&[]);
    dev.reopen_service_role().await;
    let mallory = dev.sdk("mallory").await;
    let refused = mallory.create_conversation(Some("squat"), None).await.expect_err("onConversationAdd refused");
    assert_eq!((refused.status(), refused.code()), (Some(403), Some(50050)));
    assert_eq!(dev.conversation_count().await, 0, "nothing was created");
    // Nor does a role that may join get mallory into Alice and Bob's conversation by its SID.
    let direct =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    let sid = direct.body["sid"].as_str().expect("sid").to_owned();
    let eve = dev.sdk("eve").await;
    let joined = eve.join(&sid).await.expect_err("onParticipantAdd refused");
    assert_eq!((joined.status(), joined.code()), (Some(403), Some(50050)));
    let participants = dev.rest("GET", &format!("Conversations/{sid}/Participants"), &[]).await;
    assert_eq!(participants["participants"].as_array().expect("list").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_anyone_can_compute_are_not_chatgates_and_a_taken_name_is_refused() {
    let dev = Dev::start(&[]);
    // A name computed from public ids only (v1.1's scheme): squatting it gains nothing.
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in ["alice", "bob"] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let public = format!("direct:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref()));
    dev.rest("POST", "Conversations", &[("UniqueName", &public), ("Attributes", r#"{"type":"direct"}"#)]).await;
    let direct =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(direct.status, 201, "{}", direct.body);
    assert_ne!(direct.body["unique_name"], public.as_str());

    // Someone who does know a name (here the public development key's) and takes it first.
    let names = ConversationNames::development();
    let taken = names.asset(&AssetId::try_from("a-1").expect("asset"));
    dev.rest("POST", "Conversations", &[("UniqueName", &taken), ("Attributes", r#"{"topic":"mine"}"#)]).await;
    dev.asset("a-1", "alice").await;
    let refused = dev.call("POST", "/conversations", "alice", Some(json!({"type": "asset", "asset_id": "a-1"}))).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["code"], "conflict");
    // Attributes that claim chatgate's format but another asset are not adopted either.
    let other = names.direct(&id("carol"), &id("dave"));
    dev.rest(
        "POST",
        "Conversations",
        &[("UniqueName", &other), ("Attributes", r#"{"type":"asset","asset_id":"a-1"}"#)],
    )
    .await;
    let refused =
        dev.call("POST", "/conversations", "carol", Some(json!({"type": "direct", "participant": "dave"}))).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_nobody_and_read_the_same_for_an_asset_that_does_not_exist() {
    let dev = Dev::start(&[]);
    dev.asset("a-1", "alice").await;
    dev.share("a-1", "alice", "bob").await;
    let ask = |who: &'static str, asset: &'static str, with: &'static str| {
        let dev = &dev;
        async move {
            dev.call(
                "POST",
                "/conversations",
                who,
                Some(json!({"type": "asset", "asset_id": asset, "participants": [with]})),
            )
            .await
        }
    };
    let stranger = ask("carol", "a-1", "alice").await;
    let missing = ask("carol", "a-404", "alice").await;
    assert_eq!((stranger.status, missing.status), (403, 403));
    assert_eq!(stranger.body, missing.body, "no oracle for which assets exist");
    assert!(!stranger.body.to_string().contains("alice"));
    // A reader learns no one else's access.
    let reader = ask("bob", "a-1", "carol").await;
    assert_eq!(reader.status, 403);
    assert!(!reader.body.to_string().contains("carol"), "{}", reader.body);
    // The owner, who may list the grants anyway, is told whom.
    let owner = ask("alice", "a-1", "carol").await;
    assert_eq!(owner.status, 403);
    assert!(owner.body["detail"].as_str().expect("detail").contains("carol"), "{}", owner.body);
    assert_eq!(dev.conversation_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboarding_is_a_state_that_holds_until_lifted() {
    let dev = Dev::start(&[]);
    dev.asset("a-1", "alice").await;
    dev.share("a-1", "alice", "bob").await;
    let direct =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    let sid = direct.body["sid"].as_str().expect("sid").to_owned();

    assert_eq!(dev.admin("DELETE", "/admin/users/bob", None).await, 204);
    // Nobody can add them back, not even into a conversation they were in.
    let again =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(again.status, 403, "{}", again.body);
    assert!(!again.body.to_string().contains("bob"));
    let own = dev.call("POST", "/conversations", "bob", Some(json!({"type": "direct", "participant": "alice"}))).await;
    assert_eq!(own.status, 403);
    // A token still mints (POST /token is network-free) but opens nothing.
    let bob = dev.sdk("bob").await;
    assert_eq!(bob.messages(&sid).await.expect_err("no longer a participant").status(), Some(403));
    assert_eq!(bob.join(&sid).await.expect_err("cannot join").status(), Some(403));
    assert_eq!(bob.create_conversation(None, None).await.expect_err("cannot create").status(), Some(403));
    let access = dev.call("GET", "/assets/a-1/access", "bob", None).await;
    assert_eq!(access.body["role"], "none");

    assert_eq!(dev.admin("PUT", "/admin/users/bob", None).await, 204);
    let back = dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let access = dev.call("GET", "/assets/a-1/access", "bob", None).await;
    assert_eq!(access.body["role"], "none", "grants stay deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_new_conversations_runs_into_the_budget_and_creates_nothing_past_it() {
    let dev = Dev::start(&[("USER_NEW_CONVERSATIONS_PER_MINUTE", "3")]);
    let existing =
        dev.call("POST", "/conversations", "alice", Some(json!({"type": "direct", "participant": "mallory"}))).await;
    assert_eq!(existing.status, 201);
    for i in 0..3 {
        let group = dev
            .call(
                "POST",
                "/conversations",
                "mallory",
                Some(json!({"type": "group", "friendly_name": format!("spam {i}")})),
            )
            .await;
        assert_eq!(group.status, 201, "{}", group.body);
    }
    let spent =
        dev.call("POST", "/conversations", "mallory", Some(json!({"type": "group", "friendly_name": "spam"}))).await;
    assert_eq!(spent.status, 429, "{}", spent.body);
    assert_eq!(spent.body["code"], "rate_limited");
    assert!(spent.retry_after.is_some_and(|s| (1..=60).contains(&s)), "{:?}", spent.retry_after);
    assert_eq!(dev.conversation_count().await, 4);
    // Joining what exists spends nothing.
    let join =
        dev.call("POST", "/conversations", "mallory", Some(json!({"type": "direct", "participant": "alice"}))).await;
    assert_eq!(join.status, 200, "{}", join.body);
    // Another user has a budget of their own.
    let other = dev.call("POST", "/conversations", "bob", Some(json!({"type": "group", "friendly_name": "ok"}))).await;
    assert_eq!(other.status, 201);
    let crowd: Vec<String> = (0..51).map(|i| format!("u-{i}")).collect();
    let crowd = dev
        .call(
            "POST",
            "/conversations",
            "bob",
            Some(json!({"type": "group", "friendly_name": "x", "participants": crowd})),
        )
        .await;
    assert_eq!(crowd.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_look_like_others_are_refused_everywhere_they_enter() {
    let dev = Dev::start(&[]);
    for who in ["alice\u{200b}", "e\u{301}", "a\u{202e}b", "\u{e000}x"] {
        let token = dev.call("POST", "/token", who, None).await;
        assert_eq!(token.status, 400, "session sub {who:?}: {}", token.body);
    }
    let body = json!({"type": "direct", "participant": "bob\u{200b}"});
    assert_eq!(dev.call("POST", "/conversations", "alice", Some(body)).await.status, 400);
    let path = dev.call("GET", "/assets/a%E2%80%8B1/access", "alice", None).await;
    assert_eq!(path.status, 400, "{}", path.body);
    assert_eq!(dev.admin("PUT", "/admin/groups/g%E2%80%8B/members/alice", None).await, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_published_past_an_unreachable_guard_is_deleted_by_the_backstop() {
    let dev = Dev::start(&[]);
    dev.asset("a-1", "ana").await;
    dev.asset("a-2", "ana").await;
    let direct = dev.call("POST", "/conversations", "ana", Some(json!({"type": "direct", "participant": "bob"}))).await;
    assert_eq!(direct.status, 201, "{}", direct.body);
    let sid = direct.body["sid"].as_str().expect("sid").to_owned();
    let bob = dev.sdk("bob").await;
    let reference = json!({"assetRef": "a-2", "assetType": "document", "permissions": "inherited"}).to_string();
    // While the guard answers, bob cannot reference a-2, which he cannot read.
    let refused = bob.send_message(&sid, "see a-2", Some(&reference)).await.expect_err("the pre-event refuses");
    assert_eq!((refused.status(), refused.code()), (Some(403), Some(50050)));

    // Now the pre-event cannot reach the guard (a network fault: Twilio lets the message through,
    // as it does one not answered in 5 s); the post-events still can.
    // Port 0 is never a listening port: every connection to it is refused at once, whatever
    // else runs on this machine.
    let url = "http://127.0.0.1:0/twilio/events";
    dev.rest("POST", "Configuration/Webhooks", &[("PreWebhookUrl", url)]).await;
    let published = bob.send_message(&sid, "see a-2", Some(&reference)).await.expect("published past the guard");
    let published_sid = published["sid"].as_str().expect("sid").to_owned();
    let plain = bob.send_message(&sid, "hello", None).await.expect("a message without a reference");

    // The post-event reaches chatgate, which deletes the message it would have refused.
    let mut left = dev.message_sids(&sid).await;
    for _ in 0..100 {
        if !left.contains(&published_sid) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        left = dev.message_sids(&sid).await;
    }
    assert_eq!(left, [plain["sid"].as_str().expect("sid")], "the refused message is deleted, the other stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_one_tenant_never_reaches_another_tenants_conversations() {
    let dev = Dev::start(&[("TENANT_CLAIM", TENANT_CLAIM)]);
    // Both organisations have an ana and a bob, and each pair talks.
    let mut sids = Vec::new();
    for tenant in ["acme", "globex"] {
        let direct = dev
            .call_in(tenant, "POST", "/conversations", "ana", Some(json!({"type": "direct", "participant": "bob"})))
            .await;
        assert_eq!(direct.status, 201, "{}", direct.body);
        sids.push(direct.body["sid"].as_str().expect("sid").to_owned());
    }
    let (acme, globex) = (&sids[0], &sids[1]);
    let acme_ana = dev.sdk_in("acme", "ana").await;
    acme_ana.send_message(acme, "acme only", None).await.expect("acme's ana writes in acme's conversation");

    // globex's bob, holding the token chatgate gave him, reads and joins nothing of acme's.
    let bob = dev.sdk_in("globex", "bob").await;
    bob.connect().await.expect("connect");
    assert_eq!(bob.messages(acme).await.expect_err("not a participant").status(), Some(403));
    assert_eq!(bob.join(acme).await.expect_err("no joinConversation").status(), Some(403));
    assert!(bob.messages(globex).await.is_ok(), "his own tenant's conversation he reads");
    // Even with the service's role drifted open, the guard refuses him acme's conversation.
    dev.reopen_service_role().await;
    let mallory = dev.sdk_in("globex", "mallory").await;
    let joined = mallory.join(acme).await.expect_err("onParticipantAdd refused");
    assert_eq!((joined.status(), joined.code()), (Some(403), Some(50050)));
    // Through chatgate's routes, globex's users name only globex's: bob's direct conversation
    // with "ana" is the one with globex's ana.
    let again = dev
        .call_in("globex", "POST", "/conversations", "bob", Some(json!({"type": "direct", "participant": "ana"})))
        .await;
    assert_eq!((again.status, again.body["sid"].as_str()), (200, Some(globex.as_str())), "{}", again.body);
    // The un-prefixed admin routes are gone; each tenant's are under its prefix.
    assert_eq!(dev.admin("PUT", "/admin/users/bob", None).await, 404);
    assert_eq!(dev.admin("PUT", "/admin/tenants/acme/users/bob", None).await, 204);
}
