//! One contract for every ACL store: the in-memory adapter and the DynamoDB adapter (against
//! DynamoDB Local) run the same cases, so the local server behaves like production.

use std::collections::BTreeSet;

use chatgate::acl::{
    AclReader, Begun, BudgetLimits, BudgetSpent, Budgets, CatalogWriter, GrantWriter, IDEMPOTENCY_WINDOW_SECONDS,
    Idempotency, Remembered, Rosters, StoreError, Upsert,
};
use chatgate::domain::{AssetId, AssetRecord, AssetType, Grant, GroupId, Identity, Principal, Role, TenantId, Via};

pub const NOW: u64 = 1_795_000_000;

pub fn user(id: &str) -> Identity {
    Identity::try_from(id).expect("identity")
}

pub fn group(id: &str) -> GroupId {
    GroupId::try_from(id).expect("group")
}

pub fn asset(id: &str) -> AssetId {
    AssetId::try_from(id).expect("asset id")
}

pub fn grant(principal: Principal, role: Role, expires_at: Option<u64>) -> Grant {
    Grant { principal, role, expires_at, generation: String::new() }
}

/// The record as a store holds it now.
pub async fn record<S: AclReader>(store: &S, id: &str) -> AssetRecord {
    store.asset_facts(&asset(id)).await.expect("read").asset.expect("asset exists")
}

/// The role `who` has on `id`, through the pure decision over the store's facts.
pub async fn role_of<S: AclReader>(store: &S, who: &str, id: &str) -> (Role, Option<Via>) {
    let facts = store.check_facts(&user(who), &[asset(id)]).await.expect("check");
    let d = facts.decision(&user(who), NOW);
    (d.role, d.via)
}

/// Runs every case; each uses its own ids so a shared table is fine.
pub async fn run_all<S: AclReader + GrantWriter + CatalogWriter + Budgets + Idempotency + Rosters>(store: &S) {
    missing_assets_have_no_record_and_users_no_groups(store).await;
    put_asset_creates_then_replaces_and_keeps_grants(store).await;
    grants_are_seen_and_revoked_on_the_very_next_read(store).await;
    grant_writes_are_conditional_on_owner_and_generation(store).await;
    memberships_are_listed_from_both_sides(store).await;
    deleting_an_asset_removes_record_and_grants(store).await;
    awkward_ids_stay_in_their_partition(store).await;
    batch_facts_come_back_in_request_order(store).await;
    expired_grants_are_stored_but_do_not_count(store).await;
    an_offboarded_user_reads_nothing_until_lifted_and_loses_their_own_grants(store).await;
    budgets_count_atomically_per_user_and_refund(store).await;
    idempotency_keys_hold_replay_and_are_forgotten(store).await;
    rosters_keep_who_is_in_each_conversation(store).await;
}

async fn missing_assets_have_no_record_and_users_no_groups<S: AclReader>(store: &S) {
    let facts = store.check_facts(&user("c1-nobody"), &[asset("c1-missing")]).await.expect("check");
    assert!(facts.groups.is_empty());
    assert_eq!(facts.assets.len(), 1);
    assert!(facts.assets[0].asset.is_none() && facts.assets[0].grants.is_empty());
    assert!(store.group_members(&group("c1-empty")).await.expect("members").is_empty());
}

async fn put_asset_creates_then_replaces_and_keeps_grants<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    let id = asset("c2-doc");
    assert_eq!(
        store.put_asset(&id, &user("c2-ana"), AssetType::Document, "Plan", NOW).await.expect("put"),
        Upsert::Created
    );
    let first = record(store, "c2-doc").await;
    assert_eq!((first.owner.as_str(), first.kind, first.name.as_str()), ("c2-ana", AssetType::Document, "Plan"));
    store.put_grant(&first, &grant(Principal::User(user("c2-bob")), Role::Reader, None), NOW).await.expect("grant");

    assert_eq!(
        store.put_asset(&id, &user("c2-cy"), AssetType::Image, "Plan v2", NOW).await.expect("put"),
        Upsert::Replaced
    );
    let second = record(store, "c2-doc").await;
    assert_eq!((second.owner.as_str(), second.kind, second.name.as_str()), ("c2-cy", AssetType::Image, "Plan v2"));
    assert_eq!(second.generation, first.generation, "replacing keeps the generation");
    assert_eq!(role_of(store, "c2-bob", "c2-doc").await.0, Role::Reader, "grants survive an owner change");
    assert_eq!(role_of(store, "c2-cy", "c2-doc").await, (Role::Owner, Some(Via::Owner)));
    assert_eq!(role_of(store, "c2-ana", "c2-doc").await.0, Role::None, "the old owner keeps nothing");
}

async fn grants_are_seen_and_revoked_on_the_very_next_read<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    store.put_asset(&asset("c3-doc"), &user("c3-ana"), AssetType::Document, "", NOW).await.expect("put");
    let doc = record(store, "c3-doc").await;
    let bob = Principal::User(user("c3-bob"));
    store.put_grant(&doc, &grant(bob.clone(), Role::Writer, None), NOW).await.expect("grant");
    assert_eq!(role_of(store, "c3-bob", "c3-doc").await, (Role::Writer, Some(Via::User)));
    store.put_grant(&doc, &grant(bob.clone(), Role::Reader, None), NOW).await.expect("downgrade");
    assert_eq!(role_of(store, "c3-bob", "c3-doc").await.0, Role::Reader, "a second grant replaces the first");
    store.delete_grant(&doc, &bob).await.expect("revoke");
    assert_eq!(role_of(store, "c3-bob", "c3-doc").await.0, Role::None, "revocation is seen by the very next read");
    store.delete_grant(&doc, &bob).await.expect("revoking twice is fine");

    store.add_member(&group("c3-team"), &user("c3-cy")).await.expect("member");
    store.put_grant(&doc, &grant(Principal::Group(group("c3-team")), Role::Reader, None), NOW).await.expect("grant");
    assert_eq!(role_of(store, "c3-cy", "c3-doc").await, (Role::Reader, Some(Via::Group(group("c3-team")))));
    store.remove_member(&group("c3-team"), &user("c3-cy")).await.expect("leave");
    assert_eq!(role_of(store, "c3-cy", "c3-doc").await.0, Role::None, "leaving the group ends access at once");
}

async fn grant_writes_are_conditional_on_owner_and_generation<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    store.put_asset(&asset("c4-doc"), &user("c4-ana"), AssetType::Document, "", NOW).await.expect("put");
    let doc = record(store, "c4-doc").await;
    let g = grant(Principal::User(user("c4-bob")), Role::Reader, None);

    let not_owner = AssetRecord { owner: user("c4-mallory"), ..doc.clone() };
    assert!(matches!(store.put_grant(&not_owner, &g, NOW).await, Err(StoreError::Conflict)));
    assert!(matches!(store.delete_grant(&not_owner, &g.principal).await, Err(StoreError::Conflict)));
    let stale = AssetRecord { generation: "an-older-life".into(), ..doc.clone() };
    assert!(matches!(store.put_grant(&stale, &g, NOW).await, Err(StoreError::Conflict)));
    let missing = AssetRecord { id: asset("c4-missing"), ..doc.clone() };
    assert!(matches!(store.put_grant(&missing, &g, NOW).await, Err(StoreError::Conflict)));
    assert_eq!(role_of(store, "c4-bob", "c4-doc").await.0, Role::None, "refused writes wrote nothing");
    assert!(store.asset_facts(&asset("c4-missing")).await.expect("read").grants.is_empty());
}

async fn memberships_are_listed_from_both_sides<S: AclReader + CatalogWriter>(store: &S) {
    for u in ["c5-a", "c5-b", "c5-c"] {
        store.add_member(&group("c5-designers"), &user(u)).await.expect("add");
    }
    store.add_member(&group("c5-devs"), &user("c5-a")).await.expect("add");
    store.add_member(&group("c5-devs"), &user("c5-a")).await.expect("adding twice is fine");
    let members: BTreeSet<String> =
        store.group_members(&group("c5-designers")).await.expect("members").iter().map(ToString::to_string).collect();
    assert_eq!(members, ["c5-a", "c5-b", "c5-c"].map(String::from).into());
    let facts = store.check_facts(&user("c5-a"), &[]).await.expect("check");
    assert_eq!(facts.groups, [group("c5-designers"), group("c5-devs")].into());
    store.remove_member(&group("c5-designers"), &user("c5-b")).await.expect("remove");
    store.remove_member(&group("c5-designers"), &user("c5-b")).await.expect("removing twice is fine");
    assert_eq!(store.group_members(&group("c5-designers")).await.expect("members").len(), 2);
    assert!(store.check_facts(&user("c5-b"), &[]).await.expect("check").groups.is_empty());
}

async fn deleting_an_asset_removes_record_and_grants<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    store.put_asset(&asset("c6-doc"), &user("c6-ana"), AssetType::Video, "", NOW).await.expect("put");
    let doc = record(store, "c6-doc").await;
    for i in 0..30 {
        store
            .put_grant(&doc, &grant(Principal::User(user(&format!("c6-u{i}"))), Role::Reader, None), NOW)
            .await
            .expect("grant");
    }
    assert_eq!(store.delete_asset(&asset("c6-doc")).await.expect("delete"), 30);
    let facts = store.asset_facts(&asset("c6-doc")).await.expect("read");
    assert!(facts.asset.is_none() && facts.grants.is_empty(), "{facts:?}");
    assert_eq!(store.delete_asset(&asset("c6-doc")).await.expect("deleting twice is fine"), 0);

    store.put_asset(&asset("c6-doc"), &user("c6-ana"), AssetType::Video, "", NOW).await.expect("recreate");
    assert_ne!(record(store, "c6-doc").await.generation, doc.generation, "a new asset is a new generation");
    assert_eq!(role_of(store, "c6-u1", "c6-doc").await.0, Role::None);
}

async fn awkward_ids_stay_in_their_partition<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    let long_user = "é".repeat(256);
    let ids = ["c7-a", "c7-a#", "c7-a#G#user:x", "c7-a/../b", "c7-ä 𝄞", "#ASSET", "c7-x:y"];
    for (i, id) in ids.iter().enumerate() {
        store.put_asset(&asset(id), &user(&format!("c7-owner{i}")), AssetType::Document, id, NOW).await.expect("put");
    }
    let tricky = record(store, "c7-a#G#user:x").await;
    store.put_grant(&tricky, &grant(Principal::User(user(&long_user)), Role::Writer, None), NOW).await.expect("grant");
    store.put_grant(&tricky, &grant(Principal::User(user("x")), Role::Reader, None), NOW).await.expect("grant");
    store.put_grant(&tricky, &grant(Principal::Group(group("#x")), Role::Reader, None), NOW).await.expect("grant");
    for (i, id) in ids.iter().enumerate() {
        let facts = store.asset_facts(&asset(id)).await.expect("read");
        let rec = facts.asset.expect("record");
        assert_eq!((rec.owner.to_string(), rec.name.as_str()), (format!("c7-owner{i}"), *id), "{id}");
        let expected = if *id == "c7-a#G#user:x" { 3 } else { 0 };
        assert_eq!(facts.grants.len(), expected, "grants of {id}: {:?}", facts.grants);
    }
    assert_eq!(role_of(store, &long_user, "c7-a#G#user:x").await.0, Role::Writer);
    assert_eq!(role_of(store, &long_user, "c7-a").await.0, Role::None);
    store.add_member(&group("#x"), &user(&long_user)).await.expect("member");
    assert_eq!(store.group_members(&group("#x")).await.expect("members"), vec![user(&long_user)]);
    assert!(store.group_members(&group("x")).await.expect("members").is_empty());
}

async fn batch_facts_come_back_in_request_order<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    let ids: Vec<AssetId> = (0..100).map(|i| asset(&format!("c8-{:03}", (i * 37) % 100))).collect();
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        store
            .put_asset(id, &user(if i % 2 == 0 { "c8-me" } else { "c8-other" }), AssetType::Image, "", NOW)
            .await
            .expect("put");
    }
    let facts = store.check_facts(&user("c8-me"), &ids).await.expect("batch");
    assert_eq!(facts.assets.len(), 100);
    for (i, (id, f)) in ids.iter().zip(&facts.assets).enumerate() {
        assert_eq!(f.asset.as_ref().map(|r| &r.id), (i % 3 == 0).then_some(id), "position {i}");
    }
}

async fn expired_grants_are_stored_but_do_not_count<S: AclReader + GrantWriter + CatalogWriter>(store: &S) {
    store.put_asset(&asset("c9-doc"), &user("c9-ana"), AssetType::Document, "", NOW).await.expect("put");
    let doc = record(store, "c9-doc").await;
    store
        .put_grant(&doc, &grant(Principal::User(user("c9-bob")), Role::Writer, Some(NOW - 1)), NOW)
        .await
        .expect("grant");
    store
        .put_grant(&doc, &grant(Principal::User(user("c9-cy")), Role::Writer, Some(NOW + 60)), NOW)
        .await
        .expect("grant");
    let facts = store.asset_facts(&asset("c9-doc")).await.expect("read");
    let expiries: BTreeSet<Option<u64>> = facts.grants.iter().map(|g| g.expires_at).collect();
    assert_eq!(expiries, [Some(NOW - 1), Some(NOW + 60)].into());
    assert_eq!(role_of(store, "c9-bob", "c9-doc").await.0, Role::None);
    assert_eq!(role_of(store, "c9-cy", "c9-doc").await.0, Role::Writer);
}

async fn an_offboarded_user_reads_nothing_until_lifted_and_loses_their_own_grants<
    S: AclReader + GrantWriter + CatalogWriter,
>(
    store: &S,
) {
    store.put_asset(&asset("c10-doc"), &user("c10-ana"), AssetType::Document, "", NOW).await.expect("put");
    store.put_asset(&asset("c10-own"), &user("c10-bob"), AssetType::Document, "", NOW).await.expect("put");
    let doc = record(store, "c10-doc").await;
    store.put_grant(&doc, &grant(Principal::User(user("c10-bob")), Role::Writer, None), NOW).await.expect("grant");
    store.put_grant(&doc, &grant(Principal::Group(group("c10-team")), Role::Reader, None), NOW).await.expect("grant");
    store.add_member(&group("c10-team"), &user("c10-bob")).await.expect("member");
    assert_eq!(store.offboarded(&[user("c10-bob"), user("c10-ana")]).await.expect("standing"), [false, false]);

    store.set_offboarded(&user("c10-bob"), true, NOW).await.expect("offboard");
    store.set_offboarded(&user("c10-bob"), true, NOW).await.expect("idempotent");
    assert_eq!(store.offboarded(&[user("c10-bob"), user("c10-ana")]).await.expect("standing"), [true, false]);
    // Not even their own asset, nor through a group: and the marker is not a group.
    assert_eq!(role_of(store, "c10-bob", "c10-doc").await.0, Role::None);
    assert_eq!(role_of(store, "c10-bob", "c10-own").await.0, Role::None);
    let facts = store.check_facts(&user("c10-bob"), &[]).await.expect("facts");
    assert!(facts.offboarded);
    assert_eq!(facts.groups, [group("c10-team")].into());
    let audience = store.audience_facts(&asset("c10-doc"), &[user("c10-ana"), user("c10-bob")]).await.expect("facts");
    let readers: Vec<bool> =
        audience.decisions(&[user("c10-ana"), user("c10-bob")], NOW).iter().map(|d| d.can_read()).collect();
    assert_eq!(readers, [true, false]);

    assert_eq!(store.delete_user_grants(&user("c10-bob")).await.expect("delete"), [asset("c10-doc")]);
    assert!(store.delete_user_grants(&user("c10-bob")).await.expect("again").is_empty());
    store.set_offboarded(&user("c10-bob"), false, NOW).await.expect("lift");
    assert_eq!(store.offboarded(&[user("c10-bob")]).await.expect("standing"), [false]);
    // Lifted: the group's grant counts again, the deleted direct grant does not.
    assert_eq!(role_of(store, "c10-bob", "c10-doc").await.0, Role::Reader);
    assert_eq!(role_of(store, "c10-bob", "c10-own").await.0, Role::Owner);
}

async fn budgets_count_atomically_per_user_and_refund<S: Budgets>(store: &S) {
    let limits = BudgetLimits { per_minute: 2, per_day: 3, tenant_per_minute: 0 };
    let now = 1_800_000_000 - 1_800_000_000 % 86_400 + 30;
    let spend = |who: &'static str, at: u64| async move {
        store.spend_new_conversation(&user(who), None, limits, at).await.expect("spend")
    };
    assert_eq!(spend("c11-a", now).await, Ok(()));
    assert_eq!(spend("c11-a", now).await, Ok(()));
    let spent = spend("c11-a", now).await.expect_err("the minute is full");
    assert_eq!((spent.window, spent.retry_after_seconds), ("minute", 30));
    assert_eq!(spend("c11-b", now).await, Ok(()), "budgets are per user");
    store.refund_new_conversation(&user("c11-a"), None, limits, now).await.expect("refund");
    assert_eq!(spend("c11-a", now).await, Ok(()), "a refund gives room back");
    // Two counted today (the refused one counted in neither window, the refunded one in
    // neither); the next minute has room for the day's third, and then the day is full.
    assert_eq!(spend("c11-a", now + 60).await, Ok(()));
    let spent = spend("c11-a", now + 60).await.expect_err("the day is full");
    assert_eq!(spent.window, "day");
    assert_eq!(spend("c11-a", now + 86_400).await, Ok(()), "a new day");

    // A tenant's users together have the tenant's minute; another tenant's users have their own.
    let limits = BudgetLimits { per_minute: 2, per_day: 0, tenant_per_minute: 3 };
    let (acme, globex) = (TenantId::try_from("c11acme").expect("t"), TenantId::try_from("c11globex").expect("t"));
    let spend = |who: &'static str, tenant: &TenantId| {
        let tenant = tenant.clone();
        async move { store.spend_new_conversation(&user(who), Some(&tenant), limits, now).await.expect("spend") }
    };
    assert_eq!(spend("c11acme~u-1", &acme).await, Ok(()));
    assert_eq!(spend("c11acme~u-1", &acme).await, Ok(()));
    assert_eq!(spend("c11acme~u-2", &acme).await, Ok(()));
    let spent = spend("c11acme~u-3", &acme).await.expect_err("the tenant's minute is full");
    assert_eq!((spent.window, spent.limit), ("tenant-minute", 3));
    assert_eq!(spend("c11globex~u-1", &globex).await, Ok(()), "budgets are per tenant");
    store.refund_new_conversation(&user("c11acme~u-2"), Some(&acme), limits, now).await.expect("refund");
    assert_eq!(spend("c11acme~u-3", &acme).await, Ok(()), "a refund gives the tenant's room back");
    assert_eq!(spend("c11acme~u-4", &acme).await.expect_err("full again").window, "tenant-minute");
    assert_eq!(spend("c11acme~u-4", &acme).await.expect_err("refused ones count nothing").window, "tenant-minute");
    assert_eq!(spend("c11acme~u-4", &acme).await.expect_err("still").limit, 3);
    // Both u-1's minute and the tenant's are full: the user's is named, on either store.
    assert_eq!(spend("c11acme~u-1", &acme).await.expect_err("both full").window, "minute");

    // Thirty users of one tenant at once, the tenant's minute at twenty: exactly twenty count,
    // and the ten refused give their own windows back.
    let limits = BudgetLimits { per_minute: 1, per_day: 0, tenant_per_minute: 20 };
    let busy = TenantId::try_from("c11busy").expect("t");
    let users: Vec<Identity> = (0..30).map(|i| user(&format!("c11busy~u-{i}"))).collect();
    let spent = futures_util::future::join_all(
        users.iter().map(|who| store.spend_new_conversation(who, Some(&busy), limits, now + 120)),
    )
    .await;
    let counted = spent.iter().filter(|s| matches!(s, Ok(Ok(())))).count();
    assert_eq!(counted, 20, "{spent:?}");
    assert!(spent.iter().all(|s| matches!(s, Ok(Ok(())) | Ok(Err(BudgetSpent { window: "tenant-minute", .. })))));
    let refused: Vec<&Identity> =
        users.iter().zip(&spent).filter(|(_, s)| !matches!(s, Ok(Ok(())))).map(|(u, _)| u).collect();
    for who in &refused {
        // Their own minute was given back: in this minute they are refused for the tenant's alone.
        let again = store.spend_new_conversation(who, Some(&busy), limits, now + 120).await.expect("spend");
        assert_eq!(again.map_err(|s| s.window), Err("tenant-minute"));
    }
    for who in refused {
        let next_minute = store.spend_new_conversation(who, Some(&busy), limits, now + 180).await;
        assert_eq!(next_minute.expect("spend"), Ok(()));
    }
}

async fn idempotency_keys_hold_replay_and_are_forgotten<S: Idempotency>(store: &S) {
    let (ana, bob) = (user("c12-ana"), user("c12-bob"));
    let begin = |who: &Identity, key: &'static str, fp: &'static str, name: &'static str, at: u64| {
        let who = who.clone();
        async move { store.begin(&who, key, fp, name, 30, at).await.expect("begin") }
    };
    let fresh = |name: &str| Begun::Fresh { group_name: name.into(), attempted: false };
    let retaken = |name: &str| Begun::Fresh { group_name: name.into(), attempted: true };
    assert_eq!(begin(&ana, "k1", "fp-a", "g-1", NOW).await, fresh("g-1"));
    assert_eq!(begin(&ana, "k1", "fp-a", "g-2", NOW + 1).await, Begun::InProgress, "held while the first runs");
    assert_eq!(begin(&ana, "k1", "fp-b", "g-2", NOW + 1).await, Begun::Mismatch, "another body");
    assert_eq!(begin(&bob, "k1", "fp-b", "g-3", NOW + 1).await, fresh("g-3"), "keys are per user");
    let answer = Remembered { status: 201, body: r#"{"sid":"CH1","created":true}"#.into() };
    store.finish(&ana, "k1", "fp-a", &answer).await.expect("finish");
    assert_eq!(begin(&ana, "k1", "fp-a", "g-2", NOW + 2).await, Begun::Replay(answer.clone()));
    assert_eq!(
        begin(&ana, "k1", "fp-a", "g-2", NOW + 100).await,
        Begun::Replay(answer.clone()),
        "answers outlive leases"
    );
    assert_eq!(begin(&ana, "k1", "fp-b", "g-2", NOW + 2).await, Begun::Mismatch);
    store.abandon(&ana, "k1", "fp-a").await.expect("abandon an answered key: nothing happens");
    assert_eq!(begin(&ana, "k1", "fp-a", "g-2", NOW + 3).await, Begun::Replay(answer.clone()));
    assert_eq!(
        begin(&ana, "k1", "fp-b", "g-4", NOW + IDEMPOTENCY_WINDOW_SECONDS).await,
        fresh("g-4"),
        "forgotten after the window, even before DynamoDB's TTL deletes it, and its name with it"
    );

    // A failed request lets its key go, keeping the name it was given for its retry; one that
    // stopped without a word holds it for its lease, and then only a request of the same body
    // may take it.
    assert_eq!(begin(&ana, "k2", "fp-a", "g-5", NOW).await, fresh("g-5"));
    store.abandon(&ana, "k2", "fp-a").await.expect("abandon");
    assert_eq!(begin(&ana, "k2", "fp-a", "g-6", NOW + 1).await, retaken("g-5"), "a retry runs under the same name");
    assert_eq!(begin(&ana, "k2", "fp-a", "g-6", NOW + 20).await, Begun::InProgress);
    assert_eq!(begin(&ana, "k2", "fp-b", "g-6", NOW + 40).await, Begun::Mismatch);
    assert_eq!(begin(&ana, "k2", "fp-a", "g-6", NOW + 40).await, retaken("g-5"), "the lease ended");
    store.abandon(&ana, "k2", "fp-a").await.expect("abandon");
    assert_eq!(
        begin(&ana, "k2", "fp-a", "g-7", NOW + 40 + IDEMPOTENCY_WINDOW_SECONDS).await,
        fresh("g-7"),
        "a key used again after its window names a new group"
    );
    let late = Remembered { status: 200, body: "{}".into() };
    assert!(matches!(store.finish(&ana, "k3", "fp-a", &late).await, Err(StoreError::Conflict)), "nothing to finish");
}

async fn rosters_keep_who_is_in_each_conversation<S: Rosters>(store: &S) {
    let long = format!("#{}", "l".repeat(200));
    let (a, b) = ("asset:c13-one".to_owned(), "CHc13000000000000000000000000000002".to_owned());
    let many: Vec<Identity> = (0..30).map(|i| user(&format!("c13-u{i:02}"))).collect();
    store.write_roster(&a, &many, &[]).await.expect("thirty at once: two batches");
    store.write_roster(&b, &[user("c13-ana"), user(&long)], &[]).await.expect("a member whose key is hashed");
    store.write_roster(&a, &[], &many[10..]).await.expect("twenty leave");
    let rosters = store.rosters(&[a.clone(), b.clone(), "c13-none".to_owned()]).await.expect("read");
    let mut first = rosters[0].clone();
    first.sort();
    assert_eq!(first, many[..10].to_vec());
    let mut second = rosters[1].clone();
    second.sort();
    assert_eq!(second, [user(&long), user("c13-ana")]);
    assert!(rosters[2].is_empty(), "no roster");
    store.write_roster(&b, &[], &[user(&long), user("c13-nobody")]).await.expect("leaving twice is nothing");
    assert_eq!(store.rosters(std::slice::from_ref(&b)).await.expect("read"), [vec![user("c13-ana")]]);
}
