import { useCallback, useEffect, useState } from "react";

import { describe, useChatgate } from "./chatgate.js";

/** The owner's share dialog: who may read or write the document, and changing it. */
export default function ShareDialog({ assetId, onClose, onChanged }) {
  const chatgate = useChatgate();
  const [listing, setListing] = useState(null);
  const [error, setError] = useState(null);
  const [principal, setPrincipal] = useState("user:");
  const [role, setRole] = useState("reader");

  const load = useCallback(() => {
    setError(null);
    chatgate.grants(assetId).then(setListing, (e) => setError(describe(e)));
  }, [chatgate, assetId]);
  useEffect(load, [load]);

  const change = (action) =>
    action.then(
      () => {
        chatgate.invalidate(assetId);
        onChanged?.();
        load();
      },
      (e) => setError(describe(e)),
    );

  return (
    <div className="dialog" role="dialog" aria-label={`Share ${assetId}`} data-testid="share-dialog">
      <h3>Share {assetId}</h3>
      {error && (
        <p className="error" role="alert" data-testid="share-error">
          {error}
        </p>
      )}
      {listing && (
        <>
          <p>Owner: {listing.owner}</p>
          <ul>
            {listing.grants.map((g) => (
              <li key={g.principal} data-testid="grant">
                {g.principal} — {g.role}
                {g.expires_at ? ` until ${g.expires_at}` : ""}{" "}
                <button onClick={() => change(chatgate.unshare(assetId, g.principal))}>Revoke {g.principal}</button>
              </li>
            ))}
          </ul>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              change(chatgate.share(assetId, principal, { role, expires_at: null }));
            }}
          >
            <input aria-label="Principal" value={principal} onChange={(e) => setPrincipal(e.target.value)} />
            <select aria-label="Role" value={role} onChange={(e) => setRole(e.target.value)}>
              <option value="reader">reader</option>
              <option value="writer">writer</option>
            </select>
            <button type="submit">Share</button>
          </form>
        </>
      )}
      <button onClick={onClose}>Close</button>
    </div>
  );
}
