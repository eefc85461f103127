//! The ACL store: narrow ports (reads apart from grant writes apart from catalogue writes, so each
//! function depends on what its IAM policy allows), a DynamoDB adapter and an in-memory adapter.
//! Stores fetch facts; [`crate::domain::decide`] decides.

#[cfg(feature = "dynamodb")]
mod dynamodb;
#[cfg(feature = "local-stream")]
pub mod follow;
#[cfg(feature = "dynamodb")]
mod keys;
mod memory;
#[cfg(feature = "dynamodb")]
pub mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error as StdError;
use std::future::Future;

#[cfg(feature = "dynamodb")]
pub use dynamodb::{DynamoStore, TableStats};
#[cfg(feature = "dynamodb")]
pub use keys::KeyLayout;
pub use memory::MemoryStore;
#[cfg(feature = "dynamodb")]
pub use stream::{StreamRecord, UnreadableRecord};

use crate::domain::{
    AccessDecision, AccessFacts, AssetId, AssetRecord, AssetType, Grant, GroupId, Identity, Principal, TenantId, decide,
};

/// Most assets one batch check may ask about.
pub const MAX_BATCH_ASSETS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the item changed (the asset gone, its owner or generation changed).
    #[error("the write's condition no longer holds")]
    Conflict,
    /// Throttling, a timeout or a server error that outlasted the bounded retries.
    #[error("the ACL table is unavailable")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    #[error("the ACL table failed")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

/// What a check needs: the user's groups and standing and, per asked asset in order, its record
/// and grants.
#[derive(Debug, Clone, Default)]
pub struct CheckFacts {
    pub groups: BTreeSet<GroupId>,
    /// Whether the user is offboarded: then they can read nothing, whatever a grant says.
    pub offboarded: bool,
    pub assets: Vec<AccessFacts>,
}

impl CheckFacts {
    /// The decision on the one asset asked about (the first, if more were): no facts, no access.
    pub fn decision(&self, user: &Identity, now: u64) -> AccessDecision {
        self.decisions(user, now).into_iter().next().unwrap_or(AccessDecision::NONE)
    }

    /// The decision for each asked asset, in the order asked.
    pub fn decisions(&self, user: &Identity, now: u64) -> Vec<AccessDecision> {
        self.assets
            .iter()
            .map(|facts| if self.offboarded { AccessDecision::NONE } else { decide(user, &self.groups, facts, now) })
            .collect()
    }
}

/// What deciding one asset for several users needs: the asset's record and grants, and each
/// user's groups and standing, in the order the users were given.
#[derive(Debug, Clone, Default)]
pub struct AudienceFacts {
    pub asset: AccessFacts,
    pub groups: Vec<BTreeSet<GroupId>>,
    pub offboarded: Vec<bool>,
}

impl AudienceFacts {
    /// The decision for each of `users` (the users the facts were read for, in that order).
    pub fn decisions(&self, users: &[Identity], now: u64) -> Vec<AccessDecision> {
        users
            .iter()
            .zip(&self.groups)
            // A store that said nothing of a user's standing decides nothing for them.
            .zip(self.offboarded.iter().chain(std::iter::repeat(&true)))
            .map(
                |((user, groups), offboarded)| {
                    if *offboarded { AccessDecision::NONE } else { decide(user, groups, &self.asset, now) }
                },
            )
            .collect()
    }
}

/// Past a budget: how long until it has room again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {window} budget of {limit} new conversations is spent; retry in {retry_after_seconds} s")]
pub struct BudgetSpent {
    pub window: &'static str,
    pub limit: u32,
    pub retry_after_seconds: u32,
}

/// Limits on new conversations (v1.2 "Budgets"): per user, and in a tenant deployment per tenant
/// too, so one organisation cannot spend the service's rate every other shares; `0` turns a
/// window off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetLimits {
    pub per_minute: u32,
    pub per_day: u32,
    /// `TENANT_NEW_CONVERSATIONS_PER_MINUTE`: every user of a tenant together.
    pub tenant_per_minute: u32,
}

/// Whose new conversations a budget counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetCounter {
    User(Identity),
    Tenant(TenantId),
}

/// One window of a budget at a moment: its name, whose counter it is, which bucket the moment
/// falls in, its limit, and how long until the next bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetWindow {
    pub name: &'static str,
    pub counter: BudgetCounter,
    pub bucket: u64,
    pub limit: u32,
    pub seconds_left: u32,
    /// When a counter of this bucket may be forgotten (Unix seconds; DynamoDB TTL).
    pub forget_at: u64,
}

impl BudgetLimits {
    /// The windows that are on at `now` for `user`, and for their tenant when they have one.
    pub fn windows(self, user: &Identity, tenant: Option<&TenantId>, now: u64) -> Vec<BudgetWindow> {
        let user = BudgetCounter::User(user.clone());
        let mut windows = vec![("minute", 60u64, self.per_minute, user.clone()), ("day", 86_400, self.per_day, user)];
        if let Some(tenant) = tenant {
            windows.push(("tenant-minute", 60, self.tenant_per_minute, BudgetCounter::Tenant(tenant.clone())));
        }
        windows
            .into_iter()
            .filter(|(_, _, limit, _)| *limit > 0)
            .map(|(name, length, limit, counter)| BudgetWindow {
                name,
                counter,
                bucket: now / length,
                limit,
                seconds_left: (length - now % length) as u32,
                forget_at: (now / length + 2) * length,
            })
            .collect()
    }
}

impl BudgetWindow {
    pub fn spent(&self) -> BudgetSpent {
        BudgetSpent { window: self.name, limit: self.limit, retry_after_seconds: self.seconds_left }
    }
}

impl Default for BudgetLimits {
    fn default() -> Self {
        Self { per_minute: 20, per_day: 200, tenant_per_minute: 600 }
    }
}

/// A grant with an expiry, as the expiry index lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Expiry {
    pub asset: AssetId,
    pub principal: Principal,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The minute (Unix seconds / 60) a time falls in: the expiry index's bucket.
pub fn minute_of(unix_seconds: u64) -> u64 {
    unix_seconds / 60
}

/// Whether an upsert created the item or replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created,
    Replaced,
}

/// Read-only queries (DynamoDB `Query` only): the access routes, the conversations function, the
/// message guard and the reconciler hold this.
pub trait AclReader: Send + Sync + std::fmt::Debug {
    /// The user's groups and each asset's record and grants, strongly consistent, with every
    /// read issued at once: one round trip whatever the number of groups.
    fn check_facts(
        &self,
        user: &Identity,
        assets: &[AssetId],
    ) -> impl Future<Output = Result<CheckFacts, StoreError>> + Send;

    /// One asset's record and grants and each user's groups, strongly consistent, all issued at
    /// once: one round trip whatever the number of users.
    fn audience_facts(
        &self,
        asset: &AssetId,
        users: &[Identity],
    ) -> impl Future<Output = Result<AudienceFacts, StoreError>> + Send;

    /// One asset's record and grants.
    fn asset_facts(&self, asset: &AssetId) -> impl Future<Output = Result<AccessFacts, StoreError>> + Send;

    fn group_members(&self, group: &GroupId) -> impl Future<Output = Result<Vec<Identity>, StoreError>> + Send;

    /// For each of `users`, in order, whether they are offboarded: one round trip.
    fn offboarded(&self, users: &[Identity]) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send;
}

/// Atomic, self-expiring counters of new conversations (`UpdateItem` on budget items only): the
/// conversations function holds this.
pub trait Budgets: Send + Sync {
    /// Counts one new conversation for `user` in the current minute and day, and for their
    /// `tenant` in the current minute; [`BudgetSpent`], and in the end nothing counted, when any
    /// window is full: the user's windows are decided first (the one that frees last), then the
    /// tenant's. The user's windows count both or neither; a full tenant minute gives them back,
    /// so for a moment a concurrent request of the same user may see them counted.
    fn spend_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> impl Future<Output = Result<Result<(), BudgetSpent>, StoreError>> + Send;

    /// Gives back what [`Self::spend_new_conversation`] counted at `now`, when no conversation
    /// came of it (a concurrent request created it first, or the create failed).
    fn refund_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How long an `Idempotency-Key` is remembered (v1.2 "Retries make nothing twice").
pub const IDEMPOTENCY_WINDOW_SECONDS: u64 = 86_400;

/// The answer a request gave, kept under its idempotency key for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub status: u16,
    /// The JSON body, as sent.
    pub body: String,
}

/// What [`Idempotency::begin`] found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// Nothing (or only a request that stopped without answering, past its lease): this request
    /// holds the key until it finishes, abandons it, or its lease ends.
    Fresh {
        /// The unique name an unnamed group asked for under this key gets: the name proposed, or
        /// the one an earlier attempt of the same request was given (it may have made the group).
        group_name: String,
        /// An earlier attempt of the same request held the key and did not answer: what it made
        /// must be found, not made again.
        attempted: bool,
    },
    /// A request with the same body answered this: answer it again.
    Replay(Remembered),
    /// A request with the same body holds the key and has not answered yet.
    InProgress,
    /// The key was used with a different body.
    Mismatch,
}

/// Requests remembered by `(user, Idempotency-Key)` for [`IDEMPOTENCY_WINDOW_SECONDS`]
/// (`UpdateItem` on idempotency items only): the conversations function holds this. The
/// fingerprint is what the request asked, so a key reused for something else is told apart.
pub trait Idempotency: Send + Sync {
    /// Takes the key for a request with `fingerprint`, for `lease_seconds` at most, unless a
    /// request already holds or answered it. A key taken afresh keeps `group_name` for the
    /// window; one retaken after a failed attempt of the same request keeps the name it had, so
    /// the retry finds the group that attempt made, and a key reused after the window never does.
    fn begin(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        group_name: &str,
        lease_seconds: u64,
        now: u64,
    ) -> impl Future<Output = Result<Begun, StoreError>> + Send;

    /// Keeps the answer, so every retry within the window gets it.
    fn finish(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        answer: &Remembered,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lets the key go without an answer (the request failed): a retry runs afresh.
    fn abandon(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Who is in each conversation chatgate manages, as chatgate put them there and took them out,
/// kept beside Twilio's own list so the start-up listing and the expiry sweep need not ask Twilio
/// (whose rate the rule's removals need). A conversation is named by its unique name, or its SID
/// when it has none. Twilio stays the truth: the scheduled pass writes what it reads from Twilio
/// back into an asset conversation's roster, and a conversation without a roster is read from
/// Twilio (and its roster written).
pub trait Rosters: Send + Sync {
    /// Adds `joined` to the conversation's roster and takes `left` out (`BatchWriteItem` on roster
    /// items only).
    fn write_roster(
        &self,
        conversation: &str,
        joined: &[Identity],
        left: &[Identity],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Each conversation's roster, in the order asked; empty when it has none: one round trip.
    fn rosters(&self, conversations: &[String]) -> impl Future<Output = Result<Vec<Vec<Identity>>, StoreError>> + Send;
}

/// The tenants a batch of the table's stream belongs to: none in particular (a single-tenant
/// table), or, in a tenant deployment's table, the tenant each key handle of the batch stands for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StreamTenants {
    #[default]
    Single,
    Handles(BTreeMap<String, TenantId>),
}

/// Reads the tenants of a stream batch's records: in a tenant deployment, the tenants the key handles of
/// the asset and user partitions stand for (`StreamRecord::tenant_handle`), read from the
/// table's tenant records; a store whose keys are ids as they are has nothing to look up.
pub trait StreamKeys: Send + Sync {
    /// The tenants of `handles`, for `StreamRecord::change_in`: a handle no record names is left
    /// out (its records are unreadable).
    fn stream_tenants(
        &self,
        handles: BTreeSet<String>,
    ) -> impl Future<Output = Result<StreamTenants, StoreError>> + Send;
}

/// Everything the conversations function holds: reads, budgets, the registry of asset
/// conversations, and remembered idempotency keys. Any store with those ports has it.
pub trait ConversationsStore: AclReader + Budgets + ConversationRegistry + Idempotency + Rosters {}

impl<T: AclReader + Budgets + ConversationRegistry + Idempotency + Rosters> ConversationsStore for T {}

/// Everything the reconciler function holds: reads, the expiry index, the registry of asset
/// conversations (read only: the conversations function registers them) and the pass's cursor.
pub trait ReconcilerStore:
    AclReader + ExpiryIndex + RegisteredConversations + PassProgress + Rosters + StreamKeys
{
}

impl<T: AclReader + ExpiryIndex + RegisteredConversations + PassProgress + Rosters + StreamKeys> ReconcilerStore for T {}

/// Grant writes, each conditional on the asset still having the owner and generation the
/// caller read: the sharing function holds this.
pub trait GrantWriter: Send + Sync {
    /// The record a grant write is conditional on, alone (one item, whatever the number of grants).
    fn asset_record(&self, asset: &AssetId) -> impl Future<Output = Result<Option<AssetRecord>, StoreError>> + Send;

    /// Writes the grant and, when it expires, its entry in the expiry index, in one transaction.
    fn put_grant(
        &self,
        asset: &AssetRecord,
        grant: &Grant,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn delete_grant(
        &self,
        asset: &AssetRecord,
        principal: &Principal,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The SaaS back end's catalogue and groups: the admin function holds this.
pub trait CatalogWriter: Send + Sync {
    /// Creates the asset or replaces its owner, type and name; grants survive an owner change.
    fn put_asset(
        &self,
        id: &AssetId,
        owner: &Identity,
        kind: AssetType,
        name: &str,
        now: u64,
    ) -> impl Future<Output = Result<Upsert, StoreError>> + Send;

    /// Deletes the asset and then its grants; returns how many grants were removed. The record
    /// goes first, so access ends at once; grants a failure leaves behind are inert (they carry
    /// the old generation) and the next delete, or the asset's re-creation, removes them. Grants
    /// of an asset re-created meanwhile are never touched.
    fn delete_asset(&self, id: &AssetId) -> impl Future<Output = Result<usize, StoreError>> + Send;

    fn add_member(&self, group: &GroupId, user: &Identity) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn remove_member(&self, group: &GroupId, user: &Identity) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the user offboarded (`true`) or lifts it (`false`); idempotent.
    fn set_offboarded(
        &self,
        user: &Identity,
        offboarded: bool,
        now: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes every grant made to the user directly (not their groups'); returns the assets.
    fn delete_user_grants(&self, user: &Identity) -> impl Future<Output = Result<Vec<AssetId>, StoreError>> + Send;
}

/// The grants that expire, by minute, and how far the sweep has got: the reconciler holds this
/// (`Query` on the index, the entries' progress, and an update of the one cursor item).
pub trait ExpiryIndex: Send + Sync {
    /// The grants whose expiry falls in `minute` (see [`minute_of`]) and that the sweep has not
    /// handled or set aside yet, strongly consistent. An entry is a hint, not a fact: the grant
    /// may have been deleted or extended since. An entry nobody can read is skipped and logged.
    fn expiring_in(&self, minute: u64) -> impl Future<Output = Result<Vec<Expiry>, StoreError>> + Send;

    /// The sweep handled `entry`: it is removed from the index.
    fn expiry_done(&self, entry: &Expiry) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The sweep could not handle `entry`, for a reason no retry cures: one more attempt counted,
    /// and once `set_aside_after` are, the entry is set aside (never read again). `true` when
    /// this call set it aside.
    fn expiry_failed(
        &self,
        entry: &Expiry,
        set_aside_after: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The time (Unix seconds) up to which every expiry has been reconciled; `None` before the
    /// first sweep.
    fn sweep_cursor(&self) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Moves the cursor from `from` (what the caller read) to `to`; `Conflict` when another sweep
    /// moved it meanwhile.
    fn advance_sweep_cursor(&self, from: Option<u64>, to: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How far the scheduled pass over every asset conversation has got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassCursor {
    /// The last asset whose conversation the current pass re-decided; `None` at a pass's start.
    pub after: Option<AssetId>,
    /// When the current pass started (Unix seconds); `None` between passes.
    pub started_at: Option<u64>,
    /// When the last complete pass started: every asset conversation registered by then has been
    /// re-decided since.
    pub last_completed: Option<u64>,
    /// Bumped by every save, so two runs never both move it.
    pub version: u64,
}

/// The asset conversations chatgate made or joined people to, for the scheduled pass to walk:
/// the conversations function registers them (`UpdateItem` on registry items only).
pub trait ConversationRegistry: Send + Sync {
    /// Records that `asset` has (or is about to have) a conversation; idempotent.
    fn register_conversation(&self, asset: &AssetId, now: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The registry read in order (a `Query`): what the scheduled pass walks.
pub trait RegisteredConversations: Send + Sync {
    /// Up to `limit` registered assets after `after` (from the first when `None`), in the
    /// registry's order, and whether more follow.
    fn registered_after(
        &self,
        after: Option<&AssetId>,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<AssetId>, bool), StoreError>> + Send;
}

/// The scheduled pass's cursor (`Query` and an `UpdateItem` of its one item): the reconciler holds this.
pub trait PassProgress: Send + Sync {
    fn pass_cursor(&self) -> impl Future<Output = Result<PassCursor, StoreError>> + Send;

    /// Moves the cursor from `from` (what the caller read) to `to`, whose version must be one more;
    /// `Conflict` when another run moved it meanwhile.
    fn save_pass_cursor(
        &self,
        from: &PassCursor,
        to: &PassCursor,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A fresh generation for a new asset.
pub(crate) fn new_generation() -> String {
    use base64::Engine as _;
    // 48 random bits in 8 characters: grants repeat it, so it is kept short.
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 6]>())
}

// What the caller sees when a budget is spent or the store fails: mapped here, beside the errors.

impl From<BudgetSpent> for crate::http::ApiError {
    fn from(spent: BudgetSpent) -> Self {
        Self::RateLimited { detail: spent.to_string(), retry_after: spent.retry_after_seconds }
    }
}

impl From<StoreError> for crate::http::ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => Self::Upstream {
                what: "the permission store",
                status: lambda_http::http::StatusCode::SERVICE_UNAVAILABLE,
                retry_after: Some(1),
                source: Some(source),
            },
            StoreError::Conflict => Self::Conflict("the asset changed meanwhile; retry".into()),
            StoreError::Internal(source) => Self::Internal(source),
        }
    }
}
