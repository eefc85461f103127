//! Operator commands against the ACL table (`TABLE_NAME`, with the standard AWS configuration):
//! assets, groups and grants. Each says what it changed, or exits non-zero with one line.

use chatgate::acl::{AclReader, CatalogWriter, DynamoStore, GrantWriter, StoreError, Upsert};
use chatgate::clock::{Clock, SystemClock};
use chatgate::config::Settings;
use chatgate::domain::{AssetId, AssetType, Grant, GroupId, Identity, Principal, Role, Tenant};
use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create the table (for DynamoDB Local; in AWS the stack creates it).
    Create,
}

#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Create or replace an asset's record (grants survive an owner change).
    Put {
        asset_id: String,
        #[arg(long)]
        owner: String,
        #[arg(long = "type", value_parser = ["document", "image", "video"])]
        kind: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Show an asset's record and live grants.
    Show { asset_id: String },
    /// Delete an asset and all its grants.
    Delete { asset_id: String },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Add a user to a group.
    Add { group_id: String, user_id: String },
    /// Remove a user from a group.
    Remove { group_id: String, user_id: String },
    /// List a group's members.
    Members { group_id: String },
}

#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// Grant `reader` or `writer` on an asset to `user:<id>` or `group:<id>`.
    Put {
        asset_id: String,
        principal: String,
        #[arg(long, value_parser = ["reader", "writer"])]
        role: String,
        /// RFC 3339 time after which the grant no longer counts.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// Revoke a grant.
    Delete { asset_id: String, principal: String },
    /// List an asset's live grants.
    List { asset_id: String },
    /// One-time, after upgrading: index the expiries of grants written before the expiry index
    /// existed, so the sweep finds them (a Scan of the table).
    IndexExpiries,
}

/// The table `TABLE_NAME` names, with the operator's AWS credentials (the SDK's default chain).
async fn store() -> Result<DynamoStore> {
    let settings = Settings::from_env();
    let (table, layout) = (chatgate::config::table_name(&settings)?, DynamoStore::layout(&settings)?);
    Ok(DynamoStore::new(&chatgate::aws::default_chain().await, table, layout))
}

/// Twilio's secrets for the operator's tools: from the environment, or from Secrets Manager with
/// the operator's AWS credentials (the SDK's default chain).
pub async fn twilio_secrets(settings: &Settings) -> Result<chatgate::config::TwilioSecrets> {
    Ok(match chatgate::config::SecretsSource::from_settings(settings) {
        chatgate::config::SecretsSource::Environment(secrets) => secrets,
        source => source.load(&chatgate::aws::default_chain().await).await?,
    })
}

fn asset_id(tenant: &Tenant, raw: &str) -> Result<AssetId> {
    Ok(tenant.asset(raw).map_err(|e| format!("asset id: {e}"))?)
}

fn principal(tenant: &Tenant, raw: &str) -> Result<Principal> {
    Ok(tenant.principal(raw).map_err(|e| format!("principal: {e}"))?)
}

fn describe(e: StoreError) -> Box<dyn std::error::Error> {
    format!("{}", chatgate::http::ErrorChain(&e)).into()
}

pub async fn table(command: TableCommand) -> Result<()> {
    match command {
        TableCommand::Create => {
            let store = store().await?;
            store.create_table().await.map_err(describe)?;
            println!("created table {}", store.table());
        }
    }
    Ok(())
}

pub async fn assets(command: AssetsCommand, tenant: &Tenant) -> Result<()> {
    let store = store().await?;
    match command {
        AssetsCommand::Put { asset_id: raw, owner: raw_owner, kind, name } => {
            let id = asset_id(tenant, &raw)?;
            let owner = tenant.user(&raw_owner).map_err(|e| format!("owner: {e}"))?;
            let kind = AssetType::parse(&kind).ok_or("type must be document, image or video")?;
            let upsert = store.put_asset(&id, &owner, kind, &name, SystemClock.now()).await.map_err(describe)?;
            let verb = if upsert == Upsert::Created { "created" } else { "replaced" };
            println!("{verb} asset {raw} (owner {raw_owner}, {})", kind.as_str());
        }
        AssetsCommand::Show { asset_id: raw } => {
            let id = asset_id(tenant, &raw)?;
            let facts = store.asset_facts(&id).await.map_err(describe)?;
            let record = facts.asset.ok_or_else(|| format!("no asset {raw}"))?;
            let owner = tenant.shown(record.owner.as_str());
            println!("asset {raw}: owner {owner}, {}, name {:?}", record.kind.as_str(), record.name);
            print_grants(&facts.grants, &record, tenant);
        }
        AssetsCommand::Delete { asset_id: raw } => {
            let id = asset_id(tenant, &raw)?;
            let removed = store.delete_asset(&id).await.map_err(describe)?;
            println!("deleted asset {raw} and {removed} grant(s)");
        }
    }
    Ok(())
}

pub async fn groups(command: GroupsCommand, tenant: &Tenant) -> Result<()> {
    let store = store().await?;
    let group = |g: &str| -> Result<GroupId> { Ok(tenant.group(g).map_err(|e| format!("group id: {e}"))?) };
    let user = |u: &str| -> Result<Identity> { Ok(tenant.user(u).map_err(|e| format!("user id: {e}"))?) };
    match command {
        GroupsCommand::Add { group_id, user_id } => {
            store.add_member(&group(&group_id)?, &user(&user_id)?).await.map_err(describe)?;
            println!("added {user_id} to group {group_id}");
        }
        GroupsCommand::Remove { group_id, user_id } => {
            store.remove_member(&group(&group_id)?, &user(&user_id)?).await.map_err(describe)?;
            println!("removed {user_id} from group {group_id}");
        }
        GroupsCommand::Members { group_id } => {
            for member in store.group_members(&group(&group_id)?).await.map_err(describe)? {
                println!("{}", tenant.shown(member.as_str()));
            }
        }
    }
    Ok(())
}

pub async fn grants(command: GrantsCommand, tenant: &Tenant) -> Result<()> {
    let store = store().await?;
    let now = SystemClock.now();
    match command {
        GrantsCommand::Put { asset_id: raw, principal: raw_who, role, expires_at } => {
            let (id, who) = (asset_id(tenant, &raw)?, principal(tenant, &raw_who)?);
            let role = Role::grantable(&role).ok_or("role must be reader or writer")?;
            let expires_at = expires_at
                .map(|at| {
                    let at = OffsetDateTime::parse(&at, &Rfc3339).map_err(|_| "expires-at must be an RFC 3339 time")?;
                    u64::try_from(at.unix_timestamp())
                        .ok()
                        .filter(|&at| at > now)
                        .ok_or("expires-at must be in the future")
                })
                .transpose()?;
            let record =
                store.asset_facts(&id).await.map_err(describe)?.asset.ok_or_else(|| format!("no asset {raw}"))?;
            if who == Principal::User(record.owner.clone()) {
                return Err(format!("{raw_who} owns asset {raw} already").into());
            }
            let grant = Grant { principal: who, role, expires_at, generation: record.generation.clone() };
            store.put_grant(&record, &grant, now).await.map_err(describe)?;
            println!("granted {} on asset {raw} to {raw_who}", role.as_str());
        }
        GrantsCommand::Delete { asset_id: raw, principal: raw_who } => {
            let (id, who) = (asset_id(tenant, &raw)?, principal(tenant, &raw_who)?);
            let record =
                store.asset_facts(&id).await.map_err(describe)?.asset.ok_or_else(|| format!("no asset {raw}"))?;
            store.delete_grant(&record, &who).await.map_err(describe)?;
            println!("revoked {raw_who}'s grant on asset {raw}");
        }
        GrantsCommand::IndexExpiries => {
            let (written, expired) = store.backfill_expiry_index(now).await.map_err(describe)?;
            println!("indexed {written} grant expiry(ies)");
            let assets: std::collections::BTreeSet<String> = expired.iter().map(|e| e.asset.to_string()).collect();
            for asset in assets {
                println!("already expired on asset {asset}: run `chatgate reconcile asset {asset}`");
            }
        }
        GrantsCommand::List { asset_id: raw } => {
            let id = asset_id(tenant, &raw)?;
            let facts = store.asset_facts(&id).await.map_err(describe)?;
            let record = facts.asset.ok_or_else(|| format!("no asset {raw}"))?;
            print_grants(&facts.grants, &record, tenant);
        }
    }
    Ok(())
}

fn print_grants(grants: &[Grant], record: &chatgate::domain::AssetRecord, tenant: &Tenant) {
    let now = SystemClock.now();
    let mut live: Vec<&Grant> = grants.iter().filter(|g| g.is_live(record, now)).collect();
    live.sort_by_cached_key(|g| g.principal.to_string());
    for grant in live {
        let expiry = grant
            .expires_at
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at as i64).ok())
            .and_then(|at| at.format(&Rfc3339).ok())
            .map_or(String::new(), |at| format!(" until {at}"));
        let principal = tenant.local_principal(&grant.principal).unwrap_or_else(|| grant.principal.to_string());
        println!("{principal} {}{expiry}", grant.role.as_str());
    }
}
