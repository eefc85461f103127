//! A stateful, in-process stand-in for the Twilio Conversations v1 endpoints chatgate uses, for
//! the test suite and for the local dev server when no Twilio credentials are set.
//!
//! **The REST face** serves one Conversations service under
//! `http://127.0.0.1:PORT/v1/Services/{ServiceSid}/…`, with basic auth (the API key), Twilio's
//! paths, form-encoded parameters, response shapes, paging `meta` and error bodies
//! (`{"code", "message", "more_info", "status"}`), and keeps what is created: conversations (by
//! SID or unique name), participants, messages with their read horizons, users, roles, the
//! service configuration (`/Configuration`: the default roles of new users, participants and
//! conversation creators) and the webhook configuration (`/Configuration/Webhooks`). The same
//! service answers as the account's default one under `/v1/Conversations/…`, `/v1/Users/…` and
//! `/v1/Roles/…`. It keeps Twilio's limits on participants per conversation (400 code 50417) and
//! conversations per identity (400 code 50214). Tests can inject faults (queued, or by time with
//! [`StandIn::outage`]), lose responses of requests that were carried out, slow every request or
//! chosen ones down, turn on Twilio's rate limits, read back every request, and inspect or seed
//! the state directly. REST calls never fire pre-event webhooks (Twilio's rule), and fire
//! post-event webhooks (`Source=API`) only when they carry `X-Twilio-Webhook-Enabled: true`.
//!
//! **The SDK face** ([`sdk`]) serves, on the same listener under `/sdk/v1/…`, what a
//! Conversations SDK does with an access token, so a test (another process included) can play a
//! client, a hostile one included, holding a token chatgate minted. A request carries
//! `Authorization: Bearer <token>`: an HS256 JWT signed with the API key secret, header
//! `cty: twilio-fpa;v=1`, `iss` the API key SID, `sub` the account SID, `grants.identity`,
//! `grants.chat.service_sid` this service, `exp` in the future and `nbf` (if any) not; anything
//! else is 401 code 20101. Twilio creates the user of a new identity on its first request, with
//! the service's default role; every action is then checked against the user's service role and
//! the participant's conversation role as they are at that moment (403 code 50107), and only a
//! participant can read a conversation. Each write is offered to the service's pre-event webhook
//! (`PreWebhookUrl`, when its `Filters` name the event), signed with
//! [`StandInConfig::auth_token`] as Twilio signs (`X-Twilio-Signature`): a 2xx answer lets it
//! through, any other status refuses it (403 code 50050), and no answer within
//! [`StandInConfig::pre_event_timeout`] (Twilio's 5 s by default) lets it through unchanged.
//! After a write, the post-event webhook (`PostWebhookUrl`) is told in the background. Every
//! delivery is kept for [`StandIn::webhook_deliveries`]. The SDK face's requests are not part of
//! [`StandIn::requests`], faults, outages, lost responses, delays or the in-flight gauge: those
//! describe chatgate's REST calls.
//!
//! [`harness`] holds the server plumbing it shares with chatgate's other test servers.
//!
//! ```no_run
//! # async fn demo() {
//! use twilio_standin::{Fault, StandIn, StandInConfig};
//! let twilio = StandIn::start(StandInConfig::default().with_auth_token("webhook-signing-token")).await;
//! // Point the REST client at `twilio.base_url` with `twilio.api_key_sid` / `twilio.api_key_secret`.
//! twilio.fail_next(1, Fault::TOO_MANY_REQUESTS, Some("POST /Participants"));
//! // Play an SDK user with a token chatgate minted for it.
//! # let token = String::new();
//! let mallory = twilio.sdk_client(&token);
//! let refused = mallory.create_conversation(Some("asset:42"), None).await;
//! # }
//! ```

mod error;
mod faults;
pub mod harness;
mod model;
mod outbound;
mod paging;
pub mod sdk;
mod server;
mod state;
mod webhooks;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use error::{Rejection, codes};
pub use model::{Conversation, Message, Participant, Role, RoleKind, ServiceConfiguration, User, Webhooks};
pub use webhooks::{Delivery, Outcome, Phase, SIGNATURE_HEADER, signature};

use faults::{Outages, RequestFilter, SlowPaths};
use harness::{Delay, FaultRules, InFlight, Server, lock};
use state::{Form, State, is_sid, new_sid};

/// How long Twilio waits for a pre-event webhook before publishing the action unchanged.
pub const PRE_EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Twilio's limit, in actions per second, per conversation (participant and message writes) and
/// per service (conversation, user and role creates); give it to [`StandInConfig::with_rate_limit`].
pub const TWILIO_RATE_LIMIT: u32 = 30;

/// Twilio's limit on the participants of one conversation; past it, adding one is refused with
/// 400 code 50417 ([`codes::PARTICIPANT_LIMIT`]).
pub const TWILIO_PARTICIPANTS_PER_CONVERSATION: usize = 1000;

/// Twilio's limit on the conversations one identity takes part in; past it, adding the identity
/// to another is refused with 400 code 50214 ([`codes::USER_CONVERSATION_LIMIT`]).
pub const TWILIO_CONVERSATIONS_PER_IDENTITY: usize = 1000;

/// What the stand-in serves and to whom.
#[derive(Clone)]
pub struct StandInConfig {
    /// `AC` + 32 hex: reported as `account_sid` in every resource.
    pub account_sid: String,
    /// `SK` + 32 hex: the basic-auth username every request must send.
    pub api_key_sid: String,
    /// The basic-auth password every request must send.
    pub api_key_secret: String,
    /// `IS` + 32 hex: the one Conversations service served; any other in a path is a 404.
    pub service_sid: String,
    /// Where to listen; `None` for an ephemeral port on 127.0.0.1.
    pub bind: Option<SocketAddr>,
    /// Actions per second per conversation and per service before 429 (code 20429); `None`
    /// (the default) for no limit.
    pub rate_limit: Option<u32>,
    /// Whether the service starts with Twilio's four default roles (`service admin`,
    /// `service user`, `channel admin`, `channel user`); `service user` and `channel user` are
    /// then the default roles of new users and participants, and `channel admin` that of a
    /// conversation's creator. On by default.
    pub seed_default_roles: bool,
    /// The account's auth token, which signs webhook deliveries (`X-Twilio-Signature`); `None`
    /// (the default) sends them unsigned.
    pub auth_token: Option<String>,
    /// How long a pre-event webhook may take before the action goes through unchanged
    /// ([`PRE_EVENT_TIMEOUT`] by default); post-event deliveries are bounded by it too.
    pub pre_event_timeout: Duration,
    /// The most participants one conversation may have
    /// ([`TWILIO_PARTICIPANTS_PER_CONVERSATION`] by default).
    pub participants_per_conversation: usize,
    /// The most conversations one identity may take part in
    /// ([`TWILIO_CONVERSATIONS_PER_IDENTITY`] by default).
    pub conversations_per_identity: usize,
}

impl Default for StandInConfig {
    /// Fresh random SIDs and secret, an ephemeral port, no rate limit, default roles.
    fn default() -> Self {
        Self {
            account_sid: new_sid("AC"),
            api_key_sid: new_sid("SK"),
            api_key_secret: format!("{:032x}", rand::random::<u128>()),
            service_sid: new_sid("IS"),
            bind: None,
            rate_limit: None,
            seed_default_roles: true,
            auth_token: None,
            pre_event_timeout: PRE_EVENT_TIMEOUT,
            participants_per_conversation: TWILIO_PARTICIPANTS_PER_CONVERSATION,
            conversations_per_identity: TWILIO_CONVERSATIONS_PER_IDENTITY,
        }
    }
}

impl StandInConfig {
    pub fn new(account_sid: &str, api_key_sid: &str, api_key_secret: &str, service_sid: &str) -> Self {
        Self {
            account_sid: account_sid.to_owned(),
            api_key_sid: api_key_sid.to_owned(),
            api_key_secret: api_key_secret.to_owned(),
            service_sid: service_sid.to_owned(),
            ..Self::default()
        }
    }

    pub fn with_bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    pub fn with_rate_limit(mut self, per_second: u32) -> Self {
        self.rate_limit = Some(per_second);
        self
    }

    pub fn without_default_roles(mut self) -> Self {
        self.seed_default_roles = false;
        self
    }

    pub fn with_auth_token(mut self, auth_token: impl Into<String>) -> Self {
        self.auth_token = Some(auth_token.into());
        self
    }

    /// Shortens (or lengthens) Twilio's 5 s, so tests of a silent webhook run quickly.
    pub fn with_pre_event_timeout(mut self, timeout: Duration) -> Self {
        self.pre_event_timeout = timeout;
        self
    }

    /// Lowers (or raises) Twilio's limits of 1,000 participants per conversation and 1,000
    /// conversations per identity, so tests reach them quickly. Every way of adding a participant
    /// keeps them: REST, the SDK face (joining, adding, creating) and [`StandIn::add_participant`].
    pub fn with_limits(mut self, participants_per_conversation: usize, conversations_per_identity: usize) -> Self {
        self.participants_per_conversation = participants_per_conversation;
        self.conversations_per_identity = conversations_per_identity;
        self
    }

    fn check(&self) -> Result<(), StartError> {
        for (name, value, prefix) in [
            ("account_sid", &self.account_sid, "AC"),
            ("api_key_sid", &self.api_key_sid, "SK"),
            ("service_sid", &self.service_sid, "IS"),
        ] {
            if !is_sid(value, prefix) {
                return Err(StartError::Config(format!(
                    "{name} must be {prefix} followed by 32 hex digits, not {value:?}"
                )));
            }
        }
        if self.api_key_secret.is_empty() {
            return Err(StartError::Config("api_key_secret must not be empty".to_owned()));
        }
        Ok(())
    }
}

impl fmt::Debug for StandInConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInConfig")
            .field("account_sid", &self.account_sid)
            .field("api_key_sid", &self.api_key_sid)
            .field("api_key_secret", &"[redacted]")
            .field("service_sid", &self.service_sid)
            .field("bind", &self.bind)
            .field("rate_limit", &self.rate_limit)
            .field("seed_default_roles", &self.seed_default_roles)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "[redacted]"))
            .field("pre_event_timeout", &self.pre_event_timeout)
            .field("participants_per_conversation", &self.participants_per_conversation)
            .field("conversations_per_identity", &self.conversations_per_identity)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid stand-in configuration: {0}")]
    Config(String),
    #[error("the Twilio stand-in could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// An error Twilio answers with that the stand-in would not produce on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    pub code: u32,
}

impl Fault {
    /// 429, code 20429: rate limited, never processed.
    pub const TOO_MANY_REQUESTS: Self = Self { status: 429, code: codes::RATE_LIMITED };
    /// 500, code 20500.
    pub const INTERNAL_ERROR: Self = Self { status: 500, code: codes::INTERNAL_ERROR };
    /// 503, code 20503.
    pub const SERVICE_UNAVAILABLE: Self = Self { status: 503, code: codes::SERVICE_UNAVAILABLE };
    /// 502, code 20502 (the stand-in's choice): what [`StandIn::lose_responses`] answers with.
    pub const BAD_GATEWAY: Self = Self { status: 502, code: codes::BAD_GATEWAY };
}

/// One request as the stand-in received it (faulted and refused ones included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// As sent: percent-encoded, without the query.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// The form body's pairs in order (repeated names repeat); empty for other methods.
    pub form: Vec<(String, String)>,
    /// Lower-case names; the `authorization` value is replaced by `[redacted]`.
    pub headers: Vec<(String, String)>,
    /// The status the stand-in answered with.
    pub status: u16,
}

impl Recorded {
    /// The first form value of `name`.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every form value of `name`, in order.
    pub fn form_values(&self, name: &str) -> Vec<&str> {
        self.form.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `"POST /Participants"` matches POSTs whose path contains `/Participants`; a filter without a
/// leading method matches the path of any method.
fn filter_matches(filter: &str, method: &str, path: &str) -> bool {
    match filter.split_once(' ') {
        Some((m, rest)) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            m == method && path.contains(rest)
        }
        _ => path.contains(filter),
    }
}

/// What the server and the test handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    base_url: String,
    account_sid: String,
    service_sid: String,
    api_key_sid: String,
    api_key_secret: String,
    auth_token: Option<String>,
    pre_event_timeout: Duration,
    state: Mutex<State>,
    deliveries: Mutex<Vec<Delivery>>,
    faults: FaultRules<Fault>,
    outages: Outages,
    /// Requests whose answer is replaced by [`Fault::BAD_GATEWAY`] once they are carried out.
    losses: FaultRules<(), RequestFilter>,
    recorded: Mutex<Vec<Recorded>>,
    in_flight: InFlight,
    delay: Delay,
    slow: SlowPaths,
}

impl Shared {
    /// The fault to answer `method path` with, counted as injected, if a rule matches it.
    fn pick_fault(&self, method: &str, path: &str) -> Option<Fault> {
        self.faults.pick(|filter| filter_matches(filter, method, path)).map(|(fault, _)| fault)
    }

    /// Whether the answer to `method path`, carried out, is to be lost (using up one request of
    /// a [`StandIn::lose_responses`] rule, counted as injected).
    fn pick_loss(&self, method: &str, path: &str) -> bool {
        self.losses.pick(|filter| filter.matches(method, path)).is_some()
    }

    /// What an access token must have been issued for.
    fn issuer(&self) -> sdk::token::Issuer<'_> {
        sdk::token::Issuer {
            account_sid: &self.account_sid,
            api_key_sid: &self.api_key_sid,
            api_key_secret: &self.api_key_secret,
            service_sid: &self.service_sid,
        }
    }
}

/// A running stand-in. Clones share the server and its state; the server stops accepting
/// connections when the last clone is dropped (or its tokio runtime ends).
#[derive(Clone)]
pub struct StandIn {
    /// `http://127.0.0.1:PORT`, no trailing slash: the REST client's base URL.
    pub base_url: String,
    pub addr: SocketAddr,
    pub account_sid: String,
    pub service_sid: String,
    pub api_key_sid: String,
    pub api_key_secret: String,
    shared: Arc<Shared>,
    /// Stops accepting when the last clone drops.
    _server: Arc<Server>,
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.base_url)
            .field("account_sid", &self.account_sid)
            .field("service_sid", &self.service_sid)
            .field("api_key_sid", &self.api_key_sid)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Starts serving on `config.bind` (or an ephemeral port); for tests, where a failure to
    /// start is a broken environment. Use [`StandIn::try_start`] where it should be reported.
    pub async fn start(config: StandInConfig) -> Self {
        match Self::try_start(config).await {
            Ok(standin) => standin,
            Err(e) => panic!("{e}: {:?}", std::error::Error::source(&e)),
        }
    }

    pub async fn try_start(config: StandInConfig) -> Result<Self, StartError> {
        config.check()?;
        let addr = config.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let base_url = format!("http://{bound}");
        let mut state = State::new(&config.account_sid, &config.service_sid, &base_url, config.seed_default_roles);
        state.rate_limit = config.rate_limit;
        state.participants_per_conversation = config.participants_per_conversation;
        state.conversations_per_identity = config.conversations_per_identity;
        let shared = Arc::new(Shared {
            base_url: base_url.clone(),
            account_sid: config.account_sid.clone(),
            service_sid: config.service_sid.clone(),
            api_key_sid: config.api_key_sid.clone(),
            api_key_secret: config.api_key_secret.clone(),
            auth_token: config.auth_token.clone(),
            pre_event_timeout: config.pre_event_timeout,
            state: Mutex::new(state),
            deliveries: Mutex::new(Vec::new()),
            faults: FaultRules::default(),
            outages: Outages::default(),
            losses: FaultRules::default(),
            recorded: Mutex::new(Vec::new()),
            in_flight: InFlight::default(),
            delay: Delay::default(),
            slow: SlowPaths::default(),
        });
        let handled = shared.clone();
        let server = Server::spawn(listener, move |request| server::handle(handled.clone(), request))
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self {
            base_url,
            addr: bound,
            account_sid: config.account_sid,
            service_sid: config.service_sid,
            api_key_sid: config.api_key_sid,
            api_key_secret: config.api_key_secret,
            shared,
            _server: Arc::new(server),
        })
    }

    /// `{base_url}/v1/Services/{service_sid}`: the prefix of every REST path the stand-in serves.
    pub fn service_url(&self) -> String {
        format!("{}/v1/Services/{}", self.base_url, self.service_sid)
    }

    /// A client of the SDK face acting with `token` (see [`sdk`]).
    pub fn sdk_client(&self, token: &str) -> sdk::SdkClient {
        sdk::SdkClient::new(&self.base_url, token)
    }

    // ---- faults, delay, rate limits ----

    /// Answers the next `n` requests whose path contains `path_contains` (any request when
    /// `None`) with `fault`, without applying them. A filter may start with a method:
    /// `"POST /Participants"`. Rules queue up: the oldest matching rule with requests left
    /// applies. Requests refused for bad credentials or a bad body use up no fault.
    pub fn fail_next(&self, n: usize, fault: Fault, path_contains: Option<&str>) {
        self.shared.faults.fail_next(n, fault, path_contains.map(str::to_owned));
    }

    /// Like [`Self::fail_next`] for every matching request until [`Self::heal`].
    pub fn fail_always(&self, fault: Fault, path_contains: Option<&str>) {
        self.shared.faults.fail_always(fault, path_contains.map(str::to_owned));
    }

    /// Answers every request that arrives from `starts_in` after now until `lasts` later (the
    /// end excluded) and whose path contains `path_contains` (any when `None`; a filter may start
    /// with a method, as for [`Self::fail_next`]) with `fault`, without applying it. Windows add
    /// up (the oldest one a request falls in applies) and come before queued faults; what they
    /// answer counts in [`Self::faults_injected`]. Requests refused for bad credentials or a bad
    /// body are not faulted. Only REST requests: not the SDK face, not webhook deliveries.
    pub fn outage(&self, starts_in: Duration, lasts: Duration, fault: Fault, path_contains: Option<&str>) {
        self.shared.outages.add(starts_in, lasts, fault, path_contains.map(str::to_owned));
    }

    /// Carries out the next `n` REST requests with `method` (any when `None`; any case) whose
    /// path contains `path_contains` (any when `None`) as usual (state changes, post-event
    /// webhooks) but answers them with 502, code 20502 ([`Fault::BAD_GATEWAY`]) in Twilio's error
    /// body, as a client sees an answer lost on the way back. Counted in
    /// [`Self::faults_injected`]; a request faulted otherwise (or refused for bad credentials or
    /// a bad body) uses none up. Its recording keeps the 502.
    pub fn lose_responses(&self, n: usize, method: Option<&str>, path_contains: Option<&str>) {
        self.shared.losses.fail_next(n, (), Some(RequestFilter::new(method, path_contains)));
    }

    /// Drops every pending fault, outage window, lost-response rule and [`Self::slow`] rule (the
    /// delay of [`Self::set_delay`] stays).
    pub fn heal(&self) {
        self.shared.faults.heal();
        self.shared.outages.clear();
        self.shared.losses.heal();
        self.shared.slow.clear();
    }

    /// Holds every request this long before answering, so concurrent requests overlap visibly.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.delay.set(delay);
    }

    /// Holds REST requests with `method` (any when `None`; any case) whose path contains
    /// `path_contains` (a filter may start with a method, as for [`Self::fail_next`]) `delay`
    /// longer before answering, on top of [`Self::set_delay`]; the delays of every matching rule
    /// add up. Until [`Self::heal`].
    pub fn slow(&self, method: Option<&str>, path_contains: &str, delay: Duration) {
        self.shared.slow.add(RequestFilter::new(method, Some(path_contains)), delay);
    }

    /// Turns rate limiting on (actions per second) or off (`None`) from now on.
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        lock(&self.shared.state).rate_limit = per_second;
    }

    // ---- recording ----

    /// Every request since the last reset, in the order they were answered.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.recorded).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.recorded).len()
    }

    /// Requests with `method` whose path contains `path_contains`.
    pub fn count_requests(&self, method: &str, path_contains: &str) -> usize {
        lock(&self.shared.recorded).iter().filter(|r| r.method == method && r.path.contains(path_contains)).count()
    }

    /// Requests answered with an injected fault since the last reset: queued faults, outages and
    /// lost responses.
    pub fn faults_injected(&self) -> usize {
        self.shared.faults.injected() + self.shared.outages.injected() + self.shared.losses.injected()
    }

    /// The most requests in flight at once since the last reset: 1 for sequential round trips.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.max()
    }

    /// Forgets the recorded requests and zeroes the counters (not the faults, delay or state).
    pub fn reset_requests(&self) {
        lock(&self.shared.recorded).clear();
        self.shared.faults.reset_injected();
        self.shared.outages.reset_injected();
        self.shared.losses.reset_injected();
        self.shared.in_flight.reset_max();
    }

    // ---- state, for assertions ----

    /// The conversation with this SID or unique name.
    pub fn conversation(&self, sid_or_unique_name: &str) -> Option<Conversation> {
        lock(&self.shared.state).conversation(sid_or_unique_name).cloned()
    }

    pub fn conversation_by_unique_name(&self, unique_name: &str) -> Option<Conversation> {
        lock(&self.shared.state).conversations().iter().find(|c| c.unique_name.as_deref() == Some(unique_name)).cloned()
    }

    /// Every conversation, in creation order.
    pub fn conversations(&self) -> Vec<Conversation> {
        lock(&self.shared.state).conversations().to_vec()
    }

    /// The messages of the conversation (SID or unique name) in index order; none when there is
    /// no such conversation.
    pub fn messages(&self, conversation: &str) -> Vec<Message> {
        lock(&self.shared.state).conversation(conversation).map(|c| c.messages.clone()).unwrap_or_default()
    }

    /// The message `sid` of the conversation (SID or unique name), if it exists (not deleted).
    pub fn message(&self, conversation: &str, sid: &str) -> Option<Message> {
        lock(&self.shared.state).message(conversation, sid).ok().cloned()
    }

    /// The user with this SID or identity.
    pub fn user(&self, sid_or_identity: &str) -> Option<User> {
        lock(&self.shared.state).user(sid_or_identity).cloned()
    }

    /// Every user, in creation order (including those created by adding a participant).
    pub fn users(&self) -> Vec<User> {
        lock(&self.shared.state).users().to_vec()
    }

    /// Every role, in creation order (the default roles first, if seeded).
    pub fn roles(&self) -> Vec<Role> {
        lock(&self.shared.state).roles().to_vec()
    }

    pub fn role_by_name(&self, friendly_name: &str) -> Option<Role> {
        lock(&self.shared.state).roles().iter().find(|r| r.friendly_name == friendly_name).cloned()
    }

    pub fn webhooks(&self) -> Webhooks {
        lock(&self.shared.state).webhooks().clone()
    }

    /// The service's default roles and reachability, as `GET …/Configuration` shows them.
    pub fn configuration(&self) -> ServiceConfiguration {
        lock(&self.shared.state).configuration()
    }

    /// Every webhook delivery made since the last clear (for SDK actions, and for REST calls
    /// with `X-Twilio-Webhook-Enabled: true`), in the order they ended (a post-event is recorded
    /// when its answer, or its timeout, comes).
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.deliveries).clone()
    }

    pub fn clear_webhook_deliveries(&self) {
        lock(&self.shared.deliveries).clear();
    }

    // ---- state, seeded directly (not recorded, not rate limited, never faulted) ----

    /// Creates a conversation as `POST …/Conversations` would.
    pub fn create_conversation(
        &self,
        unique_name: Option<&str>,
        friendly_name: Option<&str>,
        attributes: Option<&str>,
    ) -> Result<Conversation, Rejection> {
        let form = form(&[("UniqueName", unique_name), ("FriendlyName", friendly_name), ("Attributes", attributes)]);
        lock(&self.shared.state).create_conversation(&form)
    }

    /// Adds `identity` to the conversation (SID or unique name) as `POST …/Participants` would.
    pub fn add_participant(&self, conversation: &str, identity: &str) -> Result<Participant, Rejection> {
        lock(&self.shared.state).add_participant(conversation, &form(&[("Identity", Some(identity))]))
    }

    /// Posts a message as `author` to the conversation (SID or unique name).
    pub fn add_message(&self, conversation: &str, author: &str, body: &str) -> Result<Message, Rejection> {
        let form = form(&[("Author", Some(author)), ("Body", Some(body))]);
        lock(&self.shared.state).add_message(conversation, &form)
    }

    /// Sets (or clears) the read horizon of participant `identity` in the conversation.
    pub fn set_last_read(
        &self,
        conversation: &str,
        identity: &str,
        index: Option<u64>,
    ) -> Result<Participant, Rejection> {
        let index = index.map_or_else(String::new, |i| i.to_string());
        let form = form(&[("LastReadMessageIndex", Some(index.as_str()))]);
        lock(&self.shared.state).update_participant(conversation, identity, &form)
    }
}

fn form(pairs: &[(&str, Option<&str>)]) -> Form {
    Form(pairs.iter().filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v.to_owned()))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_be_shared_across_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<StandIn>();
    }

    #[test]
    fn fault_filters_may_name_a_method() {
        assert!(filter_matches("/Participants", "GET", "/v1/Services/IS1/Conversations/CH1/Participants"));
        assert!(filter_matches("POST /Participants", "POST", "/v1/Services/IS1/Conversations/CH1/Participants"));
        assert!(!filter_matches("POST /Participants", "GET", "/v1/Services/IS1/Conversations/CH1/Participants"));
        assert!(!filter_matches("POST /Users", "POST", "/v1/Services/IS1/Conversations"));
    }

    #[test]
    fn a_config_with_malformed_sids_is_refused() {
        let config = StandInConfig { service_sid: "IS-nope".to_owned(), ..StandInConfig::default() };
        assert!(matches!(config.check(), Err(StartError::Config(m)) if m.contains("service_sid")));
        assert!(StandInConfig::default().check().is_ok());
    }
}
