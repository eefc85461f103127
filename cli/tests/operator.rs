//! The operator commands against DynamoDB Local: each says what it changed, and exits non-zero
//! with one line when it cannot.

use std::process::{Command, Output};

use chatgate_tests::dynamo::{ACCESS_KEY, REGION, SECRET_KEY, dynamo_local, unique_table_name};

struct Operator {
    table: String,
    /// `TENANT_CLAIM`, for a tenant deployment's operator.
    tenant_claim: Option<&'static str>,
}

impl Operator {
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatgate"));
        command.env_clear();
        if let Some(claim) = self.tenant_claim {
            command.env("TENANT_CLAIM", claim);
        }
        command
            .args(args)
            .env("TABLE_NAME", &self.table)
            .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo_local().endpoint)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run chatgate")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        stderr
    }
}

#[test]
fn operators_manage_assets_groups_and_grants() {
    let op = Operator { table: unique_table_name("ops"), tenant_claim: None };
    assert_eq!(op.ok(&["table", "create"]), format!("created table {}\n", op.table));
    assert_eq!(
        op.ok(&["assets", "put", "a-1", "--owner", "ana", "--type", "document", "--name", "Plan"]),
        "created asset a-1 (owner ana, document)\n"
    );
    assert_eq!(
        op.ok(&["assets", "put", "a-1", "--owner", "ana", "--type", "image"]),
        "replaced asset a-1 (owner ana, image)\n"
    );
    assert_eq!(op.ok(&["groups", "add", "designers", "bob"]), "added bob to group designers\n");
    assert_eq!(op.ok(&["groups", "members", "designers"]), "bob\n");
    assert_eq!(
        op.ok(&["grants", "put", "a-1", "group:designers", "--role", "writer"]),
        "granted writer on asset a-1 to group:designers\n"
    );
    assert_eq!(
        op.ok(&["grants", "put", "a-1", "user:cy", "--role", "reader", "--expires-at", "2099-01-01T00:00:00Z"]),
        "granted reader on asset a-1 to user:cy\n"
    );
    assert_eq!(
        op.ok(&["grants", "list", "a-1"]),
        "group:designers writer\nuser:cy reader until 2099-01-01T00:00:00Z\n"
    );
    assert_eq!(op.ok(&["grants", "delete", "a-1", "user:cy"]), "revoked user:cy's grant on asset a-1\n");
    assert!(op.ok(&["assets", "show", "a-1"]).starts_with("asset a-1: owner ana, image"));
    assert_eq!(op.ok(&["groups", "remove", "designers", "bob"]), "removed bob from group designers\n");
    assert_eq!(op.ok(&["assets", "delete", "a-1"]), "deleted asset a-1 and 1 grant(s)\n");

    assert!(op.fails(&["grants", "put", "a-1", "user:cy", "--role", "reader"]).contains("no asset a-1"));
    op.ok(&["assets", "put", "a-2", "--owner", "ana", "--type", "video"]);
    assert!(op.fails(&["grants", "put", "a-2", "user:ana", "--role", "reader"]).contains("owns asset a-2"));
    assert!(op.fails(&["grants", "put", "a-2", "cy", "--role", "reader"]).contains("principal"));
    assert!(
        op.fails(&["grants", "put", "a-2", "user:cy", "--role", "reader", "--expires-at", "2001-01-01T00:00:00Z"])
            .contains("future")
    );
    assert!(op.fails(&["assets", "put", "a-3", "--owner", "", "--type", "video"]).contains("owner"));
}

#[test]
fn a_missing_table_name_is_named() {
    let out =
        Command::new(env!("CARGO_BIN_EXE_chatgate")).args(["assets", "show", "a-1"]).env_clear().output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TABLE_NAME"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_written_before_the_expiry_index_are_indexed_once_by_hand() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use chatgate::acl::ExpiryIndex as _;

    let op = Operator { table: unique_table_name("backfill"), tenant_claim: None };
    op.ok(&["table", "create"]);
    op.ok(&["assets", "put", "a-1", "--owner", "ana", "--type", "document"]);
    let store = chatgate_tests::dynamo::test_store(&dynamo_local().endpoint, &op.table).await;
    let generation = chatgate_tests::acl_contract::record(&store, "a-1").await.generation;
    // Grants as an earlier version wrote them: with an expiry, without an index entry.
    let now = chatgate_tests::now();
    let client = chatgate_tests::dynamo::client(&dynamo_local().endpoint).await;
    for (who, at) in [("bob", now + 3600), ("cy", now - 60)] {
        client
            .put_item()
            .table_name(&op.table)
            .item("pk", AttributeValue::S("A#a-1".into()))
            .item("sk", AttributeValue::S(format!("G#user:{who}")))
            .item("r", AttributeValue::S("r".into()))
            .item("g", AttributeValue::S(generation.clone()))
            .item("x", AttributeValue::N(at.to_string()))
            .send()
            .await
            .expect("old grant");
    }
    let minute = (now + 3600) / 60;
    assert!(store.expiring_in(minute).await.expect("index").is_empty());
    assert_eq!(
        op.ok(&["grants", "index-expiries"]),
        "indexed 1 grant expiry(ies)\nalready expired on asset a-1: run `chatgate reconcile asset a-1`\n"
    );
    let entries = store.expiring_in(minute).await.expect("index");
    assert_eq!(entries.len(), 1);
    assert_eq!((entries[0].principal.to_string(), entries[0].expires_at), ("user:bob".to_owned(), now + 3600));
}

#[test]
fn a_tenant_deployments_operator_names_the_tenant_and_sees_only_its_ids() {
    let op = Operator { table: unique_table_name("tenant-ops"), tenant_claim: Some("org_id") };
    op.ok(&["table", "create"]);
    for tenant in ["acme", "globex"] {
        let put = ["--tenant", tenant, "assets", "put", "a-1", "--owner", "ana", "--type", "document"];
        assert_eq!(op.ok(&put), "created asset a-1 (owner ana, document)\n", "each tenant has its own a-1");
    }
    assert_eq!(op.ok(&["--tenant", "acme", "groups", "add", "designers", "bob"]), "added bob to group designers\n");
    op.ok(&["--tenant", "acme", "grants", "put", "a-1", "group:designers", "--role", "reader"]);
    // Each tenant's a-1 shows its own owner and grants, named as the tenant names them.
    let acme = op.ok(&["--tenant", "acme", "assets", "show", "a-1"]);
    assert_eq!(acme, "asset a-1: owner ana, document, name \"\"\ngroup:designers reader\n");
    assert_eq!(op.ok(&["--tenant", "globex", "assets", "show", "a-1"]), "asset a-1: owner ana, document, name \"\"\n");
    assert_eq!(op.ok(&["--tenant", "acme", "groups", "members", "designers"]), "bob\n");
    assert_eq!(op.ok(&["--tenant", "globex", "groups", "members", "designers"]), "");
    // In a tenant deployment the tenant is required; in a single-tenant one it is refused.
    assert!(op.fails(&["assets", "show", "a-1"]).contains("--tenant"));
    let single = Operator { table: op.table.clone(), tenant_claim: None };
    assert!(single.fails(&["--tenant", "acme", "assets", "show", "a-1"]).contains("TENANT_CLAIM"));
    assert!(op.fails(&["--tenant", "acme", "table", "create"]).contains("takes none"));
}
