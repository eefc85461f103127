//! The comparisons, written with the raw SDK: one strongly consistent `GetItem` of the asset
//! record, and a naive check that reads one fact at a time and waits for each answer.
//!
//! chatgate's key layout and attribute names are private to its adapter, so the few this needs are
//! repeated here (raw ids only: the benchmark's ids are short and never start with `#`, so no key
//! holds a hash). Should they drift from `shared/src/acl/keys.rs`, the naive check answers wrongly
//! and the benchmark fails: every answer is checked.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};

use chatgate::domain::{AssetId, Identity, Role, TENANT_SEPARATOR, Tenant};

use crate::BenchError;

type Item = HashMap<String, AttributeValue>;

/// What a naive check answered and what it cost.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub role: Role,
    pub requests: u32,
    /// Requests whose answer was awaited before the next was sent: here every one of them.
    pub round_trips: u32,
    pub capacity: f64,
}

impl Outcome {
    fn record(&mut self, consumed: Option<&ConsumedCapacity>) {
        self.requests += 1;
        self.round_trips += 1;
        self.capacity += consumed.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0);
    }
}

/// A hot partition's key in a deployment (`within` a tenant, or single-tenant): the tenant as
/// its handle, and the id relative to it.
fn hot_pk(prefix: &str, id: &str, within: &Tenant) -> Result<String, BenchError> {
    Ok(match within {
        Tenant::Single => format!("{prefix}{id}"),
        Tenant::Of(tenant) => format!("{prefix}{}{TENANT_SEPARATOR}{}", tenant.handle(), relative(id, within)?),
    })
}

/// An id as the hot partitions' sort keys and the asset record's owner name it: without its
/// tenant, which must be the partition's.
fn relative<'a>(id: &'a str, within: &Tenant) -> Result<&'a str, BenchError> {
    Ok(within.local(id).ok_or_else(|| format!("{id} is not of the scenario's tenant"))?)
}

/// Asset record, then the user's direct grant, then the user's memberships, then the grant of each
/// group in turn, stopping at the first writer grant. All reads strongly consistent.
pub async fn check(
    client: &Client,
    table: &str,
    user: &Identity,
    asset: &AssetId,
    within: &Tenant,
    now: u64,
) -> Result<Outcome, BenchError> {
    let mut outcome = Outcome { role: Role::None, requests: 0, round_trips: 0, capacity: 0.0 };
    let asset_pk = hot_pk("A#", asset.as_str(), within)?;
    let Some(record) = get(client, table, &asset_pk, "#ASSET", &mut outcome).await? else {
        return Ok(outcome);
    };
    let user_id = relative(user.as_str(), within)?;
    if s(&record, "owner") == Some(user_id) {
        outcome.role = Role::Owner;
        return Ok(outcome);
    }
    let generation = s(&record, "g").ok_or("an asset record without a generation")?.to_owned();
    let live_role = |item: &Item| -> Option<Role> {
        let current = s(item, "g") == Some(generation.as_str());
        let unexpired = match item.get("x").map(AttributeValue::as_n) {
            None => true,
            Some(Ok(at)) => at.parse::<u64>().is_ok_and(|at| at > now),
            Some(Err(_)) => false,
        };
        match s(item, "r") {
            Some("w") if current && unexpired => Some(Role::Writer),
            Some("r") if current && unexpired => Some(Role::Reader),
            _ => None,
        }
    };

    if let Some(role) =
        get(client, table, &asset_pk, &format!("G#user:{user_id}"), &mut outcome).await?.and_then(|i| live_role(&i))
    {
        outcome.role = role;
        if role == Role::Writer {
            return Ok(outcome);
        }
    }
    for group in memberships(client, table, &hot_pk("U#", user.as_str(), within)?, &mut outcome).await? {
        let grant = get(client, table, &asset_pk, &format!("G#group:{group}"), &mut outcome).await?;
        if let Some(role) = grant.and_then(|i| live_role(&i)) {
            outcome.role = outcome.role.max(role);
            if role == Role::Writer {
                break;
            }
        }
    }
    Ok(outcome)
}

/// One strongly consistent `GetItem` of the asset record; whether it exists.
pub async fn get_asset_record(
    client: &Client,
    table: &str,
    asset: &AssetId,
    within: &Tenant,
) -> Result<bool, BenchError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(hot_pk("A#", asset.as_str(), within)?))
        .key("sk", AttributeValue::S("#ASSET".into()))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    Ok(out.item.is_some())
}

async fn get(
    client: &Client,
    table: &str,
    pk: &str,
    sk: &str,
    outcome: &mut Outcome,
) -> Result<Option<Item>, BenchError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .return_consumed_capacity(ReturnConsumedCapacity::Total)
        .send()
        .await?;
    outcome.record(out.consumed_capacity());
    Ok(out.item)
}

/// The group ids (relative) in a user's partition `user_pk`, page by page.
async fn memberships(
    client: &Client,
    table: &str,
    user_pk: &str,
    outcome: &mut Outcome,
) -> Result<Vec<String>, BenchError> {
    let mut groups = Vec::new();
    let mut start = None;
    loop {
        let out = client
            .query()
            .table_name(table)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", AttributeValue::S(user_pk.to_owned()))
            .expression_attribute_values(":prefix", AttributeValue::S("M#".into()))
            .set_exclusive_start_key(start)
            .send()
            .await?;
        outcome.record(out.consumed_capacity());
        for item in out.items() {
            let id = s(item, "sk").and_then(|sk| sk.strip_prefix("M#")).ok_or("a membership without a sort key")?;
            if id.starts_with('#') {
                return Err(format!("membership {id} holds a hashed id: not a benchmark id").into());
            }
            groups.push(id.to_owned());
        }
        match out.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(groups),
        }
    }
}

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}
