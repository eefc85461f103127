// Unit tests of @chatgate/client against a fake fetch: coalescing, caching, errors, encoding,
// timeouts, idempotent retries, and keepTokenFresh with an EventEmitter standing in for the
// Twilio Conversations client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";

import { ChatgateError, ChatgateTimeoutError, createChatgate } from "../dist/index.js";

/** A fetch that answers from `route(method, path, body)` and records every request. */
function fakeFetch(route) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const { pathname, search } = new URL(url);
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    const call = { method: init.method, path: pathname + search, body, headers: init.headers, signal: init.signal };
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A request that never answers, and ignores its abort signal too. */
const hung = () => new Promise(() => {});

/** An unsigned JWT with these claims (the client reads claims, chatgate verifies). */
const jwt = (claims) => [{ alg: "HS256", typ: "JWT" }, claims].map((part) => Buffer.from(JSON.stringify(part)).toString("base64url")).join(".") + ".c2ln";

/** Who a fake chatgate takes the bearer to be: a JWT's `sub` (and issuer), or the session itself. */
function userOf(authorization) {
  const session = authorization.replace(/^Bearer /, "");
  const [, payload] = session.split(".");
  if (payload === undefined) return session;
  const { iss, sub } = JSON.parse(Buffer.from(payload, "base64url"));
  return iss === "idp" ? sub : `${iss}/${sub}`;
}

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

test("an id chatgate gave no answer for is rejected, not cached, and asked again", async () => {
  let short = true;
  const { fetch, calls } = fakeFetch(({ body }) => [200, { results: body.asset_ids.slice(0, short ? 1 : undefined).map(answerFor) }]);
  const chatgate = client(fetch);
  const [first, second] = await Promise.allSettled([chatgate.access("a-1"), chatgate.access("a-2")]);
  assert.equal(first.status, "fulfilled");
  assert.match(second.reason.message, /no answer for a-2/);
  short = false;
  assert.equal((await chatgate.access("a-2")).asset_id, "a-2");
  assert.equal((await chatgate.access("a-1")).asset_id, "a-1");
  assert.equal(calls.length, 2, "a-2 asked again, a-1 still cached");
  assert.deepEqual(calls[1].body.asset_ids, ["a-2"]);
});

test("access answers belong to one user: another user is asked afresh and the last one's answers are dropped", async () => {
  const { fetch, calls } = fakeFetch(async ({ body, headers }) => {
    await sleep(10);
    const user = userOf(headers.authorization);
    return [200, { results: body.asset_ids.map((id) => ({ ...answerFor(id), identity: user })) }];
  });
  const alice = jwt({ iss: "idp", sub: "alice", iat: 1, exp: 2, jti: "j-1" });
  let session = alice;
  const chatgate = createChatgate({ baseUrl: "http://chatgate.test", session: () => session, fetch });
  const whose = async (id) => (await chatgate.access(id)).identity;

  assert.equal(await whose("a-1"), "alice");
  session = jwt({ iss: "idp", sub: "alice", iat: 3, exp: 4, jti: "j-2" });
  assert.equal(await whose("a-1"), "alice");
  assert.equal(calls.length, 1, "a renewed session of the same user reuses the answer");

  session = jwt({ iss: "idp", sub: "bob", iat: 3, exp: 4, jti: "j-3" });
  assert.equal(await whose("a-1"), "bob");
  assert.equal(calls[1].headers.authorization, `Bearer ${session}`, "the batch goes out with the session it was asked under");
  session = alice;
  assert.equal(await whose("a-1"), "alice");
  assert.equal(calls.length, 3, "bob's sign-in dropped alice's answers");

  // Alice's check still in flight when bob signs in is not bob's answer.
  const alicesPending = chatgate.access("a-2");
  await sleep(2);
  session = jwt({ iss: "idp", sub: "bob" });
  assert.equal(await whose("a-2"), "bob");
  assert.equal((await alicesPending).identity, "alice");

  session = jwt({ iss: "other-idp", sub: "bob" });
  assert.equal(await whose("a-2"), "other-idp/bob", "the same sub at another issuer is another user");
  session = "opaque-1";
  assert.equal(await whose("a-2"), "opaque-1");
  assert.equal(await whose("a-2"), "opaque-1");
  session = "opaque-2";
  assert.equal(await whose("a-2"), "opaque-2", "a session that is not a JWT is its own key");
  assert.equal(calls.length, 8);

  // Two sessions in one page, one client each, over one fetch.
  const asCarol = createChatgate({ baseUrl: "http://chatgate.test", session: () => jwt({ iss: "idp", sub: "carol" }), fetch });
  const asDave = createChatgate({ baseUrl: "http://chatgate.test", session: () => jwt({ iss: "idp", sub: "dave" }), fetch });
  const answers = await Promise.all([asCarol.access("a-3"), asDave.access("a-3")]);
  assert.deepEqual(answers.map((a) => a.identity), ["carol", "dave"]);
});

test("a call that outlasts timeoutMs is aborted and rejects with a ChatgateTimeoutError, a TypeError like fetch's own", async () => {
  const { fetch, calls } = fakeFetch(({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))));
  const error = await client(fetch, { timeoutMs: 30 }).token().catch((e) => e);
  assert.ok(error instanceof ChatgateTimeoutError);
  assert.ok(error instanceof TypeError, "handled wherever network failures are");
  assert.equal(error.name, "ChatgateTimeoutError");
  assert.equal(error.message, "chatgate did not answer POST /token within 30 ms");
  assert.equal(error.timeoutMs, 30);
  assert.equal(calls[0].signal.aborted, true);

  // A fetch that ignores its signal, and an answer whose body never ends, time out all the same.
  const ignored = await client(hung, { timeoutMs: 30 }).grants("a-1").catch((e) => e);
  assert.ok(ignored instanceof ChatgateTimeoutError);
  const endless = async () => new Response(new ReadableStream({ start() {} }), { status: 200 });
  assert.ok((await client(endless, { timeoutMs: 30 }).listConversations().catch((e) => e)) instanceof ChatgateTimeoutError);

  const slow = fakeFetch(async () => (await sleep(20), [200, tokenBody(1)]));
  assert.equal((await client(slow.fetch, { timeoutMs: 200 }).token()).token, "t-1", "a slow answer within the timeout is an answer");
  assert.throws(() => client(slow.fetch, { timeoutMs: 0 }), RangeError);
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
  assert.equal(calls.length, 1, "a 429 is not retried: the caller decides when");
});

test("createOrJoin sends one Idempotency-Key per call, the same on its retries after a network error, a timeout and a 503", async () => {
  const script = ["network", "hang", "ok", "503", "ok", "network", "network", "network", "409", "ok"];
  const { fetch, calls } = fakeFetch(() => {
    const step = script.shift();
    if (step === "network") throw new TypeError("fetch failed");
    if (step === "hang") return hung();
    if (step === "503") return [503, { status: 503, code: "upstream_unavailable" }, { "retry-after": "0" }];
    if (step === "409") return [409, { status: 409, code: "conflict", detail: "the name is taken" }];
    return [200, { sid: "CH1", created: true }];
  });
  const chatgate = client(fetch, { timeoutMs: 30 });
  const body = { type: "group", friendly_name: "Design review", participants: ["u-2"] };
  const keys = () => calls.map((c) => c.headers["Idempotency-Key"]);

  assert.equal((await chatgate.createOrJoin(body)).sid, "CH1");
  assert.equal(calls.length, 3, "retried after a network error and a timeout");
  const [first] = keys();
  assert.match(first, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(keys(), [first, first, first]);

  await chatgate.createOrJoin(body);
  assert.equal(calls.length, 5, "retried after a 503");
  assert.equal(keys()[3], keys()[4]);
  assert.notEqual(keys()[3], first, "another call, another key");

  const lost = await chatgate.createOrJoin(body).catch((e) => e);
  assert.ok(lost instanceof TypeError);
  assert.equal(calls.length, 8, "three attempts at most");

  const conflict = await chatgate.createOrJoin(body).catch((e) => e);
  assert.equal(conflict.code, "conflict");
  assert.equal(calls.length, 9, "a 4xx is not retried");

  await chatgate.createOrJoin(body, { idempotencyKey: "draft-42" });
  assert.equal(keys()[9], "draft-42", "the caller's key, for the caller's own retries");
  await assert.rejects(chatgate.createOrJoin(body, { idempotencyKey: "has space" }), RangeError);
  await assert.rejects(chatgate.createOrJoin(body, { idempotencyKey: "k".repeat(129) }), RangeError);
  assert.equal(calls.length, 10, "a malformed key is never sent");
});

test("createOrJoin makes its key with getRandomValues where randomUUID is missing (an insecure context)", async () => {
  const { fetch, calls } = fakeFetch(() => [200, { sid: "CH1", created: false }]);
  Object.defineProperty(globalThis.crypto, "randomUUID", { value: undefined, configurable: true });
  try {
    await client(fetch).createOrJoin({ type: "direct", participant: "u-2" });
  } finally {
    delete globalThis.crypto.randomUUID;
  }
  assert.equal(typeof globalThis.crypto.randomUUID, "function");
  assert.match(calls[0].headers["Idempotency-Key"], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
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

test("keepTokenFresh survives a hung token call: it times out, is retried, and is never left in flight", async () => {
  const script = ["hang", "ok", "hang", "hang", "ok"];
  let issued = 0;
  const { fetch, calls } = fakeFetch(() => (script.shift() === "hang" ? hung() : [200, tokenBody(++issued)]));
  const conversations = new FakeConversations();
  const errors = [];
  const stop = client(fetch, { timeoutMs: 30 }).keepTokenFresh(conversations, { attempts: 2, baseDelayMs: 5, onError: (e) => errors.push(e) });

  conversations.emit("tokenAboutToExpire");
  await sleep(120);
  assert.deepEqual(conversations.tokens, ["t-1"], "the timed-out call was retried");
  assert.equal(calls.length, 2);
  assert.ok(calls[0].signal.aborted && calls[0].signal.reason instanceof ChatgateTimeoutError);
  assert.deepEqual(errors, []);

  conversations.emit("tokenAboutToExpire");
  await sleep(150);
  assert.equal(calls.length, 4);
  assert.equal(errors.length, 1, "attempts spent on timeouts go to onError");
  assert.ok(errors[0] instanceof ChatgateTimeoutError);

  conversations.emit("tokenExpired");
  await sleep(60);
  assert.deepEqual(conversations.tokens, ["t-1", "t-2"], "not left in flight: the next event refreshes");
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
