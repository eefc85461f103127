import { useCallback, useEffect, useMemo, useState } from "react";
import { createChatgate } from "@chatgate/client";

import AssetCard from "./AssetCard.jsx";
import { connect } from "./chat.js";
import { ChatgateContext, describe, useChatgate } from "./chatgate.js";
import ShareDialog from "./ShareDialog.jsx";

const defaultUrl = import.meta.env.VITE_CHATGATE_URL ?? "http://127.0.0.1:3000";

export default function App() {
  const [session, setSession] = useState(null);
  const [baseUrl, setBaseUrl] = useState(defaultUrl);
  const chatgate = useMemo(
    () => (session ? createChatgate({ baseUrl, session: () => session }) : null),
    [baseUrl, session],
  );
  if (!chatgate) {
    return <SignIn baseUrl={baseUrl} onSignIn={(url, token) => (setBaseUrl(url), setSession(token))} />;
  }
  return (
    <ChatgateContext.Provider value={chatgate}>
      <Home onSignOut={() => (chatgate.invalidate(), setSession(null))} />
    </ChatgateContext.Provider>
  );
}

function SignIn({ baseUrl, onSignIn }) {
  const [url, setUrl] = useState(baseUrl);
  const [token, setToken] = useState("");
  return (
    <form
      className="sign-in"
      onSubmit={(e) => {
        e.preventDefault();
        onSignIn(url.trim(), token.trim());
      }}
    >
      <h1>chatgate example</h1>
      <label>
        chatgate URL <input aria-label="chatgate URL" value={url} onChange={(e) => setUrl(e.target.value)} />
      </label>
      <label>
        Session token (chatgate dev prints one; <code>chatgate session --sub u-2</code> makes others)
        <textarea aria-label="Session token" value={token} onChange={(e) => setToken(e.target.value)} />
      </label>
      <button type="submit">Sign in</button>
    </form>
  );
}

function Home({ onSignOut }) {
  const chatgate = useChatgate();
  const [me, setMe] = useState(null);
  const [listing, setListing] = useState(null);
  const [selected, setSelected] = useState(null);
  const [view, setView] = useState("conversation");
  const [error, setError] = useState(null);
  const [chat, setChat] = useState("connecting…");
  const [sharing, setSharing] = useState(null);
  // Bumped to make every card ask again (after the cache was cleared).
  const [accessVersion, setAccessVersion] = useState(0);

  const fail = (e) => setError(describe(e));
  const refresh = useCallback(
    () => chatgate.listConversations({ messages: 20 }).then(setListing, (e) => setError(describe(e))),
    [chatgate],
  );
  useEffect(() => {
    // Who am I: the token route says, and proves the session works before anything else.
    chatgate.token().then((t) => setMe(t.identity), (e) => setError(describe(e)));
    refresh();
    let disconnect = () => {};
    connect(chatgate, setChat).then((d) => (disconnect = d), (e) => setChat(`failed: ${e.message}`));
    return () => disconnect();
  }, [chatgate, refresh]);

  const conversations = listing?.conversations ?? [];
  const current = conversations.find((c) => c.sid === selected);
  const recheck = () => {
    chatgate.invalidate();
    setAccessVersion((v) => v + 1);
  };

  return (
    <div className="home">
      <header>
        <span data-testid="me">Signed in as {me ?? "…"}</span>
        <span className="chat" data-testid="chat-state">Chat: {chat}</span>
        <button onClick={recheck}>Refresh access</button>
        <button onClick={onSignOut}>Sign out</button>
      </header>
      {error && (
        <p className="error" role="alert" data-testid="error">
          {error} <button onClick={() => setError(null)}>Dismiss</button>
        </p>
      )}
      <aside>
        <h2>Conversations</h2>
        {listing === null && <p>Loading…</p>}
        <ul data-testid="conversations">
          {conversations.map((c) => (
            <li key={c.sid}>
              <button data-testid="conversation" onClick={() => (setSelected(c.sid), setView("conversation"))}>
                {c.friendly_name ?? c.sid} <small>({c.type ?? "other"})</small>
                {c.unread_count ? <span className="badge">{c.unread_count}</span> : null}
              </button>
            </li>
          ))}
        </ul>
        <button onClick={() => setView("activity")}>Activity</button>
        <NewConversation onCreated={(sid) => refresh().then(() => setSelected(sid))} onError={fail} />
        <OpenShare onOpen={setSharing} />
      </aside>
      <main>
        {view === "activity" && (
          <section data-testid="activity">
            <h2>Activity</h2>
            {conversations.flatMap((c) =>
              c.messages.map((m) => <Message key={`${c.sid}-${m.index}`} message={m} version={accessVersion} />),
            )}
          </section>
        )}
        {view === "conversation" && current && (
          <section data-testid="conversation-view">
            <h2>{current.friendly_name}</h2>
            <p>With {current.participants.join(", ")}</p>
            {current.type === "asset" && current.asset_id && (
              <div className="about">
                About <AssetCard assetId={current.asset_id} version={accessVersion} />
                <button onClick={() => setSharing(current.asset_id)}>Share {current.asset_id}</button>
              </div>
            )}
            {current.messages.map((m) => (
              <Message key={m.index} message={m} version={accessVersion} />
            ))}
          </section>
        )}
        {view === "conversation" && !current && <p>Pick a conversation.</p>}
        {sharing && <ShareDialog assetId={sharing} onClose={() => setSharing(null)} onChanged={recheck} />}
      </main>
    </div>
  );
}

function Message({ message, version }) {
  const ref = message.attributes?.assetRef;
  return (
    <div className="message" data-testid="message">
      <strong>{message.author}</strong>: {message.body}
      {typeof ref === "string" && <AssetCard assetId={ref} assetType={message.attributes.assetType} version={version} />}
    </div>
  );
}

function NewConversation({ onCreated, onError }) {
  const chatgate = useChatgate();
  const [kind, setKind] = useState("direct");
  const [who, setWho] = useState("");
  const [asset, setAsset] = useState("");
  const submit = (e) => {
    e.preventDefault();
    const others = who.split(",").map((s) => s.trim()).filter(Boolean);
    const body =
      kind === "direct" ? { type: "direct", participant: others[0] ?? "" } : { type: "asset", asset_id: asset.trim(), participants: others };
    chatgate.createOrJoin(body).then((c) => onCreated(c.sid), onError);
  };
  return (
    <form className="new" onSubmit={submit}>
      <h3>New conversation</h3>
      <select aria-label="Kind" value={kind} onChange={(e) => setKind(e.target.value)}>
        <option value="direct">direct</option>
        <option value="asset">about a document</option>
      </select>
      {kind === "asset" && <input aria-label="Document" placeholder="document id" value={asset} onChange={(e) => setAsset(e.target.value)} />}
      <input aria-label="With" placeholder={kind === "direct" ? "user id" : "user ids, comma-separated"} value={who} onChange={(e) => setWho(e.target.value)} />
      <button type="submit">Open</button>
    </form>
  );
}

function OpenShare({ onOpen }) {
  const [asset, setAsset] = useState("");
  return (
    <form
      className="new"
      onSubmit={(e) => {
        e.preventDefault();
        if (asset.trim()) onOpen(asset.trim());
      }}
    >
      <h3>Share a document</h3>
      <input aria-label="Document to share" placeholder="document id" value={asset} onChange={(e) => setAsset(e.target.value)} />
      <button type="submit">Share…</button>
    </form>
  );
}
