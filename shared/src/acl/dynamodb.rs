//! The DynamoDB adapter: one table, keys from [`super::keys`], strongly consistent reads issued
//! concurrently, multi-item writes in transactions. SDK errors are translated here; no `SdkError`
//! or `AttributeValue` leaves this module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, ConsumedCapacity, Delete, DeleteRequest,
    KeySchemaElement, KeyType, Put, PutRequest, ReturnConsumedCapacity, ReturnValue,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, StreamSpecification, StreamViewType, TransactWriteItem,
    Update, WriteRequest,
};
use futures_util::future::try_join_all;
use futures_util::{StreamExt as _, TryStreamExt as _};

use super::keys::{
    self, ASSET_SK, GRANT_PREFIX, KeyLayout, MEMBER_PREFIX, OFFBOARDED_SK, PASS_PK, PK, REGISTRY_PK, SK, SWEEP_PK,
    SWEEP_SK, USER_GRANT_PREFIX, attr,
};
use super::{
    AclReader, AudienceFacts, Begun, BudgetCounter, BudgetLimits, BudgetSpent, BudgetWindow, Budgets, CatalogWriter,
    CheckFacts, ConversationRegistry, Expiry, ExpiryIndex, GrantWriter, IDEMPOTENCY_WINDOW_SECONDS, Idempotency,
    PassCursor, PassProgress, RegisteredConversations, Remembered, Rosters, StoreError, StreamKeys, StreamTenants,
    Upsert, minute_of, new_generation,
};
use crate::domain::{
    AccessFacts, AssetId, AssetRecord, AssetType, Grant, GroupId, Identity, Principal, Role, Tenant, TenantId,
};

type Item = HashMap<String, AttributeValue>;

const TTL_GRACE_SECONDS: u64 = 86_400;
/// Expiry entries are kept a week after their minute, so a sweep that was down for days still
/// finds them; DynamoDB's TTL then removes them.
const EXPIRY_ENTRY_TTL_SECONDS: u64 = 7 * 86_400;
/// Extra attempts for a transaction cancelled by a conflict.
const TRANSACTION_RETRIES: u32 = 3;
/// Requests of one bulk operation in flight at once: an asset's conditional grant deletions when it
/// goes, a user's grant deletions when offboarded, a stream batch's tenant records.
const SWEEP_CONCURRENCY: usize = 16;

/// Requests sent and capacity consumed, for the benchmark and the logs.
#[derive(Debug, Default)]
pub struct TableStats {
    requests: AtomicU64,
    milli_capacity: AtomicU64,
}

impl TableStats {
    /// `(requests, consumed capacity units)` since the store was built.
    pub fn snapshot(&self) -> (u64, f64) {
        (self.requests.load(Ordering::Relaxed), self.milli_capacity.load(Ordering::Relaxed) as f64 / 1000.0)
    }

    fn record(&self, consumed: Option<&ConsumedCapacity>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(units) = consumed.and_then(ConsumedCapacity::capacity_units) {
            self.milli_capacity.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    stats: Arc<TableStats>,
    /// Whether the hot partitions name tenants by handle (a tenant deployment's table).
    layout: KeyLayout,
    /// The tenants this process has claimed or read a tenant record of, by handle.
    handles: Arc<Mutex<BTreeMap<String, TenantId>>>,
}

impl DynamoStore {
    /// Built once at cold start. Retries are bounded well inside the function's timeout: three
    /// attempts with jittered backoff, 1.5 s per attempt, 4 s in all.
    pub fn new(sdk: &aws_types::SdkConfig, table: impl Into<String>, layout: KeyLayout) -> Self {
        Self::with_timeouts(sdk, table, layout, Duration::from_millis(1500), Duration::from_secs(4))
    }

    /// The same with other time limits: for tools and tests on a loaded machine, never a function.
    pub fn with_timeouts(
        sdk: &aws_types::SdkConfig,
        table: impl Into<String>,
        layout: KeyLayout,
        attempt: Duration,
        operation: Duration,
    ) -> Self {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(25))
                    .with_max_backoff(Duration::from_millis(400)),
            )
            .timeout_config(
                TimeoutConfig::builder().operation_attempt_timeout(attempt).operation_timeout(operation).build(),
            )
            .build();
        Self {
            client: Client::from_conf(config),
            table: table.into(),
            stats: Arc::default(),
            layout,
            handles: Arc::default(),
        }
    }

    /// A function's store: `TABLE_NAME`, on [`crate::aws::from_environment`]
    /// (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local).
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, crate::config::ConfigError> {
        let (table, layout) = (crate::config::table_name(settings)?, Self::layout(settings)?);
        Ok(Self::new(&crate::aws::from_environment(settings)?, table, layout))
    }

    /// The key layout of a deployment's table: a tenant deployment's when `TENANT_CLAIM` is set.
    pub fn layout(settings: &crate::config::Settings) -> Result<KeyLayout, crate::config::ConfigError> {
        Ok(KeyLayout::of_deployment(crate::config::tenants(settings)?))
    }

    /// Opens the connections during cold start (the first TLS handshake dominates a cold request
    /// in AWS). A check sends two reads at once, so two connections are opened. A failure here is
    /// only logged; requests report their own.
    pub async fn warm_up(&self) {
        let (first, second) =
            tokio::join!(self.query("#warm-up".to_owned(), None), self.query("#warm-up".to_owned(), None));
        if let Err(e) = first.and(second) {
            tracing::warn!(error = %crate::http::ErrorChain(&e), "could not reach the table during start-up");
        }
    }

    pub fn stats(&self) -> &TableStats {
        &self.stats
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table (on-demand, `pk`/`sk` strings, a stream of new and old images): for
    /// DynamoDB Local and `chatgate table create`. In AWS the table comes from `template.yaml`.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let key = |name: &str, kind| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(internal)
        };
        let def = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(internal)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .attribute_definitions(def(PK)?)
            .attribute_definitions(def(SK)?)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(internal)?,
            )
            .send()
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The table's stream (for following it from a process, as `chatgate dev` does); `None` when
    /// the table has none.
    pub async fn latest_stream_arn(&self) -> Result<Option<String>, StoreError> {
        let out = self.client.describe_table().table_name(&self.table).send().await.map_err(store_error)?;
        let enabled = out.table().and_then(|t| t.stream_specification()).is_some_and(|s| s.stream_enabled());
        Ok(out.table().and_then(|t| t.latest_stream_arn()).filter(|_| enabled).map(str::to_owned))
    }

    /// The one-time migration to the expiry index, for grants written before it existed: a `Scan`
    /// (an operator's command, never a function's) for grants with an expiry, writing the entry
    /// of each that expires after `now`. Returns those written and those that already expired.
    pub async fn backfill_expiry_index(&self, now: u64) -> Result<(usize, Vec<Expiry>), StoreError> {
        let mut start = None;
        let (mut written, mut expired) = (0, Vec::new());
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#sk, :grant) AND attribute_exists(#x)")
                .expression_attribute_names("#sk", SK)
                .expression_attribute_names("#x", attr::EXPIRES_AT)
                .expression_attribute_values(":grant", AttributeValue::S(GRANT_PREFIX.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(store_error)?;
            for item in out.items.unwrap_or_default() {
                let Some(rest) = s(&item, PK).and_then(|pk| pk.strip_prefix(keys::ASSET_PK_PREFIX)) else { continue };
                let (within, asset) = self.hot_id(rest).await?;
                let asset = AssetId::try_from(asset).map_err(internal)?;
                let Some(grant) = grant(&item, &within)? else { continue };
                let Some(at) = grant.expires_at else { continue };
                let entry = Expiry { asset, principal: grant.principal, expires_at: at };
                if at <= now {
                    expired.push(entry);
                    continue;
                }
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(expiry_entry(&entry)))
                    .send()
                    .await
                    .map_err(store_error)?;
                written += 1;
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok((written, expired)),
            }
        }
    }

    /// Every item of one partition (with `sk` starting with `prefix`), strongly consistent.
    async fn query(&self, pk: String, prefix: Option<&str>) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .set_exclusive_start_key(start);
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned())),
                None => query.key_condition_expression("#pk = :pk"),
            };
            let out = query.send().await.map_err(store_error)?;
            self.stats.record(out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn asset_partition(&self, asset: &AssetId) -> Result<AccessFacts, StoreError> {
        let Some(within) = self.partition_tenant(asset.as_str()) else { return Ok(AccessFacts::default()) };
        let items = self.query(self.asset_pk(asset)?, None).await?;
        let mut facts = AccessFacts::default();
        for item in &items {
            match s(item, SK) {
                Some(ASSET_SK) => facts.asset = Some(asset_record(asset, item, &within)?),
                Some(sk) if sk.starts_with(GRANT_PREFIX) => facts.grants.extend(grant(item, &within)?),
                _ => {}
            }
        }
        Ok(facts)
    }

    /// The user's groups, and whether they are offboarded (the marker sorts among the groups).
    async fn groups_of(&self, user: &Identity) -> Result<(BTreeSet<GroupId>, bool), StoreError> {
        let Some(within) = self.partition_tenant(user.as_str()) else { return Ok((BTreeSet::new(), false)) };
        let items = self.query(self.user_pk(user)?, Some(MEMBER_PREFIX)).await?;
        let mut offboarded = false;
        let mut groups = BTreeSet::new();
        for item in &items {
            if s(item, SK) == Some(OFFBOARDED_SK) {
                offboarded = true;
            } else {
                groups.extend(refused_is_none(GroupId::try_from(member_id(item, &within)?), "group"));
            }
        }
        Ok((groups, offboarded))
    }

    /// Whether the user is offboarded: the marker alone (one read unit).
    async fn is_offboarded(&self, user: &Identity) -> Result<bool, StoreError> {
        if self.partition_tenant(user.as_str()).is_none() {
            return Ok(false);
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .key_condition_expression("#pk = :pk AND #sk = :sk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", AttributeValue::S(self.user_pk(user)?))
            .expression_attribute_values(":sk", AttributeValue::S(OFFBOARDED_SK.to_owned()))
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        Ok(out.count > 0)
    }

    /// The tenant whose hot partitions an id's keys are in: its own in a tenant deployment's
    /// table, nobody's otherwise; `None` for an id of no tenant in a tenant table, which has no
    /// partition there (a Twilio participant nobody qualified, say: nothing grants it anything).
    fn partition_tenant(&self, id: &str) -> Option<Tenant> {
        Tenant::of_stored(self.layout == KeyLayout::Tenants, id)
    }

    /// [`Self::partition_tenant`] for a key about to be written or read by key: an id of no tenant
    /// is refused, never keyed as it is (the edges qualify every id, so only a bug brings one).
    fn within(&self, id: &str) -> Result<Tenant, StoreError> {
        self.partition_tenant(id).ok_or_else(|| internal(OutsideTenant(id.to_owned())))
    }

    fn asset_pk(&self, asset: &AssetId) -> Result<String, StoreError> {
        keys::asset_pk(asset, &self.within(asset.as_str())?).ok_or_else(|| internal(OutsideTenant(asset.to_string())))
    }

    fn user_pk(&self, user: &Identity) -> Result<String, StoreError> {
        keys::user_pk(user, &self.within(user.as_str())?).ok_or_else(|| internal(OutsideTenant(user.to_string())))
    }

    /// An asset's owner as its record holds it: relative to the asset's tenant, which must be the
    /// owner's.
    fn owner(&self, asset: &AssetId, owner: &Identity) -> Result<String, StoreError> {
        let within = self.within(asset.as_str())?;
        keys::relative(owner.as_str(), &within)
            .map(str::to_owned)
            .ok_or_else(|| internal(OutsideTenant(owner.to_string())))
    }

    /// The key of a grant in its asset's partition: the principal must be of the asset's tenant.
    fn grant_key(&self, asset: &AssetId, principal: &Principal) -> Result<Item, StoreError> {
        let sk = keys::grant_sk(principal, &self.within(asset.as_str())?);
        Ok(Self::key(self.asset_pk(asset)?, sk.ok_or_else(|| internal(OutsideTenant(principal.to_string())))?))
    }

    /// The key of a membership in its user's partition: the group must be of the user's tenant.
    fn membership_key(&self, user: &Identity, group: &GroupId) -> Result<Item, StoreError> {
        let sk = keys::membership_sk(group, &self.within(user.as_str())?);
        Ok(Self::key(self.user_pk(user)?, sk.ok_or_else(|| internal(OutsideTenant(group.to_string())))?))
    }

    /// The key of a grant's mirror in its user's partition (user grants only).
    fn user_grant_key(&self, asset: &AssetId, principal: &Principal) -> Result<Option<Item>, StoreError> {
        let Principal::User(user) = principal else { return Ok(None) };
        Ok(Some(Self::key(self.user_pk(user)?, keys::user_grant_sk(asset))))
    }

    /// Before the first key of `id`'s tenant this process writes: the table's tenant record for
    /// its handle, written if missing (one conditional `PutItem` per tenant and process). A
    /// handle another tenant holds is refused, never shared.
    async fn claim(&self, id: &str) -> Result<(), StoreError> {
        let Tenant::Of(tenant) = self.within(id)? else { return Ok(()) };
        let handle = tenant.handle();
        if self.known_handles().get(&handle) == Some(&tenant) {
            return Ok(());
        }
        let mut item = Self::key(keys::tenant_pk(&handle), keys::TENANT_SK.to_owned());
        item.insert(attr::ID.into(), AttributeValue::S(tenant.to_string()));
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk) OR #id = :id")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_values(":id", AttributeValue::S(tenant.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(out) => self.stats.record(out.consumed_capacity()),
            Err(err) if err.code() == Some("ConditionalCheckFailedException") => {
                tracing::error!(tenant = %tenant, handle, "another tenant holds this tenant's key handle; its writes are refused");
                return Err(internal(HandleTaken(tenant)));
            }
            Err(err) => return Err(store_error(err)),
        }
        self.known_handles().insert(handle, tenant);
        Ok(())
    }

    /// The handles this process knows; only a cache, so a panic elsewhere cannot spoil it.
    fn known_handles(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TenantId>> {
        self.handles.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rest of a hot partition's key after its prefix, read back: the partition's tenant and
    /// the qualified id (as the stream's records are read).
    async fn hot_id(&self, rest: &str) -> Result<(Tenant, String), StoreError> {
        let handles = keys::split_hot_pk(rest).map(|(handle, _)| handle.to_owned()).into_iter().collect();
        let tenants = self.stream_tenants(handles).await?;
        super::stream::partition(&tenants, rest).ok_or_else(|| corrupt(PK))
    }

    /// The tenant a handle stands for: as this process knows it, else as the handle's tenant
    /// record names it (then remembered). A strongly consistent `Query`, which the reconciler's
    /// role has (it has no `GetItem`).
    async fn tenant_of(&self, handle: &str) -> Result<Option<TenantId>, StoreError> {
        if let Some(tenant) = self.known_handles().get(handle) {
            return Ok(Some(tenant.clone()));
        }
        let items = self.query(keys::tenant_pk(handle), Some(keys::TENANT_SK)).await?;
        let Some(item) = items.first() else { return Ok(None) };
        let tenant = TenantId::try_from(required(item, attr::ID)?).map_err(internal)?;
        if tenant.handle() != handle {
            return Err(corrupt(attr::ID));
        }
        self.known_handles().insert(handle.to_owned(), tenant.clone());
        Ok(Some(tenant))
    }

    fn key(pk: String, sk: String) -> Item {
        HashMap::from([(PK.to_owned(), AttributeValue::S(pk)), (SK.to_owned(), AttributeValue::S(sk))])
    }

    /// The asset record must still have the owner and generation the caller read.
    fn asset_unchanged(&self, asset: &AssetRecord) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.asset_pk(&asset.id)?, ASSET_SK.to_owned())))
            .condition_expression("#owner = :owner AND #gen = :gen")
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#gen", attr::GENERATION)
            .expression_attribute_values(":owner", AttributeValue::S(self.owner(&asset.id, &asset.owner)?))
            .expression_attribute_values(":gen", AttributeValue::S(asset.generation.clone()))
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Runs a transaction. The SDK does not retry a cancellation for `TransactionConflict` (another
    /// transaction held an item); every transaction chatgate writes is idempotent, so it is
    /// retried here, with jittered backoff, a bounded number of times.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), StoreError> {
        self.transact_or_cancelled(items).await.map_err(store_error)
    }

    /// [`Self::transact`], with DynamoDB's own error when it does not commit, for callers that
    /// read which items' conditions failed (the budget counters).
    async fn transact_or_cancelled(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError, HttpResponse>> {
        let mut attempt = 0u32;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            match result {
                Ok(out) => {
                    self.stats.record(out.consumed_capacity().first());
                    return Ok(());
                }
                Err(err) if attempt < TRANSACTION_RETRIES && is_transaction_conflict(&err) => {
                    attempt += 1;
                    let ceiling = 20u64 << attempt;
                    tokio::time::sleep(Duration::from_millis(rand::random_range(ceiling / 2..=ceiling))).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, key: Item) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder().table_name(&self.table).set_key(Some(key)).build().map_err(internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Deletes the grants of an asset that do not belong to its current generation (all of them
    /// when there is no record), each on condition that it still carries the generation it was
    /// read with, so a grant of an asset re-created meanwhile survives. Returns how many went.
    async fn sweep_grants(&self, asset: &AssetId) -> Result<usize, StoreError> {
        let pk = self.asset_pk(asset)?;
        let items = self.query(pk.clone(), None).await?;
        let current = items.iter().find(|i| s(i, SK) == Some(ASSET_SK)).and_then(|i| s(i, attr::GENERATION));
        let stale: Vec<(String, String)> = items
            .iter()
            .filter(|i| s(i, SK).is_some_and(|sk| sk.starts_with(GRANT_PREFIX)))
            .filter_map(|i| Some((s(i, SK)?.to_owned(), s(i, attr::GENERATION)?.to_owned())))
            .filter(|(_, generation)| Some(generation.as_str()) != current)
            .collect();
        let deleted = futures_util::stream::iter(stale)
            .map(|(sk, generation)| {
                let key = Self::key(pk.clone(), sk);
                async move {
                    let result = self
                        .client
                        .delete_item()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .condition_expression("#g = :g")
                        .expression_attribute_names("#g", attr::GENERATION)
                        .expression_attribute_values(":g", AttributeValue::S(generation))
                        .return_consumed_capacity(ReturnConsumedCapacity::Total)
                        .send()
                        .await;
                    match result {
                        Ok(out) => {
                            self.stats.record(out.consumed_capacity());
                            Ok(1)
                        }
                        // Re-granted under a new generation meanwhile: not ours to delete.
                        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(0),
                        Err(err) => Err(store_error(err)),
                    }
                }
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .try_fold(0usize, |total, n| async move { Ok(total + n) })
            .await?;
        Ok(deleted)
    }
}

impl AclReader for DynamoStore {
    async fn check_facts(&self, user: &Identity, assets: &[AssetId]) -> Result<CheckFacts, StoreError> {
        let ((groups, offboarded), assets) =
            tokio::try_join!(self.groups_of(user), try_join_all(assets.iter().map(|a| self.asset_partition(a))))?;
        Ok(CheckFacts { groups, offboarded, assets })
    }

    async fn audience_facts(&self, asset: &AssetId, users: &[Identity]) -> Result<AudienceFacts, StoreError> {
        let (asset, users) =
            tokio::try_join!(self.asset_partition(asset), try_join_all(users.iter().map(|u| self.groups_of(u))))?;
        let (groups, offboarded) = users.into_iter().unzip();
        Ok(AudienceFacts { asset, groups, offboarded })
    }

    async fn asset_facts(&self, asset: &AssetId) -> Result<AccessFacts, StoreError> {
        self.asset_partition(asset).await
    }

    async fn group_members(&self, group: &GroupId) -> Result<Vec<Identity>, StoreError> {
        let items = self.query(keys::group_pk(group), Some(MEMBER_PREFIX)).await?;
        let mut members = Vec::with_capacity(items.len());
        for item in &items {
            members.extend(refused_is_none(Identity::try_from(member_id(item, &Tenant::Single)?), "member"));
        }
        Ok(members)
    }

    async fn offboarded(&self, users: &[Identity]) -> Result<Vec<bool>, StoreError> {
        try_join_all(users.iter().map(|u| self.is_offboarded(u))).await
    }
}

impl Budgets for DynamoStore {
    async fn spend_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> Result<Result<(), BudgetSpent>, StoreError> {
        // The user's windows in one transaction (both or neither); then the tenant's minute,
        // which every user of the tenant writes at once, as one conditional `UpdateItem`:
        // transactions on one hot item would conflict, single writes to it queue instead. A
        // tenant's full minute gives the user's windows back. A tenant write whose answer was lost
        // may have counted: the tenant's minute is then one tighter, never looser.
        let (users, tenants): (Vec<BudgetWindow>, Vec<BudgetWindow>) =
            limits.windows(user, tenant, now).into_iter().partition(|w| matches!(w.counter, BudgetCounter::User(_)));
        if let Err(spent) = self.spend_user_windows(&users).await? {
            return Ok(Err(spent));
        }
        for window in &tenants {
            let sent = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(budget_key(window)))
                .update_expression("ADD #c :one SET #ttl = :ttl")
                .condition_expression("attribute_not_exists(#c) OR #c < :limit")
                .expression_attribute_names("#c", attr::COUNT)
                .expression_attribute_names("#ttl", attr::TTL)
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":ttl", AttributeValue::N(window.forget_at.to_string()))
                .expression_attribute_values(":limit", AttributeValue::N(window.limit.to_string()))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await;
            let outcome = match sent_or_gone(sent) {
                Ok(Some(out)) => {
                    self.stats.record(out.consumed_capacity());
                    continue;
                }
                Ok(None) => Ok(Err(window.spent())),
                Err(e) => Err(e),
            };
            // The answer stands whatever the refund does: one not made leaves the user's budget a
            // little tighter, never looser.
            if let Err(e) = self.refund_windows(&users).await {
                tracing::warn!(error = %crate::http::ErrorChain(&e), "budget not refunded");
            }
            return outcome;
        }
        Ok(Ok(()))
    }

    async fn refund_new_conversation(
        &self,
        user: &Identity,
        tenant: Option<&TenantId>,
        limits: BudgetLimits,
        now: u64,
    ) -> Result<(), StoreError> {
        self.refund_windows(&limits.windows(user, tenant, now)).await
    }
}

impl DynamoStore {
    /// Counts one in each of a user's windows, all or none; the window that frees last when any is
    /// full.
    async fn spend_user_windows(&self, windows: &[BudgetWindow]) -> Result<Result<(), BudgetSpent>, StoreError> {
        if windows.is_empty() {
            return Ok(Ok(()));
        }
        let updates = windows
            .iter()
            .map(|w| {
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(budget_key(w)))
                    .update_expression("ADD #c :one SET #ttl = :ttl")
                    .condition_expression("attribute_not_exists(#c) OR #c < :limit")
                    .expression_attribute_names("#c", attr::COUNT)
                    .expression_attribute_names("#ttl", attr::TTL)
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":ttl", AttributeValue::N(w.forget_at.to_string()))
                    .expression_attribute_values(":limit", AttributeValue::N(w.limit.to_string()))
                    .build()
                    .map_err(internal)?;
                Ok(TransactWriteItem::builder().update(update).build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let Err(err) = self.transact_or_cancelled(updates).await else { return Ok(Ok(())) };
        // Which windows are full: the cancellation reasons come in the order of the items; the
        // caller waits for the one that frees last.
        let reasons = match err.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => c.cancellation_reasons().to_vec(),
            _ => Vec::new(),
        };
        let longest = windows
            .iter()
            .zip(reasons.iter().map(|r| r.code() == Some("ConditionalCheckFailed")).chain(std::iter::repeat(false)))
            .filter(|(_, full)| *full)
            .map(|(w, _)| w)
            .max_by_key(|w| w.seconds_left);
        match longest {
            Some(window) => Ok(Err(window.spent())),
            None => Err(store_error(err)),
        }
    }

    /// Gives one back to each window's counter that exists (a refund never creates one), never
    /// below zero; each on its own, so one gone with its bucket does not keep the others. Each is
    /// a one-item transaction: the SDK gives it an idempotency token, so a retry whose first
    /// answer was lost gives back nothing twice (a plain `ADD -1` retried would). The first error,
    /// once every refund was tried.
    async fn refund_windows(&self, windows: &[BudgetWindow]) -> Result<(), StoreError> {
        let refunds = windows.iter().map(|w| async move {
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(budget_key(w)))
                .update_expression("ADD #c :minus")
                .condition_expression("#c > :zero")
                .expression_attribute_names("#c", attr::COUNT)
                .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .build()
                .map_err(internal)?;
            match self.transact(vec![TransactWriteItem::builder().update(update).build()]).await {
                // A counter already at zero, or gone with its bucket: nothing to give back.
                Ok(()) | Err(StoreError::Conflict) => Ok(()),
                Err(e) => Err(e),
            }
        });
        futures_util::future::join_all(refunds).await.into_iter().collect()
    }
}

/// A budget window's counter item.
fn budget_key(window: &BudgetWindow) -> Item {
    DynamoStore::key(keys::budget_pk(&window.counter), keys::budget_sk(window.name, window.bucket))
}

impl Idempotency for DynamoStore {
    async fn begin(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        group_name: &str,
        lease_seconds: u64,
        now: u64,
    ) -> Result<Begun, StoreError> {
        // One conditional write takes a key that is free or forgotten (past its window:
        // DynamoDB's TTL deletes late), with the group name proposed. When the key is held,
        // DynamoDB hands back what holds it.
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::idempotency_pk(user), key.to_owned())))
            .update_expression("SET #f = :f, #u = :u, #l = :lease, #ttl = :ttl REMOVE #s, #b")
            .condition_expression("attribute_not_exists(#f) OR #ttl <= :now")
            .expression_attribute_names("#f", attr::FINGERPRINT)
            .expression_attribute_names("#u", attr::GROUP_NAME)
            .expression_attribute_names("#l", attr::LEASE)
            .expression_attribute_names("#ttl", attr::TTL)
            .expression_attribute_names("#s", attr::STATUS)
            .expression_attribute_names("#b", attr::BODY)
            .expression_attribute_values(":f", AttributeValue::S(fingerprint.to_owned()))
            .expression_attribute_values(":u", AttributeValue::S(group_name.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N((now + lease_seconds).to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N((now + IDEMPOTENCY_WINDOW_SECONDS).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let held = match sent {
            Ok(out) => {
                self.stats.record(out.consumed_capacity());
                return Ok(Begun::Fresh { group_name: group_name.to_owned(), attempted: false });
            }
            Err(SdkError::ServiceError(failed))
                if matches!(failed.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                match failed.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(e) => e.item.unwrap_or_default(),
                    _ => Item::new(),
                }
            }
            Err(e) => return Err(store_error(e)),
        };
        if s(&held, attr::FINGERPRINT) != Some(fingerprint) {
            return Ok(Begun::Mismatch);
        }
        match (n(&held, attr::STATUS)?, s(&held, attr::BODY)) {
            (Some(status), Some(body)) => {
                return Ok(Begun::Replay(Remembered {
                    status: u16::try_from(status).map_err(|_| corrupt(attr::STATUS))?,
                    body: body.to_owned(),
                }));
            }
            _ if n(&held, attr::LEASE)?.unwrap_or(0) > now => return Ok(Begun::InProgress),
            _ => {}
        }
        // An earlier attempt of the same request failed or stopped: retaken, with the name it
        // was given (a second write, on retries only), unless another retry took it first.
        let retaken = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::idempotency_pk(user), key.to_owned())))
            .update_expression("SET #l = :lease, #ttl = :ttl, #u = if_not_exists(#u, :u)")
            .condition_expression("#f = :f AND attribute_not_exists(#s) AND #l <= :now AND #ttl > :now")
            .expression_attribute_names("#f", attr::FINGERPRINT)
            .expression_attribute_names("#u", attr::GROUP_NAME)
            .expression_attribute_names("#l", attr::LEASE)
            .expression_attribute_names("#ttl", attr::TTL)
            .expression_attribute_names("#s", attr::STATUS)
            .expression_attribute_values(":f", AttributeValue::S(fingerprint.to_owned()))
            .expression_attribute_values(":u", AttributeValue::S(group_name.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N((now + lease_seconds).to_string()))
            .expression_attribute_values(":ttl", AttributeValue::N((now + IDEMPOTENCY_WINDOW_SECONDS).to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let Some(out) = sent_or_gone(retaken)? else { return Ok(Begun::InProgress) };
        self.stats.record(out.consumed_capacity());
        let kept = out.attributes.as_ref().and_then(|item| s(item, attr::GROUP_NAME)).unwrap_or(group_name);
        Ok(Begun::Fresh { group_name: kept.to_owned(), attempted: true })
    }

    async fn finish(
        &self,
        user: &Identity,
        key: &str,
        fingerprint: &str,
        answer: &Remembered,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::idempotency_pk(user), key.to_owned())))
            .update_expression("SET #s = :s, #b = :b")
            .condition_expression("#f = :f")
            .expression_attribute_names("#f", attr::FINGERPRINT)
            .expression_attribute_names("#s", attr::STATUS)
            .expression_attribute_names("#b", attr::BODY)
            .expression_attribute_values(":f", AttributeValue::S(fingerprint.to_owned()))
            .expression_attribute_values(":s", AttributeValue::N(answer.status.to_string()))
            .expression_attribute_values(":b", AttributeValue::S(answer.body.clone()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        Ok(())
    }

    async fn abandon(&self, user: &Identity, key: &str, fingerprint: &str) -> Result<(), StoreError> {
        // The lease ends now; an answered key, or one another request took, stays as it is.
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(keys::idempotency_pk(user), key.to_owned())))
            .update_expression("SET #l = :zero")
            .condition_expression("#f = :f AND attribute_not_exists(#s)")
            .expression_attribute_names("#f", attr::FINGERPRINT)
            .expression_attribute_names("#l", attr::LEASE)
            .expression_attribute_names("#s", attr::STATUS)
            .expression_attribute_values(":f", AttributeValue::S(fingerprint.to_owned()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if let Some(out) = sent_or_gone(sent)? {
            self.stats.record(out.consumed_capacity());
        }
        Ok(())
    }
}

impl GrantWriter for DynamoStore {
    async fn asset_record(&self, asset: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        let Some(within) = self.partition_tenant(asset.as_str()) else { return Ok(None) };
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.asset_pk(asset)?, ASSET_SK.to_owned())))
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        out.item.as_ref().map(|item| asset_record(asset, item, &within)).transpose()
    }

    async fn put_grant(&self, asset: &AssetRecord, grant: &Grant, _now: u64) -> Result<(), StoreError> {
        let mut item = self.grant_key(&asset.id, &grant.principal)?;
        self.claim(asset.id.as_str()).await?;
        if item.get(SK).and_then(|sk| sk.as_s().ok()).is_some_and(|sk| !keys::is_raw_grant_sk(sk)) {
            item.insert(attr::ID.into(), AttributeValue::S(grant.principal.to_string()));
        }
        let role = if grant.role >= Role::Writer { "w" } else { "r" };
        item.insert(attr::ROLE.into(), AttributeValue::S(role.into()));
        item.insert(attr::GENERATION.into(), AttributeValue::S(asset.generation.clone()));
        let mut writes = vec![self.asset_unchanged(asset)?];
        if let Some(at) = grant.expires_at {
            item.insert(attr::EXPIRES_AT.into(), AttributeValue::N(at.to_string()));
            item.insert(attr::TTL.into(), AttributeValue::N((at + TTL_GRACE_SECONDS).to_string()));
            // The sweep finds the grant in its minute without scanning the table. An entry left
            // by an earlier expiry of the same grant stays in its own minute, harmless: the sweep
            // re-decides before it removes anyone.
            let entry = Expiry { asset: asset.id.clone(), principal: grant.principal.clone(), expires_at: at };
            writes.push(self.put(expiry_entry(&entry))?);
        }
        writes.push(self.put(item)?);
        if let Some(mut mirror) = self.user_grant_key(&asset.id, &grant.principal)? {
            mirror.insert(attr::ASSET.into(), AttributeValue::S(asset.id.to_string()));
            writes.push(self.put(mirror)?);
        }
        self.transact(writes).await
    }

    async fn delete_grant(&self, asset: &AssetRecord, principal: &Principal) -> Result<(), StoreError> {
        let key = self.grant_key(&asset.id, principal)?;
        let mut writes = vec![self.asset_unchanged(asset)?, self.delete(key)?];
        if let Some(mirror) = self.user_grant_key(&asset.id, principal)? {
            writes.push(self.delete(mirror)?);
        }
        self.transact(writes).await
    }
}

impl CatalogWriter for DynamoStore {
    async fn put_asset(
        &self,
        id: &AssetId,
        owner: &Identity,
        kind: AssetType,
        name: &str,
        now: u64,
    ) -> Result<Upsert, StoreError> {
        let (pk, owner) = (self.asset_pk(id)?, self.owner(id, owner)?);
        self.claim(id.as_str()).await?;
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(pk, ASSET_SK.to_owned())))
            .update_expression(
                "SET #owner = :owner, #kind = :kind, #name = :name, #updated = :now, #gen = if_not_exists(#gen, :gen)",
            )
            .expression_attribute_names("#owner", attr::OWNER)
            .expression_attribute_names("#kind", attr::KIND)
            .expression_attribute_names("#name", attr::NAME)
            .expression_attribute_names("#updated", attr::UPDATED_AT)
            .expression_attribute_names("#gen", attr::GENERATION)
            .expression_attribute_values(":owner", AttributeValue::S(owner))
            .expression_attribute_values(":kind", AttributeValue::S(kind.as_str().into()))
            .expression_attribute_values(":name", AttributeValue::S(name.to_owned()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":gen", AttributeValue::S(new_generation()))
            .return_values(ReturnValue::UpdatedOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        // UPDATED_OLD returns the owner's old value exactly when the record existed.
        if out.attributes.is_some_and(|a| a.contains_key(attr::OWNER)) {
            return Ok(Upsert::Replaced);
        }
        // A new life of the id: grants an interrupted delete left behind are inert and would only
        // cost reads. Best effort: the record is written, and the next delete sweeps again.
        if let Err(e) = self.sweep_grants(id).await {
            tracing::warn!(error = %crate::http::ErrorChain(&e), "could not sweep an earlier generation's grants");
        }
        Ok(Upsert::Created)
    }

    async fn delete_asset(&self, id: &AssetId) -> Result<usize, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(self.asset_pk(id)?, ASSET_SK.to_owned())))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        self.sweep_grants(id).await
    }

    async fn add_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        let mut in_user = self.membership_key(user, group)?;
        self.claim(user.as_str()).await?;
        if in_user.get(SK).and_then(|sk| sk.as_s().ok()).is_some_and(|sk| keys::id_from_member_sk(sk).is_none()) {
            in_user.insert(attr::ID.into(), AttributeValue::S(group.to_string()));
        }
        let mut in_group = Self::key(keys::group_pk(group), keys::member_sk(user));
        if !keys::is_raw(user.as_str()) {
            in_group.insert(attr::ID.into(), AttributeValue::S(user.to_string()));
        }
        self.transact(vec![self.put(in_user)?, self.put(in_group)?]).await
    }

    async fn remove_member(&self, group: &GroupId, user: &Identity) -> Result<(), StoreError> {
        self.transact(vec![
            self.delete(self.membership_key(user, group)?)?,
            self.delete(Self::key(keys::group_pk(group), keys::member_sk(user)))?,
        ])
        .await
    }

    async fn set_offboarded(&self, user: &Identity, offboarded: bool, now: u64) -> Result<(), StoreError> {
        let key = Self::key(self.user_pk(user)?, OFFBOARDED_SK.to_owned());
        if offboarded {
            self.claim(user.as_str()).await?;
            let mut item = key;
            item.insert(attr::UPDATED_AT.into(), AttributeValue::N(now.to_string()));
            let out = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(store_error)?;
            self.stats.record(out.consumed_capacity());
        } else {
            let out = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(store_error)?;
            self.stats.record(out.consumed_capacity());
        }
        Ok(())
    }

    async fn delete_user_grants(&self, user: &Identity) -> Result<Vec<AssetId>, StoreError> {
        let mirrors = self.query(self.user_pk(user)?, Some(USER_GRANT_PREFIX)).await?;
        let principal = Principal::User(user.clone());
        let assets = mirrors
            .iter()
            .map(|m| AssetId::try_from(required(m, attr::ASSET)?).map_err(internal))
            .collect::<Result<Vec<_>, _>>()?;
        // Each grant with its mirror, unconditionally: whatever generation it carries, it goes.
        futures_util::stream::iter(assets.clone())
            .map(|asset| {
                let principal = &principal;
                async move {
                    let mut writes = vec![self.delete(self.grant_key(&asset, principal)?)?];
                    writes.extend(self.user_grant_key(&asset, principal)?.map(|m| self.delete(m)).transpose()?);
                    self.transact(writes).await
                }
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(assets)
    }
}

impl ExpiryIndex for DynamoStore {
    async fn expiring_in(&self, minute: u64) -> Result<Vec<Expiry>, StoreError> {
        let items = self.query(keys::expiry_pk(minute), Some(keys::EXPIRY_PREFIX)).await?;
        let read = |item: &Item| -> Result<Expiry, StoreError> {
            Ok(Expiry {
                asset: AssetId::try_from(required(item, attr::ASSET)?).map_err(internal)?,
                principal: Principal::try_from(required(item, attr::ID)?).map_err(internal)?,
                expires_at: n(item, attr::EXPIRES_AT)?.ok_or_else(|| corrupt(attr::EXPIRES_AT))?,
            })
        };
        Ok(items
            .iter()
            .filter(|item| !item.contains_key(attr::ASIDE))
            .filter_map(|item| match read(item) {
                Ok(entry) => Some(entry),
                // Never readable, so never handled: skipped (and counted) rather than pinning the sweep.
                Err(e) => {
                    let key = s(item, SK).unwrap_or_default();
                    tracing::error!(minute, sk = key, expiry_poison_entries = 1, error = %e, "unreadable expiry entry skipped");
                    None
                }
            })
            .collect())
    }

    async fn expiry_done(&self, entry: &Expiry) -> Result<(), StoreError> {
        // Only the entry of this very expiry (a hint written with the grant); an entry rewritten
        // for another expiry in the same minute stays.
        let sent = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(expiry_key(entry)))
            .condition_expression("#x = :x")
            .expression_attribute_names("#x", attr::EXPIRES_AT)
            .expression_attribute_values(":x", AttributeValue::N(entry.expires_at.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        if let Some(out) = sent_or_gone(sent)? {
            self.stats.record(out.consumed_capacity());
        }
        Ok(())
    }

    async fn expiry_failed(&self, entry: &Expiry, set_aside_after: u32) -> Result<bool, StoreError> {
        // One update counts the attempt and, at the limit, sets the entry aside; the condition
        // keeps it from resurrecting an entry handled meanwhile.
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(expiry_key(entry)))
            .update_expression("ADD #c :one")
            .condition_expression("#x = :x")
            .expression_attribute_names("#c", attr::COUNT)
            .expression_attribute_names("#x", attr::EXPIRES_AT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":x", AttributeValue::N(entry.expires_at.to_string()))
            .return_values(ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        let out = match sent_or_gone(out)? {
            Some(out) => out,
            None => return Ok(false),
        };
        self.stats.record(out.consumed_capacity());
        let attempts = out.attributes.as_ref().map(|a| n(a, attr::COUNT)).transpose()?.flatten().unwrap_or(0);
        if attempts < u64::from(set_aside_after) {
            return Ok(false);
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(expiry_key(entry)))
            .update_expression("SET #z = :at")
            .condition_expression("#x = :x AND attribute_not_exists(#z)")
            .expression_attribute_names("#z", attr::ASIDE)
            .expression_attribute_names("#x", attr::EXPIRES_AT)
            .expression_attribute_values(":at", AttributeValue::N(attempts.to_string()))
            .expression_attribute_values(":x", AttributeValue::N(entry.expires_at.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match sent_or_gone(out)? {
            Some(out) => {
                self.stats.record(out.consumed_capacity());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A Query, not a GetItem, so the reconciler's policy needs no read action besides Query.
    async fn sweep_cursor(&self) -> Result<Option<u64>, StoreError> {
        let items = self.query(SWEEP_PK.to_owned(), Some(SWEEP_SK)).await?;
        items.first().map(|item| n(item, attr::CURSOR)).transpose().map(Option::flatten)
    }

    async fn advance_sweep_cursor(&self, from: Option<u64>, to: u64) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(SWEEP_PK.to_owned(), SWEEP_SK.to_owned())))
            .update_expression("SET #t = :to")
            .expression_attribute_names("#t", attr::CURSOR)
            .expression_attribute_values(":to", AttributeValue::N(to.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let update = match from {
            Some(from) => update
                .condition_expression("#t = :from")
                .expression_attribute_values(":from", AttributeValue::N(from.to_string())),
            None => update.condition_expression("attribute_not_exists(#t)"),
        };
        let out = update.send().await.map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        Ok(())
    }
}

impl ConversationRegistry for DynamoStore {
    async fn register_conversation(&self, asset: &AssetId, now: u64) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(REGISTRY_PK.to_owned(), keys::registry_sk(asset))))
            .update_expression("SET #id = :id, #at = if_not_exists(#at, :now)")
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#at", attr::REGISTERED_AT)
            .expression_attribute_values(":id", AttributeValue::S(asset.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        Ok(())
    }
}

impl RegisteredConversations for DynamoStore {
    async fn registered_after(
        &self,
        after: Option<&AssetId>,
        limit: usize,
    ) -> Result<(Vec<AssetId>, bool), StoreError> {
        // Eventually consistent: an asset registered a moment ago is found by the next pass.
        let start = after.map(|asset| Self::key(REGISTRY_PK.to_owned(), keys::registry_sk(asset)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", AttributeValue::S(REGISTRY_PK.to_owned()))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        let more = out.last_evaluated_key.is_some_and(|key| !key.is_empty());
        // An id stored before v1.2's rules, or written by hand, is skipped rather than failing the walk.
        let assets = out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| {
                refused_is_none(AssetId::try_from(s(item, attr::ID).unwrap_or_default()), "registered asset")
            })
            .collect();
        Ok((assets, more))
    }
}

/// Items one `BatchWriteItem` takes, and the attempts at what DynamoDB leaves unprocessed.
const BATCH_WRITE_ITEMS: usize = 25;
const BATCH_WRITE_ATTEMPTS: u32 = 5;

/// From what this process knows, else from the table's tenant records (strongly consistent: a
/// tenant's record is written before its first key, so before any stream record of it).
impl StreamKeys for DynamoStore {
    async fn stream_tenants(&self, handles: BTreeSet<String>) -> Result<StreamTenants, StoreError> {
        if self.layout == KeyLayout::Single {
            return Ok(StreamTenants::Single);
        }
        let known: Vec<(String, Option<TenantId>)> = futures_util::stream::iter(handles)
            .map(|handle| async move {
                let tenant = self.tenant_of(&handle).await?;
                Ok::<_, StoreError>((handle, tenant))
            })
            .buffer_unordered(SWEEP_CONCURRENCY)
            .try_collect()
            .await?;
        let known = known.into_iter().filter_map(|(handle, tenant)| Some((handle, tenant?))).collect();
        Ok(StreamTenants::Handles(known))
    }
}

impl Rosters for DynamoStore {
    async fn write_roster(&self, conversation: &str, joined: &[Identity], left: &[Identity]) -> Result<(), StoreError> {
        let pk = keys::roster_pk(conversation);
        let mut requests = Vec::with_capacity(joined.len() + left.len());
        for user in joined {
            let mut item = Self::key(pk.clone(), keys::roster_sk(user));
            item.insert(attr::ID.into(), AttributeValue::S(user.to_string()));
            requests.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().map_err(internal)?)
                    .build(),
            );
        }
        for user in left {
            let key = Self::key(pk.clone(), keys::roster_sk(user));
            requests.push(
                WriteRequest::builder()
                    .delete_request(DeleteRequest::builder().set_key(Some(key)).build().map_err(internal)?)
                    .build(),
            );
        }
        try_join_all(requests.chunks(BATCH_WRITE_ITEMS).map(|chunk| self.batch_write(chunk.to_vec()))).await?;
        Ok(())
    }

    async fn rosters(&self, conversations: &[String]) -> Result<Vec<Vec<Identity>>, StoreError> {
        try_join_all(conversations.iter().map(|c| async move {
            let items = self.query(keys::roster_pk(c), Some("P#")).await?;
            // An id stored before v1.2's rules, or written by hand, is left out rather than failing the read.
            Ok::<_, StoreError>(
                items
                    .iter()
                    .filter_map(|item| {
                        refused_is_none(Identity::try_from(s(item, attr::ID).unwrap_or_default()), "roster member")
                    })
                    .collect(),
            )
        }))
        .await
    }
}

impl DynamoStore {
    /// One `BatchWriteItem`, its unprocessed items retried with a short backoff.
    async fn batch_write(&self, mut requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        for attempt in 1..=BATCH_WRITE_ATTEMPTS {
            let out = self
                .client
                .batch_write_item()
                .request_items(self.table.clone(), requests)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(store_error)?;
            for consumed in out.consumed_capacity() {
                self.stats.record(Some(consumed));
            }
            requests = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
            if requests.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
        }
        Err(StoreError::Unavailable(format!("{} roster write(s) left unprocessed", requests.len()).into()))
    }
}

impl PassProgress for DynamoStore {
    async fn pass_cursor(&self) -> Result<PassCursor, StoreError> {
        let items = self.query(PASS_PK.to_owned(), Some(SWEEP_SK)).await?;
        let Some(item) = items.first() else { return Ok(PassCursor::default()) };
        Ok(PassCursor {
            after: s(item, attr::PASS_AFTER)
                .map(AssetId::try_from)
                .transpose()
                .map_err(|_| corrupt(attr::PASS_AFTER))?,
            started_at: n(item, attr::PASS_STARTED)?,
            last_completed: n(item, attr::PASS_COMPLETED)?,
            version: n(item, attr::VERSION)?.unwrap_or(0),
        })
    }

    async fn save_pass_cursor(&self, from: &PassCursor, to: &PassCursor) -> Result<(), StoreError> {
        let mut set = vec!["#v = :to".to_owned()];
        let mut remove = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(PASS_PK.to_owned(), SWEEP_SK.to_owned())))
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":to", AttributeValue::N(to.version.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let fields = [
            ("#a", attr::PASS_AFTER, to.after.as_ref().map(|a| AttributeValue::S(a.to_string()))),
            ("#p", attr::PASS_STARTED, to.started_at.map(|t| AttributeValue::N(t.to_string()))),
            ("#d", attr::PASS_COMPLETED, to.last_completed.map(|t| AttributeValue::N(t.to_string()))),
        ];
        for (placeholder, name, value) in fields {
            update = update.expression_attribute_names(placeholder, name);
            match value {
                Some(value) => {
                    set.push(format!("{placeholder} = :{}", &placeholder[1..]));
                    update = update.expression_attribute_values(format!(":{}", &placeholder[1..]), value);
                }
                None => remove.push(placeholder),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        update = update.update_expression(expression);
        update = if from.version == 0 {
            update.condition_expression("attribute_not_exists(#v)")
        } else {
            update
                .condition_expression("#v = :from")
                .expression_attribute_values(":from", AttributeValue::N(from.version.to_string()))
        };
        let out = update.send().await.map_err(store_error)?;
        self.stats.record(out.consumed_capacity());
        Ok(())
    }
}

/// A conditional write's answer; `None` when its condition failed (the item gone or changed).
fn sent_or_gone<T, E>(sent: Result<T, SdkError<E, HttpResponse>>) -> Result<Option<T>, StoreError>
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match sent.map_err(store_error) {
        Ok(out) => Ok(Some(out)),
        Err(StoreError::Conflict) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The key of a grant's entry in the expiry index: its minute's partition.
fn expiry_key(entry: &Expiry) -> Item {
    DynamoStore::key(keys::expiry_pk(minute_of(entry.expires_at)), keys::expiry_sk(&entry.asset, &entry.principal))
}

/// A grant's entry in the expiry index.
fn expiry_entry(entry: &Expiry) -> Item {
    let mut item = expiry_key(entry);
    item.insert(attr::ASSET.into(), AttributeValue::S(entry.asset.to_string()));
    item.insert(attr::ID.into(), AttributeValue::S(entry.principal.to_string()));
    item.insert(attr::EXPIRES_AT.into(), AttributeValue::N(entry.expires_at.to_string()));
    item.insert(attr::TTL.into(), AttributeValue::N((entry.expires_at + EXPIRY_ENTRY_TTL_SECONDS).to_string()));
    item
}

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn n(item: &Item, name: &str) -> Result<Option<u64>, StoreError> {
    item.get(name)
        .map(|v| v.as_n().map_err(|_| corrupt(name)).and_then(|n| n.parse().map_err(|_| corrupt(name))))
        .transpose()
}

fn required<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    s(item, name).ok_or_else(|| corrupt(name))
}

fn corrupt(name: &str) -> StoreError {
    StoreError::Internal(format!("an item has no valid `{name}`").into())
}

/// The record of asset `id`, whose owner is named relative to the asset's tenant `within`.
fn asset_record(id: &AssetId, item: &Item, within: &Tenant) -> Result<AssetRecord, StoreError> {
    Ok(AssetRecord {
        id: id.clone(),
        owner: Identity::try_from(within.qualify(required(item, attr::OWNER)?)).map_err(internal)?,
        kind: AssetType::parse(required(item, attr::KIND)?).ok_or_else(|| corrupt(attr::KIND))?,
        name: s(item, attr::NAME).unwrap_or_default().to_owned(),
        generation: required(item, attr::GENERATION)?.to_owned(),
    })
}

/// An id stored before chatgate refused it (v1.2's Unicode rules) names nobody who can sign in
/// or be named again: what it grants counts for nothing, and is logged rather than failing every
/// read of its partition.
fn refused_is_none<T, E: std::fmt::Display>(parsed: Result<T, E>, what: &str) -> Option<T> {
    parsed.inspect_err(|e| tracing::warn!(what, problem = %e, "an item names an id chatgate refuses; ignored")).ok()
}

/// A grant; `None` for a grant to an id chatgate now refuses (see [`refused_is_none`]).
/// `within` is the asset's tenant, whom the sort key's principal is relative to.
fn grant(item: &Item, within: &Tenant) -> Result<Option<Grant>, StoreError> {
    let sk = required(item, SK)?;
    let principal = match keys::principal_from_grant_sk(sk, within) {
        Some(principal) => principal,
        None if keys::is_raw_grant_sk(sk) => {
            tracing::warn!(what = "grant", "an item names an id chatgate refuses; ignored");
            return Ok(None);
        }
        None => match refused_is_none(Principal::try_from(required(item, attr::ID)?), "grant") {
            Some(principal) => principal,
            None => return Ok(None),
        },
    };
    Ok(Some(Grant {
        principal,
        role: match required(item, attr::ROLE)? {
            "r" => Role::Reader,
            "w" => Role::Writer,
            _ => return Err(corrupt(attr::ROLE)),
        },
        expires_at: n(item, attr::EXPIRES_AT)?,
        generation: required(item, attr::GENERATION)?.to_owned(),
    }))
}

/// A membership's id: from its sort key, relative to `within` (a membership in a user's
/// partition; a member in a group's partition is named whole), or from the item when the key
/// holds a hash.
fn member_id(item: &Item, within: &Tenant) -> Result<String, StoreError> {
    match keys::id_from_member_sk(required(item, SK)?) {
        Some(id) => Ok(within.qualify(id)),
        None => required(item, attr::ID).map(str::to_owned),
    }
}

/// An id with no key in a partition: another tenant's, or in a tenant table of no tenant at all.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not of the tenant whose partition it would be keyed in")]
struct OutsideTenant(String);

/// Two tenants whose ids have the same handle: the second is refused.
#[derive(Debug, thiserror::Error)]
#[error("the key handle of tenant {0} belongs to another tenant in this table")]
struct HandleTaken(TenantId);

fn internal(e: impl StdError + Send + Sync + 'static) -> StoreError {
    StoreError::Internal(Box::new(e))
}

fn is_transaction_conflict<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("TransactionCanceledException")
        && err.message().is_some_and(|m| m.contains("TransactionConflict") && !m.contains("ConditionalCheckFailed"))
}

/// Throttling, timeouts, server errors and transaction conflicts are `Unavailable` (already
/// retried: by the SDK, and transaction conflicts by [`DynamoStore::transact`]); failed conditions are `Conflict`; anything else is a bug or a
/// misconfiguration and stays `Internal`.
fn store_error<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    let message = err.message().unwrap_or_default().to_owned();
    match (&err, code.as_deref()) {
        (SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_), _) => {
            StoreError::Unavailable(Box::new(err))
        }
        (
            _,
            Some(
                "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException",
            ),
        ) => StoreError::Unavailable(Box::new(err)),
        (_, Some("ConditionalCheckFailedException")) => StoreError::Conflict,
        (_, Some("TransactionCanceledException")) if message.contains("ConditionalCheckFailed") => StoreError::Conflict,
        (_, Some("TransactionCanceledException"))
            if message.contains("TransactionConflict") || message.contains("ThrottlingError") =>
        {
            StoreError::Unavailable(Box::new(err))
        }
        (SdkError::ServiceError(service), _) if service.raw().status().is_server_error() => {
            StoreError::Unavailable(Box::new(err))
        }
        _ => StoreError::Internal(Box::new(err)),
    }
}
