//! `chatgate dev --demo`: a few documents, shares and conversations to try the example SPA on,
//! written through the same stores and use cases as the routes. In a tenant deployment each
//! demonstration tenant gets the same ids, and none of them sees another's.

use std::time::Duration;

use chatgate::acl::{CatalogWriter, ConversationsStore, GrantWriter};
use chatgate::clock::Deadline;
use chatgate::conversations::{Conversations, CreateCommand, Plan, Requested};
use chatgate::domain::{AssetType, Caller, Grant, Principal, Role, Tenant};
use chatgate::twilio::rest::ConversationsClient;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Seeds the demonstration in `tenant`; returns what it made, for the banner.
pub async fn seed<S: GrantWriter + CatalogWriter + ConversationsStore>(
    store: &S,
    conversations: &Conversations<S>,
    twilio: &ConversationsClient,
    me: &str,
    tenant: &Tenant,
) -> Result<String> {
    let deadline = || Deadline::after(Duration::from_secs(20));
    let documents = [
        ("plan", me, "Q3 plan"),
        ("roadmap", me, "Roadmap 2027"),
        ("budget", "u-2", "Budget"),
        ("salaries", "u-3", "Salaries"),
    ];
    for (asset, owner, name) in documents {
        store.put_asset(&tenant.asset(asset)?, &tenant.user(owner)?, AssetType::Document, name, 0).await?;
    }
    store.add_member(&tenant.group("designers")?, &tenant.user("u-2")?).await?;
    let shares = [("plan", "user:u-2"), ("roadmap", "group:designers"), ("budget", &format!("user:{me}"))];
    for (asset, principal) in shares {
        let record = store.asset_record(&tenant.asset(asset)?).await?.ok_or("the asset was just written")?;
        let principal: Principal = tenant.principal(principal)?;
        let grant = Grant { principal, role: Role::Reader, expires_at: None, generation: record.generation.clone() };
        store.put_grant(&record, &grant, 0).await?;
    }
    let caller = Caller { tenant: tenant.clone(), identity: tenant.user(me)? };
    let open =
        |command: CreateCommand| -> Result<Plan> { Ok(Plan::try_from(Requested { caller: caller.clone(), command })?) };
    let direct =
        conversations.create_or_join(open(CreateCommand::Direct { participant: "u-2".into() })?, deadline()).await?;
    let about_plan = conversations
        .create_or_join(
            open(CreateCommand::Asset { asset_id: "plan".into(), participants: vec!["u-2".into()] })?,
            deadline(),
        )
        .await?;
    // Messages carry asset ids as the tenant's clients name them; their authors are Twilio
    // identities (what `POST /token` answers).
    let card = |asset: &str| json!({"assetRef": asset, "assetType": "document", "permissions": "inherited"});
    let (u2, myself) = (tenant.qualify("u-2"), tenant.qualify(me));
    let messages = [
        (&direct.sid, &u2, "Here is the Q3 plan", card("plan")),
        (&direct.sid, &myself, "And my budget notes", card("budget")),
        (&direct.sid, &u2, "The roadmap, for the designers", card("roadmap")),
        (&direct.sid, &u2, "Salaries are someone else's", card("salaries")),
        (&about_plan.sid, &myself, "Comments on the plan go here", json!({})),
    ];
    for (conversation, author, body, attributes) in messages {
        twilio.post_message(conversation, author, body, &attributes, deadline()).await?;
    }
    let whose = tenant.id().map_or(String::new(), |t| format!("tenant {t}: "));
    Ok(format!(
        "demo: {whose}documents plan, roadmap (yours), budget (u-2's, shared with you), salaries (u-3's); \
         a direct conversation with u-2 and the plan's conversation; sign in as {me} or u-2"
    ))
}
