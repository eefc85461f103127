//! The table's stream, read back into [`AclChange`]s: records as Lambda delivers them (and as
//! DynamoDB Streams' `GetRecords` returns them), translated with the key layout of
//! [`super::keys`]. No DynamoDB attribute value leaves this module.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StreamTenants;
use super::keys::{self, ASSET_PK_PREFIX, ASSET_SK, GRANT_PREFIX, MEMBER_PREFIX, PK, SK, USER_PK_PREFIX, attr};
use crate::domain::{AclChange, AssetId, GroupId, Identity, Principal, Tenant};

/// The tenant of a hot partition's key (after its prefix) and the qualified id it names; `None`
/// for a handle no tenant record names.
pub(super) fn partition(tenants: &StreamTenants, rest: &str) -> Option<(Tenant, String)> {
    match tenants {
        StreamTenants::Single => Some((Tenant::Single, rest.to_owned())),
        StreamTenants::Handles(known) => {
            let (handle, id) = keys::split_hot_pk(rest)?;
            let tenant = Tenant::Of(known.get(handle)?.clone());
            let id = tenant.qualify(id);
            Some((tenant, id))
        }
    }
}

/// Whether `text` holds an id stored before v1.2's Unicode rules refused it: such a record names
/// nobody who can sign in or be named again, so it changes nobody's access and is skipped (as the
/// store's reads skip such items) rather than failing its batch.
fn refused(text: &str) -> bool {
    let problem = crate::domain::id_text_problem(text);
    if let Some(problem) = &problem {
        tracing::warn!(%problem, "a stream record names an id chatgate refuses; skipped");
    }
    problem.is_some()
}

/// Attribute values in DynamoDB's JSON (`{"S": "…"}`, `{"N": "…"}`), by attribute name.
pub type Image = BTreeMap<String, Value>;

/// One record of the table's stream (view type `NEW_AND_OLD_IMAGES`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName")]
    pub event_name: String,
    pub dynamodb: StreamData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamData {
    pub keys: Image,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_image: Option<Image>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_image: Option<Image>,
    pub sequence_number: String,
}

/// Why a record could not be read: it is not a stream record, or it claims one of chatgate's
/// item kinds but breaks its layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable stream record: {0}")]
pub struct UnreadableRecord(String);

impl StreamRecord {
    /// A record as Lambda delivers it, or why it is not one.
    pub fn from_lambda(record: Value) -> Result<Self, UnreadableRecord> {
        serde_json::from_value(record).map_err(|e| UnreadableRecord(e.to_string()))
    }
}

impl StreamRecord {
    /// The sequence number of a record as Lambda delivers it, when it has one: what a partial
    /// batch failure names.
    pub fn sequence_number_of(record: &Value) -> Option<&str> {
        record.get("dynamodb")?.get("SequenceNumber")?.as_str()
    }

    /// The key handle of the tenant whose asset or user partition this record is in, when the
    /// table is a tenant deployment's (a handle is [`crate::domain::TENANT_HANDLE_CHARS`] long).
    pub fn tenant_handle(&self) -> Option<&str> {
        let pk = string(&self.dynamodb.keys, PK)?;
        let rest = pk.strip_prefix(ASSET_PK_PREFIX).or_else(|| pk.strip_prefix(USER_PK_PREFIX))?;
        keys::split_hot_pk(rest).map(|(handle, _)| handle)
    }

    /// The distinct tenant handles `records` name ([`Self::tenant_handle`]): what to ask
    /// [`crate::acl::StreamKeys::stream_tenants`] before reading them.
    pub fn handles<'a>(records: impl IntoIterator<Item = &'a StreamRecord>) -> BTreeSet<String> {
        records.into_iter().filter_map(|r| r.tenant_handle().map(str::to_owned)).collect()
    }

    /// The change this record of a single-tenant table reports ([`Self::change_in`]).
    pub fn change(&self) -> Result<Option<AclChange>, UnreadableRecord> {
        self.change_in(&StreamTenants::Single)
    }

    /// The change this record reports, its ids qualified with the tenant its key's handle stands
    /// for in `tenants`; `None` for items that say nothing about access (the group side of a
    /// membership, which the user side repeats; the expiry index; the sweep's cursor; a tenant
    /// record).
    pub fn change_in(&self, tenants: &StreamTenants) -> Result<Option<AclChange>, UnreadableRecord> {
        let bad = |what: &str| UnreadableRecord(format!("{what} ({} of {:?})", self.event_name, self.dynamodb.keys));
        let keys = &self.dynamodb.keys;
        let (pk, sk) = (string(keys, PK).ok_or_else(|| bad("no pk"))?, string(keys, SK).ok_or_else(|| bad("no sk"))?);
        let (removed, inserted) = match self.event_name.as_str() {
            "REMOVE" => (true, false),
            "INSERT" => (false, true),
            "MODIFY" => (false, false),
            _ => return Err(bad("unknown event")),
        };
        // The item as it is after the change, or as it was before a removal.
        let image = if removed { self.dynamodb.old_image.as_ref() } else { self.dynamodb.new_image.as_ref() };
        let image = image.ok_or_else(|| bad("no image"))?;

        if let Some(rest) = pk.strip_prefix(ASSET_PK_PREFIX) {
            let (within, asset) =
                partition(tenants, rest).ok_or_else(|| bad("a tenant handle no tenant record names"))?;
            if refused(&asset) {
                return Ok(None);
            }
            let asset = AssetId::try_from(asset).map_err(|_| bad("bad asset id"))?;
            if sk == ASSET_SK {
                if removed {
                    return Ok(Some(AclChange::AssetDeleted { asset }));
                }
                let owner =
                    |image: &Image| string(image, attr::OWNER).and_then(|o| Identity::try_from(within.qualify(o)).ok());
                let previous_owner = match self.dynamodb.old_image.as_ref() {
                    Some(old) if !inserted => Some(owner(old).ok_or_else(|| bad("no previous owner"))?),
                    _ => None,
                };
                let owner = owner(image).ok_or_else(|| bad("no owner"))?;
                return Ok(Some(AclChange::AssetWritten { asset, previous_owner, owner }));
            }
            if sk.starts_with(GRANT_PREFIX) {
                let principal = keys::principal_from_grant_sk(sk, &within);
                if keys::is_raw_grant_sk(sk) && principal.is_none() && refused(sk) {
                    return Ok(None);
                }
                let principal = match principal {
                    Some(principal) => principal,
                    None => string(image, attr::ID)
                        .and_then(|id| Principal::try_from(id).ok())
                        .ok_or_else(|| bad("a hashed grant key without its principal"))?,
                };
                if removed {
                    return Ok(Some(AclChange::GrantDeleted { asset, principal }));
                }
                let expires_at = string_number(image, attr::EXPIRES_AT);
                return Ok(Some(AclChange::GrantWritten { asset, principal, expires_at }));
            }
            return Ok(None);
        }
        if let Some(rest) = pk.strip_prefix(USER_PK_PREFIX) {
            // Grant mirrors, and the offboarding marker (offboarding removes the user itself).
            if !sk.starts_with(MEMBER_PREFIX) || sk == keys::OFFBOARDED_SK {
                return Ok(None);
            }
            let (within, user) =
                partition(tenants, rest).ok_or_else(|| bad("a tenant handle no tenant record names"))?;
            if refused(&user) || refused(sk) {
                return Ok(None);
            }
            let user = Identity::try_from(user).map_err(|_| bad("bad user id"))?;
            let group = match keys::id_from_member_sk(sk) {
                Some(id) => Some(within.qualify(id)),
                None => string(image, attr::ID).map(str::to_owned),
            };
            let group = group.and_then(|g| GroupId::try_from(g).ok()).ok_or_else(|| bad("no group"))?;
            return Ok(match (removed, inserted) {
                (true, _) => Some(AclChange::MemberRemoved { group, user }),
                (_, true) => Some(AclChange::MemberAdded { group, user }),
                _ => None,
            });
        }
        Ok(None)
    }
}

fn string<'a>(image: &'a Image, name: &str) -> Option<&'a str> {
    image.get(name)?.get("S")?.as_str()
}

fn string_number(image: &Image, name: &str) -> Option<u64> {
    image.get(name)?.get("N")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Scope;

    fn record(event: &str, keys: Value, old: Option<Value>, new: Option<Value>) -> StreamRecord {
        let mut data = json!({"Keys": keys, "SequenceNumber": "100"});
        if let Some(old) = old {
            data["OldImage"] = old;
        }
        if let Some(new) = new {
            data["NewImage"] = new;
        }
        serde_json::from_value(json!({"eventName": event, "dynamodb": data})).expect("record")
    }

    fn item(pk: &str, sk: &str, extra: Value) -> Value {
        let mut item = json!({"pk": {"S": pk}, "sk": {"S": sk}});
        if let Value::Object(extra) = extra {
            item.as_object_mut().expect("object").extend(extra);
        }
        item
    }

    fn scope_of(r: &StreamRecord) -> Option<Scope> {
        r.change().expect("readable").and_then(|c| c.shrinks())
    }

    #[test]
    fn removals_and_owner_changes_become_scopes() {
        let keys = |pk: &str, sk: &str| item(pk, sk, json!({}));
        let grant = item("A#a-1", "G#user:u-2", json!({"r": {"S": "r"}, "g": {"S": "g1"}}));
        let r = record("REMOVE", keys("A#a-1", "G#user:u-2"), Some(grant.clone()), None);
        assert_eq!(
            scope_of(&r),
            Some(Scope::Reader {
                asset: AssetId::try_from("a-1").expect("a"),
                user: Identity::try_from("u-2").expect("u")
            })
        );
        let hashed = item("A#a-1", "G#group#abc", json!({"id": {"S": "group:#ops"}, "r": {"S": "w"}}));
        let r = record("REMOVE", keys("A#a-1", "G#group#abc"), Some(hashed), None);
        assert_eq!(scope_of(&r), Some(Scope::Asset(AssetId::try_from("a-1").expect("a"))));
        let r = record("REMOVE", keys("U#u-2", "M#designers"), Some(keys("U#u-2", "M#designers")), None);
        assert_eq!(scope_of(&r), Some(Scope::User(Identity::try_from("u-2").expect("u"))));
        let asset = |owner: &str| item("A#a-1", "#ASSET", json!({"owner": {"S": owner}, "g": {"S": "g1"}}));
        let moved = record("MODIFY", keys("A#a-1", "#ASSET"), Some(asset("u-1")), Some(asset("u-9")));
        assert_eq!(scope_of(&moved), Some(Scope::Asset(AssetId::try_from("a-1").expect("a"))));
        let renamed = record("MODIFY", keys("A#a-1", "#ASSET"), Some(asset("u-1")), Some(asset("u-1")));
        assert_eq!(scope_of(&renamed), None);
        let deleted = record("REMOVE", keys("A#a-1", "#ASSET"), Some(asset("u-1")), None);
        assert_eq!(scope_of(&deleted), Some(Scope::Asset(AssetId::try_from("a-1").expect("a"))));
    }

    #[test]
    fn writes_and_other_item_kinds_take_nothing_away() {
        let keys = |pk: &str, sk: &str| item(pk, sk, json!({}));
        let grant = item("A#a-1", "G#user:u-2", json!({"x": {"N": "1800000000"}}));
        let r = record("INSERT", keys("A#a-1", "G#user:u-2"), None, Some(grant));
        assert!(matches!(r.change(), Ok(Some(AclChange::GrantWritten { expires_at: Some(1_800_000_000), .. }))));
        assert_eq!(scope_of(&r), None);
        for (pk, sk) in [("G#designers", "M#u-2"), ("X#29600000", "E#abc"), ("S#expiry-sweep", "#CURSOR")] {
            let r = record("REMOVE", keys(pk, sk), Some(keys(pk, sk)), None);
            assert_eq!(r.change(), Ok(None), "{pk}");
        }
    }

    #[test]
    fn a_tenant_tables_records_are_read_in_the_tenant_their_handle_stands_for() {
        let acme = crate::domain::TenantId::try_from("acme").expect("tenant");
        let handle = acme.handle();
        let tenants = StreamTenants::Handles(BTreeMap::from([(handle.clone(), acme)]));
        let keys = |pk: &str, sk: &str| item(pk, sk, json!({}));
        let (asset_pk, user_pk) = (format!("A#{handle}~a-1"), format!("U#{handle}~u-2"));

        let grant = record("REMOVE", keys(&asset_pk, "G#user:u-2"), Some(keys(&asset_pk, "G#user:u-2")), None);
        assert_eq!(grant.tenant_handle(), Some(handle.as_str()));
        let (asset, user) = (AssetId::try_from("acme~a-1").expect("a"), Identity::try_from("acme~u-2").expect("u"));
        let scope = grant.change_in(&tenants).expect("readable").and_then(|c| c.shrinks());
        assert_eq!(scope, Some(Scope::Reader { asset: asset.clone(), user: user.clone() }));

        let member = record("REMOVE", keys(&user_pk, "M#ops"), Some(keys(&user_pk, "M#ops")), None);
        assert_eq!(
            member.change_in(&tenants),
            Ok(Some(AclChange::MemberRemoved { group: GroupId::try_from("acme~ops").expect("g"), user }))
        );

        let owned = |owner: &str| item(&asset_pk, "#ASSET", json!({"owner": {"S": owner}, "g": {"S": "g1"}}));
        let moved = record("MODIFY", keys(&asset_pk, "#ASSET"), Some(owned("u-1")), Some(owned("u-9")));
        assert_eq!(
            moved.change_in(&tenants),
            Ok(Some(AclChange::AssetWritten {
                asset,
                previous_owner: Some(Identity::try_from("acme~u-1").expect("u")),
                owner: Identity::try_from("acme~u-9").expect("u"),
            }))
        );

        // A handle no tenant record names, or a key that is no handle's, is nobody's to guess.
        assert!(grant.change_in(&StreamTenants::Handles(BTreeMap::new())).is_err());
        let unhandled = record("REMOVE", keys("A#a-1", "G#user:u-2"), Some(keys("A#a-1", "G#user:u-2")), None);
        assert_eq!(unhandled.tenant_handle(), None);
        assert!(unhandled.change_in(&tenants).is_err());
        // The same record of a single-tenant table is read as it always was.
        assert!(matches!(grant.change(), Ok(Some(AclChange::GrantDeleted { .. }))));
    }

    #[test]
    fn records_that_break_the_layout_are_unreadable() {
        let keys = |pk: &str, sk: &str| item(pk, sk, json!({}));
        let no_id = record("REMOVE", keys("A#a-1", "G#user#abc"), Some(keys("A#a-1", "G#user#abc")), None);
        assert!(no_id.change().is_err());
        let no_image = record("REMOVE", keys("A#a-1", "G#user:u-2"), None, None);
        assert!(no_image.change().is_err());
        let no_sk = record("REMOVE", json!({"pk": {"S": "A#a-1"}}), Some(json!({})), None);
        assert!(no_sk.change().is_err());
        let bad_event = record("TRUNCATE", keys("A#a-1", "#ASSET"), None, None);
        assert!(bad_event.change().is_err());
    }
}
