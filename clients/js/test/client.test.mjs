// Unit tests of @chatgate/client against a fake fetch: coalescing, caching, errors, encoding,
// and keepTokenFresh with an EventEmitter standing in for the Twilio Conversations client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";

import { ChatgateError, createChatgate } from "../dist/index.js";

/** A fetch that answers from `route(method, path, body)` and records every request. */
function fakeFetch(route) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const { pathname, search } = new URL(url);
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    const call = { method: init.method, path: pathname + search, body, headers: init.headers };
    calls.push(call);
    const [status, payload, headers = {}] = await route(call);
    const text = payload === undefined ? "" : typeof payload === "string" ? payload : JSON.stringify(payload);
    return new Response(status === 204 ? null : text, { status, headers });
  };
  return { fetch, calls };
}

const answerFor = (id) => ({ asset_id: id, identity: "u-1", role: "reader", can_read: true, can_write: false, can_share: false, via: "user" });

function checker() {
  return fakeFetch(({ path, body }) => {
    assert.equal(path, "/access/check");
    return [200, { results: body.asset_ids.map(answerFor) }];
  });
}

const client = (fetch, extra = {}) => createChatgate({ baseUrl: "http://chatgate.test/", session: () => "s-1", fetch, ...extra });

test("access calls in one tick are one batch; 150 ids are two", async () => {
  const { fetch, calls } = checker();
  const chatgate = client(fetch);
  const thirty = Array.from({ length: 30 }, (_, i) => `a-${i}`);
  const answers = await Promise.all([...thirty, "a-0", "a-1"].map((id) => chatgate.access(id)));
  assert.equal(calls.length, 1);
  assert.deepEqual(calls[0].body.asset_ids, thirty, "distinct ids, in order");
  assert.equal(answers[30].asset_id, "a-0");

  const more = Array.from({ length: 150 }, (_, i) => `b-${i}`);
  await Promise.all(more.map((id) => chatgate.access(id)));
  assert.equal(calls.length, 3);
  assert.deepEqual(calls.slice(1).map((c) => c.body.asset_ids.length), [100, 50]);
});

test("answers are cached briefly, and invalidate forgets them", async () => {
  const { fetch, calls } = checker();
  const chatgate = client(fetch, { accessCacheMs: 40 });
  await chatgate.access("a-1");
  await chatgate.access("a-1");
  assert.equal(calls.length, 1, "cached");
  chatgate.invalidate("a-1");
  await chatgate.access("a-1");
  assert.equal(calls.length, 2, "invalidated");
  await new Promise((r) => setTimeout(r, 60));
  await chatgate.access("a-1");
  assert.equal(calls.length, 3, "expired");
  await chatgate.access("a-2");
  chatgate.invalidate();
  await Promise.all([chatgate.access("a-1"), chatgate.access("a-2")]);
  assert.equal(calls.length, 5, "all forgotten, asked again in one batch");
});

test("a failed batch rejects every caller and is not cached", async () => {
  let fail = true;
  const { fetch, calls } = fakeFetch(({ body }) =>
    fail
      ? [503, { type: "about:blank", title: "Service Unavailable", status: 503, detail: "the permission store is unavailable; retry later", code: "upstream_unavailable" }, { "content-type": "application/problem+json", "retry-after": "1" }]
      : [200, { results: body.asset_ids.map(answerFor) }],
  );
  const chatgate = client(fetch);
  const results = await Promise.allSettled([chatgate.access("a-1"), chatgate.access("a-2")]);
  assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
  assert.equal(results[0].reason.status, 503);
  assert.equal(results[0].reason.retryAfter, 1);
  fail = false;
  assert.equal((await chatgate.access("a-1")).can_read, true);
  assert.equal(calls.length, 2);
});

test("non-2xx answers are ChatgateErrors with status, code, detail and retryAfter", async () => {
  const { fetch } = fakeFetch(({ path }) => {
    if (path.startsWith("/assets/")) {
      return [403, { type: "about:blank", title: "Forbidden", status: 403, detail: "only the owner can share this asset", code: "forbidden" }, { "content-type": "application/problem+json" }];
    }
    if (path === "/token") return [502, "Bad Gateway", { "content-type": "text/plain" }];
    return [429, { status: 429, code: "rate_limited" }, { "retry-after": new Date(Date.now() + 3000).toUTCString() }];
  });
  const chatgate = client(fetch);
  const refused = await chatgate.share("a-1", "user:u-2", { role: "reader" }).catch((e) => e);
  assert.ok(refused instanceof ChatgateError);
  assert.deepEqual([refused.status, refused.code, refused.detail, refused.retryAfter], [403, "forbidden", "only the owner can share this asset", null]);
  assert.equal(refused.message, "only the owner can share this asset");
  const opaque = await chatgate.token().catch((e) => e);
  assert.deepEqual([opaque.status, opaque.code, opaque.detail], [502, null, null]);
  const limited = await chatgate.listConversations().catch((e) => e);
  assert.equal(limited.code, "rate_limited");
  assert.ok(limited.retryAfter >= 2 && limited.retryAfter <= 3, `${limited.retryAfter}`);
});

test("a spent budget of new conversations is a ChatgateError 429 rate_limited with retryAfter in seconds", async () => {
  const detail = "the minute budget of 20 new conversations is spent; retry in 42 s";
  const { fetch, calls } = fakeFetch(() => [
    429,
    { type: "about:blank", title: "Too Many Requests", status: 429, detail, code: "rate_limited" },
    { "content-type": "application/problem+json", "retry-after": "42", "cache-control": "no-store" },
  ]);
  const refused = await client(fetch)
    .createOrJoin({ type: "group", friendly_name: "Design review", participants: ["u-2"] })
    .catch((e) => e);
  assert.ok(refused instanceof ChatgateError);
  assert.deepEqual([refused.status, refused.code, refused.detail, refused.retryAfter], [429, "rate_limited", detail, 42]);
  assert.equal(refused.message, detail);
  assert.equal(calls.length, 1, "createOrJoin does not retry by itself: the caller decides when");
});

test("ids are percent-encoded, bodies are JSON, and the session is asked for every request", async () => {
  const { fetch, calls } = fakeFetch(({ method }) => (method === "DELETE" ? [204] : [200, {}]));
  let n = 0;
  const chatgate = createChatgate({ baseUrl: "http://chatgate.test", session: async () => `s-${++n}`, fetch });
  await chatgate.grants("doc#1/v2 é");
  await chatgate.share("a-1", "group:design team", { role: "writer", expires_at: null });
  assert.equal(await chatgate.unshare("a-1", "user:u/2"), undefined);
  await chatgate.createOrJoin({ type: "direct", participant: "u-2" });
  await chatgate.listConversations({ messages: 5, page_token: "abc" });
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), [
    "GET /assets/doc%231%2Fv2%20%C3%A9/grants",
    "PUT /assets/a-1/grants/group%3Adesign%20team",
    "DELETE /assets/a-1/grants/user%3Au%2F2",
    "POST /conversations",
    "GET /conversations?messages=5&page_token=abc",
  ]);
  assert.deepEqual(calls[1].body, { role: "writer", expires_at: null });
  assert.equal(calls[1].headers["content-type"], "application/json");
  assert.deepEqual(calls.map((c) => c.headers.authorization), ["Bearer s-1", "Bearer s-2", "Bearer s-3", "Bearer s-4", "Bearer s-5"]);
});

test("conversationPages walks every page", async () => {
  const pages = { "": ["c1", "c2"], t2: ["c3"] };
  const { fetch } = fakeFetch(({ path }) => {
    const token = new URL(`http://x${path}`).searchParams.get("page_token") ?? "";
    return [200, { conversations: pages[token].map((sid) => ({ sid })), next_page_token: token ? null : "t2" }];
  });
  const seen = [];
  for await (const page of client(fetch).conversationPages({ messages: 1 })) seen.push(...page.conversations.map((c) => c.sid));
  assert.deepEqual(seen, ["c1", "c2", "c3"]);
});

/** An EventEmitter standing in for @twilio/conversations' Client. */
class FakeConversations extends EventEmitter {
  tokens = [];
  async updateToken(token) {
    this.tokens.push(token);
  }
}

const tokenBody = (n) => ({ token: `t-${n}`, identity: "u-1", ttl_seconds: 3600, expires_at: "2026-12-01T00:00:00Z" });

test("keepTokenFresh updates the token once per event, one refresh at a time", async () => {
  let issued = 0;
  const { fetch, calls } = fakeFetch(async () => {
    await new Promise((r) => setTimeout(r, 20));
    return [200, tokenBody(++issued)];
  });
  const conversations = new FakeConversations();
  const refreshed = [];
  const stop = client(fetch).keepTokenFresh(conversations, { ttlSeconds: 900, onRefresh: (t) => refreshed.push(t.token) });
  conversations.emit("tokenAboutToExpire");
  conversations.emit("tokenAboutToExpire");
  conversations.emit("tokenExpired");
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls.length, 1, "one refresh in flight at a time");
  assert.deepEqual(calls[0].body, { ttl_seconds: 900 });
  assert.deepEqual(conversations.tokens, ["t-1"]);
  conversations.emit("tokenAboutToExpire");
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(conversations.tokens, ["t-1", "t-2"]);
  assert.deepEqual(refreshed, ["t-1", "t-2"]);
  stop();
  assert.equal(conversations.listenerCount("tokenAboutToExpire") + conversations.listenerCount("tokenExpired"), 0);
  conversations.emit("tokenExpired");
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(calls.length, 2, "unsubscribed");
});

test("keepTokenFresh retries network errors and 503 with Retry-After, and gives up on 401", async () => {
  const script = ["network", "503", "ok"];
  const { fetch, calls } = fakeFetch(() => {
    const step = script.shift();
    if (step === "network") throw new TypeError("fetch failed");
    if (step === "503") return [503, { status: 503, code: "upstream_unavailable" }, { "retry-after": "0" }];
    if (step === "401") return [401, { status: 401, code: "unauthorized", detail: "the session expired" }];
    return [200, tokenBody(1)];
  });
  const conversations = new FakeConversations();
  const errors = [];
  const stop = client(fetch).keepTokenFresh(conversations, { baseDelayMs: 5, onError: (e) => errors.push(e) });
  conversations.emit("tokenExpired");
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(conversations.tokens, ["t-1"]);
  assert.equal(calls.length, 3, "two retries");
  assert.deepEqual(errors, []);

  script.push("401");
  conversations.emit("tokenExpired");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(calls.length, 4, "a 401 is not retried");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "unauthorized");
  stop();
});

test("keepTokenFresh gives up after its attempts and tells onError", async () => {
  const { fetch, calls } = fakeFetch(() => [503, { status: 503, code: "upstream_unavailable" }]);
  const conversations = new FakeConversations();
  const errors = [];
  const stop = client(fetch).keepTokenFresh(conversations, { attempts: 3, baseDelayMs: 1, onError: (e) => errors.push(e) });
  conversations.emit("tokenAboutToExpire");
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(calls.length, 3);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].status, 503);
  assert.deepEqual(conversations.tokens, []);
  stop();
});
