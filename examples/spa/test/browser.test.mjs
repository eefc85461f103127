// The example app in a real Chromium (Debian's, driven by playwright-core; no browser download)
// against `chatgate dev`, the app served from another origin than the API so CORS is for real:
// signing in with a dev session, the start-up listing, 30 asset cards costing one access request,
// a card turning locked after the owner revokes, an asset conversation with its card, and an
// error shown from a problem body; every page's console is clean (any error fails the test).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const app = fileURLToPath(new URL("..", import.meta.url));
const root = join(app, "..", "..");
const chatgateBin = process.env.CHATGATE_BIN ?? join(root, "target", "debug", "chatgate");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

// With TENANT_CLAIM set, the same app against a tenant deployment: acme's users, the Twilio
// identities (what the app shows and compares message authors with) qualified with acme.
const tenantClaim = process.env.TENANT_CLAIM;
const tenant = tenantClaim ? "acme" : null;
const twilioIdentity = (user) => (tenant ? `${tenant}~${user}` : user);
const adminPrefix = tenant ? `/admin/tenants/${tenant}` : "/admin";

let dev;
let staticServer;
let browser;
const banner = {};

/** `chatgate dev` on a free port; resolves with its banner once it says `ready`. */
function startChatgate() {
  const child = spawn(chatgateBin, ["dev", "--port", "0"], {
    env: { PATH: process.env.PATH, RUST_LOG: "warn", ...(tenantClaim ? { TENANT_CLAIM: tenantClaim } : {}) },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const lines = [];
    child.on("exit", (code) => reject(new Error(`chatgate dev exited (${code}): ${lines.join("\n")}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      lines.push(line);
      if (line === "ready") resolve({ child, lines });
    });
  });
}

const line = (lines, prefix) => {
  const found = lines.find((l) => l.startsWith(prefix));
  assert.ok(found, `no "${prefix}" in the banner`);
  return found.slice(prefix.length);
};

/** Serves the built app (dist/) on a free port: another origin than chatgate's. */
function serveApp() {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    let file = join(app, "dist", path);
    // Like a static host: a missing file is 404; a path without an extension is the app's.
    if (!existsSync(file) && extname(path) !== "") {
      res.writeHead(404).end();
      return;
    }
    if (!existsSync(file) || statSync(file).isDirectory()) file = join(app, "dist", "index.html");
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function api(method, path, token, body) {
  const response = await fetch(`${banner.base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response.status === 204 ? null : response.json();
}

/** Posts a message straight to the Twilio stand-in, as the SaaS's back end would through Twilio. */
async function postMessage(conversation, author, body, attributes) {
  const { twilio, service, keySid, keySecret } = banner;
  const response = await fetch(`${twilio}/v1/Services/${service}/Conversations/${conversation}/Messages`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${keySid}:${keySecret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({ Author: author, Body: body, Attributes: JSON.stringify(attributes) }),
  });
  assert.equal(response.status, 201, await response.text());
}

before(async () => {
  dev = await startChatgate();
  banner.base = line(dev.lines, "chatgate dev listening on ");
  banner.owner = line(dev.lines, `session token for \`dev-user\`${tenant ? ` of tenant ${tenant}` : ""} (24 h): `);
  banner.admin = line(dev.lines, "admin key (generated; the /admin routes take `Authorization: Bearer <key>`): ");
  banner.twilio = line(dev.lines, "twilio: ");
  [banner.service, banner.keySid, banner.keySecret] = line(dev.lines, "twilio stand-in credentials (for seeding messages): ").split(" ");
  const another = line(dev.lines, "another user: ");
  const env = Object.fromEntries(another.split(" ").filter((w) => w.includes("=")).map((w) => w.split("=", 2)));
  const of = tenant ? ["--tenant", tenant] : [];
  banner.reader = execFileSync(chatgateBin, ["session", "--sub", "u-2", ...of], { env: { ...env, PATH: process.env.PATH } })
    .toString()
    .trim();

  // Thirty documents of dev-user's, the first twenty shared with u-2; two conversations whose
  // messages refer to them (20 and 10: the listing carries at most 20 messages each).
  for (let i = 0; i < 30; i++) {
    await api("PUT", `${adminPrefix}/assets/c-${i}`, banner.admin, { owner: "dev-user", type: "document", name: `Doc ${i}` });
    if (i < 20) await api("PUT", `/assets/c-${i}/grants/user:u-2`, banner.owner, { role: "reader", expires_at: null });
  }
  const room = (name) => api("POST", "/conversations", banner.owner, { type: "group", friendly_name: name, unique_name: name, participants: ["u-2"] });
  const [a, b] = [await room("Cards A"), await room("Cards B")];
  for (let i = 0; i < 30; i++) {
    const conversation = i < 20 ? a.sid : b.sid;
    await postMessage(conversation, twilioIdentity("dev-user"), `Document ${i}`, { assetRef: `c-${i}`, assetType: "document" });
  }

  staticServer = await serveApp();
  banner.app = `http://127.0.0.1:${staticServer.address().port}`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  staticServer?.close();
  dev?.child.kill();
});

/** A signed-in page, the access-check requests it sends, and what its console reports as errors
 * (React's warnings included: the app is built with development React for this test). */
async function signIn(token) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const checks = [];
  const errors = [];
  page.on("request", (req) => {
    if (req.url().endsWith("/access/check")) checks.push(JSON.parse(req.postData()).asset_ids);
  });
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`${message.text()} ${message.location().url ?? ""}`.trim());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(banner.app);
  await page.getByLabel("chatgate URL").fill(banner.base);
  await page.getByLabel("Session token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  return { page, checks, errors };
}

const cards = (page, state) => page.locator(`[data-testid="asset-card"][data-state="${state}"]`);

async function until(what, check) {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("the app signs in, lists, renders 30 cards with one access request, and follows a revocation", async () => {
  const { page, checks, errors } = await signIn(banner.reader);
  // The start-up listing renders before (and without) any Twilio connection.
  await page.getByTestId("me").getByText(`Signed in as ${twilioIdentity("u-2")}`).waitFor();
  await page.getByRole("button", { name: /Cards A/ }).waitFor();
  await page.getByRole("button", { name: /Cards B/ }).waitFor();
  assert.match(await page.getByTestId("chat-state").innerText(), /not connected/);

  // Thirty cards at once: one batch.
  await page.getByRole("button", { name: "Activity" }).click();
  await until("30 decided cards", async () => (await cards(page, "open").count()) + (await cards(page, "locked").count()) === 30);
  assert.equal(await cards(page, "open").count(), 20);
  assert.equal(await cards(page, "locked").count(), 10);
  assert.equal(checks.length, 1, `one access request, not ${checks.length}`);
  assert.equal(new Set(checks[0]).size, 30);

  // A conversation's twenty cards come from the client's cache.
  await page.getByRole("button", { name: /Cards A/ }).click();
  await until("20 cards", async () => (await cards(page, "open").count()) === 20);
  assert.equal(checks.length, 1);

  // The owner revokes u-2's grant on c-3 in the share dialog...
  const owner = await signIn(banner.owner);
  await owner.page.getByLabel("Document to share").fill("c-3");
  await owner.page.getByRole("button", { name: "Share…" }).click();
  await owner.page.getByRole("button", { name: "Revoke user:u-2" }).click();
  await until("the grant gone", async () => (await owner.page.getByTestId("grant").count()) === 0);

  // ...and u-2's card for c-3 turns locked once the app asks again.
  await page.getByRole("button", { name: "Refresh access" }).click();
  await until("c-3 locked", async () => (await page.locator('[data-asset="c-3"]').getAttribute("data-state")) === "locked");
  assert.equal(await cards(page, "open").count(), 19);
  assert.equal(checks.length, 2, "one more batch for the refresh");
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(errors, [], "the console stays clean");
  assert.deepEqual(owner.errors, [], "the owner's console stays clean");
});

test("an asset conversation opens with its card and a clean console", async () => {
  const { page, errors } = await signIn(banner.owner);
  await page.getByTestId("me").getByText(`Signed in as ${twilioIdentity("dev-user")}`).waitFor();
  await page.getByLabel("Kind").selectOption("asset");
  await page.getByLabel("Document", { exact: true }).fill("c-1");
  await page.getByLabel("With").fill("u-2");
  await page.getByRole("button", { name: "Open" }).click();
  const view = page.getByTestId("conversation-view");
  await view.locator('[data-testid="asset-card"][data-asset="c-1"][data-state="open"]').waitFor();
  await view.getByRole("button", { name: "Share c-1" }).waitFor();
  assert.deepEqual(errors, [], "no error in the console (React's DOM nesting warnings included)");
});

test("an error from a problem body is shown", async () => {
  const { page, errors } = await signIn(banner.reader);
  await page.getByTestId("me").getByText(`Signed in as ${twilioIdentity("u-2")}`).waitFor();
  await page.getByLabel("Document to share").fill("c-25");
  await page.getByRole("button", { name: "Share…" }).click();
  const error = page.getByTestId("share-error");
  await error.waitFor();
  assert.equal(await error.innerText(), "403 forbidden: only the owner or a writer can see this asset's grants");

  await page.getByLabel("Kind").selectOption("asset");
  await page.getByLabel("Document", { exact: true }).fill("c-25");
  await page.getByLabel("With").fill("u-3");
  await page.getByRole("button", { name: "Open" }).click();
  await page.getByTestId("error").waitFor();
  // The refusal tells nothing: not whether c-25 exists, nor whether u-3 could read it.
  const refused = await page.getByTestId("error").innerText();
  assert.match(refused, /403 forbidden: you cannot read this asset/);
  assert.doesNotMatch(refused, /u-3/);
  // The browser reports the refused requests this test provokes (the grants, fetched twice by
  // development React's StrictMode, and the conversation), and nothing else.
  const provoked = (e) =>
    e.includes("status of 403") && (e.endsWith("/assets/c-25/grants") || e.endsWith("/conversations"));
  assert.ok(errors.some((e) => provoked(e) && e.endsWith("/grants")), errors.join("\n"));
  assert.ok(errors.some((e) => provoked(e) && e.endsWith("/conversations")), errors.join("\n"));
  assert.deepEqual(errors.filter((e) => !provoked(e)), []);
});
