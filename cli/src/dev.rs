//! `chatgate dev`: every route on one port, with the same handlers and configuration names as
//! the Lambda functions. Unconfigured, it runs on embedded defaults: a generated session secret,
//! dummy Twilio credentials, and CORS for any loopback origin.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use access::handler::AccessState;
use admin::handler::{AdminAuth, AdminState};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chatgate::acl::{AclReader, CatalogWriter, ConversationsStore, DynamoStore, ExpiryIndex, GrantWriter, MemoryStore};
use chatgate::config::{ConfigError, Settings, TwilioSecrets};
use chatgate::domain::{Tenant, TenantId};
use chatgate::http::{ApiError, CorsPolicy};
use chatgate::reconcile::Reconciler;
use conversations::handler::ConversationsState;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use lambda_http::{Body, Request, Response};
use message_guard::handler::GuardState;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sharing::handler::SharingState;
use token::handler::{TokenConfig, TokenState};
use tokio::net::TcpListener;
use twilio_standin::{StandIn, StandInConfig};

use chatgate::acl::follow::StreamFollower;
use chatgate::reconcile::local as reconcile;

/// The local server reads bodies up to API Gateway's own limit would be 10 MB; 1 MiB is plenty.
const MAX_BODY_BYTES: usize = 1024 * 1024;
const DEV_USER: &str = "dev-user";
/// The organisations of a tenant deployment's local server (TENANT_CLAIM set): two, with the
/// same ids, to see that neither reaches the other.
const DEV_TENANTS: [&str; 2] = ["acme", "globex"];

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Seed a few documents, shares and conversations to try the example SPA on.
    #[arg(long)]
    demo: bool,
}

/// Every route the local server serves, each with the state its Lambda function would build,
/// over one store `S` (in memory, or the DynamoDB table when `TABLE_NAME` is set).
#[derive(Debug)]
struct Routes<S> {
    token: TokenState,
    access: AccessState<S>,
    sharing: SharingState<S>,
    admin: AdminState<S>,
    conversations: ConversationsState<S>,
    guard: GuardState<S>,
}

impl<S: AclReader + GrantWriter + CatalogWriter + ConversationsStore> Routes<S> {
    fn new(
        token: TokenState,
        store: Arc<S>,
        settings: &Settings,
        secrets: &TwilioSecrets,
        admin_key: SecretString,
    ) -> Result<Self, ConfigError> {
        let mut access = AccessState::from_settings(settings, store.clone())?;
        let mut sharing = SharingState::from_settings(settings, store.clone())?;
        let mut conversations = ConversationsState::from_settings(settings, secrets, store.clone())?;
        let guard = GuardState::from_settings(settings, secrets, store.clone())?;
        // One session check (one JWKS cache) and one CORS policy for every route, as API Gateway's
        // one authorizer and CORS configuration would.
        (access.sessions, access.cors) = (token.sessions.clone(), token.cors.clone());
        (sharing.sessions, sharing.cors) = (token.sessions.clone(), token.cors.clone());
        (conversations.sessions, conversations.cors) = (token.sessions.clone(), token.cors.clone());
        let admin = AdminState::from_settings(AdminAuth::DevKey(admin_key), store, settings, secrets)?;
        Ok(Self { token, access, sharing, admin, conversations, guard })
    }

    /// Dispatches on the path's first segments, as API Gateway's routes would.
    async fn serve(&self, req: Request) -> Response<Body> {
        let path = req.uri().path().to_owned();
        let mut segments = path.trim_start_matches('/').split('/');
        match (segments.next(), segments.next(), segments.next()) {
            (Some("token"), None, _) => token::handler::handle(&self.token, req).await,
            (Some("conversations"), None, _) => conversations::handler::handle(&self.conversations, req).await,
            (Some("twilio"), Some("events"), None) => message_guard::handler::handle(&self.guard, req).await,
            (Some("assets"), Some(_), Some("access")) | (Some("access"), Some("check"), None) => {
                access::handler::handle(&self.access, req).await
            }
            (Some("assets"), Some(_), Some("grants")) => sharing::handler::handle(&self.sharing, req).await,
            (Some("admin"), _, _) => admin::handler::handle(&self.admin, req).await,
            _ => {
                let cors = self.token.cors.as_ref();
                chatgate::http::respond(cors, req, |_| async { Err(ApiError::NotFound("no such route".into())) }).await
            }
        }
    }
}

/// Fills in the embedded defaults for whatever is not configured; returns the names it set.
fn apply_defaults(settings: &mut Settings, on_standin: bool) -> Result<Vec<&'static str>, ConfigError> {
    match settings.get("AUTH_MODE") {
        None | Some("jwt") => settings.set_default("AUTH_MODE", "jwt"),
        Some(other) => {
            return Err(ConfigError::new(
                "AUTH_MODE",
                format!("the local server verifies sessions itself: use jwt, not `{other}`"),
            ));
        }
    }
    let mut defaulted = Vec::new();
    let mut default = |settings: &mut Settings, name: &'static str, value: String| {
        if settings.get(name).is_none() {
            settings.set_default(name, value);
            defaulted.push(name);
        }
    };
    if settings.get("JWT_JWKS_URL").is_none() {
        default(settings, "JWT_HS256_SECRET", random_secret());
    }
    default(settings, "JWT_ISSUER", "chatgate-dev".into());
    default(settings, "JWT_AUDIENCE", "chatgate".into());
    default(settings, "TWILIO_ACCOUNT_SID", format!("AC{}", "0".repeat(32)));
    default(settings, "TWILIO_API_KEY_SID", format!("SK{}", "0".repeat(32)));
    default(settings, "TWILIO_API_KEY_SECRET", random_secret());
    default(settings, "TWILIO_CONVERSATIONS_SERVICE_SID", format!("IS{}", "0".repeat(32)));
    if settings.get("TWILIO_SECRET_ARN").is_none() {
        default(settings, "TWILIO_AUTH_TOKEN", random_secret());
    }
    // The public development key only in front of the stand-in: against a real Twilio service the
    // key must be given (CONVERSATION_NAME_KEY or its secret), or the start stops naming it.
    if on_standin && settings.get("CONVERSATION_NAME_KEY_SECRET_ARN").is_none() {
        default(settings, "CONVERSATION_NAME_KEY", chatgate::domain::DEVELOPMENT_NAME_KEY.into());
    }
    Ok(defaulted)
}

/// Starts the Conversations stand-in with the (defaulted) Twilio settings, points
/// `TWILIO_API_BASE` at it, and sets it up closed as `chatgate twilio setup` would a Twilio
/// service (its webhooks at this server, `TWILIO_USER_ROLE_SID` its `chatgate user` role), so the
/// SDK face it also serves behaves as a client would find Twilio in production.
async fn start_standin(
    settings: &mut Settings,
    defaulted: &mut Vec<&'static str>,
) -> Result<StandIn, Box<dyn std::error::Error>> {
    let config = StandInConfig::new(
        settings.required("TWILIO_ACCOUNT_SID")?,
        settings.required("TWILIO_API_KEY_SID")?,
        settings.required("TWILIO_API_KEY_SECRET")?,
        settings.required("TWILIO_CONVERSATIONS_SERVICE_SID")?,
    )
    .with_auth_token(settings.required("TWILIO_AUTH_TOKEN")?);
    let standin = StandIn::try_start(config).await?;
    settings.set_default("TWILIO_API_BASE", standin.base_url.clone());
    defaulted.push("TWILIO_API_BASE");
    let twilio =
        chatgate::twilio::rest::ConversationsClient::from_settings(settings, &TwilioSecrets::from_env(settings))?;
    let webhook_url = settings.required("TWILIO_WEBHOOK_URL")?.to_owned();
    let deadline = chatgate::clock::Deadline::after(std::time::Duration::from_secs(10));
    let (roles, _) = chatgate::twilio::setup::apply(&twilio, &webhook_url, deadline).await?;
    if settings.get("TWILIO_USER_ROLE_SID").is_none() {
        settings.set_default("TWILIO_USER_ROLE_SID", roles.user_role_sid);
        defaulted.push("TWILIO_USER_ROLE_SID");
    }
    Ok(standin)
}

fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub async fn run(args: DevArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut settings = Settings::from_env();
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
    let addr = listener.local_addr()?;
    // Twilio would sign the URL it calls; locally that is this server's own.
    settings.set_default("TWILIO_WEBHOOK_URL", format!("http://{addr}/twilio/events"));
    // No Twilio credentials: an in-process stand-in for the Conversations REST API.
    let use_standin = settings.get("TWILIO_API_KEY_SECRET").is_none() && settings.get("TWILIO_SECRET_ARN").is_none();
    let mut defaulted = apply_defaults(&mut settings, use_standin)?;
    // Settings are checked (and named when wrong) before anything starts on them.
    chatgate::config::MintConfig::from_settings(&settings)?;
    let _standin = if use_standin { Some(start_standin(&mut settings, &mut defaulted).await?) } else { None };
    let secrets = crate::ops::twilio_secrets(&settings).await?;
    let mut token = TokenState::new(TokenConfig::from_settings(&settings)?, &secrets)?;
    if token.cors.is_none() {
        token.cors = Some(CorsPolicy::Loopback);
    }
    let admin_key = settings.get("CHATGATE_DEV_ADMIN_KEY").map_or_else(random_secret, str::to_owned);
    let admin_key = SecretString::from(admin_key);
    let twilio = chatgate::twilio::rest::ConversationsClient::from_settings(&settings, &secrets)?;
    let names = secrets.conversation_names()?;
    let tenants = chatgate::config::tenants(&settings)?;
    let pass_every = std::time::Duration::from_secs(u64::from(settings.count("FULL_RECONCILE_SECONDS", 300)?).max(1));
    match settings.get("TABLE_NAME") {
        Some(_) => {
            let aws = chatgate::aws::default_chain().await;
            let store = Arc::new(DynamoStore::new(
                &aws,
                chatgate::config::table_name(&settings)?,
                DynamoStore::layout(&settings)?,
            ));
            let rule = Reconciler::new(store.clone(), twilio, names, Arc::new(chatgate::clock::SystemClock));
            let rule = Arc::new(rule.with_tenants(tenants));
            let changes = match StreamFollower::from_now(&aws, &store).await {
                Ok(follower) => {
                    tokio::spawn(reconcile::follow_table(rule.clone(), follower));
                    "the table's stream"
                }
                Err(e) => {
                    eprintln!("warning: revocations will not reach conversations: {}", chatgate::http::ErrorChain(&e));
                    "nothing (the table has no stream)"
                }
            };
            tokio::spawn(reconcile::sweep_expiries(rule.clone()));
            tokio::spawn(reconcile::full_passes(rule, pass_every));
            let routes = Routes::new(token, store, &settings, &secrets, admin_key.clone())?;
            let what = Backing { store: "the DynamoDB table TABLE_NAME", changes, demo: args.demo };
            serve(routes, listener, &settings, &defaulted, &admin_key, what).await
        }
        None => {
            let store = Arc::new(MemoryStore::new());
            let rule = Reconciler::new(store.clone(), twilio, names, Arc::new(chatgate::clock::SystemClock));
            let rule = Arc::new(rule.with_tenants(tenants));
            tokio::spawn(reconcile::follow_memory(rule.clone(), store.changes()));
            tokio::spawn(reconcile::sweep_expiries(rule.clone()));
            tokio::spawn(reconcile::full_passes(rule, pass_every));
            let routes = Routes::new(token, store, &settings, &secrets, admin_key.clone())?;
            let what = Backing {
                store: "an in-memory store (set TABLE_NAME for DynamoDB)",
                changes: "the in-memory store's changes",
                demo: args.demo,
            };
            serve(routes, listener, &settings, &defaulted, &admin_key, what).await
        }
    }
}

/// What the server runs on, for the banner, and whether to seed the demonstration.
struct Backing {
    store: &'static str,
    changes: &'static str,
    demo: bool,
}

async fn serve<S: AclReader + GrantWriter + CatalogWriter + ExpiryIndex + ConversationsStore + 'static>(
    routes: Routes<S>,
    listener: TcpListener,
    settings: &Settings,
    defaulted: &[&str],
    admin_key: &SecretString,
    backing: Backing,
) -> Result<(), Box<dyn std::error::Error>> {
    let routes = Arc::new(routes);
    let addr = listener.local_addr()?;
    let tenants: Vec<Tenant> = match chatgate::config::tenants(settings)? {
        true => DEV_TENANTS.iter().map(|t| TenantId::try_from(*t).map(Tenant::Of)).collect::<Result<_, _>>()?,
        false => vec![Tenant::Single],
    };
    print_banner(settings, addr, defaulted, &tenants)?;
    println!("permissions: {}", backing.store);
    println!(
        "access over time: lost read access leaves the asset's conversation, following {}; expiries swept every second; every asset conversation re-decided every {} s (FULL_RECONCILE_SECONDS)",
        backing.changes,
        settings.get("FULL_RECONCILE_SECONDS").unwrap_or("300")
    );
    println!("twilio: {}", settings.get("TWILIO_API_BASE").unwrap_or(chatgate::twilio::rest::DEFAULT_API_BASE));
    if defaulted.contains(&"TWILIO_API_BASE") {
        // The stand-in's credentials are made up for this process: scripts may seed messages with them.
        println!(
            "twilio stand-in credentials (for seeding messages): {} {} {}",
            settings.required("TWILIO_CONVERSATIONS_SERVICE_SID")?,
            settings.required("TWILIO_API_KEY_SID")?,
            settings.required("TWILIO_API_KEY_SECRET")?
        );
    }
    if backing.demo {
        for tenant in &tenants {
            let summary = crate::demo::seed(
                routes.admin.catalog.store(),
                &routes.conversations.conversations,
                routes.admin.catalog.rule().twilio(),
                DEV_USER,
                tenant,
            )
            .await?;
            println!("{summary}");
        }
    }
    let key_note =
        if settings.get("CHATGATE_DEV_ADMIN_KEY").is_some() { "CHATGATE_DEV_ADMIN_KEY" } else { "generated" };
    println!(
        "admin key ({key_note}; the /admin routes take `Authorization: Bearer <key>`): {}",
        admin_key.expose_secret()
    );
    let prefix = tenants[0].id().map_or(String::new(), |t| format!("/tenants/{t}"));
    println!(
        "try: curl -sS -X PUT {}/admin{prefix}/assets/a-1 -H 'Authorization: Bearer {}' -H 'content-type: application/json' -d '{{\"owner\":\"{DEV_USER}\",\"type\":\"document\",\"name\":\"Plan\"}}'",
        format_args!("http://{addr}"),
        admin_key.expose_secret()
    );
    println!("ready");

    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(to_hyper(handle(&routes, req).await)) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
}

async fn handle<S: AclReader + GrantWriter + CatalogWriter + ConversationsStore>(
    routes: &Routes<S>,
    req: hyper::Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return ApiError::PayloadTooLarge(format!("the body is larger than {MAX_BODY_BYTES} bytes"))
                .into_response();
        }
    };
    let body = if bytes.is_empty() { Body::Empty } else { Body::Binary(bytes.to_vec()) };
    let started = std::time::Instant::now();
    let (method, path) = (parts.method.clone(), parts.uri.path().to_owned());
    let response = routes.serve(Request::from_parts(parts, body)).await;
    tracing::info!(%method, path, status = response.status().as_u16(), ms = started.elapsed().as_secs_f64() * 1e3, "request");
    response
}

fn to_hyper(response: Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

fn print_banner(
    settings: &Settings,
    addr: SocketAddr,
    defaulted: &[&str],
    tenants: &[Tenant],
) -> Result<(), ConfigError> {
    let base = format!("http://{addr}");
    println!("chatgate dev listening on {base}");
    if !defaulted.is_empty() {
        println!("embedded defaults for: {}", defaulted.join(", "));
    }
    match settings.get("JWT_HS256_SECRET") {
        Some(secret) => {
            let (issuer, audience) = (settings.required("JWT_ISSUER")?, settings.required("JWT_AUDIENCE")?);
            let generated = defaulted.contains(&"JWT_HS256_SECRET");
            if generated {
                println!("development session secret (JWT_HS256_SECRET): {secret}");
            }
            let claim = settings.get("TENANT_CLAIM");
            let mut sessions = Vec::new();
            for tenant in tenants {
                let organisation = claim.zip(tenant.id().map(TenantId::as_str));
                let session = crate::session::sign(secret, issuer, audience, DEV_USER, organisation, 86_400)?;
                let of = tenant.id().map_or(String::new(), |t| format!(" of tenant {t}"));
                println!("session token for `{DEV_USER}`{of} (24 h): {session}");
                sessions.push(session);
            }
            println!("try: curl -sS -X POST {base}/token -H 'Authorization: Bearer {}'", sessions[0]);
            // A secret the developer configured is theirs: never echo it.
            let env = if generated {
                format!("JWT_HS256_SECRET={secret} JWT_ISSUER={issuer} JWT_AUDIENCE={audience} ")
            } else {
                String::new()
            };
            let tenant = tenants[0].id().map_or(String::new(), |t| format!(" --tenant {t}"));
            println!(
                "another user: {env}{}chatgate session --sub u-2{tenant}",
                claim.map_or(String::new(), |c| format!("TENANT_CLAIM={c} "))
            );
        }
        None => println!("sessions are verified against JWT_JWKS_URL: use a token from your identity provider"),
    }
    Ok(())
}
