import { useEffect, useState } from "react";

import { describe, useChatgate } from "./chatgate.js";

/**
 * A document a message refers to: open or locked for the signed-in user. Every card asks
 * `access()` on its own; the client sends the cards of one render as one batch.
 */
export default function AssetCard({ assetId, assetType, version }) {
  const chatgate = useChatgate();
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let current = true;
    chatgate.access(assetId).then(
      (a) => current && setAnswer(a),
      (e) => current && setError(describe(e)),
    );
    return () => {
      current = false;
    };
  }, [chatgate, assetId, version]);
  const state = error ? "error" : answer === null ? "checking" : answer.can_read ? "open" : "locked";
  return (
    <div className={`card ${state}`} data-testid="asset-card" data-asset={assetId} data-state={state}>
      <span className="kind">{assetType ?? "document"}</span> <strong>{assetId}</strong>{" "}
      {state === "open" && <span>open ({answer.role}{answer.via ? ` via ${answer.via}` : ""})</span>}
      {state === "locked" && <span>locked: you cannot open it</span>}
      {state === "checking" && <span>checking…</span>}
      {state === "error" && <span>{error}</span>}
    </div>
  );
}
