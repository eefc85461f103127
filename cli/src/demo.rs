//! `chatgate dev --demo`: a few documents, shares and conversations to try the example SPA on,
//! written through the same stores and use cases as the routes.

use std::time::Duration;

use chatgate::acl::{CatalogWriter, ConversationsStore, GrantWriter};
use chatgate::clock::Deadline;
use chatgate::conversations::{Conversations, CreateCommand, Plan, Requested};
use chatgate::domain::Caller;
use chatgate::domain::{AssetId, AssetType, Grant, GroupId, Identity, Principal, Role, Tenant};
use chatgate::twilio::rest::ConversationsClient;
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn id<T: TryFrom<String>>(value: &str) -> Result<T>
where
    T::Error: std::error::Error + 'static,
{
    Ok(T::try_from(value.to_owned())?)
}

/// Seeds the demonstration; returns what it made, for the banner.
pub async fn seed<S: GrantWriter + CatalogWriter + ConversationsStore>(
    store: &S,
    conversations: &Conversations<S>,
    twilio: &ConversationsClient,
    me: &str,
) -> Result<String> {
    let deadline = || Deadline::after(Duration::from_secs(20));
    let documents = [
        ("plan", me, "Q3 plan"),
        ("roadmap", me, "Roadmap 2027"),
        ("budget", "u-2", "Budget"),
        ("salaries", "u-3", "Salaries"),
    ];
    for (asset, owner, name) in documents {
        store.put_asset(&id::<AssetId>(asset)?, &id::<Identity>(owner)?, AssetType::Document, name, 0).await?;
    }
    store.add_member(&id::<GroupId>("designers")?, &id::<Identity>("u-2")?).await?;
    let shares = [
        ("plan", Principal::User(id("u-2")?)),
        ("roadmap", Principal::Group(id("designers")?)),
        ("budget", Principal::User(id(me)?)),
    ];
    for (asset, principal) in shares {
        let record = store.asset_record(&id::<AssetId>(asset)?).await?.ok_or("the asset was just written")?;
        let grant = Grant { principal, role: Role::Reader, expires_at: None, generation: record.generation.clone() };
        store.put_grant(&record, &grant, 0).await?;
    }
    let open = |command: CreateCommand| -> Result<Plan> {
        Ok(Plan::try_from(Requested { caller: Caller { tenant: Tenant::Single, identity: id(me)? }, command })?)
    };
    let direct =
        conversations.create_or_join(open(CreateCommand::Direct { participant: "u-2".into() })?, deadline()).await?;
    let about_plan = conversations
        .create_or_join(
            open(CreateCommand::Asset { asset_id: "plan".into(), participants: vec!["u-2".into()] })?,
            deadline(),
        )
        .await?;
    let card = |asset: &str| json!({"assetRef": asset, "assetType": "document", "permissions": "inherited"});
    let messages = [
        (&direct.sid, "u-2", "Here is the Q3 plan", card("plan")),
        (&direct.sid, me, "And my budget notes", card("budget")),
        (&direct.sid, "u-2", "The roadmap, for the designers", card("roadmap")),
        (&direct.sid, "u-2", "Salaries are someone else's", card("salaries")),
        (&about_plan.sid, me, "Comments on the plan go here", json!({})),
    ];
    for (conversation, author, body, attributes) in messages {
        twilio.post_message(conversation, author, body, &attributes, deadline()).await?;
    }
    Ok(format!(
        "demo: documents plan, roadmap (yours), budget (u-2's, shared with you), salaries (u-3's); \
         a direct conversation with u-2 and the plan's conversation; sign in as {me} or u-2"
    ))
}
