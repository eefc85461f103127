//! The table's key layout, the one place it is written down (see docs/data-model.md).
//!
//! Every key has one variable part and it is always the suffix, after a fixed prefix that names
//! the item kind, so distinct ids can never produce the same key or land in another partition,
//! whatever characters they contain. Parts too long for DynamoDB's sort-key limit are replaced
//! by their SHA-256 under a different prefix, and then the item carries the full id (`id`).
//!
//! In a tenant deployment every id is `<tenant>~<id>`. The two partitions an access check reads,
//! an asset's and a user's, name their tenant by its fixed-size handle instead
//! (`A#<handle>~<id>`, [`crate::domain::TenantId::handle`]), and the grants and memberships in
//! them name their principal or group relative to it (`G#user:<id>`, `M#<id>`): whatever the
//! tenant's length, it adds 17 bytes to each item a check reads, never a read unit at the sizes
//! the access check is built for. Every other key keeps the qualified id as it is. A table's
//! tenant records (`T#<handle>`) say which tenant each handle is, for the stream.

use ring::digest;

use super::BudgetCounter;
use crate::domain::{AssetId, GroupId, Identity, Principal, TENANT_SEPARATOR, Tenant};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const ASSET_SK: &str = "#ASSET";
pub const GRANT_PREFIX: &str = "G#";
pub const MEMBER_PREFIX: &str = "M#";
/// The expiry index: one partition per minute, one item per grant that expires in it.
pub const EXPIRY_PREFIX: &str = "E#";
/// In a user's partition, the item that says the user is offboarded. It is the memberships'
/// prefix itself (no group id is empty), so the one Query that reads a user's groups for every
/// check reads it too: knowing whether someone is offboarded costs no request and no read unit.
pub const OFFBOARDED_SK: &str = MEMBER_PREFIX;
/// In a user's partition, one item per grant made to the user directly (the asset in `a`), so
/// offboarding finds them without scanning the table.
pub const USER_GRANT_PREFIX: &str = "R#";
/// A user's budget counters: one partition per user, one item per window and bucket.
pub const BUDGET_PREFIX: &str = "B#";
/// A user's remembered `Idempotency-Key`s: one partition per user, the key itself as sort key
/// (1 to 128 visible ASCII characters).
pub const IDEMPOTENCY_PREFIX: &str = "I#";
/// The registry of asset conversations: one partition, one item per asset (see
/// [`registry_sk`]). Walked in order by the scheduled pass.
pub const REGISTRY_PK: &str = "K#asset-conversations";
/// A conversation's roster: one partition per conversation (its unique name, or SID), one item per
/// participant (see [`roster_sk`]).
pub const ROSTER_PREFIX: &str = "C#";
/// A tenant record: which tenant a key handle stands for (`T#<handle>`, with the tenant in `id`),
/// written before the tenant's first key.
pub const TENANT_PREFIX: &str = "T#";
pub const TENANT_SK: &str = "#TENANT";
/// The one item that says how far the scheduled pass has got.
pub const PASS_PK: &str = "S#full-reconcile";
/// The one item that says how far the expiry sweep has got.
pub const SWEEP_PK: &str = "S#expiry-sweep";
pub const SWEEP_SK: &str = "#CURSOR";

/// Attribute names; every expression refers to them through `#placeholders` (several are
/// DynamoDB reserved words). Grants and memberships are read in bulk by every check, where a
/// strongly consistent Query costs one RCU per 4 KB, so their attributes are one letter.
pub mod attr {
    pub const OWNER: &str = "owner";
    pub const KIND: &str = "kind";
    pub const NAME: &str = "name";
    pub const UPDATED_AT: &str = "updated_at";
    /// The asset's generation, on the record and on each grant.
    pub const GENERATION: &str = "g";
    /// A grant's role: `r` (reader) or `w` (writer).
    pub const ROLE: &str = "r";
    /// A grant's expiry, Unix seconds.
    pub const EXPIRES_AT: &str = "x";
    /// DynamoDB TTL attribute: expired grants are swept a day after they stop counting.
    pub const TTL: &str = "ttl";
    /// The full principal or member id, stored only when the sort key holds its hash; on an
    /// expiry entry, the principal.
    pub const ID: &str = "id";
    /// An expiry entry's asset id.
    pub const ASSET: &str = "a";
    /// The expiry sweep's cursor: the time (Unix seconds) up to which it reconciled every expiry.
    pub const CURSOR: &str = "t";
    /// A budget counter's count; on an expiry entry, the sweep's failed attempts.
    pub const COUNT: &str = "c";
    /// On an expiry entry: set aside by the sweep (never read again).
    pub const ASIDE: &str = "z";
    /// The pass cursor's last asset, start of the current pass, start of the last complete pass,
    /// and version.
    pub const PASS_AFTER: &str = "a";
    pub const PASS_STARTED: &str = "p";
    pub const PASS_COMPLETED: &str = "d";
    pub const VERSION: &str = "v";
    /// When a registry item was first written.
    pub const REGISTERED_AT: &str = "at";
    /// An idempotency record's fingerprint of the request.
    pub const FINGERPRINT: &str = "f";
    /// An idempotency record's lease: until when (Unix seconds) the request that took it holds it.
    pub const LEASE: &str = "l";
    /// An idempotency record's answer: status and JSON body.
    pub const STATUS: &str = "s";
    pub const BODY: &str = "b";
    /// An idempotency record's unique name for the unnamed group its request asks for.
    pub const GROUP_NAME: &str = "u";
}

/// Longest raw part kept in a sort key (DynamoDB allows 1024 bytes).
const MAX_RAW_PART: usize = 512;

pub const ASSET_PK_PREFIX: &str = "A#";
pub const USER_PK_PREFIX: &str = "U#";

/// How a table's keys are laid out, fixed for its life: ids as they are, or a tenant deployment's
/// (`TENANT_CLAIM` set), whose hot partitions name the tenant by its handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    Single,
    Tenants,
}

impl KeyLayout {
    /// The layout of a deployment with tenants (`true`) or without.
    pub fn of_deployment(tenants: bool) -> Self {
        if tenants { Self::Tenants } else { Self::Single }
    }
}

/// An asset's partition: `A#<id>`, or in a tenant deployment `A#<handle>~<id>`; `None` for an id
/// not of the tenant `within`.
pub fn asset_pk(id: &AssetId, within: &Tenant) -> Option<String> {
    hot_pk(ASSET_PK_PREFIX, id.as_str(), within)
}

/// A user's partition: `U#<id>`, or in a tenant deployment `U#<handle>~<id>`; `None` for an id
/// not of the tenant `within`.
pub fn user_pk(user: &Identity, within: &Tenant) -> Option<String> {
    hot_pk(USER_PK_PREFIX, user.as_str(), within)
}

/// The tenant record of a handle.
pub fn tenant_pk(handle: &str) -> String {
    format!("{TENANT_PREFIX}{handle}")
}

fn hot_pk(prefix: &str, id: &str, within: &Tenant) -> Option<String> {
    Some(match within {
        Tenant::Of(tenant) => format!("{prefix}{}{TENANT_SEPARATOR}{}", tenant.handle(), relative(id, within)?),
        Tenant::Single => format!("{prefix}{id}"),
    })
}

/// An id of the tenant `within` without its tenant: what the hot partitions' sort keys and the
/// asset record's owner hold. `None` for an id of another tenant, or of none: it has no place in
/// this tenant's partitions.
pub fn relative<'a>(id: &'a str, within: &Tenant) -> Option<&'a str> {
    within.local(id)
}

/// The rest of a tenant table's hot partition key (after `A#` or `U#`): the tenant handle it names
/// and the id relative to it; `None` when it names no handle.
pub fn split_hot_pk(rest: &str) -> Option<(&str, &str)> {
    rest.split_once(TENANT_SEPARATOR).filter(|(handle, _)| handle.len() == crate::domain::TENANT_HANDLE_CHARS)
}

/// A budget counter's partition: `B#<user>`, or a tenant's `B#~<tenant>` (in a tenant
/// deployment every user id starts with its tenant, a letter or digit, never `~`).
pub fn budget_pk(counter: &BudgetCounter) -> String {
    match counter {
        BudgetCounter::User(user) => format!("{BUDGET_PREFIX}{user}"),
        BudgetCounter::Tenant(tenant) => format!("{BUDGET_PREFIX}{}{tenant}", crate::domain::TENANT_SEPARATOR),
    }
}

pub fn idempotency_pk(user: &Identity) -> String {
    format!("{IDEMPOTENCY_PREFIX}{user}")
}

/// A budget counter's item: the window's name and its bucket (minutes or days since the epoch).
pub fn budget_sk(window: &str, bucket: u64) -> String {
    format!("{window}#{bucket}")
}

/// In the registry: the asset (hashed when too long, then the item carries it in `id`).
pub fn registry_sk(asset: &AssetId) -> String {
    bounded("A#", "A##", asset.as_str())
}

pub fn roster_pk(conversation: &str) -> String {
    format!("{ROSTER_PREFIX}{conversation}")
}

/// In a roster: the participant (hashed when too long, then the item carries them in `id`).
pub fn roster_sk(user: &Identity) -> String {
    bounded("P#", "P##", user.as_str())
}

/// In the user's partition: the grant of `asset` made to the user (the asset qualified: these
/// mirrors are read by offboarding, never by a check).
pub fn user_grant_sk(asset: &AssetId) -> String {
    bounded("R#", "R##", asset.as_str())
}

pub fn group_pk(group: &GroupId) -> String {
    format!("G#{group}")
}

/// In the asset's partition: the grant to `principal`, named relative to the asset's tenant
/// `within` (hashed when too long, then the item carries the qualified principal in `id`); `None`
/// for a principal of another tenant.
pub fn grant_sk(principal: &Principal, within: &Tenant) -> Option<String> {
    Some(match principal {
        Principal::User(id) => bounded("G#user:", "G#user#", relative(id.as_str(), within)?),
        Principal::Group(id) => bounded("G#group:", "G#group#", relative(id.as_str(), within)?),
    })
}

/// The expiry index's partition for one minute (Unix seconds / 60).
pub fn expiry_pk(minute: u64) -> String {
    format!("X#{minute}")
}

/// A grant's entry in its expiry minute: the SHA-256 of the asset id and the principal, each
/// length-prefixed (two ids cannot share one suffix); the item carries both in full.
pub fn expiry_sk(asset: &AssetId, principal: &Principal) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [asset.as_str(), &principal.to_string()] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    format!("{EXPIRY_PREFIX}{}", hex(ctx.finish().as_ref()))
}

/// In the user's partition: one item per group the user belongs to, the group named relative to
/// the user's tenant `within` (hashed when too long, then the item carries it qualified in `id`).
pub fn membership_sk(group: &GroupId, within: &Tenant) -> Option<String> {
    Some(bounded("M#", "M##", relative(group.as_str(), within)?))
}

/// In the group's partition: one item per member.
pub fn member_sk(user: &Identity) -> String {
    bounded("M#", "M##", user.as_str())
}

/// The principal a grant's sort key names, of the asset's tenant `within`, unless the key holds a
/// hash (then the item carries it).
pub fn principal_from_grant_sk(sk: &str, within: &Tenant) -> Option<Principal> {
    if let Some(id) = sk.strip_prefix("G#user:") {
        Identity::try_from(within.qualify(id)).ok().map(Principal::User)
    } else if let Some(id) = sk.strip_prefix("G#group:") {
        GroupId::try_from(within.qualify(id)).ok().map(Principal::Group)
    } else {
        None
    }
}

/// Whether a grant's sort key holds its principal as it is (not a hash).
pub fn is_raw_grant_sk(sk: &str) -> bool {
    sk.starts_with("G#user:") || sk.starts_with("G#group:")
}

/// The id a membership's sort key names, unless the key holds a hash (then the item carries it).
pub fn id_from_member_sk(sk: &str) -> Option<&str> {
    sk.strip_prefix(MEMBER_PREFIX).filter(|id| !id.starts_with('#'))
}

/// Whether `bounded` kept the part as it is.
pub fn is_raw(part: &str) -> bool {
    part.len() <= MAX_RAW_PART && !part.starts_with('#')
}

fn bounded(raw_prefix: &str, hashed_prefix: &str, part: &str) -> String {
    if is_raw(part) {
        format!("{raw_prefix}{part}")
    } else {
        format!("{hashed_prefix}{}", hex(digest::digest(&digest::SHA256, part.as_bytes()).as_ref()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_ids_never_collide() {
        let user = |s: &str| Principal::User(Identity::try_from(s).expect("identity"));
        let group = |s: &str| Principal::Group(GroupId::try_from(s).expect("group"));
        let keys = [
            grant_sk(&user("x"), &Tenant::Single).expect("key"),
            grant_sk(&group("x"), &Tenant::Single).expect("key"),
            grant_sk(&user("group:x"), &Tenant::Single).expect("key"),
            grant_sk(&user("#x"), &Tenant::Single).expect("key"),
            grant_sk(&user("x#"), &Tenant::Single).expect("key"),
            grant_sk(&group("#x"), &Tenant::Single).expect("key"),
            grant_sk(&user(&"é".repeat(256)), &Tenant::Single).expect("key"),
            grant_sk(&group(&"a".repeat(256)), &Tenant::Single).expect("key"),
        ];
        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
        assert!(keys.iter().all(|k| k.len() <= 1024 && k.starts_with(GRANT_PREFIX)));
        assert_ne!(
            membership_sk(&GroupId::try_from("#a").expect("g"), &Tenant::Single),
            membership_sk(&GroupId::try_from("a").expect("g"), &Tenant::Single),
        );
        for principal in [user("x"), group("x"), user("group:x"), group("a:b")] {
            assert_eq!(
                principal_from_grant_sk(&grant_sk(&principal, &Tenant::Single).expect("key"), &Tenant::Single),
                Some(principal)
            );
        }
        assert_eq!(
            principal_from_grant_sk(&grant_sk(&user("#x"), &Tenant::Single).expect("key"), &Tenant::Single),
            None,
            "hashed keys carry the principal"
        );
        assert_eq!(id_from_member_sk(&member_sk(&Identity::try_from("u-1").expect("u"))), Some("u-1"));
        assert_eq!(id_from_member_sk(&member_sk(&Identity::try_from("#u").expect("u"))), None);
    }

    #[test]
    fn partitions_are_prefixed_by_kind() {
        let id = "x";
        let keys = [
            asset_pk(&AssetId::try_from(id).expect("a"), &Tenant::Single),
            user_pk(&Identity::try_from(id).expect("u"), &Tenant::Single),
            Some(group_pk(&GroupId::try_from(id).expect("g"))),
        ];
        assert_eq!(keys, [Some("A#x".to_owned()), Some("U#x".to_owned()), Some("G#x".to_owned())]);
        assert_eq!(expiry_pk(29_600_000), "X#29600000");
    }

    #[test]
    fn a_tenants_hot_partitions_name_it_by_handle_and_their_items_relative_to_it() {
        let acme = Tenant::Of(crate::domain::TenantId::try_from("acme").expect("t"));
        let long = Tenant::Of(crate::domain::TenantId::try_from("org_01HZXK4Q5N8M2R7T3V9W1Y6B0C").expect("t"));
        let asset = |t: &Tenant| t.asset("doc-1").expect("asset");
        let user = |t: &Tenant| t.user("bob").expect("user");
        let group = |t: &Tenant| t.group("ops").expect("group");
        let handle = |t: &Tenant| t.id().expect("tenant").handle();

        let pk = |id: &AssetId, t: &Tenant| asset_pk(id, t).expect("of the tenant");
        assert_eq!(pk(&asset(&acme), &acme), format!("A#{}~doc-1", handle(&acme)));
        assert_eq!(user_pk(&user(&acme), &acme), Some(format!("U#{}~bob", handle(&acme))));
        // Whatever the tenant's length, the hot keys are the same size.
        assert_eq!(pk(&asset(&acme), &acme).len(), pk(&asset(&long), &long).len());
        assert_ne!(pk(&asset(&acme), &acme), pk(&asset(&long), &long));
        let acme_handle = handle(&acme);
        assert_eq!(split_hot_pk(&pk(&asset(&acme), &acme)[2..]), Some((acme_handle.as_str(), "doc-1")));
        assert_eq!(split_hot_pk("short~doc-1"), None, "not a handle");
        assert_eq!(split_hot_pk("doc-1"), None);

        // Grants and memberships name their principal or group without the tenant, and read back
        // qualified with the partition's tenant.
        for principal in [Principal::User(user(&acme)), Principal::Group(group(&acme))] {
            let sk = grant_sk(&principal, &acme).expect("of the tenant");
            assert!(!sk.contains("acme"), "{sk}");
            assert_eq!(principal_from_grant_sk(&sk, &acme), Some(principal));
        }
        assert_eq!(grant_sk(&Principal::User(user(&acme)), &acme).as_deref(), Some("G#user:bob"));
        assert_eq!(membership_sk(&group(&acme), &acme).as_deref(), Some("M#ops"));
        // An id whose relative part needs hashing is hashed (the item then carries it whole).
        let odd = Principal::User(acme.user("#x").expect("user"));
        assert!(!is_raw_grant_sk(&grant_sk(&odd, &acme).expect("of the tenant")));
        let odd_group = membership_sk(&acme.group("#g").expect("group"), &acme).expect("of the tenant");
        assert_eq!(id_from_member_sk(&odd_group), None);
        // Another tenant's id, or an id of no tenant, has no key in this tenant's partitions: a
        // grant to globex~bob in acme's asset must not become acme's `globex~bob`.
        let globex = Tenant::Of(crate::domain::TenantId::try_from("globex").expect("t"));
        assert_eq!(grant_sk(&Principal::User(user(&globex)), &acme), None);
        assert_eq!(membership_sk(&group(&globex), &acme), None);
        assert_eq!(asset_pk(&asset(&globex), &acme), None);
        assert_eq!(user_pk(&Identity::try_from("bob").expect("u"), &acme), None);
        assert_eq!(relative("acme~bob", &acme), Some("bob"));
        assert_eq!(relative("acme~bob", &Tenant::Single), Some("acme~bob"));
        // The keys nobody's check reads keep the qualified id.
        assert_eq!(group_pk(&group(&acme)), "G#acme~ops");
        assert_eq!(member_sk(&user(&acme)), "M#acme~bob");
        assert_eq!(user_grant_sk(&asset(&acme)), "R#acme~doc-1");
    }

    #[test]
    fn expiry_entries_are_one_per_asset_and_principal() {
        let entry = |a: &str, p: &str| {
            expiry_sk(&AssetId::try_from(a).expect("a"), &Principal::try_from(p).expect("principal"))
        };
        let keys = [entry("a", "user:b"), entry("a", "group:b"), entry("ab", "user:c"), entry("a", "user:bc")];

        let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(entry("a", "user:b"), entry("a", "user:b"));
        assert!(keys.iter().all(|k| k.starts_with(EXPIRY_PREFIX) && k.len() == 2 + 64));
    }
}
